"""Test support: isolated infrastructure per run, real service processes, fake providers."""
