"""Finding the mfsandbox executable.

Layer: Metaflow integration.  Order: $MFSANDBOX_BIN, the copy bundled in
the wheel (package mfsandbox_bin), then PATH.  Only the launcher looks: the
sandbox itself never needs the binary.
"""
import os


def _not_found(msg):
    # Imported here: this module must load without importing metaflow
    # (metaflow imports the extension while it initialises).
    from metaflow.exception import MetaflowException

    class MfsandboxNotFound(MetaflowException):
        headline = "mfsandbox executable not found"

    return MfsandboxNotFound(msg)


def _bundled():
    try:
        import mfsandbox_bin
    except ImportError:
        return None
    return mfsandbox_bin.path()


def _on_path():
    """The first `mfsandbox` executable on PATH that is not a script: a
    binary-less install's console command (a Python script) only says that
    no executable is bundled."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        exe = os.path.join(d or ".", "mfsandbox")
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            continue
        with open(exe, "rb") as f:
            if f.read(2) != b"#!":
                return exe
    return None


def find_binary():
    explicit = os.environ.get("MFSANDBOX_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return os.path.abspath(explicit)
        raise _not_found(
            "MFSANDBOX_BIN=%s is not an executable file: point it at a built mfsandbox "
            "(`make` in the source tree) or unset it to use the bundled one" % explicit
        )
    bundled = _bundled()
    if bundled:
        return bundled
    on_path = _on_path()
    if on_path:
        return on_path
    raise _not_found(
        "no mfsandbox executable: MFSANDBOX_BIN is unset, this install of metaflow-mfsandbox "
        "has no bundled binary (it was built without one), and `mfsandbox` is not on PATH. "
        "Reinstall with `pip install ./python` from the source tree, or set MFSANDBOX_BIN"
    )
