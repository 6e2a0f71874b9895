"""The real ./mfsandbox with --backend daytona against the Daytona emulator:
the exit codes a user (and Metaflow's @retry) depends on, output kept apart,
and no sandbox left behind whatever fault the service throws."""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from mfs_cli import BINARY, clean_env, mfs


@pytest.fixture
def emu(daytona_emulator):
    yield daytona_emulator
    assert daytona_emulator.live_count() == 0, "a sandbox leaked"


@pytest.fixture
def env(daytona_env):
    base = {k: v for k, v in clean_env().items() if not k.startswith("DAYTONA_")}
    base.update(daytona_env)
    return base


def run(env, *cmd, flags=(), **kw):
    return mfs("run", "--backend", "daytona", *flags, "--", *cmd, env=env, **kw)


def creates(emu):
    return [q for q in emu.requests if q == ("POST", "/api/sandbox")]


# With env, the command's script is uploaded (without, it goes inline).
WITH_ENV = ["--env", "STEP_ENV=1"]


def test_without_env_the_command_goes_inline(emu, env):
    """No env, nothing to hide from the session's command record: no upload,
    and the argv still arrives exactly, in the work dir, without stdin."""
    argv = ["printf", "[%s]\\n", "two words", "it's", "$HOME", "a\nb", ""]
    r = run(env, "sh", "-c", 'pwd; "$@"; cat; echo done', "sh", *argv)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/home/daytona\n[two words]\n[it's]\n[$HOME]\n[a\nb]\n[]\ndone\n"
    assert not [q for q in emu.requests if q[1].endswith("/files/bulk-upload")]


def run_bytes(env, *args):
    """mfsandbox with arguments given as bytes (argv is bytes, not text)."""
    return subprocess.run([os.fsencode(BINARY), *map(os.fsencode, args)], env=env,
                          capture_output=True, timeout=120)


def test_bytes_that_are_not_utf8_arrive_exactly(emu, env):
    """The session command is JSON text: an argument that is not UTF-8 once
    emptied the request (HTTP 400, exit 203).  Its script is uploaded as
    bytes instead."""
    arg = b"a\xffb\xc3("
    r = run_bytes(env, "run", "--backend", "daytona", "--", "printf", "[%s]\\n", arg)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"[" + arg + b"]\n"


@pytest.mark.parametrize("args, what", [
    (["--image", b"python:3\xff", "--", "true"], b"--image is not valid UTF-8"),
    (["--", "python3", "flow.py", "step", "a", "--run-id", b"r\xff", "--task-id", "2"],
     b"a label is not valid UTF-8"),
])
def test_text_that_is_not_utf8_is_refused_before_create(emu, env, args, what):
    """jansson drops such a string from the create body without a word:
    --image would have left the default snapshot in its place, a run id
    the label `kill --stale` and the relay find the sandbox by."""
    r = run_bytes(env, "run", "--backend", "daytona", *args)
    assert r.returncode == 202, r.stderr
    assert what in r.stderr and len(r.stderr.splitlines()) == 1
    assert not creates(emu)


@pytest.mark.parametrize("image", ["python:3.12\nRUN touch /pwned", "python:3.12 AS x"])
def test_image_that_would_add_dockerfile_lines_is_refused(emu, env, image):
    """--image becomes a Dockerfile's FROM line: a newline in it once added a
    RUN of its own to the build, silently."""
    r = run(env, "true", flags=["--image", image])
    assert r.returncode == 202, r.stderr
    assert "--image" in r.stderr and len(r.stderr.splitlines()) == 1
    assert "pwned" not in r.stderr
    assert not creates(emu)


def test_code_upload_env_cwd_and_exit_status(emu, env, tmp_path):
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "pkg" / "mod.py").write_text("VALUE = 'from code'\n")
    (code / "main.py").write_text("import pkg.mod\nprint(pkg.mod.VALUE)\n")
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(range(256)) * 4096)
    env = dict(env, API_TOKEN="tok-'q\"uote")
    r = run(env, "sh", "-c", 'python3 main.py && sha256sum input/data.bin | cut -d" " -f1 && '
                             'echo "$API_TOKEN" && pwd && echo to-err >&2 && exit 5',
            flags=["--code", code, "--upload", f"{data}:input/data.bin", "--env", "API_TOKEN"])
    assert r.returncode == 5, r.stderr
    assert r.stdout.splitlines() == ["from code", hashlib.sha256(data.read_bytes()).hexdigest(),
                                     "tok-'q\"uote", "/home/daytona"]
    assert "to-err" in r.stderr and "to-err" not in r.stdout
    assert emu.created_total == 1
    # the secret went per command, never into the create call
    (body,) = [sb_body for sb_body in emu.create_bodies]
    assert "tok-" not in json.dumps(body)
    assert body["labels"]["mfsandbox"] == "1"
    assert body["autoDeleteInterval"] == 0 and body["autoStopInterval"] > 0
    assert "buildInfo" not in body and "cpu" not in body


def test_missing_key_is_202_before_any_request(emu, env):
    del env["DAYTONA_API_KEY"]
    r = run(env, "true")
    assert r.returncode == 202
    assert "DAYTONA_API_KEY" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert emu.requests == []


def test_jwt_needs_the_organization(emu, env):
    del env["DAYTONA_API_KEY"]
    env["DAYTONA_JWT_TOKEN"] = "jwt-secret-123"
    r = run(env, "true")
    assert r.returncode == 202
    assert "DAYTONA_ORGANIZATION_ID" in r.stderr and "jwt-secret-123" not in r.stderr
    assert emu.requests == []


def test_bad_key_is_202_and_makes_nothing(emu, env):
    r = run(dict(env, DAYTONA_API_KEY="dtn_0badc0de"), "true")
    assert r.returncode == 202, r.stderr
    assert "DAYTONA_API_KEY" in r.stderr and "0badc0de" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert emu.created_total == 0


@pytest.mark.parametrize("var", ["DAYTONA_API_KEY", "DAYTONA_ORGANIZATION_ID"])
def test_key_with_a_line_break_is_202_before_any_request(emu, env, var):
    """A key read from a file keeps its newline (a Kubernetes secret): libcurl
    sent it inside the header line, which ended the head early or added a
    header of its own."""
    if var == "DAYTONA_ORGANIZATION_ID":
        env["DAYTONA_JWT_TOKEN"] = env.pop("DAYTONA_API_KEY")
    env[var] = env.get(var, "org-1") + "\nX-Evil: 1"
    r = run(env, "true")
    assert r.returncode == 202, r.stderr
    assert var in r.stderr and "X-Evil" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert emu.requests == []


@pytest.mark.parametrize("var, value", [("DAYTONA_API_URL", "{url}\n"),
                                        ("DAYTONA_API_URL", "htp://x"),
                                        ("DAYTONA_TARGET", "us\n")])
def test_bad_url_or_target_is_202_before_any_request(emu, env, var, value):
    """A URL with a file's newline failed like a dead service (203, retried
    by @retry), with a warning about removing a sandbox never made."""
    env[var] = value.format(url=env["DAYTONA_API_URL"])
    r = run(env, "true")
    assert r.returncode == 202, r.stderr
    assert var in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert emu.requests == []


def test_cpu_without_image_is_said_and_with_image_is_sent(emu, env):
    r = run(env, "true", flags=["--cpu", "2", "--memory", "3000"])
    assert r.returncode == 0, r.stderr
    assert "--cpu" in r.stderr and "--image" in r.stderr and "warning:" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    # the default snapshot's own size is met: nothing to say
    assert run(env, "true", flags=["--cpu", "1", "--memory", "1024"]).stderr == ""
    # a disk beyond the snapshot's is refused before anything is made
    made = emu.created_total
    r = run(env, "true", flags=["--disk", "10"])
    assert r.returncode == 202 and "--disk" in r.stderr, r.stderr
    assert emu.created_total == made
    r = run(env, "true", flags=["--image", "python:3.12-slim", "--cpu", "1.5",
                                "--memory", "3000", "--quiet"])
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    body = emu.create_bodies[-1]
    assert body["buildInfo"]["dockerfileContent"] == "FROM python:3.12-slim\n"
    assert (body["cpu"], body["memory"]) == (2, 3)


@pytest.mark.parametrize("gpu", ["A100", "0", "2x", "99999999999"])
def test_gpu_that_is_not_a_count_is_refused_with_an_image(emu, env, gpu):
    """Daytona's API takes a GPU count: --gpu A100 (or 0, or 2x) was sent as
    one GPU of whatever kind, and a huge number went through atoi."""
    r = run(env, "true", flags=["--image", "python:3.12-slim", "--gpu", gpu])
    assert r.returncode == 202, r.stderr
    assert "--gpu" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not creates(emu)


def test_gpu_count_is_sent_with_an_image(emu, env):
    r = run(env, "true", flags=["--image", "python:3.12-slim", "--gpu", "2", "--quiet"])
    assert r.returncode == 0, r.stderr
    assert emu.create_bodies[-1]["gpu"] == 2


@pytest.mark.parametrize("status", [429, 502, 503])
def test_refused_create_is_retried_once_made(emu, env, status):
    emu.faults.statuses = {"POST /sandbox": [status, status]}
    emu.faults.retry_after = 1
    r = run(env, "echo", "ok")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n"
    assert emu.created_total == 1 and len(creates(emu)) == 3


def test_lost_create_response_adopts_the_sandbox(emu, env):
    emu.faults.create_drop = 1
    r = run(env, "echo", "ok")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n"
    assert emu.created_total == 1 and len(creates(emu)) == 1


def test_slow_create_is_waited_for(emu, env):
    emu.faults.create_delay = 1.2
    emu.faults.server_wait = 0.1
    r = run(env, "echo", "ok")
    assert r.returncode == 0, r.stderr
    assert "started after" in r.stderr  # the one progress line
    assert len([q for q in emu.requests if q[0] == "GET" and q[1].startswith("/api/sandbox/")]) > 1


def test_a_fan_out_waits_out_the_create_rate_limit(emu, env):
    """16 runs at once against 2 creates a second: each 429 is waited out
    (Retry-After plus jitter) as often as it takes, not a fixed few times;
    every run succeeds with one sandbox."""
    emu.faults.create_rate = 2
    procs = [subprocess.Popen([str(BINARY), "run", "--backend", "daytona", "--quiet", "--",
                               "echo", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env) for i in range(16)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [(p.returncode, o[0]) for p, o in zip(procs, outs)] == \
        [(0, b"%d\n" % i) for i in range(16)], [o[1] for o in outs]
    assert emu.throttled_total >= 8 and emu.created_total == 16


def test_empty_toolbox_url_is_looked_up(emu, env):
    emu.faults.empty_toolbox_url = True
    r = run(env, "echo", "ok")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n"
    assert any(q[1].endswith("/toolbox-proxy-url") for q in emu.requests)


def test_start_failure_is_203_with_the_reason(emu, env):
    emu.faults.create_error = "no capacity in region us"
    r = run(env, "true")
    assert r.returncode == 203
    assert "no capacity in region us" in r.stderr
    # the failed sandbox exists on the server until deleted: the fixture checks it was


def test_delete_conflicts_are_retried(emu, env):
    emu.faults.delete_conflicts = 2
    r = run(env, "true")
    assert r.returncode == 0, r.stderr
    assert len([q for q in emu.requests if q[0] == "DELETE" and "/api/sandbox/" in q[1]]) == 3


def test_transient_toolbox_502_is_retried(emu, env):
    emu.faults.statuses = {"GET /toolbox/process/session/*": [502, 502],
                           "POST /toolbox/files/bulk-upload": [503]}
    r = run(env, "sh", "-c", "echo a; sleep 0.3; echo b", flags=WITH_ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "a\nb\n"


def test_sandbox_dying_mid_command_is_203(emu, env):
    emu.faults.die_after_output = True
    r = run(env, "sh", "-c", "echo first; sleep 30")
    assert r.returncode == 203, r.stderr
    assert "error" in r.stderr


def test_timeout_is_204(emu, env):
    r = run(env, "sh", "-c", "echo begin; sleep 30", flags=["--timeout", "3"])
    assert r.returncode == 204, r.stderr
    assert r.stdout == "begin\n"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_run_kills_and_deletes(emu, env, sig):
    p = subprocess.Popen([str(BINARY), "run", "--backend", "daytona", "--", "sh", "-c",
                          "echo started; sleep 300"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdout.readline() == b"started\n"
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 128 + sig, err
    assert any(q[0] == "DELETE" and q[1].startswith("/toolbox/") for q in emu.requests)


def test_sandbox_reaches_s3_but_not_the_metadata_service(emu, env):
    """Like a cloud sandbox: the allowed port (S3 on the launcher's loopback,
    here a stand-in) answers, any other launcher port (metaflow-local-service)
    is refused, so a step that bypasses the relay fails here too."""
    s3, mds = socket.socket(), socket.socket()
    for s in (s3, mds):
        s.bind(("127.0.0.1", 0))
        s.listen(4)
    s3_port, mds_port = s3.getsockname()[1], mds.getsockname()[1]
    emu.allow_ports = (s3_port,)
    probe = ("import socket, sys\n"
             "for p in sys.argv[1:]:\n"
             "    try:\n"
             "        socket.create_connection(('127.0.0.1', int(p)), 3); print(p, 'open')\n"
             "    except OSError as e:\n"
             "        print(p, type(e).__name__)\n")
    try:
        r = run(env, "python3", "-c", probe, str(s3_port), str(mds_port))
    finally:
        s3.close()
        mds.close()
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["%d open" % s3_port, "%d ConnectionRefusedError" % mds_port]


def test_keep_ls_and_kill(emu, env, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "hello.py").write_text("print('task ran')\n")
    r = run(env, "python3", "hello.py", "step", "start", "--run-id", "77", "--task-id", "5",
            flags=["--keep", "--code", code])
    assert r.returncode == 0, r.stderr
    m = re.search(r"kept daytona sandbox (\S+)", r.stderr)
    assert m, r.stderr
    sid = m.group(1)
    assert emu.live_count() == 1

    ls = mfs("ls", "--backend", "daytona", env=env)
    assert ls.returncode == 0, ls.stderr
    row = [line for line in ls.stdout.splitlines() if line.startswith(sid)]
    assert len(row) == 1 and "hello/77/start/5" in row[0]

    k = mfs("kill", "--backend", "daytona", "--pathspec", "hello/77", env=env)
    assert k.returncode == 0, k.stderr
    assert sid in k.stdout
    again = mfs("kill", "--backend", "daytona", sid, env=env)
    assert again.returncode == 202


# ---- error paths: every fault ends with the documented exit code and no
# sandbox left behind (the `emu` fixture checks the live count) ----

COUNT_RUNS = 'echo run >> /tmp/runs; echo "runs: $(wc -l < /tmp/runs)"; echo to-err >&2'


@pytest.mark.parametrize("where", [
    "POST /sandbox", "POST /toolbox/files/bulk-upload", "POST /toolbox/process/session",
    "POST /toolbox/process/session/*/exec", "GET /toolbox/process/session/*/command/*",
    "GET /toolbox/process/session/*/logs"])
def test_server_error_is_203_and_nothing_is_left(emu, env, where):
    emu.faults.statuses = {where: [500] * 20}
    r = run(env, "sh", "-c", COUNT_RUNS, flags=WITH_ENV)
    assert r.returncode == 203, r.stderr
    assert "HTTP 500" in r.stderr
    assert emu.created_total == (0 if where == "POST /sandbox" else 1)


@pytest.mark.parametrize("where", [
    "POST /sandbox", "GET /sandbox/*", "POST /toolbox/files/bulk-upload",
    "POST /toolbox/process/session", "POST /toolbox/process/session/*/exec",
    "GET /toolbox/process/session/*/command/*", "GET /toolbox/process/session/*/logs",
    "DELETE /sandbox/*"])
def test_cut_connections_are_tried_again(emu, env, where):
    """The line drops before the server did anything: tried again, and the
    step runs exactly once."""
    emu.faults.statuses = {where: [0, 0]}
    if where == "GET /sandbox/*":  # only polled while a sandbox starts
        emu.faults.create_delay, emu.faults.server_wait = 0.5, 0.05
    r = run(env, "sh", "-c", COUNT_RUNS, flags=WITH_ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "runs: 1\n" and r.stderr.count("to-err") == 1
    assert emu.created_total == 1


@pytest.mark.parametrize("where", [
    "POST /toolbox/files/bulk-upload", "POST /toolbox/process/session",
    "POST /toolbox/process/session/*/exec", "GET /toolbox/process/session/*/logs",
    "DELETE /sandbox/*"])
def test_lost_answers_do_not_repeat_the_step(emu, env, where):
    """The server did the work and the answer was lost on the way: the step
    still runs exactly once (a lost exec is found in the session, not sent
    again) and the sandbox is still deleted."""
    emu.faults.lose_response = {where: 1}
    r = run(env, "sh", "-c", COUNT_RUNS, flags=WITH_ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "runs: 1\n" and r.stderr.count("to-err") == 1
    assert emu.faults.lose_response[where] == 0


def test_one_session_serves_every_command_of_a_sandbox(emu, env, tmp_path):
    """--code runs an unpack command, then the step, in the same session:
    one session opened, none deleted by hand (the sandbox's delete ends it).
    The step's exec answer is lost: the session's second command is found
    by its text, so the step still runs once."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "x.txt").write_text("shipped\n")
    emu.faults.lose_response = {"POST /toolbox/process/session/*/exec": [False, True]}
    r = run(env, "sh", "-c", "cat x.txt; " + COUNT_RUNS, flags=["--code", code])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "shipped\nruns: 1\n" and r.stderr.count("to-err") == 1
    assert emu.faults.lose_response["POST /toolbox/process/session/*/exec"] == []
    toolbox = [(m, p.split("/", 3)[3]) for m, p in emu.requests if p.startswith("/toolbox/")]
    assert toolbox.count(("POST", "process/session")) == 1
    assert not [q for q in toolbox if q[0] == "DELETE"]


def test_connection_that_keeps_dropping_is_203(emu, env):
    emu.faults.statuses = {"GET /toolbox/process/session/*/logs": [0] * 50}
    r = run(env, "sh", "-c", "echo begin; sleep 60")
    assert r.returncode == 203, r.stderr
    assert emu.created_total == 1


def test_stuck_toolbox_call_cannot_outlast_the_timeout(emu, env):
    """A log poll that hangs (a stuck proxy) is cut at --timeout: 204, the
    sandbox deleted, rather than waiting out the HTTP timeout."""
    emu.faults.stalls = {"GET /toolbox/process/session/*/logs": [300]}
    r = run(env, "sh", "-c", "echo begin; sleep 1; echo end", flags=["--timeout", "3"])
    assert r.returncode == 204, r.stderr
    assert "timeout" in r.stderr


@pytest.mark.parametrize("what", ["--upload", "the command's script"])
def test_stuck_upload_cannot_outlast_the_timeout(emu, env, tmp_path, what):
    """An upload that hangs (a stuck proxy) is cut at --timeout: 204, the
    command never runs, the sandbox is deleted."""
    emu.faults.stalls = {"POST /toolbox/files/bulk-upload": [300]}
    data = tmp_path / "data.txt"
    data.write_text("payload\n")
    flags = ["--upload", f"{data}:data.txt"] if what == "--upload" else WITH_ENV
    r = run(env, "echo", "never", flags=["--timeout", "2", *flags], timeout=60)
    assert r.returncode == 204, r.stderr
    assert r.stdout == "" and "timeout" in r.stderr
    assert not any(q[1].endswith("/exec") for q in emu.requests)


def wait_for(cond, what):
    for _ in range(1200):
        if cond():
            return
        time.sleep(0.025)
    raise AssertionError("never happened: " + what)


@pytest.mark.parametrize("phase", ["create call", "start polling"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_the_sandbox_starts_deletes_it(emu, env, phase, sig):
    """Cancelled while the create call is still waiting server-side, or while
    polling for `started`: the sandbox (still creating, so deletes answer
    409 for a while) is deleted before mfsandbox exits 128+N."""
    emu.faults.create_delay = 2.0
    emu.faults.server_wait = 30.0 if phase == "create call" else 0.05
    p = subprocess.Popen([str(BINARY), "run", "--backend", "daytona", "--", "true"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if phase == "create call":
        wait_for(lambda: emu.created_total == 1, "the create")
    else:
        wait_for(lambda: any(q[0] == "GET" and q[1].startswith("/api/sandbox/")
                             for q in emu.requests), "a state poll")
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, err
    assert emu.created_total == 1
    assert any(q[0] == "DELETE" and q[1].startswith("/api/sandbox/") for q in emu.requests)


@pytest.mark.parametrize("phase", ["create call", "start polling"])
def test_timeout_while_the_sandbox_starts_is_204(emu, env, phase):
    """--timeout bounds the wait for the sandbox too, not just the command:
    still creating when it runs out, the run ends with 204, the command never
    starts, and the sandbox (deleted once the server lets go of it, after its
    409s) is not left behind."""
    emu.faults.create_delay = 4.0
    emu.faults.server_wait = 30.0 if phase == "create call" else 0.05
    r = run(env, "echo", "never", flags=["--timeout", "1"])
    assert r.returncode == 204, r.stderr
    assert r.stdout == ""
    why = "before Daytona answered the create" if phase == "create call" else "still creating"
    assert "--timeout reached" in r.stderr and why in r.stderr, r.stderr
    assert emu.created_total == 1
    assert not any("/process/session" in q[1] for q in emu.requests)


def test_jwt_with_its_organization_and_the_target(emu, env):
    from emulators.daytona.server import ORG
    emu.jwt_token = "jwt-secret-123"
    del env["DAYTONA_API_KEY"]
    env.update(DAYTONA_JWT_TOKEN="jwt-secret-123", DAYTONA_ORGANIZATION_ID=ORG,
               DAYTONA_TARGET="eu")
    r = run(env, "echo", "ok")
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr
    assert emu.create_bodies[-1]["target"] == "eu"
    r = run(dict(env, DAYTONA_ORGANIZATION_ID="someone-else"), "true")
    assert r.returncode == 202, r.stderr
    assert "DAYTONA_JWT_TOKEN" in r.stderr and "jwt-secret-123" not in r.stderr
    assert emu.created_total == 1


def test_failed_image_build_is_203_with_the_reason(emu, env):
    emu.faults.create_delay = 0.4
    emu.faults.build_error = "Dockerfile: manifest for python:9 not found"
    r = run(env, "true", flags=["--image", "python:9"])
    assert r.returncode == 203, r.stderr
    assert "build_failed" in r.stderr and "manifest for python:9 not found" in r.stderr
    assert emu.created_total == 1


def test_progress_line_on_a_terminal_shows_each_state(emu, env):
    """A person at a terminal sees one line, rewritten in place, with the
    state and the elapsed time; --quiet silences it."""
    import pty
    emu.faults.create_delay = 1.0
    for quiet in (False, True):
        master, slave = pty.openpty()
        flags = ["--image", "python:3.12-slim"] + (["--quiet"] if quiet else [])
        p = subprocess.Popen([str(BINARY), "run", "--backend", "daytona", *flags, "--",
                              "echo", "ok"], stdout=subprocess.PIPE, stderr=slave, env=env)
        os.close(slave)
        out, _ = p.communicate(timeout=120)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        os.close(master)
        assert (p.returncode, out) == (0, b"ok\n"), seen
        if quiet:
            assert seen == b""
            continue
        line = seen.split(b"\r\n")[0]  # the tty turns the final \n into \r\n
        states = re.findall(rb"\rmfsandbox: daytona sandbox \S+: (\w+) \((\d+\.\d) s\)", line)
        names = [s for i, (s, _) in enumerate(states) if i == 0 or states[i - 1][0] != s]
        assert names == [b"pending_build", b"building_snapshot", b"started"]
        assert float(states[-1][1]) >= float(states[0][1])
