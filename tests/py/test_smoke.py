"""Placeholder removed once the CLI lands: the binary builds and refuses to pretend."""
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_binary_exists_and_fails_clearly():
    r = subprocess.run([str(ROOT / "mfsandbox")], capture_output=True, text=True)
    assert r.returncode != 0
    assert "mfsandbox" in r.stderr
