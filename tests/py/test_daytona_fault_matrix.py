"""The fault matrix (issue 16): every Daytona call of one run x every kind
of fault the service or the line can throw, each cell checked for the exit
code a user (and Metaflow's @retry) depends on, no sandbox left on the
emulator, no process of the run left on this machine, and the command's
output never doubled.  docs/testing.md prints the table this asserts.

Faults come from the emulator's own knobs (tests/emulators/daytona):
`statuses` answers a status once per listed entry before the real handler
(429 with Retry-After, 502 with an empty body, 0 cuts the line unanswered),
`lose_response` carries the request out and cuts the line before the answer
(the reset that loses a body), `stalls` hangs the request (here: until --timeout
runs out, or the launcher gets SIGTERM or SIGKILL)."""
import re
import subprocess

import pytest

from fault_matrix import (DELETE_HANGS, assert_no_processes, check_output, delete_hang_cell,
                          expected, kill_stale, marker, run_cell)
from mfs_cli import BINARY, clean_env

# The calls of one run with --env (the command's script is uploaded).
OPS = {
    "create": ("POST /sandbox", "POST", r"/api/sandbox$"),
    "upload": ("POST /toolbox/files/bulk-upload", "POST", r"/toolbox/.*/files/bulk-upload$"),
    "start": ("POST /toolbox/process/session/*/exec", "POST", r"/toolbox/.*/exec$"),
    # The command id (a 36-character UUID) and nothing after it: `*` would
    # also match .../logs, which the client follows first.
    "status": ("GET /toolbox/process/session/*/command/" + "[!/]" * 36, "GET",
               r"/command/[^/]+$"),
    "log stream": ("GET /toolbox/process/session/*/logs", "GET", r"/logs$"),
    "delete": ("DELETE /sandbox/*", "DELETE", r"/api/sandbox/[^/]+$"),
}
FAULTS = ["429", "500", "502 empty", "503", "reset", "answer lost", "past --timeout", "SIGTERM",
          "SIGKILL + kill --stale"]

EXPECT = expected(OPS, FAULTS)


def faulted(emu, op, fault):
    key = OPS[op][0]
    if fault == "500":
        emu.faults.statuses = {key: [500] * 20}
    elif fault in ("429", "502 empty", "503"):
        emu.faults.statuses = {key: [int(fault.split()[0])]}
        emu.faults.retry_after = 1
    elif fault == "reset":
        emu.faults.statuses = {key: [0]}
    elif fault == "answer lost":
        emu.faults.lose_response = {key: 1}
    elif fault in ("SIGTERM", "SIGKILL + kill --stale", "past --timeout"):
        # A delete is carried through, not cut short, whatever the signal
        # or the deadline (that is what keeps the sandbox from leaking): a
        # short stall there.  Elsewhere the stall outlasts the run.
        emu.faults.stalls = {key: [3 if op == "delete" else 60]}


def seen(emu, op):
    method, pattern = OPS[op][1], re.compile(OPS[op][2])
    return any(m == method and pattern.search(p) for m, p in emu.requests)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("op", list(OPS))
def test_fault_matrix_cell(daytona_emulator, daytona_env, op, fault):
    emu = daytona_emulator
    env = {k: v for k, v in clean_env().items() if not k.startswith("DAYTONA_")}
    env.update(daytona_env)
    mark = marker()
    faulted(emu, op, fault)
    rc, out, err = run_cell("daytona", env, fault, lambda: seen(emu, op), mark)
    assert rc == EXPECT[(op, fault)], (rc, err)
    check_output(mark, rc, out, err)
    if (op, fault) == ("delete", "500"):
        # Named for a later kill, which succeeds once the service recovers.
        assert "mfsandbox kill --backend daytona" in err, err
        emu.faults.statuses = {}
        sid = re.search(r"could not remove daytona sandbox ([0-9a-f-]+)", err).group(1)
        k = subprocess.run([str(BINARY), "kill", "--backend", "daytona", sid], env=env,
                           capture_output=True, text=True, timeout=120)
        assert k.returncode == 0, k.stderr
    if fault == "SIGKILL + kill --stale":
        kill_stale("daytona", env)
    assert emu.live_count() == 0, "a sandbox leaked"
    assert_no_processes(mark)


@pytest.mark.parametrize("how", DELETE_HANGS)
def test_a_delete_that_hangs_is_given_up(daytona_emulator, daytona_env, how):
    emu = daytona_emulator
    env = {k: v for k, v in clean_env().items() if not k.startswith("DAYTONA_")}
    env.update(daytona_env)
    emu.faults.stalls = {OPS["delete"][0]: [120]}
    delete_hang_cell("daytona", env, how, lambda: seen(emu, "delete"), emu.live_count)
