"""Runs the emulator by hand: python -m emulators.e2b [--port N] (from tests/)."""
import argparse
import os
import signal
import threading

from .server import Emulator


def main():
    ap = argparse.ArgumentParser(description="E2B control plane + envd emulator")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--envd-version", default="0.6.13")
    ap.add_argument("--no-fidelity", action="store_true",
                    help="the gentler double: one namespace per command, tree kills")
    a = ap.parse_args()
    emu = Emulator(api_key=os.environ.get("E2B_API_KEY", "e2b_" + "0" * 40),
                   envd_version=a.envd_version, fidelity=not a.no_fidelity).start(a.port)
    print("E2B_API_URL=%s E2B_SANDBOX_URL=%s" % (emu.url, emu.url), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    emu.stop()


if __name__ == "__main__":
    main()
