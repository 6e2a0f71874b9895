"""Metaflow `Config` in sandboxed steps (issue 18), end to end with the real
Metaflow on all three backends: config_flow.py with a config from its
default file, one replaced with `--config NAME FILE`, one set with
`--config-value NAME JSON`, decorator arguments from `config_expr`, and a
foreach over a config's list.  Metaflow's runtime passes the resolved
configs as `--local-config-file <launcher temp file>`; mfsandbox ships that
file and points the option at the copy.  Values are read back through the
Client API.  Plus the executor's side on its own: the rewrite in --dry-run,
and a missing file stopping the run with 202 before any sandbox."""
import json
import os
import shutil

import pytest

from mf_e2e import FlowRun
from mfs_cli import mfs
from test_metaflow_e2e import FlowDir

FLOW = "MfsConfigFlow"
TAG = "from --config-value \u2713"
TOP = ("--config", "over", "over_run.json", "--config-value", "val", json.dumps({"tag": TAG}))
FILES = {
    "cfg_default.json": {"name": "from-default-file", "items": [1, 2, 3], "timeout": 900},
    # replaced by over_run.json on the command line: never read by a task
    "over_default.json": {"name": "over-default-file", "factor": 1, "colour": "grey"},
    "over_run.json": {"name": "over-from-config-option", "factor": 10, "colour": "teal"},
}

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")


def write_configs(work):
    for name, value in FILES.items():
        (work / name).write_text(json.dumps(value))


def check(start, scales, join):
    """What every backend's tasks must have read."""
    assert start == dict(cfg_name="from-default-file", over_name="over-from-config-option",
                         val_tag=TAG, env_colour="teal", items=[1, 2, 3]), start
    assert sorted(s["value"] for s in scales) == [10, 20, 30], scales
    assert all(s["val_tag"] == TAG for s in scales), scales
    assert join == dict(values=[10, 20, 30], over_name="over-from-config-option"), join


def check_launch(argv_seen):
    """The runtime handed mfsandbox a launcher temp file, and the start
    step's --timeout came from cfg.timeout through config_expr."""
    # (other mfsandbox processes on the machine are seen too)
    runs = [a for a in argv_seen if "--metaflow-spec" in a and "config_flow.py" in a]
    assert runs, argv_seen
    assert all(a[a.index("--local-config-file") + 1].startswith("/") for a in runs), runs
    start = [a for a in runs if a[a.index("step") + 1] == "start"]
    assert start and start[0][start[0].index("--timeout") + 1] == "900", start


@needs_bwrap
def test_config_flow_local(tmp_path):
    fd = FlowDir(tmp_path, "config_flow.py")
    write_configs(fd.dir)
    fd.env["METAFLOW_SANDBOX_BACKEND"] = "local"
    fd.run(*TOP, "run")
    out = fd.client("""
        run = Flow('MfsConfigFlow').latest_run
        s = run['start'].task.data
        out = dict(ok=run.successful, backend=s.backend,
                   start=dict(cfg_name=s.cfg_name, over_name=s.over_name, val_tag=s.val_tag,
                              env_colour=s.env_colour, items=s.items),
                   scales=[dict(value=t.data.value, val_tag=t.data.val_tag) for t in run['scale']],
                   join=dict(values=run['join'].task.data.values,
                             over_name=run['join'].task.data.over_name))
    """)
    assert out["ok"] is True and out["backend"] == "local"
    check(out["start"], out["scales"], out["join"])
    # resume re-runs join in a new sandbox with the first run's configs
    # (--config is refused with resume): the runtime writes them to a new
    # --local-config-file
    fd.run("resume", "join")
    out = fd.client("""
        run = Flow('MfsConfigFlow').latest_run
        j = run['join'].task
        out = dict(ok=run.successful, origin=j.metadata_dict.get('origin-run-id'),
                   values=j.data.values, over_name=j.data.over_name,
                   workload=j.metadata_dict.get('sandbox-backend'))
    """)
    assert out["ok"] is True and out["origin"] not in (None, "None")
    assert out["workload"] == "local"
    assert (out["values"], out["over_name"]) == ([10, 20, 30], "over-from-config-option")


def remote_flow(backend, s3_server, metadata_service, emu, env, tmp_path):
    fr = FlowRun("config_flow.py", FLOW, s3_server, metadata_service, emu,
                 dict(env, METAFLOW_SANDBOX_BACKEND=backend), tmp_path)
    write_configs(fr.work)
    fr.run(top=TOP)
    assert fr.returncode == 0, fr.console[-8000:]
    seen = fr.client("cfg_name", "over_name", "val_tag", "env_colour", "backend", "items",
                     "value", "values")

    def data(step):
        return [t["attempts"]["0"]["data"] for t in seen[step].values()]

    start = data("start")[0]
    assert start.pop("backend") == backend
    check(start, data("scale"), data("join")[0])
    check_launch(fr.argv_seen)
    assert emu.created_total == 5  # start, 3 scale tasks, join
    assert emu.live_count() == 0


def test_config_flow_daytona(s3_server, metadata_service, daytona_emulator, daytona_env, tmp_path):
    remote_flow("daytona", s3_server, metadata_service, daytona_emulator, daytona_env, tmp_path)


@needs_bwrap
def test_config_flow_e2b(s3_server, metadata_service, e2b_emulator, e2b_env, tmp_path):
    remote_flow("e2b", s3_server, metadata_service, e2b_emulator, e2b_env, tmp_path)


STEP = ["python3", "flow.py", "--quiet", "--config-value", "cfg", "kv.cfg", "--local-config-file"]
STEP_TAIL = ["step", "start", "--run-id", "1", "--task-id", "2"]


def test_dry_run_shows_the_shipped_file(tmp_path):
    cfg = tmp_path / "tmpab12cd"
    cfg.write_text("{}")
    r = mfs("run", "--backend", "local", "--dry-run", "--", *STEP, cfg, *STEP_TAIL)
    assert r.returncode == 0, r.stderr
    assert "%s -> .mfs-files/0-tmpab12cd\n" % cfg in r.stdout
    assert "--local-config-file .mfs-files/0-tmpab12cd step start" in r.stdout
    assert str(cfg) + " step" not in r.stdout


def test_missing_or_special_file_is_one_line_and_202(tmp_path):
    """A FIFO is refused without being opened (opening it would hang)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, why in ((tmp_path / "gone.json", "No such file or directory"),
                      (fifo, "not a regular file")):
        r = mfs("run", "--backend", "local", "--", *STEP, path, *STEP_TAIL, timeout=30)
        assert r.returncode == 202, (r.returncode, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("mfsandbox: --local-config-file %s: %s" % (path, why)), lines


READER = """import sys
args = sys.argv[1:]
for opt in ("--local-config-file", "--input-paths-filename"):
    path = args[args.index(opt) + 1]
    print(opt, path, open(path).read())
"""


@needs_bwrap
@pytest.mark.parametrize("backend", ["local", "daytona", "e2b"])
def test_plain_step_command_finds_its_files(backend, request, tmp_path):
    """Without --metaflow-spec (a scheduler's `mfsandbox run -- <step>`),
    the step runs in the work dir and finds the copies there."""
    env = dict(os.environ)
    env.pop("METAFLOW_SANDBOX_BACKEND", None)
    if backend != "local":
        emu = request.getfixturevalue(backend + "_emulator")
        emu.image_path = [os.path.dirname(shutil.which("python3"))]
        env.update(request.getfixturevalue(backend + "_env"))
    code = tmp_path / "code"
    code.mkdir()
    (code / "flow.py").write_text(READER)
    (tmp_path / "cfg.json").write_text('{"cfg": 1}')
    (tmp_path / "inputs").write_text("1/start/1")
    r = mfs("run", "--backend", backend, "--quiet", "--code", code, "--", "python3", "flow.py",
            "--local-config-file", tmp_path / "cfg.json", "step", "a", "--run-id", "1",
            "--task-id", "2", "--input-paths-filename", tmp_path / "inputs", env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ['--local-config-file .mfs-files/0-cfg.json {"cfg": 1}',
                                     "--input-paths-filename .mfs-files/1-inputs 1/start/1"]
    if backend != "local":
        assert emu.live_count() == 0
