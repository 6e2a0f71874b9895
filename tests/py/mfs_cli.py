"""Helpers for running the real ./mfsandbox binary in integration tests."""
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
# `make asan` points this at the sanitizer build.
BINARY = pathlib.Path(os.environ.get("MFSANDBOX_BIN") or ROOT / "mfsandbox")


def clean_env(**extra):
    """Our environment without a backend chosen, plus extra."""
    env = {k: v for k, v in os.environ.items() if k != "METAFLOW_SANDBOX_BACKEND"}
    env.update(extra)
    return env


def mfs(*args, env=None, input=None, timeout=120, text=True, **kw):
    return subprocess.run(
        [str(BINARY), *map(str, args)],
        capture_output=True,
        text=text,
        input=input,
        env=env if env is not None else clean_env(),
        timeout=timeout,
        **kw,
    )
