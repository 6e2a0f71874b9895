"""The E2B fault matrix (issue 16): every E2B call of one run x every kind
of fault the service or the line can throw, each cell checked for the exit
code a user (and Metaflow's @retry) depends on, no sandbox left on the
emulator, no process of the run left on this machine, and the command's
output never doubled.  docs/testing.md prints the table this asserts, next
to Daytona's (test_daytona_fault_matrix.py, same checks: fault_matrix.py).

Faults come from the emulator's matrix knobs (tests/emulators/e2b):
`statuses` answers a status instead of the request (429 with Retry-After,
502 with the edge's empty body), `cut_mid_body` carries the request out and
resets the line halfway through the answer, `stalls` hangs the request
(until --timeout runs out, or the launcher gets SIGTERM or SIGKILL).  The
log stream is the Start call's own streamed answer: its faults come after
the command's first output (`stream_cut`: a reset, or the end-of-stream
error a proxy's status maps to; `silent_s`: nothing more); the client then
re-attaches with process.Process/Connect, whose own faults are the last
tests here."""
import re

import pytest

from fault_matrix import (DELETE_HANGS, assert_no_processes, check_output, delete_hang_cell,
                          expected, kill_stale, marker, run_cell)
from mfs_cli import clean_env

# The calls of one run with --upload, by the emulator's pattern.  E2B has
# no status poll: the Start stream carries the command's output and end.
OPS = {
    "create": "POST /sandboxes",
    "upload": "POST envd:/files",
    "start": "POST envd:/process.Process/Start",
    "log stream": None,
    "delete": "DELETE /sandboxes/*",
}
FAULTS = ["429", "500", "502 empty", "503", "reset mid-body", "past --timeout", "SIGTERM",
          "SIGKILL + kill --stale"]

EXPECT = expected(OPS, FAULTS)
# A Start whose answer was cut may or may not have started the command:
# starting it again could run it twice, so the run fails (203, retried by
# @retry) rather than guess.
EXPECT[("start", "reset mid-body")] = 203
# A broken stream (429, 500, 502, 503, reset) is followed on through envd's
# process.Process/Connect: the command's own status, its output once.
for f in ("429", "500", "502 empty", "503", "reset mid-body"):
    EXPECT[("log stream", f)] = 0


@pytest.fixture
def env(e2b_env):
    base = {k: v for k, v in clean_env().items() if not k.startswith("E2B_")}
    base.update(e2b_env)
    return base


def faulted(emu, op, fault):
    f, key = emu.faults, OPS[op]
    stall = fault in ("past --timeout", "SIGTERM", "SIGKILL + kill --stale")
    if op == "log stream":
        if stall:
            f.silent_s = 60.0
        else:
            f.stream_cut = 0 if fault == "reset mid-body" else int(fault.split()[0])
    elif fault == "500":
        f.statuses = {key: [500] * 20}
    elif fault in ("429", "502 empty", "503"):
        f.statuses = {key: [int(fault.split()[0])]}
        f.retry_after = 1
    elif fault == "reset mid-body":
        f.cut_mid_body = {key: 1}
    elif stall:
        # A delete is carried through whatever the signal or the deadline
        # (a short stall there); elsewhere the stall outlasts the run.
        f.stalls = {key: [3 if op == "delete" else 60]}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("op", list(OPS))
def test_fault_matrix_cell(e2b_emulator, env, op, fault, tmp_path):
    emu = e2b_emulator
    data = tmp_path / "in.txt"
    data.write_text("input\n")
    mark = marker()
    faulted(emu, op, fault)
    rc, out, err = run_cell("e2b", env, fault, lambda: bool(emu.faults.fired), mark,
                            flags=["--upload", f"{data}:in.txt"])
    assert emu.faults.fired, "the fault never fired"
    assert rc == EXPECT[(op, fault)], (rc, err)
    check_output(mark, rc, out, err)
    if (op, fault) == ("delete", "500"):
        assert "mfsandbox kill --backend e2b" in err, err
        emu.faults.statuses = {}
        assert re.search(r"could not remove e2b sandbox i[0-9a-f]+", err), err
        kill_stale("e2b", env)
    if fault == "SIGKILL + kill --stale":
        kill_stale("e2b", env)
    assert emu.live_count() == 0, "a sandbox leaked"
    assert emu.violations == []
    assert_no_processes(mark)


@pytest.mark.parametrize("how", DELETE_HANGS)
def test_a_delete_that_hangs_is_given_up(e2b_emulator, env, how):
    emu = e2b_emulator
    emu.faults.stalls = {OPS["delete"]: [120]}
    delete_hang_cell("e2b", env, how, lambda: bool(emu.faults.fired), emu.live_count)


def test_a_second_sigterm_cuts_a_hanging_cancel(e2b_emulator, env):
    """The first SIGTERM stops the command through envd (a second Start
    that kills its group, then SendSignal), which hangs here; the second
    gives up on that and on the delete at once, naming the sandbox."""
    emu = e2b_emulator
    emu.faults.silent_s = 60.0
    emu.faults.stalls = {"POST envd:/process.Process/Start": [0, 120, 120],
                         "POST envd:/process.Process/SendSignal": [120, 120, 120]}
    mark = marker()
    rc, out, err = run_cell("e2b", env, "SIGTERM", lambda: "stream" in emu.faults.fired, mark,
                            signal_twice=True)
    assert rc == 143, err
    check_output(mark, rc, out, err)
    assert re.search(r"gave up removing e2b sandbox i[0-9a-f]+ on a second signal; .* "
                     r"mfsandbox kill --backend e2b --stale", err), err
    kill_stale("e2b", env)
    assert emu.live_count() == 0, "a sandbox leaked"
    assert_no_processes(mark)


def connect_cell(emu, env):
    """A run whose Start stream breaks (reset) after the first output."""
    emu.faults.stream_cut = 0
    mark = marker()
    rc, out, err = run_cell("e2b", env, "", lambda: True, mark)
    check_output(mark, rc, out, err)
    assert emu.live_count() == 0, "a sandbox leaked"
    assert emu.violations == []
    assert_no_processes(mark)
    return rc, err, len(emu.envd_requests("/process.Process/Connect"))


def test_a_connect_stream_that_breaks_is_followed_again(e2b_emulator, env):
    """The first Connect breaks too, right after its start event: a second
    Connect follows the command to its end."""
    e2b_emulator.faults.connect_cuts = [503]
    rc, err, connects = connect_cell(e2b_emulator, env)
    assert rc == 0, err
    assert connects == 2
    assert "connect stream" in e2b_emulator.faults.fired


def test_a_command_that_ended_while_the_stream_was_broken_is_203(e2b_emulator, env):
    """The Connect comes after the command ended: envd no longer knows the
    pid (not_found), so its status is lost: 203, said in one line."""
    e2b_emulator.faults.stalls = {"POST envd:/process.Process/Connect": [3]}
    rc, err, connects = connect_cell(e2b_emulator, env)
    assert rc == 203, err
    assert connects == 1
    lines = [ln for ln in err.splitlines() if ln.startswith("mfsandbox")]
    assert len(lines) == 1, err
    assert re.search(r"output stream broke and process \d+ ended before mfsandbox "
                     r"re-attached to it: its exit status is lost", lines[0]), err


def test_a_connect_that_keeps_failing_is_203(e2b_emulator, env):
    """Every Connect is answered 500: the run fails (203), naming both."""
    e2b_emulator.faults.statuses = {"POST envd:/process.Process/Connect": [500] * 20}
    rc, err, connects = connect_cell(e2b_emulator, env)
    assert rc == 203, err
    assert connects >= 1
    assert re.search(r"output stream broke and re-attaching failed: .*Connect.*500", err), err
