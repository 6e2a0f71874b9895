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

# What Metaflow itself writes twice for every task (attempt 0), with or
# without sandboxes: test_metaflow_alone_registers_its_system_info_twice.
METAFLOW_OWN_DUPLICATES = {(f, 0) for f in ("user", "runtime", "python_version",
                                             "metaflow_version", "script-name")}

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
                      "data": {x.id: x.data for x in ta if x.id in ("x", "y", "provider_keys")}}
        out["tasks"][s.id] = {"id": t.id, "current_attempt": t.current_attempt, "attempts": att}
print(json.dumps(out))
"""


def run_service_flow(s3_server, metadata_service, tmp_path, sandboxed=True):
    """Runs mf_flows/relay_e2e_flow.py with S3 and service metadata, as is or
    (sandboxed=False) with its @sandbox lines taken out: Metaflow alone."""
    work = tmp_path / "work"
    work.mkdir()
    text = (FLOWS / "relay_e2e_flow.py").read_text()
    if not sandboxed:
        text = "\n".join(l for l in text.splitlines()
                         if not l.strip().startswith("@sandbox")) + "\n"
    (work / "flow.py").write_text(text)
    ds_root = "s3://%s/e2e-%s" % (s3_server.bucket, tmp_path.name)
    env = s3_server.env(
        METAFLOW_USER="tester", METAFLOW_HOME=str(tmp_path), PYTHONUNBUFFERED="1",
        METAFLOW_DEFAULT_DATASTORE="s3", METAFLOW_DATASTORE_SYSROOT_S3=ds_root,
        METAFLOW_DEFAULT_METADATA="service", METAFLOW_SERVICE_URL=metadata_service.url,
        MFSANDBOX_BIN=str(ROOT / "mfsandbox"), MFSANDBOX_RELAY_SPOOL=str(tmp_path / "spool"),
        MFSANDBOX_LOCAL_STATE_DIR=str(tmp_path / "state"), DAYTONA_API_KEY="dtn-secret")
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
    # The launcher's DAYTONA_API_KEY: seen by a plain step, not in a sandbox.
    assert seen["tasks"]["end"]["attempts"]["0"]["data"] == {
        "x": 42, "y": 43, "provider_keys": [] if sandboxed else ["DAYTONA_API_KEY"]}
    meta = {step: metadata_service.metadata("RelayE2EFlow", run, step,
                                            seen["tasks"][step]["id"])
            for step in ("start", "end")}
    return run, seen, meta


def rows_twice(meta):
    """(field, attempt) of the metadata rows the service holds twice."""
    counts = rows_by_key(meta)
    assert max(counts.values()) <= 2
    return {(f, a) for (f, a, _), n in counts.items() if n > 1}


def test_metaflow_alone_registers_its_system_info_twice(s3_server, metadata_service, tmp_path):
    """Not ours, shown so nobody hides it: with no sandbox at all, Metaflow's
    runtime registers the system info when it creates a task and the task
    registers the same rows again (attempt 0), so the service holds those
    rows twice.  test_sandboxed_flow_with_s3_and_service_metadata allows
    exactly these duplicates and no other."""
    _, _, meta = run_service_flow(s3_server, metadata_service, tmp_path, sandboxed=False)
    for step in ("start", "end"):
        assert rows_twice(meta[step]) == METAFLOW_OWN_DUPLICATES, step


def test_sandboxed_flow_with_s3_and_service_metadata(s3_server, metadata_service, tmp_path):
    run, seen, meta = run_service_flow(s3_server, metadata_service, tmp_path)
    for step in ("start", "end"):
        # The relay adds no duplicate: only Metaflow's own (see above).
        assert rows_twice(meta[step]) == METAFLOW_OWN_DUPLICATES, step
        fields = {(m["field_name"], m.get("attempt_id")) for m in meta[step]}
        for a in range(seen["tasks"][step]["current_attempt"] + 1):
            assert {("attempt", a), ("attempt_ok", a), ("sandbox-backend", a)} <= fields
        arts = metadata_service.artifacts("RelayE2EFlow", run, step, seen["tasks"][step]["id"])
        assert max(collections.Counter((x["name"], x["attempt_id"]) for x in arts).values()) == 1


def run_local_metadata_flow(s3_server, tmp_path, **extra):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(FLOWS / "relay_e2e_flow.py", work / "flow.py")
    ds_root = "s3://%s/local-md-%s" % (s3_server.bucket, tmp_path.name)
    env = s3_server.env(
        METAFLOW_USER="tester", METAFLOW_HOME=str(tmp_path), PYTHONUNBUFFERED="1",
        METAFLOW_DEFAULT_DATASTORE="s3", METAFLOW_DATASTORE_SYSROOT_S3=ds_root,
        METAFLOW_DEFAULT_METADATA="local",
        MFSANDBOX_BIN=str(ROOT / "mfsandbox"), MFSANDBOX_RELAY_SPOOL=str(tmp_path / "spool"),
        MFSANDBOX_LOCAL_STATE_DIR=str(tmp_path / "state"),
        DAYTONA_API_KEY="dtn-launcher-secret", E2B_API_KEY="e2b-launcher-secret", **extra)
    env = {k: v for k, v in env.items() if not k.startswith("MFSANDBOX_") or k in (
        "MFSANDBOX_BIN", "MFSANDBOX_RELAY_SPOOL", "MFSANDBOX_LOCAL_STATE_DIR",
        "MFSANDBOX_FORWARD_ENV")}
    env.pop("METAFLOW_SERVICE_URL", None)
    if "AWS_PROFILE" in extra:
        env.pop("AWS_ACCESS_KEY_ID")
        env.pop("AWS_SECRET_ACCESS_KEY")
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
    end = seen["tasks"]["end"]["attempts"]["0"]["data"]
    assert (end["x"], end["y"]) == (42, 43)
    # The sandbox's own metadata (not only the launcher's) reached .metaflow.
    meta_dir = work / ".metaflow" / "RelayE2EFlow" / run / "start" / start["id"] / "_meta"
    assert list(meta_dir.glob("sysmeta_sandbox-backend_*.json")), sorted(
        p.name for p in meta_dir.iterdir())
    return r, end["provider_keys"]


def test_sandboxed_flow_with_s3_and_local_metadata(s3_server, tmp_path):
    """Local metadata next to an S3 datastore: the sandbox writes it inside,
    ships it through S3, and mfsandbox merges it into the launcher's
    .metaflow, so the Client API with local metadata sees every attempt.
    The launcher's provider keys stay out of the sandbox."""
    _, provider_keys = run_local_metadata_flow(s3_server, tmp_path)
    assert provider_keys == []


def test_sandboxed_flow_with_only_an_aws_profile(s3_server, tmp_path):
    """No AWS_* keys in the environment, only AWS_PROFILE (not the default
    one, which holds wrong keys) and its credentials file: the launcher's
    Metaflow and the relay read the profile, and the sandbox, which has no
    such file, gets the resolved keys through its environment.  A provider
    key reaches the sandbox only when named in MFSANDBOX_FORWARD_ENV."""
    creds = tmp_path / "aws-credentials"
    creds.write_text("[default]\naws_access_key_id = WRONG\naws_secret_access_key = wrong\n"
                     "[ci]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                     % (s3_server.key_id, s3_server.secret))
    r, provider_keys = run_local_metadata_flow(s3_server, tmp_path, AWS_PROFILE="ci",
                                               AWS_SHARED_CREDENTIALS_FILE=str(creds),
                                               MFSANDBOX_FORWARD_ENV="E2B_API_KEY")
    assert provider_keys == ["E2B_API_KEY"]
    assert s3_server.secret not in r.stdout + r.stderr
