"""One `pip install` of python/ gives the decorators AND the executor: the
wheel carries the mfsandbox binary compiled from this tree, and the
decorator finds it without MFSANDBOX_BIN or PATH."""
import os
import pathlib
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_wheel_bundles_a_working_binary_the_decorator_finds(tmp_path):
    env = dict(os.environ, MFSANDBOX_SOURCE_DIR=str(ROOT))
    env.pop("MFSANDBOX_BUNDLE", None)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(ROOT / "python")],
                   check=True, env=env, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("metaflow_mfsandbox-*.whl")
    assert "linux" in wheel.name  # a native payload: platform-tagged, not py3-none-any
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert "mfsandbox_bin/mfsandbox" in names
        assert "metaflow_extensions/sandbox/plugins/mfextinit_sandbox.py" in names
        assert not any(n == "metaflow_extensions/__init__.py" for n in names)
        mode = z.getinfo("mfsandbox_bin/mfsandbox").external_attr >> 16
        assert mode & 0o111

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    clean = {k: v for k, v in os.environ.items() if k != "MFSANDBOX_BIN"}
    clean["PATH"] = "/usr/bin:/bin"
    clean["PYTHONPATH"] = str(target)
    r = subprocess.run([sys.executable, "-c",
                        "from metaflow_extensions.sandbox.plugins.binary import find_binary;"
                        "print(find_binary())"], env=clean, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    found = r.stdout.strip()
    assert found.startswith(str(target))
    v = subprocess.run([found, "version"], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.strip()


def test_decorator_names_what_is_missing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MFSANDBOX_BIN"}
    env["PATH"] = "/usr/bin:/bin"
    env["MFSANDBOX_BIN"] = str(tmp_path / "absent")
    r = subprocess.run([sys.executable, "-c",
                        "from metaflow_extensions.sandbox.plugins.binary import find_binary;"
                        "find_binary()"], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "MFSANDBOX_BIN=%s is not an executable file" % (tmp_path / "absent") in r.stderr
