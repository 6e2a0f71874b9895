"""One `pip install` of python/ gives the decorators AND the executor: the
wheel carries the mfsandbox binary compiled from this tree, the decorator
finds it without MFSANDBOX_BIN or PATH, and the `mfsandbox` console command
runs it."""
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    env = dict(os.environ, MFSANDBOX_SOURCE_DIR=str(ROOT))
    env.pop("MFSANDBOX_BUNDLE", None)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(ROOT / "python")],
                   check=True, env=env, capture_output=True)
    (whl,) = dist.glob("metaflow_mfsandbox-*.whl")
    return whl


def test_wheel_bundles_a_working_binary_the_decorator_finds(tmp_path, wheel):
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


def test_pip_install_puts_an_mfsandbox_command_on_path(tmp_path, wheel):
    """A fresh venv, no source tree, no MFSANDBOX_BIN: `mfsandbox backends`
    and `mfsandbox version` answer from the bundled executable."""
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-index", "--disable-pip-version-check", str(wheel)],
                   check=True, capture_output=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MFSANDBOX_", "VIRTUAL_"))}
    clean["PATH"] = "%s:/usr/bin:/bin" % (venv / "bin")
    r = subprocess.run(["mfsandbox", "backends"], env=clean, cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    names = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
    assert {"local", "daytona", "e2b"} <= names, r.stdout
    v = subprocess.run(["mfsandbox", "version"], env=clean, capture_output=True, text=True)
    built = subprocess.run([str(ROOT / "mfsandbox"), "version"], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout == built.stdout
    # its exit status is the executable's own (202: usage)
    bad = subprocess.run(["mfsandbox", "run", "--no-such-flag"], env=clean, capture_output=True,
                         text=True)
    assert bad.returncode == 202 and bad.stderr.startswith("mfsandbox: ")


def test_console_command_without_a_bundled_binary_says_so(tmp_path):
    """A binary-less build (MFSANDBOX_BUNDLE=0): one line naming the fix, 202,
    and the decorator does not mistake the script for the executor."""
    target = tmp_path / "site"
    env = dict(os.environ, MFSANDBOX_BUNDLE="0")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(ROOT / "python")],
                   check=True, env=env, capture_output=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MFSANDBOX_")}
    clean.update(PATH="%s:/usr/bin:/bin" % (target / "bin"), PYTHONPATH=str(target))
    r = subprocess.run([str(target / "bin" / "mfsandbox"), "backends"], env=clean,
                       capture_output=True, text=True)
    assert r.returncode == 202
    assert r.stderr.startswith("mfsandbox: this install of metaflow-mfsandbox has no bundled "
                               "executable") and r.stderr.count("\n") == 1
    f = subprocess.run([sys.executable, "-c",
                        "from metaflow_extensions.sandbox.plugins.binary import _on_path;"
                        "print(_on_path())"], env=clean, capture_output=True, text=True)
    assert f.returncode == 0 and f.stdout.strip() == "None", f.stderr
