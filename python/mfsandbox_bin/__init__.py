"""The mfsandbox executable shipped inside the wheel (absent in editable or
binary-less builds), and the `mfsandbox` console command that runs it (the
way the cmake and ninja wheels put their executables on PATH)."""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
EXIT_CONFIG = 202  # mfsandbox's own code for a usage/configuration error


def path():
    """Absolute path of the bundled executable, or None."""
    exe = os.path.join(_HERE, "mfsandbox")
    return exe if os.path.isfile(exe) and os.access(exe, os.X_OK) else None


def main():
    """Console entry point: replaces this Python process with the bundled
    executable, so signals, stdio and the exit status are the executable's own."""
    exe = path()
    if exe is None:
        sys.stderr.write(
            "mfsandbox: this install of metaflow-mfsandbox has no bundled executable (it was "
            "built with MFSANDBOX_BUNDLE=0); reinstall with `pip install ./python` from the "
            "source tree, or run the `mfsandbox` that `make` builds there\n")
        return EXIT_CONFIG
    try:
        os.execv(exe, ["mfsandbox"] + sys.argv[1:])
    except OSError as e:  # e.g. a wheel built for another platform
        sys.stderr.write("mfsandbox: cannot run the bundled executable %s: %s; reinstall "
                         "metaflow-mfsandbox for this machine\n" % (exe, e.strerror))
    return EXIT_CONFIG
