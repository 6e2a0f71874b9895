"""Local namespace sandboxes for the cloud emulators (Daytona, E2B).

A `Box` is one emulated cloud sandbox: a host directory that holds its
writable places, plus a list of loopback ports it may reach.  Every command
runs in a fresh bubblewrap namespace (pid, ipc, uts, mount, net) where

* the host file system is read-only (`/` bound read-only);
* `home` (e.g. /home/daytona) and `/tmp` are writable and private to the box,
  kept under `Box.root` on the host, so files written by one command (or by
  the emulator's file API through `host_path`) are seen by the next;
* the environment is exactly the dict given (passed through execve's envp,
  never argv: it holds secrets), the cwd is the one given;
* each directory in `private` (e.g. /run/daytona, where an emulated daemon
  keeps its per-command files) is writable and shared by the box's commands
  too, but `host_path` never maps into it: the file API cannot reach it;
* the network is the box's own namespace with only `lo`.  A port in
  `allow_ports` (the test's S3 server, say) is reachable at
  127.0.0.1:PORT inside through a relay: inside, a small python3 helper
  listens on 127.0.0.1:PORT and forwards each connection over a unix socket
  in the box directory; on the host a thread accepts on that socket and
  connects to 127.0.0.1:PORT.  Every other loopback port (the metadata
  service above all) is refused, as it is for a real cloud sandbox.

API:

    box = Box(parent_dir=None, home="/home/daytona", allow_ports=(s3_port,))
    p = box.spawn(["sh", "-c", "echo hi"], env={"PATH": "/usr/bin:/bin"},
                  cwd="/home/daytona", stdin=False)   # -> subprocess.Popen
    # p.stdout / p.stderr are pipes (bytes) read by the caller as they come;
    # p.wait() gives the shell-style status (negative: killed by a signal).
    code, out, err = box.run(argv, env, cwd, timeout=None)
    box.kill(p)          # SIGKILL to the whole tree of that command
    box.host_path("/home/daytona/x")  # host file behind a sandbox path, or
                                     # None outside the writable places
    box.close()          # kills every command, stops the relays, removes root

Killing: each command is its own session and its own pid namespace
(`--unshare-pid --die-with-parent`), so SIGKILL to bwrap ends everything the
command started; `box.live_pids()` lists what is still running.
"""
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"
PYTHON = "/usr/bin/python3"
RELAY_DIR = "/run/nsbox"  # where the unix sockets appear inside the box

# Runs inside the box, before the command: listens on 127.0.0.1:PORT for each
# allowed port, forwards to RELAY_DIR/PORT.sock, then execs the command.  The
# listener lives in a forked child; it dies with the pid namespace.
_INSIDE = r"""
import os, socket, sys, threading
ports = [int(p) for p in sys.argv[1].split(",") if p]
argv = sys.argv[2:]
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve(ls, port):
    while True:
        c, _ = ls.accept()
        u = socket.socket(socket.AF_UNIX)
        try:
            u.connect("%s/%d.sock" % (os.path.dirname(sys.argv[0]), port))
        except OSError:
            c.close(); u.close(); continue
        threading.Thread(target=pump, args=(c, u), daemon=True).start()
        threading.Thread(target=pump, args=(u, c), daemon=True).start()
socks = []
for p in ports:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", p)); s.listen(64); socks.append((s, p))
r, w = os.pipe()
if socks and os.fork() == 0:
    os.close(r)
    os.setsid()
    for fd in (0, 1, 2):
        os.dup2(os.open("/dev/null", os.O_RDWR), fd)
    for s, p in socks:
        threading.Thread(target=serve, args=(s, p), daemon=True).start()
    os.close(w)
    threading.Event().wait()
os.close(w)
os.read(r, 1)  # the listener closed its end: sockets are listening
for s, _ in socks:
    s.close()
try:
    os.execvp(argv[0], argv)
except OSError as e:
    sys.stderr.write("nsbox: %s: %s\n" % (argv[0], e.strerror))
    sys.exit(127 if isinstance(e, FileNotFoundError) else 126)
"""


def _pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class _Relay:
    """Host side of one allowed port: unix socket -> 127.0.0.1:port."""

    def __init__(self, path, port):
        self.port = port
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(64)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                t = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                t.settimeout(None)
            except OSError:
                c.close()
                continue
            threading.Thread(target=_pump, args=(c, t), daemon=True).start()
            threading.Thread(target=_pump, args=(t, c), daemon=True).start()

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class _Spawner:
    """Starts every box process from one long-lived thread: bwrap's
    --die-with-parent is PR_SET_PDEATHSIG, which fires when the *thread* that
    forked it ends, and a server's request thread ends with its connection."""

    def __init__(self):
        self.q = queue.Queue()
        threading.Thread(target=self._loop, daemon=True, name="nsbox-spawner").start()

    def _loop(self):
        while True:
            kw, out, ready = self.q.get()
            try:
                out.append(subprocess.Popen(**kw))
            except Exception as e:  # raised in the caller's thread
                out.append(e)
            ready.set()

    def popen(self, **kw):
        out, ready = [], threading.Event()
        self.q.put((kw, out, ready))
        ready.wait()
        if isinstance(out[0], Exception):
            raise out[0]
        return out[0]


_spawner = None
_spawner_lock = threading.Lock()


def _host_tmp_binds(paths):
    """The box's private /tmp hides the host's; the "image" (our interpreter,
    the venv on PATH) may live under the host's /tmp, as in a CI clone: keep
    those top-level /tmp entries visible read-only."""
    binds, seen = [], set()
    for path in paths:
        if not path.startswith("/tmp/"):
            continue
        top = "/tmp/" + path[5:].split("/", 1)[0]
        if top not in seen and top not in ("/tmp/.", "/tmp/..") and os.path.isdir(top):
            seen.add(top)
            binds += ["--ro-bind", top, top]
    return binds


def _popen(**kw):
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
    return _spawner.popen(**kw)


class Box:
    def __init__(self, parent_dir=None, home="/home/user", allow_ports=(), private=()):
        self.root = tempfile.mkdtemp(prefix="nsbox-", dir=parent_dir)
        self.home = home
        self.writable = (home, "/tmp")
        self.private = tuple(private)
        for d in self.writable + self.private:
            os.makedirs(self.root + d, exist_ok=True)
        self.relay_dir = os.path.join(self.root, "relay")
        os.makedirs(self.relay_dir)
        with open(os.path.join(self.relay_dir, "inside.py"), "w") as f:
            f.write(_INSIDE)
        self.allow_ports = tuple(int(p) for p in allow_ports)
        self.relays = [_Relay(os.path.join(self.relay_dir, "%d.sock" % p), p)
                       for p in self.allow_ports]
        self.procs = []
        self.lock = threading.Lock()

    def host_path(self, path, cwd=None):
        """Host file behind a sandbox path (relative paths and ~ resolve
        against cwd or home); None outside the writable places."""
        if path == "~" or path.startswith("~/"):
            path = self.home + path[1:]
        elif not path.startswith("/"):
            path = os.path.join(cwd or self.home, path)
        path = os.path.normpath(path)
        for d in self.writable:
            if path == d or path.startswith(d + "/"):
                return self.root + path
        return None

    def spawn(self, argv, env, cwd=None, stdin=False):
        cwd = cwd or self.home
        cmd = [BWRAP, "--ro-bind", "/", "/", "--tmpfs", "/home", "--tmpfs", "/run",
               "--bind", self.root + self.home, self.home,
               "--bind", self.root + "/tmp", "/tmp"]
        for d in self.private:
            cmd += ["--bind", self.root + d, d]
        cmd += _host_tmp_binds([PYTHON] + env.get("PATH", "").split(":"))
        cmd += ["--ro-bind", self.relay_dir, RELAY_DIR,
               "--dev", "/dev", "--proc", "/proc",
               "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
               "--hostname", "sandbox", "--die-with-parent", "--chdir", cwd, "--"]
        cmd += [PYTHON, "-I", "-S", RELAY_DIR + "/inside.py",
                ",".join(str(p) for p in self.allow_ports)] + list(argv)
        p = _popen(args=cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   env=dict(env), start_new_session=True, close_fds=True)
        with self.lock:
            self.procs.append(p)
        return p

    def run(self, argv, env, cwd=None, timeout=None):
        """Runs to completion: (status, stdout bytes, stderr bytes); on
        timeout kills the tree and raises subprocess.TimeoutExpired."""
        p = self.spawn(argv, env, cwd)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(p)
            p.communicate()
            raise
        return p.returncode, out, err

    def kill(self, p, sig=signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass

    def live_pids(self):
        with self.lock:
            return [p.pid for p in self.procs if p.poll() is None]

    def close(self):
        with self.lock:
            procs = list(self.procs)
        for p in procs:
            if p.poll() is None:
                self.kill(p)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    f.close()
        for r in self.relays:
            r.close()
        shutil.rmtree(self.root, ignore_errors=True)
