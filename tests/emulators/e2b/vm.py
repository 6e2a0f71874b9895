"""One emulated E2B sandbox's process space, as envd sees it.

A real sandbox is one microVM: every command envd starts lives in the same
pid namespace, a command that outlives its parent keeps running, and a pid
envd reports can be signalled (or its process group killed) from a later
command.  Here a sandbox is one long-lived bubblewrap namespace (an nsbox
Box) whose first process is a small agent; the emulator asks the agent, over
a unix SOCK_SEQPACKET socket, to start a command (the agent answers with the
pid and passes the output pipes back as file descriptors), to signal one pid,
or to list the processes still alive.  Killing the Box ends the namespace and
everything in it, which is what deleting a sandbox does.

The agent starts a command as envd does: `/bin/sh -c '... exec "$@"' -- cmd
args`, in the agent's process group (never a group leader, so `setsid`
inside does not fork), with SIGPIPE at its default.
"""
import json
import os
import queue
import socket
import threading

from emulators.common.nsbox import PYTHON, RELAY_DIR

_AGENT = r'''
import json, os, signal, socket, subprocess, sys, threading
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
try:
    os.chmod("/dev/shm", 0o1777)  # as in any Linux: semaphores for every user
except OSError:
    pass
wlock = threading.Lock()
def send(msg, fds=()):
    with wlock:
        socket.send_fds(s, [json.dumps(msg).encode()], list(fds))
def reap(p):
    send({"exit": p.pid, "code": p.wait()})
def spawn(m):
    wrapper = ["/bin/sh", "-c", 'cd -- "$1" || exit 1; shift; exec "$@"', "--", m["cwd"]]
    try:
        p = subprocess.Popen(wrapper + m["argv"], env=m["env"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE,
                             stdin=subprocess.PIPE if m["stdin"] else subprocess.DEVNULL,
                             user=m.get("uid"), group=m.get("gid"), extra_groups=[] if m.get("uid") is not None else None)
    except OSError as e:
        return send({"id": m["id"], "error": str(e)})
    fds = [p.stdout.fileno(), p.stderr.fileno()] + ([p.stdin.fileno()] if p.stdin else [])
    send({"id": m["id"], "pid": p.pid, "stdin": bool(p.stdin)}, fds)
    for f in (p.stdout, p.stderr, p.stdin):
        if f:
            f.close()
    threading.Thread(target=reap, args=(p,), daemon=True).start()
def ps(m):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in (1, os.getpid()):
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue
        out.append([int(d), int(fields[2]), [c.decode(errors="replace") for c in cmd if c]])
    send({"id": m["id"], "procs": out})
def kill(m):
    try:
        os.kill(m["pid"], m["sig"])
        send({"id": m["id"], "ok": True})
    except ProcessLookupError:
        send({"id": m["id"], "ok": False})
while True:
    data, _, _, _ = socket.recv_fds(s, 1 << 20, 0)
    if not data:
        os._exit(0)
    m = json.loads(data)
    {"spawn": spawn, "ps": ps, "signal": kill}[m["op"]](m)
'''


class Child:
    """A command the agent started: the parts of subprocess.Popen the
    emulator uses (pid, pipes, poll, wait)."""

    def __init__(self, pid, fds):
        self.pid = pid
        self.stdout = os.fdopen(fds[0], "rb", 0)
        self.stderr = os.fdopen(fds[1], "rb", 0)
        self.stdin = os.fdopen(fds[2], "wb", 0) if len(fds) > 2 else None
        self.returncode = None
        self._done = threading.Event()

    def exited(self, code):
        self.returncode = code
        self._done.set()

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        self._done.wait(timeout)
        return self.returncode


class VM:
    def __init__(self, box, path_env, uid=None):
        self.box = box
        self.uid = uid
        with open(os.path.join(box.relay_dir, "vm_agent.py"), "w") as f:
            f.write(_AGENT)
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ls.bind(os.path.join(box.relay_dir, "vm.sock"))
        ls.listen(1)
        ls.settimeout(30)
        self.proc = box.spawn([PYTHON, "-I", "-S", RELAY_DIR + "/vm_agent.py",
                               RELAY_DIR + "/vm.sock"], {"PATH": path_env}, box.home)
        try:
            self.conn, _ = ls.accept()
        finally:
            ls.close()
        self.lock = threading.Lock()
        self.next_id = 0
        self.waiting = {}
        self.children = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.conn, 1 << 20, 4)
            except OSError:
                data = b""
            if not data:
                break
            m = json.loads(data)
            if "exit" in m:
                child = self.children.pop(m["exit"], None)
                if child:
                    child.exited(m["code"])
                continue
            if "pid" in m and "procs" not in m:
                # registered here, before the agent's exit message can arrive
                m["child"] = self.children[m["pid"]] = Child(m["pid"], fds)
            self.waiting.pop(m["id"]).put(m)
        for child in list(self.children.values()):  # the namespace is gone
            child.exited(-9)

    def _call(self, msg):
        with self.lock:
            self.next_id += 1
            msg["id"] = self.next_id
            q = self.waiting[msg["id"]] = queue.Queue(1)
            socket.send_fds(self.conn, [json.dumps(msg).encode()], [])
        return q.get(timeout=30)

    def spawn(self, argv, env, cwd, stdin):
        m = self._call({"op": "spawn", "argv": list(argv), "env": dict(env), "cwd": cwd,
                        "stdin": bool(stdin), "uid": self.uid, "gid": self.uid})
        if "error" in m:
            raise OSError(m["error"])
        return m["child"]

    def signal(self, pid, signo):
        """Signals that one pid, as envd's SendSignal does; False if gone."""
        return self._call({"op": "signal", "pid": pid, "sig": int(signo)})["ok"]

    def ps(self):
        """[(pid, pgid, argv)] of every live process but the agent."""
        return [tuple(p) for p in self._call({"op": "ps"})["procs"]]

    def close(self):
        try:
            self.conn.close()
        except OSError:
            pass
