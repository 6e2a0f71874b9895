"""What the fault matrices share (test_daytona_fault_matrix.py,
test_e2b_fault_matrix.py): one real `mfsandbox run` with a fault armed on
the emulator, and the checks every cell makes whatever the backend: the
command's output never doubled, no process of the run left on this
machine, and `kill --stale` after a SIGKILL."""
import os
import re
import signal
import subprocess
import time
import uuid

from mfs_cli import BINARY

# Seconds of --timeout in the "past --timeout" column: a faulted call hangs
# far longer than this.
TIMEOUT_S = 4


def expected(ops, faults):
    """The exit code per (call, fault) both backends share: a transient
    fault is retried and the run succeeds, a server error that persists is
    203, the deadline 204, SIGTERM 128+15, SIGKILL leaves the launcher dead
    (-9; `kill --stale` then removes what it left).  Once the command has
    ended (delete), its status stands: a delete that keeps failing, a
    SIGTERM or the deadline during it do not change it, and the delete is
    carried through (within MFSANDBOX_DELETE_TIMEOUT_S)."""
    codes = {"500": 203, "past --timeout": 204, "SIGTERM": 143, "SIGKILL + kill --stale": -9}
    want = {(op, f): codes.get(f, 0) for op in ops for f in faults}
    for f in ("500", "SIGTERM", "past --timeout"):
        want[("delete", f)] = 0
    return want


def marker():
    """A unique word in the command line, to find the run's processes."""
    return "mfs-matrix-" + uuid.uuid4().hex[:12]


def script(mark):
    """Output first, then a pause long enough for status polls and log reads."""
    return f"echo {mark} once; echo to-err >&2; sleep 1.5; : {mark}"


def run_cell(backend, env, fault, reached, mark, flags=(), signal_twice=False):
    """Runs one cell; for the signal columns the signal goes to the launcher
    once reached() says the faulted call is hanging (twice, 0.5 s apart,
    with signal_twice).  Returns (returncode, stdout, stderr)."""
    if fault == "past --timeout":
        flags = ["--timeout", str(TIMEOUT_S), *flags]
    p = subprocess.Popen([str(BINARY), "run", "--backend", backend, "--env", "STEP_ENV=1",
                          *flags, "--", "sh", "-c", script(mark)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if fault.startswith("SIG"):
        for _ in range(2400):
            if reached() or p.poll() is not None:
                break
            time.sleep(0.025)
        assert reached(), "the run never reached the faulted call"
        sig = signal.SIGTERM if fault == "SIGTERM" else signal.SIGKILL
        p.send_signal(sig)
        if signal_twice:
            time.sleep(0.5)
            p.send_signal(sig)
    return ended(p, 120)


def ended(p, wait):
    """(returncode, stdout, stderr) of the launcher; still running after
    `wait` seconds, it hung."""
    try:
        out, err = p.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("the launcher hung: " + err.decode()[-2000:])
    return p.returncode, out.decode(), err.decode()


def check_output(mark, rc, out, err):
    """Bytes that reached the launcher are never doubled."""
    assert out in ("", f"{mark} once\n"), out
    assert err.count("to-err") <= 1, err
    if rc == 0:
        assert out == f"{mark} once\n"


def kill_stale(backend, env):
    """After a SIGKILL nothing cleaned up; the launcher is gone, so its
    sandbox is stale (this test process is not its launcher)."""
    k = subprocess.run([str(BINARY), "kill", "--backend", backend, "--stale"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert k.returncode == 0, k.stderr


def left_processes(mark):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if mark.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def assert_no_processes(mark):
    for _ in range(200):  # the sandbox's processes go with its delete
        if not left_processes(mark):
            break
        time.sleep(0.05)
    assert left_processes(mark) == []


# A delete that hangs (issue 16): given up at the bound, or at once on a
# second signal; the run's status stands, one line names the sandbox and
# `kill --stale`, which then removes it.
DELETE_HANGS = ["past MFSANDBOX_DELETE_TIMEOUT_S", "second SIGTERM"]


def delete_hang_cell(backend, env, how, reached, live_count):
    mark = marker()
    env = dict(env)
    if how == "second SIGTERM":
        rc, out, err = run_cell(backend, env, "SIGTERM", reached, mark, signal_twice=True)
        why = "on a second signal"
    else:
        env["MFSANDBOX_DELETE_TIMEOUT_S"] = "2"
        rc, out, err = run_cell(backend, env, "", reached, mark)
        why = r"after 2 s \(MFSANDBOX_DELETE_TIMEOUT_S\)"
    assert rc == 0, err  # the command ran to its end: its status stands
    check_output(mark, rc, out, err)
    lines = [ln for ln in err.splitlines() if ln.startswith("mfsandbox")]
    assert len(lines) == 1, err
    assert re.search(rf"gave up removing {backend} sandbox \S+ {why}; it may still exist: "
                     rf"remove it with: mfsandbox kill --backend {backend} --stale$",
                     lines[0]), err
    assert live_count() == 1
    kill_stale(backend, env)
    assert live_count() == 0, "a sandbox leaked"
    assert_no_processes(mark)


def run_staged(backend, env, mark, stages, flags=(), wait=45, cmd=None):
    """Runs script(mark), or cmd; stages is [(reached, signal)], each
    signal sent once its reached() holds (the next stage waits for its own
    moment).  A launcher still running `wait` seconds after the last stage
    hung on a wait its bounds should have cut.  Returns (returncode, out,
    err)."""
    p = subprocess.Popen([str(BINARY), "run", "--backend", backend, "--env", "STEP_ENV=1",
                          *flags, "--", "sh", "-c", cmd or script(mark)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    for reached, sig in stages:
        for _ in range(2400):
            if reached() or p.poll() is not None:
                break
            time.sleep(0.025)
        assert reached(), "the run never reached the stage"
        p.send_signal(sig)
    return ended(p, wait)


def not_removed_line(err, backend, what, why):
    """The one line naming a sandbox that may be left, and kill --stale."""
    lines = [ln for ln in err.splitlines() if "gave up removing" in ln]
    assert len(lines) == 1, err
    assert re.search(rf"^mfsandbox: warning: gave up removing {backend} sandbox {what} {why}; "
                     rf"it may still exist: remove it with: mfsandbox kill --backend {backend} "
                     rf"--stale$", lines[0]), err
