"""SMS providers: Twilio."""
