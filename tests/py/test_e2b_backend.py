"""backends/e2b/e2b.c against the E2B emulator: the real C code (through
build/tests/e2btool, which calls only the backend's ops table) over loopback
HTTP.  Every test ends by checking that no sandbox leaked and that the
emulator saw nothing a real envd would crash on or reject."""
import os
import pathlib
import subprocess

import pytest

from emulators.e2b.connect import parse_envelopes

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = pathlib.Path(os.environ.get("MFS_BUILD_DIR", ROOT / "build")) / "tests" / "e2btool"


def run(env, *args, timeout=60, **kw):
    full = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    full.update(env)
    return subprocess.run([str(TOOL), *args], env=full, capture_output=True, text=True,
                          timeout=timeout, **kw)


def error_kind(r):
    """The mfs_code name e2btool printed ("e2btool: timeout: ...")."""
    for line in r.stderr.splitlines():
        if line.startswith("e2btool: ") and not line.startswith("e2btool: sandbox "):
            return line.split(": ")[1]
    return None


@pytest.fixture
def emu(e2b_emulator):
    yield e2b_emulator
    assert e2b_emulator.live_count() == 0, "a sandbox leaked"
    assert e2b_emulator.violations == []


def start_body(req_log):
    start = [r for r in req_log if r["path"] == "/process.Process/Start"]
    assert len(start) == 1
    return start[0]


def test_run_upload_download_and_exit_code(emu, e2b_env, tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"payload \x00\xff\n" * 1000)
    dst = tmp_path / "out.bin"
    r = run(e2b_env, "run", "-t", "60", "-e", "SECRET_TOKEN=s3cr3t", "-l", "mfsandbox.task=7",
            "-u", "%s:data/in.txt" % src, "-d", "/tmp/result:%s" % dst, "--",
            "bash", "-c", 'echo "$SECRET_TOKEN"; cmp data/in.txt /home/user/data/in.txt && '
                          'echo same; echo to-stderr >&2; pwd; printf done > /tmp/result; '
                          'exit 3')
    assert r.returncode == 3, r.stderr
    assert r.stdout == "s3cr3t\nsame\n/home/user\n"
    assert "to-stderr\n" in r.stderr
    assert dst.read_bytes() == b"done"
    assert emu.created_total == 1

    create = [q for q in emu.requests if q["path"] == "/sandboxes"][0]
    assert create["headers"]["x-api-key"] == e2b_env["E2B_API_KEY"]
    envd = emu.envd_requests()
    assert envd and all(q["headers"].get("x-access-token") for q in envd)
    assert not any("x-api-key" in q["headers"] for q in envd)
    s = start_body(envd)
    assert s["headers"]["content-type"] == "application/connect+json"
    assert s["headers"]["keepalive-ping-interval"] == "50"
    assert s["headers"]["connect-timeout-ms"] == "60000"


def test_create_request_and_start_message(emu, e2b_env):
    """What goes on the wire: lifetime with slack, secure, metadata, and a
    Start envelope with stdin false and the secret only in process.envs."""
    bodies = []
    orig = emu.create

    def spy(template, timeout, metadata, env_vars, secure):
        bodies.append((template, timeout, metadata, env_vars, secure))
        return orig(template, timeout, metadata, env_vars, secure)

    emu.create = spy
    r = run(e2b_env, "run", "-e", "SECRET_TOKEN=s3cr3t", "-l", "mfsandbox.flow=Hello",
            "--", "true")
    assert r.returncode == 0, r.stderr
    template, timeout, metadata, env_vars, secure = bodies[0]
    assert template == "base" and secure is True
    assert timeout == 3600  # no step timeout: the 1 h plan cap, never the 15 s default
    assert metadata["mfsandbox"] == "1" and metadata["mfsandbox.flow"] == "Hello"
    assert env_vars == {}  # secrets never reach the control plane
    assert "connect-timeout-ms" not in start_body(emu.envd_requests())["headers"]


def test_image_selects_template_and_lifetime_follows_timeout(emu, e2b_env):
    seen = []
    orig = emu.create
    emu.create = lambda t, timeout, *a: seen.append((t, timeout)) or orig(t, timeout, *a)
    r = run(e2b_env, "run", "-i", "my-template", "-t", "100", "--", "true")
    assert r.returncode == 0, r.stderr
    assert seen == [("my-template", 400)]
    seen.clear()
    r = run(e2b_env, "run", "-t", "3500", "--", "true")
    assert r.returncode == 0, r.stderr
    assert seen == [("base", 3600)]  # slack shrinks rather than exceed the plan cap


def test_missing_api_key_fails_before_any_request(emu, e2b_env):
    env = dict(e2b_env)
    del env["E2B_API_KEY"]
    r = run(env, "run", "--", "true")
    assert error_kind(r) == "config"
    assert "E2B_API_KEY" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert emu.requests == []






def test_slow_create_and_rate_limits_make_exactly_one_sandbox(emu, e2b_env):
    emu.faults.create_delay = 0.5
    emu.faults.create_statuses = [429, 503]
    r = run(e2b_env, "run", "--", "echo", "ok")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n"
    assert emu.created_total == 1
    assert len([q for q in emu.requests if q["path"] == "/sandboxes"]) == 3


def test_create_refused_is_not_retried(emu, e2b_env):
    emu.faults.create_statuses = [400]
    r = run(e2b_env, "run", "--", "true")
    assert error_kind(r) == "backend"
    assert len([q for q in emu.requests if q["path"] == "/sandboxes"]) == 1




def test_signal_death_maps_to_128_plus_n(emu, e2b_env):
    r = run(e2b_env, "run", "--", "bash", "-c", "kill -TERM $$")
    assert r.returncode == 128 + 15, r.stderr



def test_old_envd_multipart_and_no_stdin_field(emu, e2b_env, tmp_path):
    emu.envd_version = "0.2.5"
    src = tmp_path / "f.txt"
    src.write_text("old\n")
    r = run(e2b_env, "run", "-u", "%s:/tmp/f.txt" % src, "--", "cat", "/tmp/f.txt")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "old\n"
    ups = [q for q in emu.envd_requests("/files") if q["method"] == "POST"]
    assert ups[0]["headers"]["content-type"].startswith("multipart/form-data")


def test_ls_and_kill_by_metadata(emu, e2b_env):
    ours = emu.create("base", 60, {"mfsandbox": "1", "mfsandbox.task": "7"}, {}, True)
    other = emu.create("base", 60, {"someone": "else"}, {}, True)
    r = run(e2b_env, "ls")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [ours.id, "running", "task=7"]
    r = run(e2b_env, "kill", ours.id)
    assert r.returncode == 0, r.stderr
    r = run(e2b_env, "kill", ours.id)
    assert error_kind(r) == "notfound"
    assert [s.id for s in emu.live()] == [other.id]
    emu.remove(other.id)


def test_start_envelope_is_exact(emu, e2b_env):
    """The request body is one uncompressed envelope whose length prefix is
    exact and whose message has only fields envd's strict decoder knows."""
    raw = []
    import emulators.e2b.server as server

    orig = server._Handler._start

    def spy(self, sb, body):
        raw.append(body)
        return orig(self, sb, body)

    server._Handler._start = spy
    try:
        r = run(e2b_env, "run", "--", "printf", "%s", "a b")
    finally:
        server._Handler._start = orig
    assert r.returncode == 0 and r.stdout == "a b"
    frames = parse_envelopes(raw[0])
    assert len(frames) == 1 and frames[0][0] == 0
    msg = frames[0][1]
    # argv runs exactly, under setsid so that a kill reaches its children
    run_script = 'command -v setsid >/dev/null 2>&1 && exec setsid -- "$@"; exec "$@"'
    assert msg == {"process": {"cmd": "/bin/sh",
                               "args": ["-c", run_script, "mfsandbox", "printf", "%s", "a b"],
                               "envs": {}, "cwd": "/home/user"}, "stdin": False}


def test_debug_mode_uses_envd_only(emu, e2b_env):
    sb = emu.add_debug_sandbox()
    env = {"E2B_DEBUG": "TRUE", "E2B_SANDBOX_URL": e2b_env["E2B_SANDBOX_URL"]}
    r = run(env, "run", "--", "bash", "-c", "echo debug")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "debug\n"
    assert [q for q in emu.requests if not q["envd"]] == []  # no control plane at all
    assert all(q["sandbox"] == "debug_sandbox_id" for q in emu.requests)
    emu.remove(sb.id)


def test_sandbox_reaches_allowed_ports_only(emu, e2b_env):
    """As in the cloud: the datastore (an allowed port) is reachable, the
    launcher's other loopback services are not."""
    import socket

    allowed, other = socket.socket(), socket.socket()
    for s in (allowed, other):
        s.bind(("127.0.0.1", 0))
        s.listen(4)
    ok_port, bad_port = allowed.getsockname()[1], other.getsockname()[1]
    emu.allow_ports = (ok_port,)
    probe = ("import socket, sys\n"
             "for p in sys.argv[1:]:\n"
             "    try:\n"
             "        socket.create_connection(('127.0.0.1', int(p)), timeout=5).close()\n"
             "        print(p, 'open')\n"
             "    except OSError:\n"
             "        print(p, 'refused')\n")
    try:
        r = run(e2b_env, "run", "--", "python3", "-c", probe, str(ok_port), str(bad_port))
    finally:
        allowed.close()
        other.close()
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(ok_port), "open", str(bad_port), "refused"]
