"""A Metaflow flow with @daytona, end to end: the real Metaflow from PyPI, the
real ./mfsandbox, the Daytona emulator (sandboxes reach S3 on moto and
nothing else) and the real metaflow-local-service, which the sandboxes cannot
reach: their metadata gets there through mfsandbox's relay.  Results, logs
and retries are read back from the S3 datastore, metadata from the service;
nothing may leak."""
import collections
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLOWS = pathlib.Path(__file__).resolve().parent / "mf_flows"
BIN = pathlib.Path(os.environ.get("MFSANDBOX_BIN") or ROOT / "mfsandbox")
FLOW = "MfsDaytonaFlow"
SYSTEM_FIELDS = {"user", "runtime", "python_version", "metaflow_version", "script-name"}

# Reads a task attempt's artifacts and mflog task logs straight from S3.
READ = """
import json, sys
from metaflow.datastore import FlowDataStore
from metaflow.plugins.datastores.s3_storage import S3Storage
root, run, step, task, attempt, names = sys.argv[1:7]
fds = FlowDataStore('MfsDaytonaFlow', None, storage_impl=S3Storage, ds_root=root)
tds = fds.get_task_datastore(run, step, task, attempt=int(attempt), mode='r')
out = {n: tds[n] for n in names.split(',')}
for stream in ('stdout', 'stderr'):
    logs = tds.load_logs(['task'], stream, attempt_override=int(attempt))
    out[stream] = b''.join(b for _, b in logs).decode('utf-8', 'replace')
print('@@' + json.dumps(out))
"""


def rows_by_key(rows):
    return collections.Counter((m["field_name"], m.get("attempt_id"), json.dumps(m["value"]))
                               for m in rows)


def run_flow(s3_server, metadata_service, emu, daytona_env, tmp_path):
    emu.image_path = [os.path.dirname(sys.executable)]  # a snapshot with metaflow + boto3
    emu.allow_ports = (urllib.parse.urlsplit(s3_server.url).port,)
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "home").mkdir()
    shutil.copy(FLOWS / "daytona_flow.py", work / "daytona_flow.py")
    root = "s3://%s/mf-%s" % (s3_server.bucket, tmp_path.name)
    env = s3_server.env(
        METAFLOW_USER="tester", USER="tester", METAFLOW_HOME=str(tmp_path / "home"),
        METAFLOW_DEFAULT_DATASTORE="s3", METAFLOW_DATASTORE_SYSROOT_S3=root,
        METAFLOW_DEFAULT_METADATA="service", METAFLOW_SERVICE_URL=metadata_service.url,
        MFS_TEST_SERVICE_URL=metadata_service.url, PYTHONUNBUFFERED="1", **daytona_env)
    env = {k: v for k, v in env.items() if not k.startswith("MFSANDBOX_")}
    env["MFSANDBOX_BIN"] = str(BIN)  # no MFSANDBOX_RELAY: the spec arms the relay
    r = subprocess.run([sys.executable, "daytona_flow.py", "--no-pylint", "run",
                        "--greeting", "hey \u2713"], cwd=work,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    console = r.stdout + r.stderr
    tasks = dict((s, (run, t)) for run, s, t in re.findall(r"\[(\d+)/(\w+)/(\d+) \(pid", console))

    def read(step, attempt, *names):
        run, task = tasks[step]
        c = subprocess.run([sys.executable, "-c", READ, root, run, step, task, str(attempt),
                            ",".join(names)], cwd=work, env=env, capture_output=True, text=True,
                           timeout=120)
        assert c.returncode == 0, c.stderr[-3000:]
        return json.loads([l for l in c.stdout.splitlines() if l.startswith("@@")][-1][2:])
    return console, tasks, read


def test_daytona_flow_end_to_end(s3_server, metadata_service, daytona_emulator, daytona_env,
                                 tmp_path):
    console, tasks, read = run_flow(s3_server, metadata_service, daytona_emulator, daytona_env,
                                    tmp_path)
    start = read("start", 0, "backend", "marker", "service_reachable", "greeting_seen", "colour")
    assert start["backend"] == "daytona"
    assert (start["greeting_seen"], start["colour"]) == ("hey \u2713", "teal")
    assert start["marker"].startswith("/home/daytona/")
    assert start["service_reachable"] is False  # only the relay may talk to the service
    assert "hello from daytona \u2713" in start["stdout"]
    assert "to stderr" in start["stderr"] and "to stderr" not in start["stdout"]
    # the live output reached the launcher's console once
    assert console.count("hello from daytona") == 1

    first = read("flaky", 0, "attempt_seen", "fresh")
    assert first["attempt_seen"] == 0 and "first attempt fails on purpose" in first["stderr"]
    second = read("flaky", 1, "attempt_seen", "fresh", "total")
    assert second == dict(second, attempt_seen=1, fresh=True, total=6)  # a fresh sandbox
    assert read("end", 0, "done")["done"] == 12
    assert read("join", 0, "squares")["squares"] == [1, 4, 9]

    # metadata the sandbox wrote locally reached the service through the relay,
    # every row of the task exactly once, both attempts of the retried step
    # (system info rows are posted by the runtime and by the task itself, as
    # for any remote task, so they are left out of the count)
    run, task = tasks["flaky"]
    meta = metadata_service.metadata(FLOW, run, "flaky", task)
    fields = {(m["field_name"], m.get("attempt_id")) for m in meta}
    for a in (0, 1):
        assert ("attempt", a) in fields and ("attempt_ok", a) in fields, sorted(fields)
    task_rows = [m for m in meta if m["field_name"] not in SYSTEM_FIELDS]
    assert max(rows_by_key(task_rows).values()) == 1
    arts = metadata_service.artifacts(FLOW, run, "flaky", task)
    names = collections.Counter((a["name"], a["attempt_id"]) for a in arts)
    assert names[("total", 1)] == 1 and max(names.values()) == 1

    assert daytona_emulator.created_total == 8  # start, 3 squares, join, flaky twice, end
    # each sandbox says whose task it runs, and is marked as ours
    labels = [b["labels"] for b in daytona_emulator.create_bodies]
    assert all(l["mfsandbox"] == "1" and l["mfsandbox.flow"] == FLOW for l in labels)
    assert collections.Counter(l["mfsandbox.step"] for l in labels) == \
        {"start": 1, "square": 3, "join": 1, "flaky": 2, "end": 1}
    assert {(l["mfsandbox.run"], l["mfsandbox.task"]) for l in labels
            if l["mfsandbox.step"] == "flaky"} == {tasks["flaky"]}
    assert sorted(l.get("mfsandbox.attempt") for l in labels
                  if l["mfsandbox.step"] == "flaky") == ["0", "1"]
    assert daytona_emulator.live_count() == 0
