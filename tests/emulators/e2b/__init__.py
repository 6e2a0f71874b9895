"""E2B control plane + envd emulator for tests (see server.py)."""
from .server import Emulator, Faults  # noqa: F401
