"""End to end: a flow whose steps carry @e2b, run by the real Metaflow from
PyPI through ./mfsandbox against the E2B emulator, with the datastore on
moto (signature-checked S3) and the run's metadata in the real
metaflow-local-service.  The emulated sandboxes reach S3 but not the
metadata service, as in the cloud; what the tasks record comes back through
mfsandbox's relay.  What the tasks wrote is read back from S3 through
Metaflow's datastore in a separate process.

Not yet checked here: the run's metadata in the service through the Client
API.  The executor does not call the relay (src/relay.c) yet, so task-side
metadata and artifact rows written in the sandbox never reach the service;
once it does, add Client API assertions (per attempt, as test_relay.py does)."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLOWS = pathlib.Path(__file__).resolve().parent / "mf_flows"
BIN = pathlib.Path(os.environ.get("MFSANDBOX_BIN") or ROOT / "mfsandbox")

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")


@pytest.fixture
def flow_env(s3_server, metadata_service, e2b_emulator, e2b_env, tmp_path):
    # The "template" has this venv's Python (Metaflow, boto3) on PATH, and the
    # sandbox network reaches only moto's port.
    e2b_emulator.image_path = [os.path.dirname(sys.executable)]
    e2b_emulator.allow_ports = (urllib.parse.urlsplit(s3_server.url).port,)
    home = tmp_path / "home"
    home.mkdir()
    ds_root = "s3://%s/e2b-%s" % (s3_server.bucket, tmp_path.name)
    env = s3_server.env(
        METAFLOW_USER="tester", METAFLOW_HOME=str(home),
        METAFLOW_DEFAULT_DATASTORE="s3", METAFLOW_DATASTORE_SYSROOT_S3=ds_root,
        METAFLOW_DEFAULT_METADATA="service", METAFLOW_SERVICE_URL=metadata_service.url,
        MFSANDBOX_BIN=str(BIN), MFSANDBOX_RELAY_SPOOL=str(tmp_path / "spool"),
        MFS_TEST_MDS_PORT=str(urllib.parse.urlsplit(metadata_service.url).port),
        PYTHONUNBUFFERED="1")
    env = {k: v for k, v in env.items() if not k.startswith("E2B_")}
    env.update(e2b_env)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(FLOWS / "e2b_flow.py", work / "e2b_flow.py")
    yield env, work
    assert e2b_emulator.live_count() == 0, "a sandbox leaked"
    assert e2b_emulator.violations == []


DATASTORE = """
import json, sys
from metaflow.datastore import FlowDataStore
from metaflow.plugins.datastores.s3_storage import S3Storage
from metaflow.mflog import RUNTIME_LOG_SOURCE, TASK_LOG_SOURCE
fds = FlowDataStore('MfsE2BFlow', storage_impl=S3Storage, ds_root=sys.argv[1])
out = {}
for spec in json.loads(sys.argv[2]):
    run, step, task, attempt = spec
    tds = fds.get_task_datastore(run, step, task, attempt=attempt, mode='r', allow_not_done=True)
    names = ('_success', 'attempt_seen', 'greeting_seen', 'colour', 'home', 'mds_reachable', 'value', 'total')
    logs = {}
    for stream in ('stdout', 'stderr'):
        logs[stream] = b''.join(l for _, l in tds.load_logs([TASK_LOG_SOURCE], stream)).decode()
    out['/'.join(map(str, spec))] = dict(
        done=tds.has_metadata(tds.METADATA_DONE_SUFFIX), logs=logs,
        data={n: tds[n] for n in names if n in tds})
print('@@' + json.dumps(out))
"""


def read_datastore(env, work, ds_root, specs):
    r = subprocess.run([sys.executable, "-c", DATASTORE, ds_root, json.dumps(specs)], cwd=work,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads([l for l in r.stdout.splitlines() if l.startswith("@@")][-1][2:])


def test_e2b_flow_results_reach_the_datastore(flow_env, e2b_emulator, metadata_service):
    """Artifacts and task logs written inside the emulated E2B sandboxes are
    in S3, attempt by attempt."""
    env, work = flow_env
    r = subprocess.run([sys.executable, "e2b_flow.py", "--no-pylint", "run",
                        "--greeting", "it's \"quoted\"  twice"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout[-4000:], r.stderr[-4000:])
    assert e2b_emulator.created_total == 6  # start twice (@retry), 3 squares, join
    run = metadata_service._call("GET", "/flows/MfsE2BFlow/runs")[0]["run_number"]
    tasks = {step: [t["task_id"] for t in metadata_service._call(
        "GET", "/flows/MfsE2BFlow/runs/%s/steps/%s/tasks" % (run, step))]
        for step in ("start", "square", "join")}
    start = tasks["start"][0]
    specs = [[run, "start", start, 0], [run, "start", start, 1]] + \
        [[run, "square", t, 0] for t in tasks["square"]] + [[run, "join", tasks["join"][0], 0]]
    got = read_datastore(env, work, env["METAFLOW_DATASTORE_SYSROOT_S3"], specs)
    a0, a1 = got["%s/start/%s/0" % (run, start)], got["%s/start/%s/1" % (run, start)]
    assert a0["data"]["_success"] is False
    assert "attempt 0 fails on purpose" in a0["logs"]["stderr"]
    assert a1["done"] is True and a1["data"]["_success"] is True
    d = a1["data"]
    assert d["attempt_seen"] == 1
    assert d["greeting_seen"] == "it's \"quoted\"  twice"
    assert d["colour"] == "teal"
    assert d["home"] == "/home/user"            # it really ran in the E2B sandbox
    assert d["mds_reachable"] is False          # the sandbox cannot reach the service
    assert a1["logs"]["stdout"].count("unicode: h\u00e9llo \u2713") == 1
    assert "to stderr: \u00fcber" in a1["logs"]["stderr"]
    squares = sorted(got["%s/square/%s/0" % (run, t)]["data"]["value"] for t in tasks["square"])
    assert squares == [1, 4, 9]
    assert got["%s/join/%s/0" % (run, tasks["join"][0])]["data"]["total"] == 14
