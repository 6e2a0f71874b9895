"""`make demo`'s script (scripts/demo.sh) end to end: plain local sandboxes,
then the sample foreach flow with each branch in its own local sandbox, read
back through the Client API.  `make demo` adds only the dependency install
and the build."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("MFSANDBOX_BIN") or ROOT / "mfsandbox")

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")


def test_demo_runs_the_sample_flow_in_local_sandboxes(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "MFSANDBOX_"))}
    env.update(PYTHON=sys.executable, HOME=str(tmp_path), METAFLOW_HOME=str(tmp_path),
               MFSANDBOX_LOCAL_STATE_DIR=str(tmp_path / "state"))
    r = subprocess.run([str(ROOT / "scripts" / "demo.sh"), str(BIN)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "run " in out and "successful: True" in out, out[-3000:]
    assert out.count("backend=local") == 4
    assert "squares: [1, 4, 9, 16] -> sum 30 (expected 30)" in out
    assert "exit status: 204 (204 = --timeout reached)" in out
    # The demo prints the command it runs (with the value); the dry run's plan hides it.
    plan = out.split("dry run: nothing is created", 1)[1].split("\x1b[1m$", 1)[0]
    assert "  AWS_SECRET_ACCESS_KEY=<redacted>" in plan and "abc" not in plan
    ls = subprocess.run([str(BIN), "ls", "--backend", "local"], env=env, capture_output=True,
                        text=True)
    assert ls.returncode == 0 and "mfs-" not in ls.stdout, ls.stdout
