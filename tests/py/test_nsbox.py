"""The namespace sandbox both cloud emulators run commands in: what a
command sees (files, env, cwd, status), what it can reach on the network, and
that a kill leaves nothing behind."""
import os
import random
import socket
import subprocess
import threading
import time

import pytest

from emulators.common.nsbox import Box

PATH = {"PATH": "/usr/bin:/bin"}
CONNECT = ("import socket,sys\n"
           "try:\n"
           "    s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\n"
           "    s.sendall(b'ping'); print(s.recv(100).decode())\n"
           "except OSError as e:\n"
           "    print('refused', type(e).__name__); sys.exit(7)\n")


@pytest.fixture
def echo_server():
    """A loopback TCP server answering 'pong:<what it got>'."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)

    def serve():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            with c:
                c.sendall(b"pong:" + c.recv(100))
    threading.Thread(target=serve, daemon=True).start()
    yield ls.getsockname()[1]
    ls.close()


@pytest.fixture
def box_factory(tmp_path):
    boxes = []

    def make(**kw):
        b = Box(parent_dir=str(tmp_path), home="/home/daytona", **kw)
        boxes.append(b)
        return b
    yield make
    for b in boxes:
        b.close()


def test_allowed_port_reachable_others_refused(box_factory, echo_server):
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(1)  # a host service the sandbox must not see (the metadata service)
    try:
        box = box_factory(allow_ports=[echo_server])
        code, out, _ = box.run(["python3", "-c", CONNECT, str(echo_server)], PATH)
        assert (code, out) == (0, b"pong:ping\n")
        code, out, _ = box.run(["python3", "-c", CONNECT, str(other.getsockname()[1])], PATH)
        assert code == 7 and out.startswith(b"refused")
        # and the allowed port still works for a second command
        code, out, _ = box.run(["python3", "-c", CONNECT, str(echo_server)], PATH)
        assert out == b"pong:ping\n"
    finally:
        other.close()


def test_no_port_allowed_means_no_loopback(box_factory, echo_server):
    box = box_factory()
    code, out, _ = box.run(["python3", "-c", CONNECT, str(echo_server)], PATH)
    assert code == 7


def test_env_is_exact_cwd_and_status(box_factory):
    box = box_factory()
    os.environ["NSBOX_LEAK_CHECK"] = "x"
    try:
        code, out, err = box.run(
            ["sh", "-c", "pwd; env | sort; echo oops >&2; exit 42"],
            {"PATH": "/usr/bin:/bin", "A": "1 2"}, cwd="/tmp")
    finally:
        del os.environ["NSBOX_LEAK_CHECK"]
    assert code == 42
    lines = out.decode().splitlines()
    assert lines[0] == "/tmp"
    assert "A=1 2" in lines and "NSBOX_LEAK_CHECK=x" not in lines
    assert err == b"oops\n"


def test_files_persist_and_host_is_read_only(box_factory, tmp_path):
    box = box_factory()
    host = box.host_path("/home/daytona/in.txt")
    with open(host, "w") as f:
        f.write("uploaded")
    code, out, _ = box.run(["sh", "-c", "cat in.txt; echo made > /tmp/out.txt"], PATH)
    assert (code, out) == (0, b"uploaded")
    with open(box.host_path("/tmp/out.txt")) as f:
        assert f.read() == "made\n"
    assert box.host_path("/etc/passwd") is None
    probe = tmp_path / "host-file"
    code, _, err = box.run(["sh", "-c", "echo x > %s" % probe], PATH)
    assert code != 0 and not probe.exists()
    # another box does not see this one's files
    code, _, _ = box_factory().run(["cat", "/tmp/out.txt"], PATH)
    assert code != 0


def test_missing_command_is_127(box_factory):
    code, _, err = box_factory().run(["no-such-command-x"], PATH)
    assert code == 127 and b"no-such-command-x" in err


def test_kill_leaves_no_process(box_factory):
    box = box_factory()
    naps = "sleep 300.%d" % random.randrange(10**6)  # unique on this machine
    p = box.spawn(["sh", "-c", "%s & %s & echo started; wait" % (naps, naps)], PATH)
    assert p.stdout.readline() == b"started\n"
    marker_pids = subprocess.run(["pgrep", "-fx", naps], capture_output=True,
                                 text=True).stdout.split()
    assert len(marker_pids) >= 2
    box.kill(p)
    assert p.wait(timeout=10) < 0
    for pid in marker_pids:
        for _ in range(100):
            if not os.path.exists("/proc/%s" % pid):
                break
            time.sleep(0.05)
        assert not os.path.exists("/proc/%s" % pid)
    assert box.live_pids() == []


def test_close_kills_running_commands(tmp_path):
    box = Box(parent_dir=str(tmp_path))
    p = box.spawn(["sleep", "300"], PATH)
    box.close()
    assert p.poll() is not None
    assert not os.path.exists(box.root)


def test_command_outlives_the_thread_that_started_it(box_factory):
    """A server starts a command in a request thread that ends right after;
    the command must keep running (--die-with-parent follows the thread)."""
    box = box_factory()
    started = []
    t = threading.Thread(target=lambda: started.append(
        box.spawn(["sh", "-c", "sleep 0.3; echo alive"], PATH)))
    t.start()
    t.join()
    out, _ = started[0].communicate(timeout=10)
    assert (started[0].returncode, out) == (0, b"alive\n")
