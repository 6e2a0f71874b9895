"""What the remote-backend flow tests (@daytona, @e2b) share: running a flow
from mf_flows/ as a user would (real Metaflow, S3 on moto,
metaflow-local-service, a backend emulator whose sandboxes reach S3 only),
and reading back what it left: each attempt's artifacts and task logs from
S3, every task and attempt through the Client API, the `logs` command, and
the mfsandbox command lines seen while it ran."""
import collections
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLOWS = pathlib.Path(__file__).resolve().parent / "mf_flows"
BIN = pathlib.Path(os.environ.get("MFSANDBOX_BIN") or ROOT / "mfsandbox")
# Registered both by Metaflow's runtime and by the task itself, as for any
# remote task: left out of the exactly-once counts.
SYSTEM_FIELDS = {"user", "runtime", "python_version", "metaflow_version", "script-name",
                 "production", "metaflow_r_version", "r_version", "r_version_code"}

# Reads a task attempt's artifacts and mflog task logs straight from S3.
READ = """
import json, sys
from metaflow.datastore import FlowDataStore
from metaflow.plugins.datastores.s3_storage import S3Storage
flow, root, run, step, task, attempt, names = sys.argv[1:8]
fds = FlowDataStore(flow, None, storage_impl=S3Storage, ds_root=root)
tds = fds.get_task_datastore(run, step, task, attempt=int(attempt), mode='r',
                             allow_not_done=True)
out = {n: tds[n] for n in filter(None, names.split(',')) if n in tds}
for stream in ('stdout', 'stderr'):
    logs = tds.load_logs(['task'], stream, attempt_override=int(attempt))
    out[stream] = b''.join(b for _, b in logs).decode('utf-8', 'replace')
print('@@' + json.dumps(out))
"""

# Every task and attempt of a run through the Client API (service metadata),
# with the values of the artifacts named in argv[2].  Artifacts are reached by
# iterating an attempt: metaflow-local-service 0.2 has no route for a single
# artifact by name (so Task.successful and task['x'] read as missing there).
CLIENT = """
import json, sys
from metaflow import Run, Task, namespace
namespace(None)
run = Run(sys.argv[1])
wanted = set(sys.argv[2].split(','))
out = {}
for s in run:
    for t in s:
        att = {}
        for a in range(t.current_attempt + 1):
            arts = list(Task(t.pathspec, attempt=a))
            att[a] = {"names": sorted(x.id for x in arts),
                      "data": {x.id: x.data for x in arts if x.id in wanted}}
        out.setdefault(s.id, {})[t.id] = {"current_attempt": t.current_attempt,
                                          "attempts": att}
print('@@' + json.dumps(out))
"""


def rows_by_key(rows):
    return collections.Counter((m["field_name"], m.get("attempt_id"), json.dumps(m["value"]))
                               for m in rows)


def last_json(stdout):
    return json.loads([l for l in stdout.splitlines() if l.startswith("@@")][-1][2:])


class ArgvWatch:
    """Collects the argv of every mfsandbox process alive while it runs
    (polling /proc), so a test can show no secret was ever on a command
    line."""

    def __init__(self):
        self.seen = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.wait(0.02):
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        argv = f.read().split(b"\0")
                except OSError:
                    continue
                if argv and os.path.basename(argv[0]) == b"mfsandbox":
                    self.seen.add(tuple(a.decode("utf-8", "replace") for a in argv if a))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class FlowRun:
    """One run of mf_flows/<flow_file> with service metadata and an S3
    datastore; `backend_env` holds the emulator's variables."""

    def __init__(self, flow_file, flow, s3_server, metadata_service, emu, backend_env,
                 tmp_path):
        emu.image_path = [os.path.dirname(sys.executable)]  # an image with metaflow + boto3
        emu.allow_ports = (urllib.parse.urlsplit(s3_server.url).port,)
        self.flow = flow
        self.work = tmp_path / "work"
        self.work.mkdir()
        (tmp_path / "home").mkdir()
        self.file = flow_file
        shutil.copy(FLOWS / flow_file, self.work / flow_file)
        self.root = "s3://%s/mf-%s" % (s3_server.bucket, tmp_path.name)
        env = s3_server.env(
            METAFLOW_USER="tester", USER="tester", METAFLOW_HOME=str(tmp_path / "home"),
            METAFLOW_DEFAULT_DATASTORE="s3", METAFLOW_DATASTORE_SYSROOT_S3=self.root,
            METAFLOW_DEFAULT_METADATA="service", METAFLOW_SERVICE_URL=metadata_service.url,
            MFS_TEST_SERVICE_URL=metadata_service.url, PYTHONUNBUFFERED="1", **backend_env)
        self.env = {k: v for k, v in env.items() if not k.startswith("MFSANDBOX_")}
        self.env["MFSANDBOX_BIN"] = str(BIN)  # no MFSANDBOX_RELAY: the spec arms the relay
        self.service = metadata_service
        self.console = ""
        self.returncode = None
        self.run_id = None
        self.argv_seen = set()
        self.tasks = {}

    def run(self, *args, top=(), timeout=600):
        """Runs the flow (`top`: options before `run`, e.g. --config),
        watching mfsandbox command lines meanwhile."""
        with ArgvWatch() as watch:
            r = subprocess.run([sys.executable, self.file, "--no-pylint", *top, "run",
                                "--run-id-file", "run_id", *args], cwd=self.work, env=self.env,
                               capture_output=True, text=True, timeout=timeout)
        self.argv_seen = watch.seen
        self.returncode = r.returncode
        self.console = r.stdout + r.stderr
        ids = self.work / "run_id"
        self.run_id = ids.read_text().strip() if ids.exists() else None
        for run, step, task in re.findall(r"\[(\d+)/(\w+)/(\d+) \(pid", self.console):
            self.tasks.setdefault(step, [])
            if task not in self.tasks[step]:
                self.tasks[step].append(task)
        return self

    def task(self, step):
        return self.tasks[step][0]

    def read(self, step, attempt, *names, task=None):
        """Artifacts `names` and the task logs of one attempt, from S3."""
        c = subprocess.run([sys.executable, "-c", READ, self.flow, self.root, self.run_id, step,
                            task or self.task(step), str(attempt), ",".join(names)],
                           cwd=self.work, env=self.env, capture_output=True, text=True,
                           timeout=120)
        assert c.returncode == 0, c.stderr[-3000:]
        return last_json(c.stdout)

    def client(self, *names):
        """{step: {task: {current_attempt, attempts: {a: {names, data}}}}}."""
        c = subprocess.run([sys.executable, "-c", CLIENT, "%s/%s" % (self.flow, self.run_id),
                            ",".join(names)],
                           cwd=self.work, env=self.env, capture_output=True, text=True,
                           timeout=120)
        assert c.returncode == 0, c.stderr[-3000:]
        return last_json(c.stdout)

    def logs(self, step, *flags):
        """What `<flow> logs RUN/STEP` prints."""
        c = subprocess.run([sys.executable, self.file, "--no-pylint", "logs", *flags,
                            "%s/%s" % (self.run_id, step)], cwd=self.work, env=self.env,
                           capture_output=True, text=True, timeout=120)
        assert c.returncode == 0, c.stdout[-2000:] + c.stderr[-3000:]
        return c.stdout

    def assert_metadata_once_per_attempt(self, step, task):
        """Every attempt of the task is in the service with its attempt and
        attempt_ok rows, and no metadata row or artifact twice per attempt."""
        meta = self.service.metadata(self.flow, self.run_id, step, task)
        fields = {(m["field_name"], m.get("attempt_id")) for m in meta}
        rows = [m for m in meta if m["field_name"] not in SYSTEM_FIELDS]
        assert rows and max(rows_by_key(rows).values()) == 1, rows_by_key(rows)
        arts = self.service.artifacts(self.flow, self.run_id, step, task)
        names = collections.Counter((a["name"], a["attempt_id"]) for a in arts)
        assert names and max(names.values()) == 1, names
        return fields, names
