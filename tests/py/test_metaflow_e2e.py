"""End to end: real flows with the real Metaflow from PyPI, steps decorated
with @sandbox(backend="local"), run through ./mfsandbox in bubblewrap
sandboxes, local datastore and local metadata.  Results are read back with
the Client API and the `logs` command, in a separate process (Metaflow reads
its configuration at import time)."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLOWS = pathlib.Path(__file__).resolve().parent / "mf_flows"
BIN = pathlib.Path(os.environ.get("MFSANDBOX_BIN") or ROOT / "mfsandbox")

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")


def _env(home):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("METAFLOW_", "MFSANDBOX_", "AWS_"))}
    env.update({
        "METAFLOW_USER": "tester",
        "METAFLOW_HOME": str(home),  # no user config leaks in
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DEFAULT_METADATA": "local",
        "MFSANDBOX_BIN": str(BIN),
        "PYTHONUNBUFFERED": "1",
    })
    return env


class FlowDir:
    def __init__(self, tmp_path, name):
        self.dir = tmp_path / "work"
        self.dir.mkdir()
        (tmp_path / "home").mkdir()
        self.file = self.dir / name
        shutil.copy(FLOWS / name, self.file)
        self.env = _env(tmp_path / "home")

    def run(self, *args, check=True, timeout=300):
        cmd = [sys.executable, str(self.file), "--no-pylint", *args]
        r = subprocess.run(cmd, cwd=self.dir, env=self.env, capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s\n%s" % (
                " ".join(args), r.returncode, r.stdout.decode(errors="replace")[-4000:],
                r.stderr.decode(errors="replace")[-4000:]))
        return r

    def client(self, code):
        """Runs Client API code that assigns `out`; returns it (JSON)."""
        prog = "import json\nfrom metaflow import *\nnamespace(None)\n" + textwrap.dedent(code) + \
            "\nprint('@@' + json.dumps(out))\n"
        r = subprocess.run([sys.executable, "-c", prog], cwd=self.dir, env=self.env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        line = [l for l in r.stdout.splitlines() if l.startswith("@@")][-1]
        return json.loads(line[2:])


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    fd = FlowDir(tmp_path_factory.mktemp("linear"), "linear_flow.py")
    fd.result = fd.run("run", "--greeting", "it's a \"quoted\" value  with  spaces")
    return fd


def test_linear_flow_artifacts_parameters_and_environment(linear):
    out = linear.client("""
        run = Flow('MfsLinearFlow').latest_run
        start = run['start'].task
        end = run['end'].task
        out = dict(ok=run.successful, greeting=start.data.greeting_seen, colour=start.data.colour,
                   user=start.data.user, workload=start.data.workload, big_ok=end.data.big_ok,
                   big_len=end.data.big_len,
                   backend=start.metadata_dict.get('sandbox-backend'),
                   runtime_env=start.metadata_dict.get('runtime'))
    """)
    assert out["ok"] is True
    assert out["greeting"] == "it's a \"quoted\" value  with  spaces"
    assert out["colour"] == "teal"              # @environment reached the sandbox
    assert out["user"] == "tester"              # METAFLOW_USER set for a root sandbox
    assert out["workload"] == "1"               # the step really ran under mfsandbox
    assert out["backend"] == "local"
    assert out["big_ok"] is True and out["big_len"] == 50 * 1024 * 1024


def test_logs_command_shows_each_line_once(linear):
    run_id = (linear.dir / ".metaflow" / "MfsLinearFlow" / "latest_run").read_text().strip()
    r = linear.run("logs", "%s/start" % run_id)
    text = r.stdout.decode("utf-8", errors="replace")
    assert text.count("unicode: h\u00e9llo \u2713 \u65e5\u672c") == 1, text
    assert text.count("binary: ") == 1, text
    err = linear.run("logs", "--stderr", "%s/start" % run_id).stdout.decode("utf-8", errors="replace")
    assert err.count("to stderr: \u00fcber") == 1, err


def test_client_task_logs_keep_unicode_and_binary(linear):
    out = linear.client("""
        t = Flow('MfsLinearFlow').latest_run['start'].task
        # Client's .stdout insists on UTF-8: read raw lines for the binary one.
        raw = b"\\n".join(line for _, line in t.loglines('stdout', as_unicode=False))
        out = dict(stdout=raw.decode('latin-1'), stderr=t.stderr,
                   end=Flow('MfsLinearFlow').latest_run['end'].task.stdout)
    """)
    raw = out["stdout"].encode("latin-1")
    assert "unicode: h\u00e9llo \u2713 \u65e5\u672c".encode() in raw
    assert b"binary: \xff\xfe end" in raw      # bytes kept exactly
    assert raw.count(b"unicode:") == 1
    assert "to stderr: \u00fcber" in out["stderr"]
    assert "end saw 52428800 bytes" in out["end"]


def test_retry_catch_timeout_foreach(tmp_path):
    fd = FlowDir(tmp_path, "semantics_flow.py")
    fd.run("run", "--max-workers", "3")
    out = fd.client("""
        run = Flow('MfsSemanticsFlow').latest_run
        flaky = run['flaky'].task
        caught = run['caught'].task
        slow = run['slow'].task
        out = dict(ok=run.successful,
                   squares=sorted(t.data.value for t in run['square']),
                   total=run['join'].task.data.total,
                   attempt=flaky.data.attempt_seen, fresh=flaky.data.fresh,
                   flaky_attempts=sorted(int(a) for a in [flaky.metadata_dict.get('attempt')]),
                   failure=repr(caught.data.failure),
                   timed_out=repr(slow.data.timed_out),
                   slow_err=slow.stderr)
    """)
    assert out["ok"] is True
    assert out["squares"] == [1, 4, 9] and out["total"] == 14
    assert out["attempt"] == 1 and out["fresh"] is True
    assert "always fails" in out["failure"]
    assert "Timeout" in out["timed_out"]


def test_resume_reruns_only_the_failed_step(tmp_path):
    fd = FlowDir(tmp_path, "resume_flow.py")
    # The local sandbox has its own /tmp: only the datastore dir is shared.
    flag = fd.dir / ".metaflow" / "resume-flag"
    first = fd.run("run", "--flag", str(flag), check=False)
    assert first.returncode != 0
    flag.write_text("ok")
    fd.run("resume")
    out = fd.client("""
        run = Flow('MfsResumeFlow').latest_run
        out = dict(ok=run.successful, seen=run['end'].task.data.seen,
                   origin=run['start'].task.metadata_dict.get('origin-run-id'))
    """)
    assert out["ok"] is True and out["seen"] == "from-start"
    assert out["origin"] not in (None, "None")


def test_missing_binary_is_named(tmp_path):
    fd = FlowDir(tmp_path, "resume_flow.py")
    fd.env["MFSANDBOX_BIN"] = str(tmp_path / "nope")
    r = fd.run("run", "--flag", "x", check=False)
    assert r.returncode != 0
    assert b"MFSANDBOX_BIN" in r.stdout + r.stderr


def test_backend_env_var_selects_the_backend_of_a_plain_sandbox(tmp_path):
    fd = FlowDir(tmp_path, "plain_flow.py")
    # e2b with the local datastore is refused before anything runs: proof
    # that the variable reached the launch decision.
    fd.env["METAFLOW_SANDBOX_BACKEND"] = "e2b"
    r = fd.run("run", check=False)
    assert r.returncode != 0
    assert b"backend 'e2b' needs a datastore the sandbox can reach" in r.stdout + r.stderr
    fd.env["METAFLOW_SANDBOX_BACKEND"] = "local"
    fd.run("run")
    out = fd.client("out = Flow('MfsPlainFlow').latest_run['start'].task.data.backend")
    assert out == "local"


def test_sandbox_deadline_kills_a_hanging_task_and_keeps_its_logs(tmp_path):
    fd = FlowDir(tmp_path, "deadline_flow.py")
    r = fd.run("run", check=False)
    assert r.returncode != 0
    out = fd.client("""
        t = Flow('MfsDeadlineFlow').latest_run['start'].task
        out = dict(ok=t.successful, stdout=t.stdout, stderr=t.stderr)
    """)
    assert out["ok"] is False
    # saved by the periodic log uploader before the sandbox was removed
    assert "before the hang" in out["stdout"]
    assert "--timeout 30s reached" in out["stderr"]


def test_runtime_spawns_mfsandbox_with_merged_sizes(tmp_path):
    """Metaflow's runtime itself starts mfsandbox (no Python process of ours
    in between), with cpu 1 / memory 1024 / timeout 600 by default and the
    max of @resources and the decorator per field.  What mfsandbox decides
    from the spec's facts is read from its own --dry-run plan of the same
    command: the deadline @timeout + 120 s, and the Metaflow config it lets
    into the sandbox (a secret-looking name is dropped by mfsandbox, though
    the decorator passed it on)."""
    fd = FlowDir(tmp_path, "sizes_flow.py")
    log, plans = tmp_path / "argv.log", tmp_path / "plans.log"
    wrapper = tmp_path / "mfsandbox-wrapper"
    wrapper.write_text(
        "#!/bin/sh\n"
        "printf '%%s|%%s\\n' \"$(tr '\\0' ' ' < /proc/$PPID/cmdline)\" \"$*\" >> %s\n"
        "prev=; for a; do [ \"$prev\" = --metaflow-spec ] && cp \"$a\" %s/spec.json; prev=$a; done\n"
        "first=$1; shift\n"
        "{ echo @@; %s \"$first\" --dry-run \"$@\"; } >> %s 2>&1\n"
        "exec %s \"$first\" \"$@\"\n" % (log, tmp_path, BIN, plans, BIN))
    wrapper.chmod(0o755)
    fd.env["MFSANDBOX_BIN"] = str(wrapper)
    fd.env["METAFLOW_DATATOOLS_SESSION_VARS"] = '{"aws_session_token": "tok-not-for-sandbox"}'
    fd.env["METAFLOW_S3_RETRY_COUNT"] = "3"
    fd.run("run")
    calls = {}
    for line in log.read_text().splitlines():
        parent, argv = line.split("|", 1)
        words = argv.split()
        calls[words[words.index("step") + 1]] = (parent.split(), words)
    assert sorted(calls) == ["merged", "slow", "start"]  # `end` has no @sandbox

    def flag(step, name):
        words = calls[step][1]
        return words[words.index(name) + 1] if name in words else None

    assert [flag("start", f) for f in ("--cpu", "--memory", "--timeout")] == ["1", "1024", "600"]
    assert [flag("merged", f) for f in ("--cpu", "--memory", "--timeout")] == ["2", "2048", "600"]
    for parent, words in calls.values():
        # The parent is the runtime (`flow.py ... run`), not a per-task trampoline.
        assert "run" in parent and "step" not in parent, parent
        assert words[:3] == ["run", "--backend", "local"] and "--metaflow-spec" in words

    plan = {}
    for block in plans.read_text().split("@@\n")[1:]:
        step = [l for l in block.splitlines() if l.startswith("step: ")][0].split("/")[2]
        plan[step] = block
    assert "timeout: 600 s" in plan["start"] and "timeout: 1020 s" in plan["slow"]
    spec = json.loads((tmp_path / "spec.json").read_text())
    assert "METAFLOW_DATATOOLS_SESSION_VARS" in spec["config_env"]  # passed on as a fact
    for block in plan.values():
        assert "METAFLOW_S3_RETRY_COUNT=3" in block
        assert "METAFLOW_DATATOOLS_SESSION_VARS" not in block
        assert "tok-not-for-sandbox" not in block
