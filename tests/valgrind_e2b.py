"""`make valgrind`, E2B part (run by tests/valgrind-runs.sh with the bare
python3: the emulator is stdlib only): real E2B runs of mfsandbox under
valgrind against tests/emulators/e2b, the faults set in-process.  Each run
must give its documented status (valgrind's own error status, 99, equals
none), and no sandbox may be left on the emulator.

usage: python3 valgrind_e2b.py "VALGRIND CMD" MFSANDBOX CODE_DIR"""
import os
import shlex
import subprocess
import sys

from emulators.e2b import Emulator

KEY = "e2b_" + "0" * 40


def cells(code):
    """(want, name of a Faults knob -> value, args) for one run each: the
    ordinary paths, then one fault per kind of error path the client has."""
    run = ["run", "--backend", "e2b"]
    return [
        (3, {}, run + ["--", "sh", "-c", "echo out; echo err >&2; exit 3"]),
        (0, {}, run + ["--env", "A=1", "--code", code, "--upload", code + "/main.py:x/m.py",
                       "--", "python3", "main.py"]),
        (204, {}, run + ["--timeout", "1", "--", "sleep", "20"]),
        (0, {}, ["ls", "--backend", "e2b"]),
        (202, {}, ["kill", "--backend", "e2b", "no-such-id"]),
        # create refused for good; retried after a 429 and an empty 502
        (203, {"statuses": {"POST /sandboxes": [500] * 20}}, run + ["--", "true"]),
        (0, {"statuses": {"POST /sandboxes": [429]}, "retry_after": 1}, run + ["--", "true"]),
        # envd's proxy answers 502 for a sandbox that is gone
        (203, {"envd_502": 1}, run + ["--", "true"]),
        # the create's answer lost: found again by its nonce label
        (0, {"create_drop": 1}, run + ["--", "true"]),
        # an upload cut halfway, retried; a Start whose answer was cut fails
        (0, {"cut_mid_body": {"POST envd:/files": 1}},
         run + ["--upload", code + "/main.py:m.py", "--", "true"]),
        (203, {"cut_mid_body": {"POST envd:/process.Process/Start": 1}}, run + ["--", "true"]),
        # the sandbox killed under a running command; a stream gone quiet
        (203, {"kill_after_output": True}, run + ["--", "sh", "-c", "echo x; sleep 5"]),
        (204, {"silent_s": 30.0}, run + ["--timeout", "2", "--", "sh", "-c", "echo x; sleep 5"]),
        # a stream broken after the first output: re-attached (Connect) twice;
        # the command ended before the Connect (not_found); a Connect refused
        (0, {"stream_cut": 0, "connect_cuts": [503]},
         run + ["--", "sh", "-c", "echo x; sleep 1"]),
        (203, {"stream_cut": 0, "stalls": {"POST envd:/process.Process/Connect": [2]}},
         run + ["--", "sh", "-c", "echo x; sleep 0.5"]),
        (203, {"stream_cut": 503, "statuses": {"POST envd:/process.Process/Connect": [500]}},
         run + ["--", "sh", "-c", "echo x; sleep 1"]),
        # a delete that hangs past MFSANDBOX_DELETE_TIMEOUT_S: given up
        (0, {"stalls": {"DELETE /sandboxes/*": [4]}}, run + ["--", "true"]),
    ]


def check(emu, cmd, env, want, knobs, args):
    """One run under valgrind with these faults; False if its status is wrong."""
    emu.faults.__init__()
    shown = repr(knobs) if knobs else ""
    for name, value in knobs.items():
        setattr(emu.faults, name, value)
    r = subprocess.run(cmd + args, env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != want:
        print("valgrind run FAILED (want %d, got %d, faults %s): mfsandbox %s\n%s"
              % (want, r.returncode, shown, shlex.join(args), r.stderr), file=sys.stderr)
        return False
    print("ok (%d): mfsandbox %s %s" % (r.returncode, shlex.join(args), shown))
    return True


def main():
    cmd = shlex.split(sys.argv[1]) + ["--error-exitcode=99", sys.argv[2]]
    emu = Emulator(api_key=KEY).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    env.update(E2B_API_KEY=KEY, E2B_API_URL=emu.url, E2B_SANDBOX_URL=emu.url,
               E2B_DOMAIN=emu.domain, MFSANDBOX_DELETE_TIMEOUT_S="1")
    try:
        ok = all([check(emu, cmd, env, *cell) for cell in cells(sys.argv[3])])
        # the hung delete's sandbox is left, for `kill --stale` to remove
        left = emu.live_count()
        ok = check(emu, cmd, env, 0, {}, ["kill", "--stale", "--backend", "e2b"]) and ok
        if left != 1 or emu.live_count():
            print("e2b sandboxes: %d after the hung delete (want 1), %d after kill --stale"
                  % (left, emu.live_count()), file=sys.stderr)
            ok = False
    finally:
        emu.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
