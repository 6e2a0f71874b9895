"""Daytona main API + toolbox emulator for tests (see server.py)."""
from .server import Emulator, Faults  # noqa: F401
