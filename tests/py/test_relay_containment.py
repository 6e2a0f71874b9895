"""Relay containment (issue 14): a task's metadata archive comes out of the
sandbox, so the step's code wrote it.  Hostile archives are planted in the
real S3 server (moto) exactly where Metaflow's sync_local_metadata_to_datastore
puts a task's archive; the relay (src/relay/relay.c, rule in
src/relay/contain.c) must refuse each one whole: nothing written into the
launcher's .metaflow, nothing sent to the metadata service, one error line."""
import hashlib
import io
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELAY = str(pathlib.Path(os.environ.get("MFS_BUILD_DIR") or ROOT / "build") / "tests" / "relaytool")
MFS = os.environ.get("MFSANDBOX_BIN", str(ROOT / "mfsandbox"))
FLOW, RUN, STEP, TASK = "HostileFlow", "1700000000000001", "start", "2"
OWN = ".metaflow/%s/%s/%s/%s/_meta" % (FLOW, RUN, STEP, TASK)


def member(name, data=b"{}", kind=tarfile.REGTYPE, link="", mtime=None):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = mtime if mtime is not None else int(time.time())
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def archive(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, data)
    return buf.getvalue()


def row(**over):
    base = {"flow_id": FLOW, "run_number": RUN, "step_name": STEP, "task_id": TASK,
            "field_name": "attempt", "value": "0", "type": "attempt",
            "tags": ["attempt_id:0"], "user_name": "tester", "ts_epoch": 1}
    base.update(over)
    return json.dumps(base).encode()


def legit():
    """What a real task's archive starts with: its own directories and rows."""
    dirs = [".metaflow", ".metaflow/" + FLOW, ".metaflow/%s/%s" % (FLOW, RUN),
            ".metaflow/%s/%s/%s" % (FLOW, RUN, STEP), OWN.rsplit("/", 1)[0], OWN]
    return [member(d, kind=tarfile.DIRTYPE) for d in dirs] + [
        member(OWN + "/sysmeta_attempt_1.json", row())]


def plant(s3, prefix, blob, run=RUN, task=TASK, attempt=0):
    """Stores blob where the task's sync puts it: the flow's CAS plus the
    <attempt>.local_metadata pointer."""
    key = hashlib.sha1(blob).hexdigest()
    c = s3.client()
    c.put_object(Bucket=s3.bucket, Key="%s/%s/data/%s/%s" % (prefix, FLOW, key[:2], key), Body=blob)
    c.put_object(Bucket=s3.bucket, Key="%s/%s/%s/%s/%s/%d.local_metadata"
                 % (prefix, FLOW, run, STEP, task, attempt), Body=json.dumps(key).encode())


def tree(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def box(s3_server, tmp_path):
    prefix = "contain-%s" % tmp_path.name
    launcher = tmp_path / "launcher" / ".metaflow"
    other = launcher / FLOW / "1699999999999999" / "_meta"
    other.mkdir(parents=True)
    (other / "_self.json").write_text('{"run_number": "1699999999999999"}')
    env = s3_server.env(METAFLOW_USER="tester", USER="tester")
    return s3_server, prefix, launcher, env, tmp_path


def relay_local(box_):
    s3, prefix, launcher, env, tmp = box_
    return subprocess.run(
        [RELAY, "run", "--flow", FLOW, "--run", RUN, "--step", STEP, "--task", TASK,
         "--attempt", "0", "--ds-type", "s3", "--ds-root", "s3://%s/%s" % (s3.bucket, prefix),
         "--metadata", "local", "--local-root", str(launcher), "--spool", str(tmp / "spool")],
        env=env, capture_output=True, text=True)


HOSTILE = {
    "other task": [member(".metaflow/%s/%s/%s/3/_meta/sysmeta_x.json" % (FLOW, RUN, STEP), row())],
    "other step": [member(".metaflow/%s/%s/end/_meta/_self.json" % (FLOW, RUN))],
    "other run": [member(".metaflow/%s/1699999999999999/_meta/_self.json" % FLOW, b'{"x":1}')],
    "other flow": [member(".metaflow/OtherFlow/_meta/_self.json")],
    "datastore pickle": [member(".metaflow/%s/data/ab/abcdef" % FLOW, b"cos\nsystem\n",
                                mtime=4102444800)],
    "latest_run": [member(".metaflow/%s/latest_run" % FLOW, b"1")],
    "dot-dot": [member(OWN + "/../../../../../../../escaped.json")],
    "absolute": [member("/tmp/mfs-contain-absolute.json")],
    "symlink": [member(OWN + "/link.json", kind=tarfile.SYMTYPE, link="/etc/passwd")],
    "hard link": [member(OWN + "/hard.json", kind=tarfile.LNKTYPE,
                         link=OWN + "/sysmeta_attempt_1.json")],
    "device": [member(OWN + "/dev.json", kind=tarfile.CHRTYPE)],
    "fifo": [member(OWN + "/fifo.json", kind=tarfile.FIFOTYPE)],
    "non-json in _meta": [member(OWN + "/payload.pkl", b"x")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_whole(box, case):
    s3, prefix, launcher, env, tmp = box
    before = tree(launcher.parent)
    plant(s3, prefix, archive(legit() + HOSTILE[case]))
    r = relay_local(box)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused the task's metadata archive, nothing of it written" \
        in lines[0], r.stderr
    assert lines[0].startswith("relaytool: protocol: ")  # MFS_ERR_PROTOCOL: exit 203 in the CLI
    # Not even the task's own legitimate row was written, and nothing was spooled.
    assert tree(launcher.parent) == before
    assert not (tmp / "spool").exists() or not any((tmp / "spool").rglob("spec.json"))
    assert not pathlib.Path("/tmp/mfs-contain-absolute.json").exists()
    assert not (tmp / "escaped.json").exists()


def test_huge_member_count_is_refused(box):
    s3, prefix, launcher, env, tmp = box
    before = tree(launcher.parent)
    plant(s3, prefix, archive(legit() + [member(OWN + "/sysmeta_n%d.json" % i, b"")
                                         for i in range(50001)]))
    r = relay_local(box)
    assert r.returncode != 0 and "50000 members" in r.stderr, r.stderr
    assert tree(launcher.parent) == before


def test_member_names_are_escaped_in_the_error(box):
    s3, prefix, launcher, env, tmp = box
    plant(s3, prefix, archive(legit() + [member(".metaflow/\x1b]0;owned\x07x/_meta/_self.json")]))
    r = relay_local(box)
    assert r.returncode != 0 and "\x1b" not in r.stderr and "\\x1b]0;owned\\x07x" in r.stderr


def test_own_task_files_are_written_and_run_records_only_created(box):
    """The control: the same shape without the hostile member is applied;
    a run record the launcher already has is never replaced, and a far-future
    mtime is clamped so the step's copy cannot win every later merge."""
    s3, prefix, launcher, env, tmp = box
    run_self = launcher / FLOW / RUN / "_meta" / "_self.json"
    run_self.parent.mkdir(parents=True)
    run_self.write_text('{"launcher": true}')
    os.utime(run_self, (1, 1))
    future = 4102444800  # 2100-01-01
    plant(s3, prefix, archive(legit() + [
        member(".metaflow/%s/%s/_meta/_self.json" % (FLOW, RUN), b'{"step": true}'),
        member(".metaflow/%s/%s/%s/_meta/_self.json" % (FLOW, RUN, STEP), b'{"s": 1}'),
        member(OWN + "/0_artifact_x.json", b"{}", mtime=future),
        member(".metaflow/%s/conda.manifest" % FLOW, b"{}")]))
    r = relay_local(box)
    assert r.returncode == 0, r.stderr
    assert run_self.read_text() == '{"launcher": true}'
    own = launcher / FLOW / RUN / STEP / TASK / "_meta"
    assert json.loads((own / "sysmeta_attempt_1.json").read_text())["task_id"] == TASK
    assert (own / "0_artifact_x.json").stat().st_mtime <= time.time() + 1
    assert (launcher / FLOW / RUN / STEP / "_meta" / "_self.json").exists()
    assert not (launcher / FLOW / "conda.manifest").exists()


def test_service_replay_refuses_rows_of_another_task(box, metadata_service):
    s3, prefix, launcher, env, tmp = box
    run = metadata_service.new_run(FLOW)
    task = metadata_service.new_task(FLOW, run, STEP)
    own = ".metaflow/%s/%s/%s/%s/_meta" % (FLOW, run, STEP, task)
    blob = archive([member(own + "/sysmeta_attempt_1.json",
                           row(run_number=run, task_id=task)),
                    member(own + "/sysmeta_attempt_2.json",
                           row(run_number=run, task_id=str(int(task) + 1)))])
    plant(s3, prefix, blob, run=run, task=task)
    r = subprocess.run(
        [RELAY, "run", "--flow", FLOW, "--run", run, "--step", STEP, "--task", task,
         "--ds-type", "s3", "--ds-root", "s3://%s/%s" % (s3.bucket, prefix),
         "--metadata", "service", "--service-url", metadata_service.url,
         "--spool", str(tmp / "spool")], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "holds a row of another task" in r.stderr, r.stderr
    assert metadata_service.metadata(FLOW, run, STEP, task) == []
    assert metadata_service.metadata(FLOW, run, STEP, str(int(task) + 1)) == []
    assert not any((tmp / "spool").rglob("payload.json"))


# A stand-in step command for `mfsandbox run --relay`: it plants a hostile
# archive where its own metadata belongs, then exits 0.
HOSTILE_STEP = """
import hashlib, io, json, sys, tarfile, boto3, os
a = sys.argv
root = a[a.index("--datastore-root") + 1][len("s3://"):]
bucket, prefix = root.split("/", 1)
run, task = a[a.index("--run-id") + 1], a[a.index("--task-id") + 1]
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as t:
    i = tarfile.TarInfo(".metaflow/HostileFlow/%s/start/%s/_meta/../../../../../../x.json" % (run, task))
    t.addfile(i, io.BytesIO(b""))
blob = buf.getvalue()
k = hashlib.sha1(blob).hexdigest()
c = boto3.client("s3", endpoint_url=os.environ["METAFLOW_S3_ENDPOINT_URL"])
c.put_object(Bucket=bucket, Key="%s/HostileFlow/data/%s/%s" % (prefix, k[:2], k), Body=blob)
c.put_object(Bucket=bucket, Key="%s/HostileFlow/%s/start/%s/0.local_metadata" % (prefix, run, task),
             Body=json.dumps(k).encode())
"""


def test_cli_run_exits_203_with_one_line(box):
    s3, prefix, launcher, env, tmp = box
    code = tmp / "code"
    code.mkdir()
    (code / "HostileFlow.py").write_text(HOSTILE_STEP)
    env = dict(env, METAFLOW_DEFAULT_METADATA="local",
               METAFLOW_DATASTORE_SYSROOT_LOCAL=str(launcher.parent),
               MFSANDBOX_RELAY_SPOOL=str(tmp / "spool"),
               MFSANDBOX_LOCAL_STATE_DIR=str(tmp / "state"))
    before = tree(launcher.parent)
    r = subprocess.run(
        [MFS, "run", "--backend", "local", "--relay", "--code", str(code),
         "--env", "METAFLOW_S3_ENDPOINT_URL=" + s3.url, "--",
         sys.executable, "HostileFlow.py", "--datastore", "s3", "--datastore-root",
         "s3://%s/%s" % (s3.bucket, prefix), "step", "start", "--run-id", RUN,
         "--task-id", TASK, "--input-paths", RUN + "/_parameters/1", "--retry-count", "0"],
        env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 203, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("mfsandbox: relay:")]
    assert len(lines) == 1 and "refused the task's metadata archive" in lines[0], r.stderr
    assert "'..' component" in lines[0]
    assert tree(launcher.parent) == before


@pytest.mark.parametrize("kind", ["fifo", "symlink", "symlinked key"])
def test_local_datastore_files_the_step_can_replace_are_read_safely(tmp_path, kind):
    """With the local datastore the sandbox writes the files the relay reads:
    a FIFO as <attempt>.local_metadata once hung the launcher in open(), and
    a symlink made it read any host file (/dev/zero: memory without end)."""
    ds = tmp_path / "ds"
    task_dir = ds / FLOW / RUN / STEP / TASK
    task_dir.mkdir(parents=True)
    pointer = task_dir / "0.local_metadata"
    if kind == "fifo":
        os.mkfifo(pointer)
    elif kind == "symlink":
        pointer.symlink_to("/dev/zero")
    else:
        key = "ab" + "c" * 38
        pointer.write_text(json.dumps(key))
        (ds / FLOW / "data" / "ab").mkdir(parents=True)
        (ds / FLOW / "data" / "ab" / key).symlink_to("/dev/zero")
    launcher = tmp_path / "launcher" / ".metaflow"
    launcher.mkdir(parents=True)
    # The timeout only turns the old hang into a failure.
    r = subprocess.run(
        [RELAY, "run", "--flow", FLOW, "--run", RUN, "--step", STEP, "--task", TASK,
         "--attempt", "0", "--ds-type", "local", "--ds-root", str(ds), "--metadata", "local",
         "--local-root", str(launcher), "--spool", str(tmp_path / "spool")],
        capture_output=True, text=True, timeout=60)
    assert "cannot read" in r.stderr, r.stderr
    assert ("not a regular file" in r.stderr) if kind == "fifo" else \
        ("Too many levels of symbolic links" in r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1
    assert not any(launcher.rglob("*"))
