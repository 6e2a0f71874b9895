"""End to end: a flow with @sandbox(backend="local") steps, run by the real
Metaflow with --datastore=s3 (moto, signature checking on) and
--metadata=service (the real metaflow-local-service).  Every task, attempt,
metadata field and artifact must be visible through the service, none twice,
including the retried task."""
import collections
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from mf_e2e import rows_by_key

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLOWS = pathlib.Path(__file__).resolve().parent / "mf_flows"

LAUNCHER_SYSTEM_INFO = {"runtime", "python_version", "user", "metaflow_version", "script-name",
                        "production", "metaflow_r_version", "r_version", "r_version_code"}

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")

CLIENT = """
import json, sys
from metaflow import Run, Task, namespace
namespace(None)
run = Run(sys.argv[1])
out = {"steps": sorted(s.id for s in run), "tasks": {}}
for s in run:
    for t in s:
        att = {}
        for a in range(t.current_attempt + 1):
            ta = Task(t.pathspec, attempt=a)
            names = [x.id for x in ta]
            att[a] = {"unique": len(names) == len(set(names)),
                      "data": {x.id: x.data for x in ta if x.id in ("x", "y")}}
        out["tasks"][s.id] = {"id": t.id, "current_attempt": t.current_attempt, "attempts": att}
print(json.dumps(out))
"""


def test_sandboxed_flow_with_s3_and_service_metadata(s3_server, metadata_service, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(FLOWS / "relay_e2e_flow.py", work / "flow.py")
    ds_root = "s3://%s/e2e-%s" % (s3_server.bucket, tmp_path.name)
    env = s3_server.env(
        METAFLOW_USER="tester", METAFLOW_HOME=str(tmp_path), PYTHONUNBUFFERED="1",
        METAFLOW_DEFAULT_DATASTORE="s3", METAFLOW_DATASTORE_SYSROOT_S3=ds_root,
        METAFLOW_DEFAULT_METADATA="service", METAFLOW_SERVICE_URL=metadata_service.url,
        MFSANDBOX_BIN=str(ROOT / "mfsandbox"), MFSANDBOX_RELAY_SPOOL=str(tmp_path / "spool"),
        MFSANDBOX_LOCAL_STATE_DIR=str(tmp_path / "state"))
    env = {k: v for k, v in env.items() if not k.startswith("MFSANDBOX_") or k in (
        "MFSANDBOX_BIN", "MFSANDBOX_RELAY_SPOOL", "MFSANDBOX_LOCAL_STATE_DIR")}
    r = subprocess.run([sys.executable, "flow.py", "--no-pylint", "--datastore=s3",
                        "--metadata=service", "run", "--run-id-file", "run_id"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "relay:" not in r.stdout + r.stderr
    run = (work / "run_id").read_text().strip()

    c = subprocess.run([sys.executable, "-c", CLIENT, "RelayE2EFlow/" + run], env=env,
                       capture_output=True, text=True, timeout=120)
    assert c.returncode == 0, c.stderr
    seen = json.loads(c.stdout)
    assert seen["steps"] == ["end", "start"]
    start = seen["tasks"]["start"]
    assert start["current_attempt"] == 1
    assert start["attempts"]["0"]["data"] == {"x": 41} and start["attempts"]["0"]["unique"]
    assert start["attempts"]["1"]["data"] == {"x": 42} and start["attempts"]["1"]["unique"]
    assert seen["tasks"]["end"]["attempts"]["0"]["data"] == {"x": 42, "y": 43}

    for step in ("start", "end"):
        task = seen["tasks"][step]["id"]
        meta = metadata_service.metadata("RelayE2EFlow", run, step, task)
        # Metaflow's runtime registers its own system info when it creates
        # the task (attempt 0) and the task registers it again, exactly as
        # without sandboxes; everything else must arrive exactly once.
        twice = {k for k, n in rows_by_key(meta).items() if n > 1}
        assert {(f, a) for f, a, _ in twice} <= {(f, 0) for f in LAUNCHER_SYSTEM_INFO}, twice
        assert max(rows_by_key(meta).values()) <= 2
        fields = {(m["field_name"], m.get("attempt_id")) for m in meta}
        for a in range(seen["tasks"][step]["current_attempt"] + 1):
            assert {("attempt", a), ("attempt_ok", a), ("sandbox-backend", a)} <= fields
        arts = metadata_service.artifacts("RelayE2EFlow", run, step, task)
        assert max(collections.Counter((x["name"], x["attempt_id"]) for x in arts).values()) == 1


def test_sandboxed_flow_with_s3_and_local_metadata(s3_server, tmp_path):
    """Local metadata next to an S3 datastore: the sandbox writes it inside,
    ships it through S3, and mfsandbox merges it into the launcher's
    .metaflow, so the Client API with local metadata sees every attempt."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(FLOWS / "relay_e2e_flow.py", work / "flow.py")
    ds_root = "s3://%s/local-md-%s" % (s3_server.bucket, tmp_path.name)
    env = s3_server.env(
        METAFLOW_USER="tester", METAFLOW_HOME=str(tmp_path), PYTHONUNBUFFERED="1",
        METAFLOW_DEFAULT_DATASTORE="s3", METAFLOW_DATASTORE_SYSROOT_S3=ds_root,
        METAFLOW_DEFAULT_METADATA="local",
        MFSANDBOX_BIN=str(ROOT / "mfsandbox"), MFSANDBOX_RELAY_SPOOL=str(tmp_path / "spool"),
        MFSANDBOX_LOCAL_STATE_DIR=str(tmp_path / "state"))
    env = {k: v for k, v in env.items() if not k.startswith("MFSANDBOX_") or k in (
        "MFSANDBOX_BIN", "MFSANDBOX_RELAY_SPOOL", "MFSANDBOX_LOCAL_STATE_DIR")}
    env.pop("METAFLOW_SERVICE_URL", None)
    r = subprocess.run([sys.executable, "flow.py", "--no-pylint", "--datastore=s3",
                        "--metadata=local", "run", "--run-id-file", "run_id"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = (work / "run_id").read_text().strip()

    c = subprocess.run([sys.executable, "-c", CLIENT, "RelayE2EFlow/" + run], env=env,
                       cwd=work, capture_output=True, text=True, timeout=120)
    assert c.returncode == 0, c.stderr
    seen = json.loads(c.stdout)
    start = seen["tasks"]["start"]
    assert start["current_attempt"] == 1
    assert start["attempts"]["1"]["data"] == {"x": 42}
    assert seen["tasks"]["end"]["attempts"]["0"]["data"] == {"x": 42, "y": 43}
    # The sandbox's own metadata (not only the launcher's) reached .metaflow.
    meta_dir = work / ".metaflow" / "RelayE2EFlow" / run / "start" / start["id"] / "_meta"
    assert list(meta_dir.glob("sysmeta_sandbox-backend_*.json")), sorted(
        p.name for p in meta_dir.iterdir())
