"""The mfsandbox executable shipped inside the wheel (absent in editable or
binary-less builds)."""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def path():
    """Absolute path of the bundled executable, or None."""
    exe = os.path.join(_HERE, "mfsandbox")
    return exe if os.path.isfile(exe) and os.access(exe, os.X_OK) else None
