"""The real ./mfsandbox with --backend e2b against the E2B emulator's fault
injection: whatever goes wrong (a sandbox killed under a stream, a stream
cut under a running command (followed on through Connect), the edge's
502, envd refusing the token, a dead or stalled stream, a slow, refused, cut
or signalled create), the run ends with the documented exit code (203
infrastructure, 204 --timeout, 128+N on a signal) and, checked by the
fixture, no sandbox is left and no create was kept twice."""
import signal
import subprocess
import time

from mfs_cli import BINARY
from test_e2b_cli import emu, env, run  # noqa: F401 (fixtures)

IDLE = "MFSANDBOX_E2B_STREAM_IDLE_S"


def posts(emu):
    return [q for q in emu.requests if q["method"] == "POST" and q["path"] == "/sandboxes"]


def nonce_lookups(emu):
    return [q for q in emu.requests if q["path"] == "/v2/sandboxes" and
            "mfsandbox.e2b.nonce=" in q["query"].get("metadata", "")]


# -- while the command runs ------------------------------------------------------

def test_sandbox_killed_mid_stream_is_203(emu, env):
    emu.faults.kill_after_output = True
    r = run(env, "sh", "-c", "echo first; sleep 30")
    assert r.returncode == 203, r.stderr
    assert r.stdout == "first\n"
    assert "disappeared" in r.stderr


def test_a_broken_stream_is_followed_to_the_commands_end(emu, env):
    """The Start stream is cut after the first line: mfsandbox re-attaches
    (process.Process/Connect) and delivers what comes after, once, and the
    command's own status.  Before: 203, the second line never shown."""
    emu.faults.stream_cut = 0
    r = run(env, "sh", "-c", "echo one; sleep 1; echo two; exit 5")
    assert r.returncode == 5, r.stderr
    assert r.stdout == "one\ntwo\n"
    assert len(emu.envd_requests("/process.Process/Connect")) == 1


def test_a_refused_connect_is_sent_again(emu, env):
    """The re-attaching Connect is answered 429 (Retry-After: 1), then 503:
    it runs nothing, so it is sent again, and the run ends as the command
    does."""
    emu.faults.stream_cut = 503
    emu.faults.statuses = {"POST envd:/process.Process/Connect": [429, 503]}
    emu.faults.retry_after = 1
    r = run(env, "sh", "-c", "echo one; sleep 3; echo two")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "one\ntwo\n"
    assert len(emu.envd_requests("/process.Process/Connect")) == 3


def test_a_reattached_command_still_ends_at_its_timeout(emu, env):
    """The Connect asks envd to end its stream when what is left of
    --timeout runs out: 204, as without the break."""
    emu.faults.stream_cut = 0
    r = run(env, "sh", "-c", "echo one; sleep 30", flags=["--timeout", "3"])
    assert r.returncode == 204, r.stderr
    assert r.stdout == "one\n"
    (connect,) = emu.envd_requests("/process.Process/Connect")
    assert 0 < int(connect["headers"]["connect-timeout-ms"]) <= 3000


def test_envd_502_is_203_and_the_sandbox_is_deleted(emu, env):
    emu.faults.envd_502 = 1
    r = run(env, "true")
    assert r.returncode == 203, r.stderr
    assert "502" in r.stderr and "is gone" in r.stderr


def test_envd_refusing_the_token_is_203_not_a_key_problem(emu, env):
    """The token came from E2B's own create answer: nothing the user can fix
    in E2B_API_KEY, so infrastructure (203, which @retry retries)."""
    emu.faults.envd_401 = 1
    r = run(env, "true")
    assert r.returncode == 203, r.stderr
    assert "refused its access token" in r.stderr and "E2B_API_KEY" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_keepalives_before_a_start_then_success(emu, env):
    emu.faults.stall_s = 1.0
    emu.faults.keepalive_s = 0.1
    r = run(env, "echo", "late")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "late\n"


def test_only_keepalives_and_no_start_is_203_within_the_bound(emu, env):
    emu.faults.stall_s = 300.0
    emu.faults.keepalive_s = 0.2
    r = run(dict(env, **{IDLE: "2"}), "echo", "never", timeout=60)
    assert r.returncode == 203, r.stderr
    assert "only keepalives" in r.stderr and IDLE in r.stderr
    assert r.stdout == ""


def test_a_silent_stream_is_203_within_the_bound(emu, env):
    emu.faults.silent_s = 300.0
    # 3 s: room for the emulator to start the command before its silence
    r = run(dict(env, **{IDLE: "3"}), "sh", "-c", "echo first; sleep 300", timeout=60)
    assert r.returncode == 203, r.stderr
    assert r.stdout == "first\n"
    assert "not even a keepalive" in r.stderr and IDLE in r.stderr


def test_a_quiet_command_outlives_the_idle_bound(emu, env):
    """envd's keepalives (asked for well inside the bound) keep a command
    that prints nothing for longer than the bound alive."""
    r = run(dict(env, **{IDLE: "4"}), "sh", "-c", "sleep 7; echo done", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "done\n"
    start = emu.envd_requests("/process.Process/Start")[0]
    assert start["headers"]["keepalive-ping-interval"] == "1"


def test_a_bad_idle_bound_is_202(emu, env):
    r = run(dict(env, **{IDLE: "soon"}), "true")
    assert r.returncode == 202
    assert IDLE in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert emu.requests == []


# -- while the sandbox is created ------------------------------------------------

def test_create_502_is_looked_up_then_created_once(emu, env):
    emu.faults.create_statuses = [502]
    r = run(env, "echo", "ok")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n"
    assert emu.created_total == 1 and len(posts(emu)) == 2
    assert len(nonce_lookups(emu)) >= 1  # looked for it before creating again
    # the one lookup before the retry, then the sweep for a late twin
    assert [q["method"] for q in emu.requests if not q["envd"]][:3] == ["POST", "GET", "POST"]


def test_create_504_after_making_adopts_the_sandbox(emu, env):
    emu.faults.create_made_statuses = [504]
    r = run(env, "echo", "adopted")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "adopted\n"
    assert emu.created_total == 1 and len(posts(emu)) == 1  # never a second create
    assert nonce_lookups(emu)
    assert any(q["method"] == "GET" and q["path"].startswith("/sandboxes/i")
               for q in emu.requests)  # its envd token fetched back


def test_create_answer_lost_adopts_the_sandbox(emu, env):
    emu.faults.create_drop = 1
    r = run(env, "echo", "adopted")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "adopted\n"
    assert emu.created_total == 1 and len(posts(emu)) == 1


def test_create_slower_than_the_timeout_is_204_and_deleted(emu, env):
    """Made, but the answer comes after --timeout: found by its nonce."""
    emu.faults.create_answer_delay = 30.0
    r = run(env, "true", flags=["--timeout", "2"], timeout=60)
    assert r.returncode == 204, r.stderr
    assert "--timeout" in r.stderr
    assert emu.created_total == 1 and nonce_lookups(emu)


def test_create_cut_before_the_sandbox_exists_makes_none(emu, env):
    """The launcher gives up (--timeout) while E2B is still placing the
    sandbox; the hang-up cancels it, as it cancels a Go handler's context."""
    emu.faults.create_delay = 4.0
    began = time.time()
    r = run(env, "true", flags=["--timeout", "1"], timeout=60)
    assert r.returncode == 204, r.stderr
    time.sleep(max(0.0, began + 5.0 - time.time()))  # past the emulator's delay
    assert emu.created_total == 0


def wait_for(cond, what):
    for _ in range(600):
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("never saw " + what)


def test_sigterm_while_creating_leaves_no_sandbox(emu, env):
    emu.faults.create_answer_delay = 60.0
    p = subprocess.Popen([str(BINARY), "run", "--backend", "e2b", "--", "true"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    wait_for(lambda: emu.live_count() == 1, "the sandbox being made")
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert emu.created_total == 1 and nonce_lookups(emu)
    # the fixture asserts it was deleted


def test_sigterm_before_the_sandbox_exists_makes_none(emu, env):
    emu.faults.create_delay = 3.0
    began = time.time()
    p = subprocess.Popen([str(BINARY), "run", "--backend", "e2b", "--", "true"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    wait_for(lambda: posts(emu), "the create request")
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 128 + signal.SIGTERM, err
    time.sleep(max(0.0, began + 4.0 - time.time()))  # past the emulator's delay
    assert emu.created_total == 0
