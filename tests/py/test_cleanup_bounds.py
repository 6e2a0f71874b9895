"""Every wait of a shutdown is bounded, on both remote backends: stopping
the command after a signal or --timeout, removing what a failed create
made, and the create's own polls and lookups.  Each clean-up gives up
after MFSANDBOX_DELETE_TIMEOUT_S (2 s here) or at once on a second signal,
naming in one line what may be left for `mfsandbox kill --stale`; the run
keeps the exit code it had.  Faults come from the emulators' `stalls`: the
named request hangs for minutes.  A launcher that outlives a stage by 45 s
hung on a wait its bounds should have cut (docs/testing.md, "Clean-up
bounds")."""
import re
import signal

import pytest

from fault_matrix import (assert_no_processes, check_output, kill_stale, marker,
                          not_removed_line, run_staged)
from mfs_cli import clean_env

TERM = signal.SIGTERM
LONG = "sleep 30"  # a command still running when --timeout passes


def seen_daytona(emu, method, pattern):
    rx = re.compile(pattern)
    return lambda: any(m == method and rx.search(p) for m, p in emu.requests)


def stale_removed(emu, backend, env):
    """With the service well again, `kill --stale` removes what the run
    named (its launcher is gone), and nothing is left."""
    emu.faults.stalls = {}
    kill_stale(backend, env)
    assert emu.live_count() == 0, "a sandbox leaked"


def fired(emu, pattern):
    return lambda: pattern in emu.faults.fired


@pytest.fixture
def dt_env(daytona_env):
    env = {k: v for k, v in clean_env().items() if not k.startswith("DAYTONA_")}
    env.update(daytona_env, MFSANDBOX_DELETE_TIMEOUT_S="2")
    return env


@pytest.fixture
def e2b_env_bounded(e2b_env):
    env = {k: v for k, v in clean_env().items() if not k.startswith("E2B_")}
    env.update(e2b_env, MFSANDBOX_DELETE_TIMEOUT_S="2")
    return env


# ---- Daytona: stopping the command (deleting its session) hangs ----------

SESSION_DELETE = "DELETE /toolbox/process/session/*"
STOP_HANGS = ["second SIGTERM", "SIGTERM, past the bound", "past --timeout, past the bound"]


@pytest.mark.parametrize("how", STOP_HANGS)
def test_daytona_a_hanging_stop_is_given_up(daytona_emulator, dt_env, how):
    emu = daytona_emulator
    emu.faults.stalls = {SESSION_DELETE: [120] * 3}
    mark = marker()
    running = seen_daytona(emu, "GET", r"/logs$")
    stopping = seen_daytona(emu, "DELETE", r"/process/session/[^/]+$")
    if how == "second SIGTERM":
        rc, out, err = run_staged("daytona", dt_env, mark, [(running, TERM), (stopping, TERM)])
        assert rc == 143, err
        # The delete is given up too: one line names the sandbox.
        not_removed_line(err, "daytona", r"\S+", "on a second signal")
        assert emu.live_count() == 1
        emu.faults.stalls = {}
        kill_stale("daytona", dt_env)
    elif how == "SIGTERM, past the bound":
        rc, out, err = run_staged("daytona", dt_env, mark, [(running, TERM)])
        assert rc == 143, err
        assert "gave up" not in err  # the sandbox's delete ended the command
    else:
        rc, out, err = run_staged("daytona", dt_env, mark, [], flags=["--timeout", "4"],
                                  cmd=f"echo {mark} once; echo to-err >&2; {LONG}; : {mark}")
        assert rc == 204, err
        assert "gave up" not in err
    assert stopping(), "the stop call was never made"
    check_output(mark, rc, out, err)
    assert emu.live_count() == 0, "a sandbox leaked"
    assert_no_processes(mark)


# ---- Daytona: removing what a failed create made hangs -------------------

SANDBOX_DELETE = "DELETE /sandbox/*"


def test_daytona_cleanup_of_a_failed_create_is_bounded(daytona_emulator, dt_env):
    """The server accepted the create, then the sandbox failed to start
    (400); its delete hangs: given up after the bound, named, 203."""
    emu = daytona_emulator
    emu.faults.create_error = "no capacity"
    emu.faults.stalls = {SANDBOX_DELETE: [120] * 5}
    rc, out, err = run_staged("daytona", dt_env, marker(), [])
    assert rc == 203, err
    not_removed_line(err, "daytona", r"[0-9a-f-]{36}",
                     r"after 2 s \(MFSANDBOX_DELETE_TIMEOUT_S\)")
    assert emu.live_count() == 1
    stale_removed(emu, "daytona", dt_env)


@pytest.mark.parametrize("what", ["delete", "nonce lookup"])
def test_daytona_cleanup_after_a_create_cut_at_timeout_is_bounded(daytona_emulator, dt_env,
                                                                  what):
    """--timeout cuts the create call the server is still waiting on; the
    sandbox it made is found by its nonce and deleted: either call hangs."""
    emu = daytona_emulator
    emu.faults.create_delay = 6.0
    emu.faults.stalls = ({SANDBOX_DELETE: [120] * 5} if what == "delete"
                         else {"GET /sandbox": [120] * 5})
    rc, out, err = run_staged("daytona", dt_env, marker(), [], flags=["--timeout", "3"])
    assert rc == 204, err
    name = r"[0-9a-f-]{36}" if what == "delete" else r"labelled mfsandbox\.nonce=[0-9a-f]{32}"
    not_removed_line(err, "daytona", name, r"after 2 s \(MFSANDBOX_DELETE_TIMEOUT_S\)")
    stale_removed(emu, "daytona", dt_env)


def test_daytona_second_signal_cuts_the_cleanup_of_a_create(daytona_emulator, dt_env):
    emu = daytona_emulator
    emu.faults.create_delay = 6.0
    emu.faults.stalls = {SANDBOX_DELETE: [120] * 5}
    creating = seen_daytona(emu, "POST", r"/api/sandbox$")
    deleting = seen_daytona(emu, "DELETE", r"/api/sandbox/[^/]+$")
    env = dict(dt_env, MFSANDBOX_DELETE_TIMEOUT_S="600")
    rc, out, err = run_staged("daytona", env, marker(), [(creating, TERM), (deleting, TERM)])
    assert rc == 143, err
    not_removed_line(err, "daytona", r"[0-9a-f-]{36}", "on a second signal")
    stale_removed(emu, "daytona", dt_env)


def test_daytona_a_hanging_state_poll_ends_at_timeout(daytona_emulator, dt_env):
    """The create answered "creating"; every poll of its state hangs.  Each
    poll used to be cut to the time left but retried 4 times (5 x
    --timeout), and the delete of a sandbox still creating waited out 409s
    for 2 minutes."""
    emu = daytona_emulator
    emu.faults.server_wait = 0.0
    emu.faults.create_delay = 14.0
    emu.faults.stalls = {"GET /sandbox/*": [120] * 5}
    rc, out, err = run_staged("daytona", dt_env, marker(), [], flags=["--timeout", "8"])
    assert rc == 204, err
    assert "--timeout reached while Daytona sandbox" in err, err
    not_removed_line(err, "daytona", r"[0-9a-f-]{36}", r"after 2 s \(MFSANDBOX_DELETE_TIMEOUT_S\)")
    stale_removed(emu, "daytona", dt_env)


def test_daytona_a_hanging_lookup_after_a_lost_answer_ends_at_timeout(daytona_emulator,
                                                                      dt_env):
    """The create's answer was lost; the lookup by nonce that finds what
    it made hangs.  It used to wait its 60 s (and retries) past --timeout."""
    emu = daytona_emulator
    emu.faults.lose_response = {"POST /sandbox": 1}
    emu.faults.stalls = {"GET /sandbox": [120]}
    mark = marker()
    rc, out, err = run_staged("daytona", dt_env, mark, [], flags=["--timeout", "4"])
    assert rc == 204, err
    assert "--timeout reached" in err, err
    assert "gave up" not in err  # the clean-up's lookup answers: deleted
    check_output(mark, rc, out, err)
    assert emu.live_count() == 0, "a sandbox leaked"


# ---- E2B: stopping the command (the kill Start, SendSignal) hangs --------

E2B_START = "POST envd:/process.Process/Start"
E2B_SIGNAL = "POST envd:/process.Process/SendSignal"


@pytest.mark.parametrize("how", ["SIGTERM, past the bound", "past --timeout, past the bound"])
def test_e2b_a_hanging_stop_is_given_up(e2b_emulator, e2b_env_bounded, how):
    """The command's own Start goes through; the second Start that kills
    its process group and SendSignal hang.  Given up after the bound (the
    2 s grace between TERM and KILL included), the sandbox's delete ends
    the command.  A second signal: test_e2b_fault_matrix.py."""
    emu = e2b_emulator
    emu.faults.stalls = {E2B_START: [0, 120, 120], E2B_SIGNAL: [120] * 3}
    mark = marker()
    if how == "SIGTERM, past the bound":
        emu.faults.silent_s = 60.0  # after the first output: nothing
        rc, out, err = run_staged("e2b", e2b_env_bounded, mark,
                                  [(lambda: "stream" in emu.faults.fired, TERM)])
        assert rc == 143, err
    else:
        rc, out, err = run_staged("e2b", e2b_env_bounded, mark, [], flags=["--timeout", "4"],
                                  cmd=f"echo {mark} once; echo to-err >&2; {LONG}; : {mark}")
        assert rc == 204, err
    assert emu.faults.fired.count(E2B_START) >= 2, "the kill Start was never sent"
    assert "gave up" not in err
    check_output(mark, rc, out, err)
    assert emu.live_count() == 0, "a sandbox leaked"
    assert_no_processes(mark)


# ---- E2B: the nonce sweep after a create whose answer was lost -----------

E2B_DELETE, E2B_LIST = "DELETE /sandboxes/*", "GET /v2/sandboxes"


@pytest.mark.parametrize("what", ["delete", "nonce lookup"])
def test_e2b_sweep_after_a_create_cut_at_timeout_is_bounded(e2b_emulator, e2b_env_bounded,
                                                            what):
    """The sandbox is made but its answer never comes before --timeout:
    the sweep finds it by nonce and deletes it; either call hangs."""
    emu = e2b_emulator
    emu.faults.create_answer_delay = 30.0
    emu.faults.stalls = {E2B_DELETE if what == "delete" else E2B_LIST: [120] * 5}
    rc, out, err = run_staged("e2b", e2b_env_bounded, marker(), [], flags=["--timeout", "3"])
    assert rc == 204, err
    name = r"i[0-9a-f]+" if what == "delete" else r"labelled mfsandbox\.e2b\.nonce=[0-9a-f]{32}"
    not_removed_line(err, "e2b", name, r"after 2 s \(MFSANDBOX_DELETE_TIMEOUT_S\)")
    assert emu.live_count() == 1
    stale_removed(emu, "e2b", e2b_env_bounded)


def test_e2b_second_signal_cuts_the_sweep(e2b_emulator, e2b_env_bounded):
    emu = e2b_emulator
    emu.faults.create_answer_delay = 30.0
    emu.faults.stalls = {E2B_DELETE: [120] * 5}
    env = dict(e2b_env_bounded, MFSANDBOX_DELETE_TIMEOUT_S="600")
    rc, out, err = run_staged("e2b", env, marker(),
                              [(lambda: emu.live_count() == 1, TERM),  # made, not answered
                               (fired(emu, E2B_DELETE), TERM)])
    assert rc == 143, err
    not_removed_line(err, "e2b", r"i[0-9a-f]+", "on a second signal")
    stale_removed(emu, "e2b", env)


def test_e2b_a_hanging_lookup_after_a_lost_answer_ends_at_timeout(e2b_emulator,
                                                                  e2b_env_bounded):
    """The create made a sandbox but the edge answered 502; the lookup by
    nonce that decides between adopting it and creating again hangs.  It
    used to wait its full 60 s (and retries) past --timeout."""
    emu = e2b_emulator
    emu.faults.create_made_statuses = [502]
    emu.faults.stalls = {E2B_LIST: [120]}
    mark = marker()
    rc, out, err = run_staged("e2b", e2b_env_bounded, mark, [], flags=["--timeout", "4"])
    assert rc == 204, err
    assert "was not created within --timeout 4s" in err, err
    assert "gave up" not in err  # the sweep's lookup answers: deleted
    check_output(mark, rc, out, err)
    assert emu.live_count() == 0, "a sandbox leaked"
