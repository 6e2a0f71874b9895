"""The metadata relay is bounded (MFSANDBOX_RELAY_TIMEOUT_S): a datastore or
metadata service that accepts the connection and then never answers, or
answers one byte at a time, used to hold the launcher (and its sandbox) for
as long as the peer liked.  Each case must end within the budget, spool the
attempt and print the warning naming `mfsandbox relay replay`, through
build/tests/relaytool (the library the finish hook and `relay replay` call)."""
import hashlib
import json
import os
import pathlib
import socket
import subprocess
import threading
import time

import pytest

from test_relay_containment import FLOW, RUN, STEP, TASK, archive, legit

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELAY = str(pathlib.Path(os.environ.get("MFS_BUILD_DIR") or ROOT / "build") / "tests" / "relaytool")
BUDGET = 2
# "Did not hang": far above the budget, far below what a hung peer holds.
BOUND = 30


class StuckPeer:
    """Accepts connections; `silent` reads the request and never answers,
    `trickle` answers 200 and then one body byte every 0.2 s."""

    def __init__(self, mode):
        self.mode, self.stop, self.conns = mode, threading.Event(), []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn):
        try:
            conn.settimeout(0.2)
            if self.mode == "trickle":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not self.stop.wait(0.2):
                if self.mode == "trickle":
                    conn.sendall(b"x")
                else:
                    try:
                        conn.recv(65536)
                    except socket.timeout:
                        pass
        except OSError:
            pass

    def close(self):
        self.stop.set()
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def peer(request):
    p = StuckPeer(request.param)
    yield p
    p.close()


def relay(args, env, relaytool=RELAY):
    t0 = time.monotonic()
    r = subprocess.run([relaytool, *args], env=env, capture_output=True, text=True,
                       timeout=BOUND)
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    return r, out, time.monotonic() - t0


def task_args(tmp_path, ds_type, ds_root, metadata, service_url=""):
    return ["run", "--flow", FLOW, "--run", RUN, "--step", STEP, "--task", TASK,
            "--ds-type", ds_type, "--ds-root", ds_root, "--metadata", metadata,
            "--service-url", service_url, "--local-root", str(tmp_path / "launcher"),
            "--spool", str(tmp_path / "spool")]


def assert_spooled_in_time(r, out, took, budget=BUDGET):
    pathspec = "%s/%s/%s/%s/0" % (FLOW, RUN, STEP, TASK)
    assert r.returncode == 0 and out["spooled"] == "1", r.stderr
    assert "mfsandbox relay replay %s" % pathspec in r.stderr
    assert "not relayed within %d s (MFSANDBOX_RELAY_TIMEOUT_S)" % budget in r.stderr, r.stderr
    assert took < BOUND


def s3_env(endpoint):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "METAFLOW_"))}
    env.update(METAFLOW_S3_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="AKIDRELAYBOUND",
               AWS_SECRET_ACCESS_KEY="relaybound-secret", AWS_REGION="us-east-1",
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               MFSANDBOX_RELAY_TIMEOUT_S=str(BUDGET))
    return env


@pytest.mark.parametrize("peer", ["silent", "trickle"], indirect=True)
def test_stuck_s3_endpoint_is_cut_at_the_budget_and_spooled(peer, tmp_path):
    r, out, took = relay(task_args(tmp_path, "s3", "s3://bucket/prefix", "local"),
                         s3_env(peer.url))
    assert_spooled_in_time(r, out, took)
    assert "S3" in r.stderr and "relaybound-secret" not in r.stderr
    assert (tmp_path / "spool" / FLOW / RUN / STEP / TASK / "0" / "spec.json").exists()


def plant_local(ds):
    blob = archive(legit())
    key = hashlib.sha1(blob).hexdigest()
    cas = ds / FLOW / "data" / key[:2]
    cas.mkdir(parents=True)
    (cas / key).write_bytes(blob)
    task = ds / FLOW / RUN / STEP / TASK
    task.mkdir(parents=True)
    (task / "0.local_metadata").write_text(json.dumps(key))


@pytest.mark.parametrize("peer", ["silent"], indirect=True)
def test_metadata_service_that_never_answers_the_post_is_cut_and_spooled(peer, tmp_path):
    plant_local(tmp_path / "ds")
    env = dict(os.environ, MFSANDBOX_RELAY_TIMEOUT_S=str(BUDGET))
    r, out, took = relay(task_args(tmp_path, "local", str(tmp_path / "ds"), "service", peer.url),
                         env)
    assert_spooled_in_time(r, out, took)
    assert "POST %s/flows/%s" % (peer.url, FLOW) in r.stderr
    entry = tmp_path / "spool" / FLOW / RUN / STEP / TASK / "0"
    assert (entry / "payload.json").exists()
    # `relay replay` of the spooled attempt is held to the same budget.
    r, out, took = relay(["replay", "%s/%s" % (FLOW, RUN), "--spool", str(tmp_path / "spool")], env)
    assert r.returncode == 1 and out["failed"] == "1" and took < BOUND, r.stderr
    assert (entry / "payload.json").exists()


def test_bad_relay_budget_is_one_usage_line(tmp_path):
    env = dict(os.environ, MFSANDBOX_RELAY_TIMEOUT_S="0")
    r, out, _ = relay(task_args(tmp_path, "local", str(tmp_path / "ds"), "local"), env)
    assert r.returncode == 2
    assert r.stderr.strip() == ("relaytool: MFSANDBOX_RELAY_TIMEOUT_S '0': expected a whole "
                                "number of seconds from 1 to 3600")
