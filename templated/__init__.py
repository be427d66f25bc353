"""templated."""
