"""gateway."""

from pathlib import Path

# The notifications database's migrations: the gateway's, applied by whichever of its
# processes (the gateway, the callbacks process, `migrate`, `apikeys`) starts first.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
