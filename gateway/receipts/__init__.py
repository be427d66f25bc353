"""Delivery receipts: what providers report after they took a message (webhooks)."""
