"""deliveryd."""
