"""Runs the emulator by hand or for a benchmark:
python -m emulators.daytona [--port N] [--allow-port P] [--image-path DIR] [--workdir DIR]
                            [--no-fidelity]
(from tests/).  Prints DAYTONA_API_URL=... once it listens; SIGTERM stops it."""
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
    ap.add_argument("--image-path", action="append", default=[],
                    help="directory the snapshot has on PATH first (e.g. a venv's bin)")
    ap.add_argument("--workdir", default=None, help="where the sandboxes' files live")
    ap.add_argument("--no-fidelity", action="store_true",
                    help="hide the real daemon's quirks (see server.py)")
    a = ap.parse_args()
    emu = Emulator(api_key=os.environ.get("DAYTONA_API_KEY", "dtn_" + "0" * 40),
                   allow_ports=a.allow_port, image_path=a.image_path,
                   workdir=a.workdir, fidelity=not a.no_fidelity).start(a.port)
    print("DAYTONA_API_URL=%s" % emu.url, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    emu.stop()


if __name__ == "__main__":
    main()
