"""The console's pages, one module each: `router(services, pages)` answers its routes."""
