"""Runs the emulator by hand: python -m emulators.daytona [--port N] (from tests/)."""
import argparse
import os
import signal
import threading

from .server import Emulator


def main():
    ap = argparse.ArgumentParser(description="Daytona API + toolbox emulator")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--allow-port", type=int, action="append", default=[],
                    help="loopback port the sandboxes may reach (e.g. S3)")
    a = ap.parse_args()
    emu = Emulator(api_key=os.environ.get("DAYTONA_API_KEY", "dtn_" + "0" * 40),
                   allow_ports=a.allow_port).start(a.port)
    print("DAYTONA_API_URL=%s" % emu.url, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    emu.stop()


if __name__ == "__main__":
    main()
