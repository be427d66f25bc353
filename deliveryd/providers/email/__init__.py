"""Email providers: SendGrid, Mailgun, SMTP."""
