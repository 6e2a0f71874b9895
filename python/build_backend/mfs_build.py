"""Build backend: setuptools, plus the mfsandbox executable compiled from
the repository's C sources and placed in mfsandbox_bin/ before the wheel is
assembled (the way the cmake and ninja wheels carry their binaries).

MFSANDBOX_SOURCE_DIR: the C source tree (default: the parent of python/).
MFSANDBOX_BUNDLE=0: build a wheel without the executable (the decorator then
uses $MFSANDBOX_BIN or PATH).  Editable installs never bundle.
"""
import os
import shutil
import subprocess

from setuptools import build_meta as _st
from setuptools.build_meta import *  # noqa: F401,F403  (the PEP 517 hooks)

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TARGET = os.path.join(_HERE, "mfsandbox_bin", "mfsandbox")


def _bundle():
    if os.environ.get("MFSANDBOX_BUNDLE", "1") == "0":
        if os.path.exists(_TARGET):
            os.unlink(_TARGET)
        return
    src = os.environ.get("MFSANDBOX_SOURCE_DIR") or os.path.dirname(_HERE)
    if not os.path.isfile(os.path.join(src, "Makefile")):
        raise RuntimeError(
            "cannot find the mfsandbox C sources at %s: build from the source tree "
            "or set MFSANDBOX_SOURCE_DIR (MFSANDBOX_BUNDLE=0 builds without the executable)" % src
        )
    subprocess.check_call(["make", "-C", src, "mfsandbox"])
    shutil.copy2(os.path.join(src, "mfsandbox"), _TARGET)
    os.chmod(_TARGET, 0o755)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    # setuptools reuses build/lib between builds: a binary copied there by an
    # earlier bundled build would slip into a binary-less wheel.
    shutil.rmtree(os.path.join(_HERE, "build"), ignore_errors=True)
    _bundle()
    name = _st.build_wheel(wheel_directory, config_settings, metadata_directory)
    return _retag(wheel_directory, name)


def _retag(wheel_directory, name):
    """The wheel carries a native executable: tag it for this platform."""
    if not os.path.exists(_TARGET):
        return name
    from wheel.wheelfile import WheelFile  # noqa: F401  (wheel is a build requirement)
    import sysconfig

    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    subprocess.check_call(
        [os.sys.executable, "-m", "wheel", "tags", "--remove", "--python-tag", "py3",
         "--abi-tag", "none", "--platform-tag", plat, os.path.join(wheel_directory, name)],
        stdout=subprocess.DEVNULL,
    )
    for f in os.listdir(wheel_directory):
        if f.startswith(name.split("-py3")[0]) and plat in f:
            return f
    return name
