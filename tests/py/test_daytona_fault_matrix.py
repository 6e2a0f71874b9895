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
import os
import re
import signal
import subprocess
import time
import uuid

import pytest

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

# Expected exit code per (op, fault); a transient fault is retried and the
# run succeeds, a server error that persists is 203, SIGTERM is 128+15.
EXPECT = {(op, f): 0 for op in OPS for f in FAULTS}
for op in OPS:
    EXPECT[(op, "500")] = 203
    EXPECT[(op, "past --timeout")] = 204
    EXPECT[(op, "SIGTERM")] = 143
    # The launcher dies (-9); `kill --stale` then removes what it left.
    EXPECT[(op, "SIGKILL + kill --stale")] = -signal.SIGKILL
# A delete that keeps failing cannot fail a run that already ended: the
# step's status stands and the sandbox is named for `mfsandbox kill`.
EXPECT[("delete", "500")] = 0
# SIGTERM while deleting: the command has ended, its status stands, and the
# delete is still carried through.
EXPECT[("delete", "SIGTERM")] = 0
# --timeout bounds the run, not the delete after it: a slow delete is waited for.
EXPECT[("delete", "past --timeout")] = 0
TIMEOUT_S = 4


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


def left_processes(marker):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("op", list(OPS))
def test_fault_matrix_cell(daytona_emulator, daytona_env, op, fault):
    emu = daytona_emulator
    env = {k: v for k, v in clean_env().items() if not k.startswith("DAYTONA_")}
    env.update(daytona_env)
    marker = "mfs-matrix-" + uuid.uuid4().hex[:12]
    # Output first, then a pause long enough for status polls and log reads.
    script = f"echo {marker} once; echo to-err >&2; sleep 1.5; : {marker}"
    faulted(emu, op, fault)
    flags = ["--timeout", str(TIMEOUT_S)] if fault == "past --timeout" else []
    p = subprocess.Popen([str(BINARY), "run", "--backend", "daytona", "--env", "STEP_ENV=1",
                          *flags, "--", "sh", "-c", script],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if fault.startswith("SIG"):
        for _ in range(2400):
            if seen(emu, op) or p.poll() is not None:
                break
            time.sleep(0.025)
        assert seen(emu, op), f"the run never reached {op}"
        p.send_signal(signal.SIGTERM if fault == "SIGTERM" else signal.SIGKILL)
    out, err = p.communicate(timeout=180)
    out, err = out.decode(), err.decode()
    assert p.returncode == EXPECT[(op, fault)], (p.returncode, err)
    # Bytes that reached the launcher are never doubled.
    assert out in ("", f"{marker} once\n"), out
    assert err.count("to-err") <= 1, err
    if p.returncode == 0:
        assert out == f"{marker} once\n"
    if (op, fault) == ("delete", "500"):
        # Named for a later kill, which succeeds once the service recovers.
        assert "mfsandbox kill --backend daytona" in err, err
        emu.faults.statuses = {}
        sid = re.search(r"could not remove daytona sandbox ([0-9a-f-]+)", err).group(1)
        k = subprocess.run([str(BINARY), "kill", "--backend", "daytona", sid], env=env,
                           capture_output=True, text=True, timeout=120)
        assert k.returncode == 0, k.stderr
    if fault == "SIGKILL + kill --stale":
        # Nothing cleaned up after a SIGKILL; the launcher is gone, so its
        # sandbox is stale (this test process is not its launcher).
        k = subprocess.run([str(BINARY), "kill", "--backend", "daytona", "--stale"], env=env,
                           capture_output=True, text=True, timeout=120)
        assert k.returncode == 0, k.stderr
    assert emu.live_count() == 0, "a sandbox leaked"
    for _ in range(200):  # the sandbox's processes go with its delete
        if not left_processes(marker):
            break
        time.sleep(0.05)
    assert left_processes(marker) == []
