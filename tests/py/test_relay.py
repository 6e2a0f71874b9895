"""The metadata relay (src/relay/relay.c) end to end with real servers: Metaflow
tasks run as in a sandbox (tests/py/sandbox_emulation.py) against moto, then
build/tests/relaytool relays them to the real metaflow-local-service or into a
launcher's .metaflow, and Metaflow's client reads the result."""
import collections
import json
import pathlib
import subprocess
import sys

import pytest

from mf_e2e import rows_by_key
from sandbox_emulation import init_parameters, run_in_sandbox

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELAY = str(ROOT / "build" / "tests" / "relaytool")
FLOW, FILE = "RelayFlow", "RelayFlow.py"


def relay(env, *args):
    r = subprocess.run([RELAY, *args], env=env, capture_output=True, text=True)
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    return r, out


def relay_task(env, spool, run, step, task, attempt, metadata="service", extra=()):
    return relay(env, "run", "--flow", FLOW, "--run", run, "--step", step, "--task", task,
                 "--attempt", str(attempt), "--ds-type", "s3", "--ds-root", env["DS_ROOT"],
                 "--metadata", metadata, "--service-url", env.get("METAFLOW_SERVICE_URL", ""),
                 "--spool", str(spool), *extra)


@pytest.fixture
def mf_env(s3_server, metadata_service, tmp_path):
    ds_root = "s3://%s/mf-%s" % (s3_server.bucket, tmp_path.name)
    return s3_server.env(METAFLOW_USER="tester", USER="tester",
                         METAFLOW_SERVICE_URL=metadata_service.url,
                         METAFLOW_DEFAULT_METADATA="service",
                         METAFLOW_DATASTORE_SYSROOT_S3=ds_root, DS_ROOT=ds_root)


# Read back through Metaflow's client in service mode.  Artifacts are read per
# attempt: metaflow-local-service answers the attempt-less artifact list with
# every attempt's rows (and has no per-name artifact route), so the client's
# attempt-less views (Task.data, Task.successful) mix attempts there.
CLIENT = """
import json, sys
from metaflow import Run, Task, namespace
namespace(None)
run = Run(sys.argv[1])
out = {"steps": sorted(s.id for s in run)}
for s in run:
    for t in s:
        out[s.id] = {"task": t.id, "current_attempt": t.current_attempt, "attempts": {}}
        for a in range(t.current_attempt + 1):
            ta = Task(t.pathspec, attempt=a)
            names = [x.id for x in ta]
            out[s.id]["attempts"][a] = {
                "names_unique": len(names) == len(set(names)),
                "data": {x.id: x.data for x in ta if x.id in ("x", "y")}}
print(json.dumps(out))
"""


def run_flow_through_relay(env, workdir, service, spool):
    run = service.new_run(FLOW)
    params = service.new_task(FLOW, run, "_parameters")
    init_parameters(workdir, FILE, env["DS_ROOT"], run, params, env)
    start = service.new_task(FLOW, run, "start")
    rc0 = run_in_sandbox(workdir, FILE, FLOW, env["DS_ROOT"], run, "start", start, 0,
                         "%s/_parameters/%s" % (run, params), env)
    assert rc0 != 0  # the flow fails attempt 0 on purpose
    r, out = relay_task(env, spool, run, "start", start, 0)
    assert r.returncode == 0 and out["found"] == "1" and int(out["metadata_rows"]) > 0, r.stderr
    rc1 = run_in_sandbox(workdir, FILE, FLOW, env["DS_ROOT"], run, "start", start, 1,
                         "%s/_parameters/%s" % (run, params), env)
    assert rc1 == 0
    r, out = relay_task(env, spool, run, "start", start, 1)
    assert r.returncode == 0 and int(out["artifact_rows"]) > 0, r.stderr
    end = service.new_task(FLOW, run, "end")
    assert run_in_sandbox(workdir, FILE, FLOW, env["DS_ROOT"], run, "end", end, 0,
                          "%s/start/%s" % (run, start), env) == 0
    r, out = relay_task(env, spool, run, "end", end, 0)
    assert r.returncode == 0, r.stderr
    return run, start, end


def test_service_relay_is_complete_and_exactly_once(mf_env, metadata_service, tmp_path):
    spool = tmp_path / "spool"
    run, start, end = run_flow_through_relay(mf_env, tmp_path, metadata_service, spool)

    meta = metadata_service.metadata(FLOW, run, "start", start)
    attempts = {m.get("attempt_id") for m in meta}
    assert attempts == {0, 1}
    fields = {(m["field_name"], m.get("attempt_id")) for m in meta}
    for a in (0, 1):
        assert ("attempt", a) in fields and ("attempt_ok", a) in fields and ("ds-type", a) in fields
    assert max(rows_by_key(meta).values()) == 1

    # A second relay of every attempt (a re-run hook, a manual replay) sends nothing.
    for step, task, attempt in (("start", start, 0), ("start", start, 1), ("end", end, 0)):
        r, out = relay_task(mf_env, spool, run, step, task, attempt)
        assert out["already_done"] == "1" and out["metadata_rows"] == "0", r.stderr
    assert rows_by_key(metadata_service.metadata(FLOW, run, "start", start)) == rows_by_key(meta)

    arts = metadata_service.artifacts(FLOW, run, "start", start)
    names = collections.Counter((a["name"], a["attempt_id"]) for a in arts)
    assert names[("x", 1)] == 1 and max(names.values()) == 1

    r = subprocess.run([sys.executable, "-c", CLIENT, "%s/%s" % (FLOW, run)], env=mf_env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen["steps"] == ["end", "start"]
    assert seen["start"]["current_attempt"] == 1
    first, second = seen["start"]["attempts"]["0"], seen["start"]["attempts"]["1"]
    assert first["data"] == {"x": 41} and first["names_unique"]
    assert second["data"] == {"x": 42} and second["names_unique"]
    assert seen["end"]["attempts"]["0"]["data"] == {"x": 42, "y": 43}


def test_task_that_never_wrote_metadata_is_a_warning(mf_env, metadata_service, tmp_path):
    run = metadata_service.new_run(FLOW)
    params = metadata_service.new_task(FLOW, run, "_parameters")
    init_parameters(tmp_path, FILE, mf_env["DS_ROOT"], run, params, mf_env)
    start = metadata_service.new_task(FLOW, run, "start")
    run_in_sandbox(tmp_path, FILE, FLOW, mf_env["DS_ROOT"], run, "start", start, 0,
                   "%s/_parameters/%s" % (run, params), mf_env, sync=False)
    r, out = relay_task(mf_env, tmp_path / "spool", run, "start", start, 0)
    assert r.returncode == 0
    assert out["found"] == "0" and out["spooled"] == "0"
    assert r.stderr.strip().splitlines() == [
        "relay: RelayFlow/%s/start/%s attempt 0: the task wrote no metadata (it died before "
        "finishing); nothing to relay" % (run, start)]


def test_failed_replay_is_spooled_and_replayed_later(mf_env, metadata_service, tmp_path):
    spool = tmp_path / "spool"
    run = metadata_service.new_run(FLOW)
    params = metadata_service.new_task(FLOW, run, "_parameters")
    init_parameters(tmp_path, FILE, mf_env["DS_ROOT"], run, params, mf_env)
    start = metadata_service.new_task(FLOW, run, "start")
    run_in_sandbox(tmp_path, FILE, FLOW, mf_env["DS_ROOT"], run, "start", start, 0,
                   "%s/_parameters/%s" % (run, params), mf_env)
    secret = "Bearer s3cr3t-header-value"
    down = dict(mf_env, METAFLOW_SERVICE_URL="http://127.0.0.1:1",
                METAFLOW_SERVICE_HEADERS=json.dumps({"Authorization": secret}))
    r, out = relay_task(down, spool, run, "start", start, 0)
    assert r.returncode == 0 and out["spooled"] == "1"
    assert "mfsandbox relay replay RelayFlow/%s/start/%s/0" % (run, start) in r.stderr
    assert "s3cr3t" not in r.stderr
    assert metadata_service.metadata(FLOW, run, "start", start) == []
    entry = spool / FLOW / run / "start" / start / "0"
    assert json.loads((entry / "spec.json").read_text())["service_url"] == "http://127.0.0.1:1"
    # The service moved: replay with the spooled spec fails again, still kept.
    r, out = relay(down, "replay", "%s/%s" % (FLOW, run), "--spool", str(spool))
    assert r.returncode == 1 and out["failed"] == "1"
    # Point the spooled entry at the live service and replay: sent once.
    spec = json.loads((entry / "spec.json").read_text())
    spec["service_url"] = metadata_service.url
    (entry / "spec.json").write_text(json.dumps(spec))
    r, out = relay(mf_env, "replay", "%s/%s" % (FLOW, run), "--spool", str(spool))
    assert r.returncode == 0 and out["done"] == "1", r.stderr
    meta = metadata_service.metadata(FLOW, run, "start", start)
    assert meta and max(rows_by_key(meta).values()) == 1
    r, out = relay(mf_env, "replay", "%s/%s" % (FLOW, run), "--spool", str(spool))
    assert out["done"] == "0" and out["failed"] == "0"
    assert rows_by_key(metadata_service.metadata(FLOW, run, "start", start)) == rows_by_key(meta)


def test_local_metadata_is_merged_into_the_launchers_metaflow(mf_env, metadata_service, tmp_path):
    launcher = tmp_path / "launcher-root"
    (launcher / ".metaflow").mkdir(parents=True)
    env = dict(mf_env, METAFLOW_DEFAULT_METADATA="local",
               METAFLOW_DATASTORE_SYSROOT_LOCAL=str(launcher))
    # Ids as a local-metadata runtime makes them.
    run, params, start = "1700000000000001", "1", "2"
    init_parameters(tmp_path, FILE, env["DS_ROOT"], run, params, env, metadata="local")
    box_env = {k: v for k, v in env.items() if k != "METAFLOW_DATASTORE_SYSROOT_LOCAL"}
    run_in_sandbox(tmp_path, FILE, FLOW, env["DS_ROOT"], run, "start", start, 0,
                   "%s/_parameters/%s" % (run, params), box_env)
    r, out = relay_task(env, tmp_path / "spool", run, "start", start, 0, metadata="local",
                        extra=("--local-root", str(launcher / ".metaflow")))
    assert r.returncode == 0 and int(out["files_merged"]) > 0, r.stderr
    meta = launcher / ".metaflow" / FLOW / run / "start" / start / "_meta"
    assert any(p.name.startswith("sysmeta_attempt_") for p in meta.iterdir())
    # Newer files win: a second relay rewrites nothing.
    r, out = relay_task(env, tmp_path / "spool", run, "start", start, 0, metadata="local",
                        extra=("--local-root", str(launcher / ".metaflow")))
    assert out["files_merged"] == "0"
