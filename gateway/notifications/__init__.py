"""NotificationService: accept notifications durably and tell what happened to them."""
