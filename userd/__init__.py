"""userd."""
