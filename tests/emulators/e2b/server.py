"""E2B emulator: the control plane (api.<domain>) and envd (port 49983 of
every sandbox) behind one loopback port, answering with the paths, headers,
status codes, JSON fields and Connect framing of the real service, and
running the commands for real in nsbox sandboxes (tests/emulators/common):
as in the cloud, a sandbox reaches only the loopback ports the test allows
(S3, say) and never the launcher's other services (the metadata service).

Routing follows E2B's edge proxy: a request whose Host's first label is
`<port>-<sandboxID>` or that carries `E2b-Sandbox-Id` goes to that sandbox's
envd; anything else is the control plane.  So both the official SDK (with
E2B_SANDBOX_URL / E2B_API_URL pointed here) and mfsandbox reach it.

Tests drive faults through `Emulator.faults` and read `requests`,
`violations` (requests a real envd would crash on or reject) and
`live_count()` (sandboxes not yet killed) to prove nothing leaked.  The
fault matrix's knobs (`statuses`, `stalls`, `cut_mid_body`, `stream_cut`,
`connect_cuts`)
name requests by "METHOD path" patterns: control-plane paths as they are
(`POST /sandboxes`, `DELETE /sandboxes/*`), envd's with `envd:` before
them (`POST envd:/files`, `POST envd:/process.Process/Start`); `*` matches
anything.  They only ever answer what the edge or envd can answer: an
injected status comes before the request is carried out, a cut answer
after it, and a stalled request the client hangs up on is not carried
out (its Go handler's context is cancelled).

Fidelity mode (`Emulator(fidelity=True)`, the default) reproduces what the
genuine envd 0.6.13 does where it surprises a client:
* all commands of a sandbox share one process space (vm.py); envd signals,
  and at a Connect-Timeout-Ms deadline SIGKILLs, only the command's own pid:
  its children live on.  The end event comes when that pid exits;
* a command killed by a signal ends with exitCode -1, `signal: terminated`;
* `process.Process/Connect` follows a running pid from then on: output
  sent while no stream was attached is lost, not replayed; once the
  process ended its pid is unknown (`not_found`);
* unknown StartRequest fields are ignored (connect-go discards them);
* a Connect-Timeout-Ms that is not 1 to 10 digits is an HTTP 200 stream
  whose end-of-stream frame carries invalid_argument;
* commands see `E2B_SANDBOX=true` and, where the emulator can switch users
  (it runs as root), run as the template user's uid 1000, not as root;
  uploads and the directories made for them belong to that user;
* `Keepalive-Ping-Interval: 0` panics envd: the stream is cut and every
  later envd request gets the edge's 502 "port is not open".
Without it, each command is its own namespace, killed as a whole tree,
and the requests above are refused strictly (the older, gentler double).
"""
import base64
import datetime
import email.parser
import email.policy
import fnmatch
import json
import os
import queue
import re
import secrets
import select
import signal
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from emulators.common.nsbox import Box

from . import connect
from .vm import VM

ENVD_PORT = 49983
HOME = "/home/user"  # the default user's home in E2B templates
USER_UID = 1000  # `user` in E2B's templates
CHUNK = 32 << 10  # envd reads stdout/stderr 32 KiB at a time
DEFAULT_KEEPALIVE_S = 90.0
STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
START_FIELDS = {"process", "pty", "tag", "stdin"}
PROCESS_FIELDS = {"cmd", "args", "envs", "cwd"}
SIGNALS = {"SIGNAL_SIGKILL": signal.SIGKILL, "SIGNAL_SIGTERM": signal.SIGTERM,
           9: signal.SIGKILL, 15: signal.SIGTERM}
# How Go's ProcessState.String() names a signal ("signal: killed").
GO_SIGNAL_NAMES = {1: "hangup", 2: "interrupt", 3: "quit", 6: "aborted", 9: "killed",
                   11: "segmentation fault", 13: "broken pipe", 15: "terminated"}
# Connect's mapping of an HTTP status to an error code (connectrpc.com/docs/protocol).
CONNECT_CODES = {400: "internal", 401: "unauthenticated", 403: "permission_denied",
                 404: "unimplemented", 429: "unavailable", 502: "unavailable",
                 503: "unavailable", 504: "unavailable"}
HOST_RE = re.compile(r"^(\d+)-([A-Za-z0-9_]+)")


def _iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat().replace(
        "+00:00", "Z")


def _version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


class Faults:
    """Knobs a test sets before (or while) driving the emulator."""

    def __init__(self):
        # seconds a create takes before the sandbox exists; a client that
        # hangs up meanwhile cancels it (the Go handler's request context)
        self.create_delay = 0.0
        self.create_answer_delay = 0.0  # seconds between making the sandbox and answering
        self.create_made_statuses = []  # make the sandbox, then answer this (once each)
        self.create_statuses = []      # statuses answered (once each) instead of creating
        self.kill_after_output = False  # kill the sandbox once a Start stream sent data
        self.stall_s = 0.0             # Start streams only keepalives this long first
        self.keepalive_s = None        # overrides the client's keepalive interval
        self.envd_502 = 0              # next N envd requests get the proxy's 502
        self.envd_401 = 0              # next N envd requests: the token is refused
        self.silent_s = 0.0            # after a Start's first output: nothing, no keepalive
        self.list_page = 0             # GET /v2/sandboxes pages this small (0: as asked)
        self.api_statuses = {}         # method -> [statuses] answered once each
        self.create_drop = 0           # next N creates make the sandbox, then cut the line
        # The fault matrix's knobs (patterns: see the module comment).
        # pattern -> [status, ...] answered once each instead of the request:
        # 429 with Retry-After: retry_after, 502 with the edge's empty body,
        # 0 cuts the line unanswered.
        self.statuses = {}
        self.retry_after = 1
        # pattern -> [seconds, ...]: the request hangs that long first, one
        # entry per request; a client that hangs up meanwhile cancels it.
        self.stalls = {}
        # pattern -> N: the next N requests are carried out, then their
        # answer is cut halfway (half the body, or of the headers if none).
        self.cut_mid_body = {}
        # The next Start stream, once it sent the command's first stdout:
        # 0 cuts the line mid-body, a status ends the stream with the
        # Connect error code a proxy's answer of that status maps to.
        self.stream_cut = None
        # One entry per Connect stream, right after its start event: 0
        # cuts the line, a status ends it as stream_cut does.
        self.connect_cuts = []
        self.fired = []                # the patterns (or "stream") that fired, in order


class Process:
    """One command: its output and end go to the streams attached now (the
    Start's, a Connect's), as envd's multiplexed channels do: output while
    none is attached is lost, never replayed to a later Connect."""

    def __init__(self, popen, deadline, vm=None):
        self.popen = popen
        self.pid = popen.pid
        self.deadline = deadline
        self.killed_by_deadline = False
        self.vm = vm  # fidelity: the sandbox's process space
        self.exited_at = None
        self.lock = threading.Lock()
        self.streams = []
        self.ended = False  # the end went out: envd forgets the pid

    def attach(self):
        """A queue of the events from now on, or None once it ended."""
        with self.lock:
            if self.ended:
                return None
            q = queue.Queue()
            self.streams.append(q)
            return q

    def detach(self, q):
        with self.lock:
            if q in self.streams:
                self.streams.remove(q)

    def _emit(self, event):
        with self.lock:
            for q in self.streams:
                q.put(event)
            if event[0] == "end":
                self.ended = True

    def _read(self, f, name):
        fd = f.fileno()
        while True:
            if self.vm is not None:
                # envd stops reading once the pid exited: what is in the
                # pipe by then comes through, later output of children not
                if not select.select([fd], [], [], 0.1)[0]:
                    if self.exited_at is not None:
                        break
                    continue
                if self.exited_at is not None and time.time() - self.exited_at > 0.5:
                    break
            data = os.read(fd, CHUNK)
            if not data:
                break
            self._emit(("data", name, data))
        f.close()

    def pump(self):
        """Forwards stdout/stderr chunks to the attached streams as they
        come; envd's own deadline kills the pid whoever is attached."""
        threads = [threading.Thread(target=self._read, args=(self.popen.stdout, "stdout"),
                                    daemon=True),
                   threading.Thread(target=self._read, args=(self.popen.stderr, "stderr"),
                                    daemon=True)]
        for t in threads:
            t.start()

        def waiter():
            if self.vm is not None:
                self.popen.wait()
                self.exited_at = time.time()
            for t in threads:
                t.join()
            rc = self.popen.wait()
            self._emit(("end", rc, None))
        threading.Thread(target=waiter, daemon=True).start()
        if self.deadline is not None:
            # A backstop for a process no stream follows (its Start was cut):
            # an attached Start stream kills it at the deadline itself, a
            # second later would race that stream's deadline_exceeded.
            t = threading.Timer(max(0.0, self.deadline + 1.0 - time.time()), self._expire)
            t.daemon = True
            t.start()

    def _expire(self):
        if self.popen.poll() is None:
            self.killed_by_deadline = True
            self.signal(signal.SIGKILL)

    def signal(self, signo):
        if self.vm is not None:
            self.vm.signal(self.pid, signo)  # that pid only, as envd
            return
        try:
            os.killpg(self.popen.pid, signo)
        except ProcessLookupError:
            pass


class Sandbox:
    def __init__(self, emu, template, timeout, metadata, env_vars, secure):
        self.id = "i" + secrets.token_hex(10)
        self.template = template
        self.metadata = dict(metadata or {})
        self.env_vars = dict(env_vars or {})
        self.token = secrets.token_hex(16) if secure else None
        self.envd_version = emu.envd_version
        self.started = time.time()
        self.end_at = self.started + timeout
        self.fs = Box(parent_dir=emu.workdir, home=HOME, allow_ports=emu.allow_ports)
        self.vm = None
        self.uid = emu.uid
        if self.uid is not None:
            os.chown(self.fs.root + HOME, self.uid, self.uid)
            os.chmod(self.fs.root + "/tmp", 0o1777)
        if emu.fidelity:
            try:
                self.vm = VM(self.fs, ":".join(emu.image_path + [STD_PATH]), self.uid)
            except BaseException:
                self.fs.close()
                raise
        self.envd_dead = False  # envd panicked (Keepalive-Ping-Interval: 0)
        self.processes = {}
        self.alive = True
        self.lock = threading.Lock()

    def spawn(self, argv, env, cwd, stdin):
        if self.vm is not None:
            return self.vm.spawn(argv, env, cwd, stdin)
        return self.fs.spawn(argv, env, cwd, stdin=stdin)

    def ps(self):
        """[(pid, pgid, argv)] alive in the sandbox (fidelity mode)."""
        return self.vm.ps()

    def view(self, detail=False):
        d = {"templateID": self.template, "sandboxID": self.id, "clientID": "6532622b",
             "startedAt": _iso(self.started), "endAt": _iso(self.end_at),
             "cpuCount": 2, "memoryMB": 512, "diskSizeMB": 22912,
             "envdVersion": self.envd_version, "state": "running",
             "metadata": self.metadata, "alias": self.template}
        if detail and self.token:
            d["envdAccessToken"] = self.token
        return d

    def kill(self):
        with self.lock:
            self.alive = False
            procs = list(self.processes.values())
        for p in procs:
            if self.vm is None:
                p.signal(signal.SIGKILL)
        self.fs.close()  # ends the namespace: everything in it dies
        if self.vm is not None:
            self.vm.close()


class Emulator:
    def __init__(self, api_key="e2b_" + "0" * 40, envd_version="0.6.13", domain="e2b.local",
                 workdir=None, image_path=(), allow_ports=(), fidelity=True):
        self.api_key = api_key
        self.fidelity = fidelity
        self.uid = USER_UID if fidelity and os.geteuid() == 0 else None
        self.envd_version = envd_version
        self.domain = domain
        self.workdir = workdir
        # Directories the "template image" has on PATH before the system ones
        # (e.g. a venv with metaflow, as a custom E2B template would carry).
        self.image_path = list(image_path)
        self.allow_ports = tuple(allow_ports)  # loopback ports sandboxes may reach
        self.faults = Faults()
        self.sandboxes = {}
        self.killed = set()
        self.created_total = 0
        self.create_metadata = []  # each create's metadata, in order
        self.requests = []
        self.violations = []
        self.lock = threading.Lock()
        self.server = None
        self._stop = threading.Event()

    # -- lifecycle ---------------------------------------------------------
    def start(self, port=0):
        emu = self

        class Handler(_Handler):
            emulator = emu

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._reaper, daemon=True).start()
        return self

    def stop(self):
        self._stop.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        for sb in list(self.sandboxes.values()):
            sb.kill()
        self.sandboxes.clear()

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def live_count(self):
        with self.lock:
            return len(self.sandboxes)

    def live(self):
        with self.lock:
            return list(self.sandboxes.values())

    def envd_requests(self, path=None):
        return [r for r in self.requests if r["envd"] and (path is None or r["path"] == path)]

    def _reaper(self):
        # The sandbox lifetime is enforced like the cloud does: at endAt it dies.
        while not self._stop.wait(0.2):
            now = time.time()
            for sb in self.live():
                if sb.end_at <= now:
                    self.remove(sb.id)

    def create(self, template, timeout, metadata, env_vars, secure):
        sb = Sandbox(self, template, timeout, metadata, env_vars, secure)
        with self.lock:
            self.sandboxes[sb.id] = sb
            self.created_total += 1
            self.create_metadata.append(dict(sb.metadata))
        return sb

    def add_debug_sandbox(self):
        """What the SDK's debug mode talks to: a local envd with the fixed id
        `debug_sandbox_id`, no token, and no control-plane record to delete."""
        sb = Sandbox(self, "base", 3600, {}, {}, secure=False)
        sb.id = "debug_sandbox_id"
        sb.envd_version = "99.99.99"
        with self.lock:
            self.sandboxes[sb.id] = sb
        return sb

    def remove(self, sid):
        with self.lock:
            sb = self.sandboxes.pop(sid, None)
            if sb:
                self.killed.add(sid)
        if sb:
            sb.kill()
        return sb is not None

    def violate(self, what):
        self.violations.append(what)


def _take(lst):
    return lst.pop(0) if lst else None


class _HalfWriter:
    """faults.cut_mid_body: passes the answer's headers and half its body
    (half the headers when it has no body; only the headers of a stream),
    then resets the line, as a proxy that dies mid-answer does."""

    def __init__(self, handler, raw):
        self.handler, self.raw, self.left = handler, raw, None

    def write(self, data):
        if self.left is None:  # the header block comes in one write
            m = re.search(rb"(?im)^content-length:\s*(\d+)", data)
            n = int(m.group(1)) if m else 0
            if n == 0 and b"chunked" not in data.lower():
                self.raw.write(data[:len(data) // 2])
                return self._cut()
            self.raw.write(data)
            self.left = n // 2
            return len(data)
        if self.left:
            self.raw.write(data[:self.left])
        return self._cut()

    def _cut(self):
        self.handler._reset()
        raise BrokenPipeError("cut mid-body (fault)")

    def flush(self):
        pass

    def close(self):
        pass

    @property
    def closed(self):
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    emulator = None  # set by Emulator.start

    def log_message(self, fmt, *args):
        pass

    # -- plumbing ----------------------------------------------------------
    def _body(self):
        if self._cached_body is None:
            self._cached_body = self._read_body()
        return self._cached_body

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body=b"", ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        if body or status not in (204, 304):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _api_error(self, status, message, headers=None):
        self._send(status, {"code": status, "message": message}, headers=headers)

    def _dispatch(self):
        emu = self.emulator
        url = urllib.parse.urlsplit(self.path)
        self.query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        host = self.headers.get("Host", "")
        m = HOST_RE.match(host)
        sid = self.headers.get("E2b-Sandbox-Id")
        port = self.headers.get("E2b-Sandbox-Port")
        if m:
            port, sid = m.group(1), m.group(2)
        envd = sid is not None
        emu.requests.append({"method": self.command, "path": url.path, "query": self.query,
                             "headers": {k.lower(): v for k, v in self.headers.items()}, "envd": envd,
                             "sandbox": sid})
        self._cached_body = None
        try:
            if self._matrix_fault(("envd:" if envd else "") + url.path):
                return
            if envd:
                self._envd(url.path, sid, port)
            else:
                self._api(url.path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = _dispatch

    # -- the fault matrix's knobs ------------------------------------------
    def _pick(self, knob, key):
        """The first pattern of faults.<knob> matching this request that
        still has an entry, or None."""
        for pat, left in list(getattr(self.emulator.faults, knob).items()):
            m, _, p = pat.partition(" ")
            if left and m in ("*", self.command) and fnmatch.fnmatchcase(key, p):
                return pat
        return None

    def _matrix_fault(self, key):
        """Applies statuses, stalls and cut_mid_body to this request; True
        when the request was answered (or dropped) here."""
        f = self.emulator.faults
        pat = self._pick("stalls", key)
        if pat:
            f.fired.append(pat)
            self._body()  # read, so that only a hang-up makes the socket readable
            until = time.time() + f.stalls[pat].pop(0)
            while time.time() < until:
                if self._client_gone():
                    self.close_connection = True
                    return True  # the handler's context is cancelled: nothing done
                time.sleep(0.05)
        pat = self._pick("statuses", key)
        if pat:
            f.fired.append(pat)
            self._body()
            st = f.statuses[pat].pop(0)
            if st == 0:
                self._reset()
            elif st == 502:  # the edge's: no body at all
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._api_error(st, "injected %d" % st,
                                {"Retry-After": str(f.retry_after)} if st in (429, 503) else None)
            return True
        pat = self._pick("cut_mid_body", key)
        if pat:
            f.fired.append(pat)
            f.cut_mid_body[pat] -= 1
            self.wfile = _HalfWriter(self, self.wfile)
        return False

    def _reset(self):
        """Cuts the line with a TCP reset, not a clean close."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    # -- control plane -----------------------------------------------------
    def _api(self, path):
        emu = self.emulator
        body = self._body()
        if path == "/health":
            return self._send(204)
        if self.headers.get("X-API-Key") != emu.api_key:
            return self._api_error(401, "Invalid API key, please visit https://e2b.dev/docs/api-key "
                                        "to get your API key")
        status = _take(emu.faults.api_statuses.get(self.command, []))
        if status:
            return self._api_error(status, "injected %d" % status,
                                   {"Retry-After": "0"} if status in (429, 503) else None)
        if self.command == "POST" and path in ("/sandboxes", "/v2/sandboxes"):
            return self._create(body, v2=path.startswith("/v2"))
        if self.command == "GET" and path == "/v2/sandboxes":
            return self._list()
        m = re.fullmatch(r"/sandboxes/([^/]+)(/timeout|/connect)?", path)
        if not m:
            return self._api_error(404, "no route for %s %s" % (self.command, path))
        sid, sub = m.group(1), m.group(2)
        with emu.lock:
            sb = emu.sandboxes.get(sid)
        if self.command == "DELETE" and not sub:
            if emu.remove(sid):
                return self._send(204)
            return self._api_error(404, "sandbox \"%s\" not found" % sid)
        if sb is None:
            return self._api_error(404, "sandbox \"%s\" not found" % sid)
        if self.command == "GET" and not sub:
            return self._send(200, sb.view(detail=True))
        if self.command == "POST" and sub in ("/timeout", "/connect"):
            try:
                t = int(json.loads(body)["timeout"])
            except (ValueError, KeyError, TypeError):
                return self._api_error(400, "value is required")
            if sub == "/timeout":
                sb.end_at = time.time() + max(t, 0)
                return self._send(204)
            sb.end_at = max(sb.end_at, time.time() + t)
            return self._send(200, self._created_view(sb))
        return self._api_error(405, "method not allowed")

    def _created_view(self, sb):
        d = {"templateID": sb.template, "sandboxID": sb.id, "clientID": "6532622b",
             "envdVersion": sb.envd_version, "alias": sb.template, "domain": None}
        if sb.token:
            d["envdAccessToken"] = sb.token
        return d

    def _create(self, body, v2):
        emu = self.emulator
        try:
            req = json.loads(body)
        except ValueError:
            return self._api_error(400, "request body is not JSON")
        if not isinstance(req, dict) or not isinstance(req.get("templateID"), str):
            return self._api_error(400, "templateID is required")
        if emu.faults.create_delay:
            time.sleep(emu.faults.create_delay)
            if self._client_gone():
                self.close_connection = True
                return None
        status = _take(emu.faults.create_statuses)
        if status:
            return self._api_error(status, "injected %d" % status,
                                   {"Retry-After": "0"} if status in (429, 503) else None)
        timeout = req.get("timeout", 15)  # the server default when omitted
        if not isinstance(timeout, int) or timeout <= 0:
            return self._api_error(400, "Timeout must be greater than 0")
        if timeout > 3600:
            return self._api_error(400, "Timeout cannot be greater than 1 hours")
        for key in ("metadata", "envVars"):
            v = req.get(key, {})
            if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
                return self._api_error(400, "%s must map strings to strings" % key)
        secure = True if v2 else bool(req.get("secure", False))
        sb = emu.create(req["templateID"], timeout, req.get("metadata"), req.get("envVars"),
                        secure)
        if emu.faults.create_drop > 0:
            # The sandbox exists but the client never hears of it.
            emu.faults.create_drop -= 1
            return self._drop()
        status = _take(emu.faults.create_made_statuses)
        if status:
            # made, but the edge answered for it (a gateway timeout, say)
            return self._api_error(status, "injected %d after creating" % status)
        if emu.faults.create_answer_delay:
            time.sleep(emu.faults.create_answer_delay)
        return self._send(201, self._created_view(sb))

    def _client_gone(self):
        """Has the client closed its end (nothing more to read, EOF)?"""
        try:
            ready, _, _ = select.select([self.connection], [], [], 0)
            return bool(ready) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _list(self):
        emu = self.emulator
        want = dict(urllib.parse.parse_qsl(self.query.get("metadata", "")))
        states = set(filter(None, self.query.get("state", "running,paused").split(",")))
        limit = int(self.query.get("limit", 100))
        if not 1 <= limit <= 100:
            return self._api_error(400, "limit must be between 1 and 100")
        limit = min(limit, emu.faults.list_page or limit)
        rows = [sb.view() for sb in emu.live()
                if all(sb.metadata.get(k) == v for k, v in want.items()) and "running" in states]
        rows.sort(key=lambda r: r["startedAt"])
        start = int(self.query.get("nextToken") or 0)
        page = rows[start:start + limit]
        headers = {"X-Total-Running": str(len(rows))}
        if start + limit < len(rows):
            headers["X-Next-Token"] = str(start + limit)
        return self._send(200, page, headers=headers)

    # -- envd ----------------------------------------------------------------
    def _sandbox_not_found(self, sid):
        self._send(502, {"sandboxId": sid, "message": "The sandbox was not found", "code": 502})

    def _envd(self, path, sid, port):
        emu = self.emulator
        body = self._body()
        if port != str(ENVD_PORT):
            emu.violate("envd request for port %r" % port)
        if self.headers.get("X-API-Key"):
            emu.violate("API key sent to envd on %s" % path)
        if emu.faults.envd_502 > 0:
            emu.faults.envd_502 -= 1
            return self._sandbox_not_found(sid)
        if emu.faults.envd_401 > 0:
            emu.faults.envd_401 -= 1
            return self._send(401, {"code": 401, "message": "unauthorized access, please "
                                    "provide a valid access token or method signing"})
        with emu.lock:
            sb = emu.sandboxes.get(sid)
        if sb is None or not sb.alive:
            return self._sandbox_not_found(sid)
        if sb.envd_dead:
            return self._send(502, {"sandboxId": sid, "message": "The sandbox is running but "
                                    "port is not open", "port": ENVD_PORT, "code": 502})
        if path == "/health" and self.command == "GET":
            return self._send(204)
        if sb.token and path not in ("/health",) and \
                self.headers.get("X-Access-Token") != sb.token:
            if not (path == "/files" and self.headers.get("X-Access-Token") is None and
                    "signature" in self.query):
                return self._send(401, {"code": 401,
                                        "message": "unauthorized access, please provide a "
                                                   "valid access token or method signing"})
        if path == "/files":
            if self.command == "GET":
                return self._download(sb)
            if self.command == "POST":
                return self._upload(sb, body)
        if self.command == "POST" and path == "/process.Process/Start":
            return self._start(sb, body)
        if self.command == "POST" and path == "/process.Process/Connect":
            return self._connect(sb, body)
        if self.command == "POST" and path == "/process.Process/SendSignal":
            return self._signal(sb, body)
        return self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")

    def _user(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                return base64.b64decode(auth[6:]).decode().split(":", 1)[0]
            except ValueError:
                return None
        return "user"

    def _connect_error(self, status, code, message):
        self._send(status, {"code": code, "message": message})

    # -- /files ----------------------------------------------------------
    def _download(self, sb):
        path = self.query.get("path")
        if not path:
            return self._send(400, {"code": 400, "message": "path is required"})
        host = sb.fs.host_path(path)
        if host is None or not os.path.exists(host):
            return self._send(404, {"code": 404, "message": "path '%s' does not exist" % path})
        if os.path.isdir(host):
            return self._send(400, {"code": 400, "message": "path '%s' is a directory" % path})
        with open(host, "rb") as f:
            data = f.read()
        self._send(200, data, "application/octet-stream",
                   {"Content-Disposition": "inline; filename=%s" % os.path.basename(path)})

    def _write_file(self, sb, path, data):
        host = sb.fs.host_path(path)
        if host is None:
            raise PermissionError("open %s: permission denied" % path)
        if os.path.isdir(host):
            raise IsADirectoryError("path '%s' is a directory" % path)
        made, d = [], os.path.dirname(host)
        while not os.path.isdir(d):
            made.append(d)
            d = os.path.dirname(d)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        with open(host, "wb") as f:
            f.write(data)
        if sb.uid is not None:  # envd chowns what it writes to the user
            for x in made + [host]:
                os.chown(x, sb.uid, sb.uid)
        full = host[len(sb.fs.root):]
        return {"path": full, "name": os.path.basename(full), "type": "file"}

    def _upload(self, sb, body):
        ctype = self.headers.get("Content-Type", "")
        path = self.query.get("path")
        files = []
        if ctype.startswith("application/octet-stream"):
            if _version_tuple(sb.envd_version) < (0, 5, 7):
                self.emulator.violate("octet-stream upload to envd %s" % sb.envd_version)
                return self._send(400, {"code": 400, "message": "error parsing multipart form"})
            if not path:
                return self._send(400, {"code": 400, "message": "path is required"})
            files.append((path, body))
        elif ctype.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
            if not msg.is_multipart():
                return self._send(400, {"code": 400, "message": "error parsing multipart form"})
            for part in msg.iter_parts():
                if part.get_param("name", header="content-disposition") != "file":
                    continue
                target = path or part.get_filename()
                files.append((target, part.get_payload(decode=True) or b""))
        else:
            return self._send(400, {"code": 400, "message": "unsupported content type %r" % ctype})
        try:
            out = [self._write_file(sb, p, d) for p, d in files]
        except (PermissionError, IsADirectoryError) as e:
            return self._send(400 if isinstance(e, IsADirectoryError) else 500,
                              {"code": 400 if isinstance(e, IsADirectoryError) else 500,
                               "message": str(e)})
        self._send(200, out)

    # -- process RPCs ---------------------------------------------------------
    def _signal(self, sb, body):
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return self._send(415, b"", "text/plain")
        try:
            req = json.loads(body)
            pid = int(req["process"]["pid"])
            signo = SIGNALS[req["signal"]]
        except (ValueError, KeyError, TypeError):
            return self._connect_error(400, "invalid_argument", "bad SendSignal request")
        proc = sb.processes.get(pid)
        if proc is None or proc.popen.poll() is not None:
            return self._connect_error(404, "not_found", "process with pid %d not found" % pid)
        proc.signal(signo)
        self._send(200, {})

    def _stream_request(self, sb, body, what):
        """(keepalive_s, deadline or None, message) of a Start or Connect
        (what: "StartRequest", ...), or None when it was refused (answered
        here)."""
        emu = self.emulator
        h = self.headers
        if h.get("Content-Type") != "application/connect+json":
            return self._send(415, b"", "text/plain")
        keepalive = h.get("Keepalive-Ping-Interval")
        if keepalive is not None and keepalive.strip() == "0":
            # envd <= 0.9.0 panics on a zero ticker: the connection just drops
            # and (fidelity) envd is gone for good.
            emu.violate("Keepalive-Ping-Interval: 0 (crashes envd <= 0.9.0)")
            sb.envd_dead = emu.fidelity
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        try:
            keepalive_s = float(keepalive) if keepalive else DEFAULT_KEEPALIVE_S
        except ValueError:
            keepalive_s = DEFAULT_KEEPALIVE_S
        if emu.faults.keepalive_s:
            keepalive_s = emu.faults.keepalive_s
        deadline = None
        tmo = h.get("Connect-Timeout-Ms")
        if tmo is not None:
            if not re.fullmatch(r"[0-9]{1,10}", tmo):
                if emu.fidelity:  # connect-go: a protocol error in the stream
                    return self._stream_error_only(
                        "invalid_argument", "protocol error: timeout %r has >10 digits" % tmo
                        if tmo.isdigit() else "protocol error: invalid timeout %r" % tmo)
                return self._connect_error(400, "invalid_argument", "bad Connect-Timeout-Ms")
            if int(tmo) == 0:
                emu.violate("Connect-Timeout-Ms: 0 (an already-expired deadline)")
            deadline = time.time() + int(tmo) / 1000.0
        try:
            frames = connect.parse_envelopes(body)
            if len(frames) != 1 or frames[0][0] != 0:
                raise ValueError("want exactly one data envelope")
        except (ValueError, KeyError, TypeError) as e:
            return self._stream_error_only("invalid_argument", "invalid %s: %s" % (what, e))
        return keepalive_s, deadline, frames[0][1]

    def _connect(self, sb, body):
        """process.Process/Connect: the same events as the Start stream from
        now on (a start event first; no replay of earlier output), or
        not_found once the process ended (envd forgets its pid then)."""
        emu = self.emulator
        got = self._stream_request(sb, body, "ConnectRequest")
        if got is None:
            return
        keepalive_s, deadline, req = got
        try:
            pid = int(req["process"]["pid"])
        except (ValueError, KeyError, TypeError) as e:
            return self._stream_error_only("invalid_argument", "invalid ConnectRequest: %s" % e)
        proc = sb.processes.get(pid)
        events = proc.attach() if proc is not None else None
        if events is None:
            return self._stream_error_only("not_found", "process with pid %d not found" % pid)
        try:
            self._stream_begin()
            self._frame({"event": {"start": {"pid": pid}}})
            if emu.faults.connect_cuts:
                emu.faults.fired.append("connect stream")
                return self._stream_fault(emu.faults.connect_cuts.pop(0))
            self._pump_events(sb, proc, events, keepalive_s, deadline, False)
        finally:
            proc.detach(events)

    def _start(self, sb, body):
        emu = self.emulator
        got = self._stream_request(sb, body, "StartRequest")
        if got is None:
            return
        keepalive_s, deadline, req = got
        try:
            unknown = set(req) - START_FIELDS
            if unknown and not emu.fidelity:
                raise ValueError("unknown field %s" % sorted(unknown))
            proc_cfg = req["process"]
            unknown = set(proc_cfg) - PROCESS_FIELDS
            if unknown and not emu.fidelity:
                raise ValueError("unknown field %s" % sorted(unknown))
            cmd = proc_cfg["cmd"]
            args = list(proc_cfg.get("args") or [])
        except (ValueError, KeyError, TypeError) as e:
            return self._stream_error_only("invalid_argument", "invalid StartRequest: %s" % e)
        if "stdin" not in req and _version_tuple(sb.envd_version) >= (0, 3, 0):
            emu.violate("StartRequest without stdin: stdin stays an open pipe")
        user = self._user()
        home = HOME
        cwd = proc_cfg.get("cwd") or home
        host_cwd = sb.fs.host_path(cwd)
        if host_cwd is None or not os.path.isdir(host_cwd):
            return self._stream_error_only("invalid_argument", "cwd '%s' does not exist" % cwd)
        env = {"PATH": ":".join(emu.image_path + [STD_PATH]), "HOME": home, "USER": user,
               "LOGNAME": user}
        if emu.fidelity:
            env["E2B_SANDBOX"] = "true"
        env.update(sb.env_vars)
        env.update(proc_cfg.get("envs") or {})

        self._stream_begin()
        stall_until = time.time() + emu.faults.stall_s
        while time.time() < stall_until:
            time.sleep(min(keepalive_s, max(0.0, stall_until - time.time())))
            self._frame({"event": {"keepalive": {}}})
        try:
            popen = sb.spawn([cmd] + args, env, os.path.normpath(host_cwd[len(sb.fs.root):]),
                             stdin=req.get("stdin", True))
        except OSError as e:
            return self._stream_end({"error": {"code": "internal", "message": str(e)}})
        proc = Process(popen, deadline, sb.vm)
        events = proc.attach()
        with sb.lock:
            if not sb.alive:
                proc.signal(signal.SIGKILL)
                return self._drop()
            sb.processes[proc.pid] = proc
        proc.pump()
        self._frame({"event": {"start": {"pid": proc.pid}}})
        try:
            self._pump_events(sb, proc, events, keepalive_s, deadline, True)
        finally:
            proc.detach(events)

    def _stream_fault(self, st):
        """Ends this stream as a stream_cut/connect_cuts entry says."""
        if st == 0:
            return self._reset()
        return self._stream_end({"error": {
            "code": CONNECT_CODES.get(st, "unknown"), "message": "injected %d" % st}})

    def _pump_events(self, sb, proc, events, keepalive_s, deadline, is_start):
        """Follows proc on this stream until its end.  At the stream's
        deadline (Connect-Timeout-Ms) the stream ends deadline_exceeded; a
        Start's deadline is the process's too and kills it, a Connect's
        is only the stream's."""
        emu = self.emulator
        sent_data = False
        while True:
            wait = keepalive_s
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.time()))
            try:
                kind, a, b = events.get(timeout=wait)
            except queue.Empty:
                if not sb.alive:
                    return self._drop()
                if deadline is not None and time.time() >= deadline:
                    if is_start:
                        proc.killed_by_deadline = True
                        proc.signal(signal.SIGKILL)
                        proc.popen.wait()
                    return self._stream_end({"error": {"code": "deadline_exceeded",
                                                       "message": "context deadline exceeded"}})
                self._frame({"event": {"keepalive": {}}})
                continue
            if not sb.alive:
                return self._drop()
            if kind == "data":
                self._frame({"event": {"data": {a: base64.b64encode(b).decode()}}})
                if is_start and a == "stdout" and emu.faults.stream_cut is not None:
                    st, emu.faults.stream_cut = emu.faults.stream_cut, None
                    emu.faults.fired.append("stream")
                    return self._stream_fault(st)
                if is_start and not sent_data and emu.faults.silent_s:
                    emu.faults.fired.append("stream")
                    time.sleep(emu.faults.silent_s)  # a wedged proxy: not even keepalives
                if is_start and not sent_data and emu.faults.kill_after_output:
                    emu.faults.kill_after_output = False
                    emu.remove(sb.id)
                    return self._drop()
                sent_data = True
                continue
            rc = a
            if rc >= 0:
                end = {"exited": True, "status": "exit status %d" % rc}
                if rc:
                    end["exitCode"] = rc
                    end["error"] = end["status"]
            else:
                name = GO_SIGNAL_NAMES.get(-rc, "signal %d" % -rc)
                end = {"exitCode": -1, "status": "signal: " + name, "error": "signal: " + name}
            self._frame({"event": {"end": end}})
            return self._stream_end({})

    # -- streaming response helpers --------------------------------------------
    def _stream_begin(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/connect+json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _frame(self, msg, flags=0):
        self._chunk(connect.envelope(msg, flags))

    def _stream_end(self, msg):
        self._frame(msg, connect.FLAG_END_STREAM)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _stream_error_only(self, code, message):
        self._stream_begin()
        self._stream_end({"error": {"code": code, "message": message}})

    def _drop(self):
        """The sandbox died under the stream: the proxy cuts the connection."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

