"""E2B's surprising behaviours (issue #15), shown by the emulator in its
fidelity mode and survived by the client:

* envd signals, and at its deadline kills, only the command's own pid; the
  client runs the command under setsid and kills its process group, so
  `--timeout` and SIGTERM leave nothing running, even with `--keep`;
* a signal death is exitCode -1, `signal: terminated` -> 128+N;
* bytes that are not UTF-8 cannot travel in JSON: the client carries them
  another way, or refuses before a sandbox exists;
* Connect-Timeout-Ms has at most 10 digits; Keepalive-Ping-Interval 0 kills
  envd: the client never sends either."""
import http.client
import json
import os
import re
import signal
import subprocess
import time
import urllib.parse

import pytest

from emulators.e2b.connect import FrameReader, envelope
from mfs_cli import BINARY, clean_env, mfs
from test_e2b_backend import TOOL


@pytest.fixture
def emu(e2b_emulator):
    assert e2b_emulator.fidelity  # the default the tests rely on
    yield e2b_emulator
    assert e2b_emulator.live_count() == 0, "a sandbox leaked"


@pytest.fixture
def env(e2b_env):
    base = {k: v for k, v in clean_env().items() if not k.startswith("E2B_")}
    base.update(e2b_env)
    return base


# -- the emulator shows envd's quirks ------------------------------------------

def start(emu, sb, msg, headers=None, raw=None):
    """One raw Start call; returns (HTTP status, [(flags, message)])."""
    u = urllib.parse.urlsplit(emu.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h = {"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1",
         "E2b-Sandbox-Id": sb.id, "E2b-Sandbox-Port": "49983", "X-Access-Token": sb.token,
         "Keepalive-Ping-Interval": "50"}
    h.update(headers or {})
    c.request("POST", "/process.Process/Start", body=raw or envelope(msg), headers=h)
    try:
        r = c.getresponse()
    except http.client.RemoteDisconnected:
        return 0, []  # the connection died before an answer (envd crashed)
    frames, reader = [], FrameReader()
    while True:
        try:
            data = r.read1(65536)
        except (http.client.IncompleteRead, ConnectionError):
            break
        if not data:
            break
        frames += reader.feed(data)
    c.close()
    return r.status, frames


def events(frames, kind):
    return [m["event"][kind] for f, m in frames if f == 0 and kind in m.get("event", {})]


def sleepers(sb, tag):
    return [p for p in sb.ps() if tag in p[2]]


def test_envd_kills_only_the_pid_and_reports_the_signal(emu):
    sb = emu.create("base", 600, {}, {}, True)
    pids = []

    def signal_soon():
        while not sb.processes:
            time.sleep(0.05)
        time.sleep(0.5)
        pid = next(iter(sb.processes))
        pids.append(pid)
        sb.processes[pid].signal(signal.SIGTERM)

    import threading
    t = threading.Thread(target=signal_soon)
    t.start()
    status, frames = start(emu, sb, {"process": {"cmd": "/bin/sh", "args": [
        "-c", "sleep 301 & echo $E2B_SANDBOX; wait"]}, "stdin": False, "future": 1})
    t.join()
    assert status == 200
    assert events(frames, "end") == [{"exitCode": -1, "status": "signal: terminated",
                                      "error": "signal: terminated"}]
    assert sleepers(sb, "301"), "the child should outlive its parent, as in envd"
    emu.remove(sb.id)


def test_commands_run_as_the_template_user(emu, env, tmp_path):
    if emu.uid is None:
        pytest.skip("the emulator cannot switch users unless it runs as root")
    src = tmp_path / "in.txt"
    src.write_text("x")
    r = mfs("run", "--backend", "e2b", "--upload", f"{src}:sub/dir/in.txt", "--", "sh", "-c",
            "id -u; stat -c %u sub/dir sub/dir/in.txt; echo $E2B_SANDBOX", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1000", "1000", "1000", "true"]


def test_bad_timeout_header_is_an_error_in_the_stream(emu):
    sb = emu.create("base", 600, {}, {}, True)
    status, frames = start(emu, sb, {"process": {"cmd": "true"}, "stdin": False},
                           {"Connect-Timeout-Ms": "31622400000"})
    assert status == 200
    assert frames[-1][0] == 2 and frames[-1][1]["error"]["code"] == "invalid_argument"
    assert ">10 digits" in frames[-1][1]["error"]["message"]
    emu.remove(sb.id)


def test_keepalive_zero_kills_envd(emu):
    sb = emu.create("base", 600, {}, {}, True)
    start(emu, sb, {"process": {"cmd": "true"}, "stdin": False},
          {"Keepalive-Ping-Interval": "0"})
    status, _ = start(emu, sb, {"process": {"cmd": "true"}, "stdin": False})
    assert status == 502  # envd is gone; the sandbox is not
    assert emu.live_count() == 1
    emu.remove(sb.id)
    emu.violations.clear()


# -- the client survives them --------------------------------------------------

def kept_sandbox(emu, stderr):
    m = re.search(r"kept e2b sandbox (\S+)", stderr)
    assert m, stderr
    return emu.sandboxes[m.group(1)]


def test_timeout_leaves_no_process_even_with_keep(emu, env):
    r = mfs("run", "--backend", "e2b", "--keep", "--timeout", "3", "--", "sh", "-c",
            "sleep 302 & sleep 303 & echo begin; sleep 304", env=env)
    assert r.returncode == 204, r.stderr
    sb = kept_sandbox(emu, r.stderr)
    assert sleepers(sb, "302") == [] and sleepers(sb, "303") == [] and \
        sleepers(sb, "304") == [], sb.ps()
    assert emu.violations == []
    emu.remove(sb.id)


def test_sigterm_leaves_no_process_even_with_keep(emu, env):
    p = subprocess.Popen([str(BINARY), "run", "--backend", "e2b", "--keep", "--", "sh", "-c",
                          "sleep 305 & echo started; sleep 306"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdout.readline() == b"started\n"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + 15, err
    sb = kept_sandbox(emu, err.decode())
    assert sleepers(sb, "305") == [] and sleepers(sb, "306") == [], sb.ps()
    assert emu.violations == []
    emu.remove(sb.id)


def test_signal_death_is_128_plus_n(emu, env):
    r = mfs("run", "--backend", "e2b", "--", "sh", "-c", "kill -TERM $$", env=env)
    assert r.returncode == 143, r.stderr


def test_bytes_that_are_not_utf8_arrive_intact(emu, env):
    env = dict(env, ODD=b"caf\xe9\n".decode("latin-1"))
    env = {k: v.encode("latin-1") if k == "ODD" else v for k, v in env.items()}
    r = subprocess.run([str(BINARY).encode(), b"run", b"--backend", b"e2b", b"--env", b"ODD",
                        b"--", b"sh", b"-c", b'printf "%s|%s|%s" "$1" "$ODD" "$2"', b"x",
                        b"\xff\xfe", b"plain"],
                       env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"\xff\xfe|caf\xe9\n|plain"
    assert emu.created_total == 1 and emu.violations == []


def test_argv0_not_utf8_neither_aborts_nor_leaks(emu, env):
    r = subprocess.run([str(BINARY).encode(), b"run", b"--backend", b"e2b", b"--",
                        b"/no/such\xff"], env=env, capture_output=True, timeout=60)
    assert r.returncode == 127, r.stderr  # the shell's "not found", not abort()
    assert emu.created_total == 1


def test_image_not_utf8_is_refused_before_create(emu, env):
    r = subprocess.run([str(BINARY).encode(), b"run", b"--backend", b"e2b", b"--image",
                        b"tmpl\xff", b"--", b"true"], env=env, capture_output=True, timeout=60)
    assert r.returncode == 202, r.stderr
    assert r.stderr.decode(errors="replace").count("\n") == 1 and b"UTF-8" in r.stderr
    assert emu.created_total == 0


def test_connect_timeout_never_exceeds_10_digits(emu, e2b_env):
    sb = emu.add_debug_sandbox()
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    env.update({"E2B_DEBUG": "true", "E2B_SANDBOX_URL": e2b_env["E2B_SANDBOX_URL"]})
    r = subprocess.run([str(TOOL), "run", "-t", str(366 * 24 * 3600), "--", "true"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for q in emu.envd_requests("/process.Process/Start"):
        assert len(q["headers"].get("connect-timeout-ms", "")) <= 10
    emu.remove(sb.id)


@pytest.mark.parametrize("idle", ["1", "2"])
def test_keepalive_interval_is_never_zero(emu, env, idle):
    r = mfs("run", "--backend", "e2b", "--", "true",
            env=dict(env, MFSANDBOX_E2B_STREAM_IDLE_S=idle))
    assert r.returncode == 0, r.stderr
    starts = emu.envd_requests("/process.Process/Start")
    assert starts and all(int(q["headers"]["keepalive-ping-interval"]) >= 1 for q in starts)
    assert emu.violations == []
