"""The Daytona client against the emulator's fidelity mode, which behaves
like the real daemon (v0.190) where it differs from the documented
protocol: the exit-code race, the 5 s kill grace, NUL bytes dropped, the
session files in the work dir.  Each test is a behaviour a user depends on
that one of those quirks broke or could break."""
import os
import re
import signal
import stat
import subprocess

import pytest

from mfs_cli import BINARY, mfs
# The CLI tests' fixtures (a leak check after each test) and run().
from test_daytona_cli import emu, env, run  # noqa: F401

TOOL = os.path.join(os.environ.get("MFS_BUILD_DIR", "build"), "tests", "daytonatool")


def kill_kept(env, stderr):
    m = re.search(r"kept daytona sandbox (\S+)", stderr)
    assert m, stderr
    k = mfs("kill", "--backend", "daytona", m.group(1), env=env)
    assert k.returncode == 0, k.stderr


@pytest.mark.parametrize("follow", ["1", "0"])
def test_exit_code_race_is_retried(emu, env, follow):
    """The daemon appends the exit code to its file, so a status read can
    find it empty and answer 500 (fidelity mode, the emulator's default,
    does too); that one 500 is retried, not fatal."""
    emu.faults.exit_code_window = 0.3
    r = run(dict(env, MFSANDBOX_DAYTONA_FOLLOW=follow), "sh", "-c", "echo hi; exit 7")
    assert (r.returncode, r.stdout) == (7, "hi\n"), r.stderr
    if follow == "0":
        assert emu.exit_code_races >= 1


def test_other_500_on_a_status_read_is_not_retried(emu, env):
    emu.faults.statuses = {"GET /toolbox/process/session/*/command/*": [500] * 10}
    r = run(dict(env, MFSANDBOX_DAYTONA_FOLLOW="0"), "sh", "-c", "sleep 0.5")
    assert r.returncode == 203, r.stderr
    assert len(emu.faults.statuses["GET /toolbox/process/session/*/command/*"]) == 9


def test_a_thousand_commands_get_their_exit_codes(emu, env):
    """One sandbox, 1,000 short commands through the status-poll path while
    the exit-code file races: every status comes back right."""
    emu.faults.exit_code_window = 0.02
    emu.faults.async_leftover = False   # 1,000 idle `sleep 3600`s are just memory
    r = subprocess.run([TOOL, "loop", "1000"], env=dict(env, MFSANDBOX_DAYTONA_FOLLOW="0"),
                       capture_output=True, text=True, timeout=900)
    assert (r.returncode, r.stdout) == (0, "ok 1000\n"), r.stderr
    assert emu.exit_code_races > 0


def test_20mb_of_output_costs_at_most_twice_its_size_in_log_bytes(emu, env, tmp_path):
    """The log is followed over the WebSocket, so it is fetched once, not
    once per poll."""
    line = "0123456789" * 7
    n = 20_000_000 // (len(line) + 1)
    out = tmp_path / "out"
    with open(out, "wb") as f:
        r = subprocess.run([str(BINARY), "run", "--backend", "daytona", "--", "sh", "-c",
                            'yes "$0" | head -n %d' % n, line], stdout=f,
                           stderr=subprocess.PIPE, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    size = out.stat().st_size
    assert size == n * (len(line) + 1)
    assert emu.log_bytes_served <= 2 * size, (emu.log_bytes_served, size)


def test_nul_bytes_are_dropped_and_lines_kept_apart(emu, env):
    """A provider limit, documented: NULs go, stdout and stderr stay apart."""
    r = run(env, "sh", "-c", r"printf 'a\000b\n'; echo err >&2; printf last")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ab\nlast\n"
    assert r.stderr.endswith("err\n")


def test_work_dir_comes_from_the_toolbox(emu, env):
    r = run(env, "sh", "-c", "pwd; ls -a")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "/home/daytona"
    assert ".daytona" in r.stdout.split()  # the daemon's session files live here
    assert any(m == "GET" and p.endswith("/work-dir") for m, p in emu.requests)


STUBBORN = ('trap "" TERM; (trap "" TERM; sleep 300) & echo $! > /tmp/child; '
            'echo started; sleep 300; wait')


def no_step_process_left(emu):
    """The kept sandbox runs nothing of the step: its session is gone, and
    with it every process the step started (the emulated sandbox's
    processes all live in the session's pid namespace)."""
    (sb,) = emu.live()
    return not sb.sessions and not sb.box.live_pids()


def test_timeout_leaves_no_process_children_included(emu, env):
    """A step that ignores SIGTERM, with a child that does too: --timeout
    kills both (the daemon's 5 s grace, then SIGKILL) before 204."""
    r = run(env, "sh", "-c", STUBBORN, flags=["--keep", "--timeout", "3"])
    assert r.returncode == 204, r.stderr
    assert r.stdout == "started\n"
    assert no_step_process_left(emu)
    kill_kept(env, r.stderr)


def test_sigterm_leaves_no_process_children_included(emu, env):
    p = subprocess.Popen([str(BINARY), "run", "--backend", "daytona", "--keep", "--", "sh",
                          "-c", STUBBORN], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    assert p.stdout.readline() == b"started\n"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert no_step_process_left(emu)
    kill_kept(env, err.decode())


def test_env_script_of_a_failed_start_is_not_world_readable(emu, env):
    """--keep after a start that failed leaves the command's env script (it
    holds the secrets) in a directory only the sandbox's user can enter."""
    emu.faults.statuses = {"POST /toolbox/process/session/*/exec": [400]}
    r = run(env, "true", flags=["--keep", "--env", "API_TOKEN=s3cret"])
    assert r.returncode == 203, r.stderr
    (sb,) = emu.live()
    tmp = sb.box.root + "/tmp"
    scripts = [os.path.join(d, f) for d, _, fs in os.walk(tmp) for f in fs
               if open(os.path.join(d, f), "rb").read().find(b"s3cret") >= 0]
    assert scripts, "the script is left, as --keep asks"
    for path in scripts:
        parent = os.stat(os.path.dirname(path)).st_mode
        mode = os.stat(path).st_mode
        assert not (mode & stat.S_IROTH and parent & stat.S_IXOTH), oct(mode)
        assert stat.S_IMODE(parent) == 0o700
    kill_kept(env, r.stderr)
