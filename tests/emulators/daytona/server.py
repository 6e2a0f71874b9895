"""Daytona emulator: the main API (`/api/...`) and the toolbox behind the
proxy (`/toolbox/<sandboxId>/...`) on one loopback port, with the paths,
status codes, JSON field names, error bodies and session output markers of
the real service (facts: shared reference daytona-api.md), running every
command for real in an nsbox namespace sandbox.

Tests drive faults through `Emulator.faults` (in process) or
`POST /_emulator/faults` (JSON of the same names), and read
`live_count()` / `GET /_emulator/live` (sandboxes created and not deleted) to
prove nothing leaked, and `requests` (method, path) to check what a client
sent (`GET /_emulator/requests?since=K` from another process).

Sessions work as the daemon's do: a session is one long-lived shell in the
sandbox (the first of zsh, bash, sh, as the daemon picks), fed on stdin.
Each command is written to a file in the session's directory and sourced
there, so `cd`, `export` and shell variables carry over to the session's
next command; its stdout and stderr go through two FIFOs into the command's
own log, one marker-prefixed line at a time, and its exit code is written to
a file once the log is whole.  Commands of one session therefore run one
after another, and a command that runs `exit` ends the session's shell: it
never gets an exit code, and later commands are refused (newer daemons say
SESSION_ENDED).  The per-command files live in /run/daytona, which the
sandbox's commands share but the file API cannot reach.

Fidelity mode (`faults.fidelity`, on by default) reproduces what the real
daemon (v0.190, apps/daemon) does and a client must survive:
- the exit code is appended to its file (`echo "$ec" >> exit_code`), so the
  file briefly exists empty and a status poll then answers HTTP 500
  `failed to convert exit code to int: strconv.Atoi: parsing "": invalid
  syntax`; `faults.exit_code_window` widens that moment to a chosen length;
- deleting a session sends SIGTERM to its processes, waits up to
  `faults.kill_grace` (5 s) for them to go, SIGKILLs the rest, and only then
  answers;
- the session files live in the work directory's `.daytona/sessions/...`
  (a step's `ls -a` shows `.daytona`);
- exec in an unknown session is a 500 without a code; exec after the
  session's shell died is a 500 `write |1: broken pipe`;
- NUL bytes in output are dropped (and a last line gets its newline);
- every async command leaves a `sleep 3600` behind in its session.
Without it (fidelity=False) the files are out of reach in /run/daytona, the
exit code is written atomically, a session dies at once, errors are 404 and
400 SESSION_ENDED as newer daemons say.

A command's logs can also be followed over a WebSocket (`?follow=true` with
an Upgrade), as the SDKs' `get_session_command_logs_async` does: the log's
bytes leave as binary frames while the command writes them, pings keep the
line alive, and close 1000 comes once the command has ended.
"""
import datetime
import email.parser
import email.policy
import fnmatch
import json
import os
import re
import shlex
import signal
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..common.nsbox import Box

HOME = "/home/daytona"
STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OUT_MARK = b"\x01\x01\x01"
ERR_MARK = b"\x02\x02\x02"
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")
VERSION_SUBPROTOCOL = "X-Daytona-SDK-Version~"
TRANSITIONS = {"creating", "starting", "stopping", "destroying", "pulling_snapshot",
               "pending_build", "building_snapshot", "restoring", "archiving", "resizing"}
BOUNDARY = "DAYTONA-FILE-BOUNDARY"
DAEMON_DIR = "/run/daytona"   # the emulated daemon's own files, inside the sandbox
SHELL = next((p for p in ("/usr/bin/zsh", "/bin/zsh", "/usr/bin/bash", "/bin/bash")
              if os.access(p, os.X_OK)), "/bin/sh")
ORG = "00000000-0000-4000-8000-00000000e0e0"


def _iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Faults:
    """Knobs a test sets before (or while) driving the emulator."""

    def __init__(self):
        # "METHOD path" (e.g. "POST /sandbox", "GET /sandbox/*", "DELETE
        # /sandbox/*", "* /toolbox/*", "POST /toolbox/process/session/*/exec";
        # API paths without /api, toolbox paths without the sandbox id; `*`
        # matches anything, `/` included) -> statuses answered once each
        # before the real handler; 429 carries Retry-After headers, 502 an
        # empty body like the proxy's, 0 cuts the connection unanswered.
        self.statuses = {}
        # pattern -> N: the next N matching requests are carried out, then
        # the connection is cut before the answer (a response lost on the way).
        # A list of booleans instead picks which: one consumed per matching
        # request, True losing that one's answer.
        self.lose_response = {}
        # pattern -> [seconds, ...]: matching requests hang that long first
        # (a stuck proxy or daemon), one entry consumed per request.
        self.stalls = {}
        self.retry_after = 1          # seconds in Retry-After(-sandbox-create) on 429
        # The create throttler (the `sandbox-create` bucket): at most this many
        # creates per one-second window, 429 with Retry-After beyond (0: none).
        self.create_rate = 0
        self.create_delay = 0.0       # seconds a new sandbox stays "creating"
        self.server_wait = 30.0       # the create call's server-side wait for "started"
        self.create_error = None      # reason: new sandboxes go to "error" instead
        self.build_error = None       # reason: image builds end in "build_failed"
        self.create_drop = 0          # next N creates make the sandbox, then cut the line
        self.delete_conflicts = 0     # next N deletes answer 409 even when settled
        self.die_after_output = False  # a session command's sandbox dies once it printed
        self.empty_toolbox_url = False  # toolboxProxyUrl "" (clients must look it up)
        # Fidelity: the real daemon's (v0.190) quirks, on unless the
        # Emulator is made with fidelity=False.  See the module comment.
        self.fidelity = True
        # Seconds a command's exit-code file reads as empty once it exists: a
        # status poll then answers the daemon's 500 (strconv.Atoi of "").
        self.exit_code_window = 0.01
        self.kill_grace = 5.0         # session delete: SIGTERM, this long, SIGKILL
        self.async_leftover = True    # each async command leaves a `sleep 3600`

    def update(self, d):
        for k, v in d.items():
            if not hasattr(self, k):
                raise KeyError(k)
            setattr(self, k, v)


class Command:
    """One session command; its files are in `host_dir` (see the wrapper)."""

    def __init__(self, cid, command, host_dir, window=0.0, drop_nul=False):
        self.id = cid
        self.command = command
        self.host_dir = host_dir
        self.exit_code = None
        self.window = window      # seconds the exit-code file reads as empty
        self.drop_nul = drop_nul  # NUL bytes never leave (the daemon's are gone)

    def exit(self):
        """The exit code once the shell wrote it (the log is whole then)."""
        if self.exit_code is None:
            try:
                with open(os.path.join(self.host_dir, "exit_code")) as f:
                    if time.time() - os.fstat(f.fileno()).st_mtime >= self.window:
                        self.exit_code = int(f.read().strip())
            except (FileNotFoundError, ValueError):
                pass
        return self.exit_code

    def racing(self):
        """True while the exit-code file exists but reads as empty, as the
        daemon's appended one does for a moment."""
        return (self.exit() is None and
                os.path.exists(os.path.join(self.host_dir, "exit_code")))

    def log(self):
        try:
            with open(os.path.join(self.host_dir, "output.log"), "rb") as f:
                return self.clean(f.read())
        except FileNotFoundError:
            return b""

    def clean(self, data):
        return data.replace(b"\0", b"") if self.drop_nul else data

    def view(self):
        d = {"id": self.id, "command": self.command}
        if self.exit() is not None:
            d["exitCode"] = self.exit_code
        return d


# Written to the session shell's stdin for each command; %(dir)s is the
# command's directory inside the sandbox, %(stdin)s what its stdin reads
# (hold/close/release: the shell keeps an async command's input FIFO open);
# %(out_loop)s/%(err_loop)s prefix each line of a stream (see _loop),
# %(write_ec)s writes the exit code (atomically, or appended like the
# daemon), %(leftover)s is the daemon's `sleep 3600`.
# The prefixing loops run in the background before the command, which is
# sourced in the shell itself (so its cd/export stay); the exit code is
# written only after both loops drained into output.log.
_WRAPPER = r"""{
_dtn_dir=%(dir)s
%(out_loop)s
_dtn_po=$!
%(err_loop)s
_dtn_pe=$!
%(leftover)s%(hold)s{ . "$_dtn_dir/cmd.sh"; } < %(stdin)s > "$_dtn_dir/stdout.pipe" 2> "$_dtn_dir/stderr.pipe"%(close)s
_dtn_ec=$?
%(release)swait "$_dtn_po" "$_dtn_pe"
rm -f "$_dtn_dir/stdout.pipe" "$_dtn_dir/stderr.pipe" "$_dtn_dir/input.pipe"
%(write_ec)s
unset _dtn_dir _dtn_l _dtn_po _dtn_pe _dtn_ec
}
"""


def _loop(mark, pipe):
    """The background loop that copies one stream's lines into output.log,
    each behind its marker (a last line gets its newline)."""
    body = ('while IFS= read -r _dtn_l || [ -n "$_dtn_l" ]; do printf \'%s%%s\\n\' '
            '"$_dtn_l"; done' % mark)
    return '( %s < "$_dtn_dir/%s" >> "$_dtn_dir/output.log" ) &' % (body, pipe)


_EC_ATOMIC = ('echo "$_dtn_ec" > "$_dtn_dir/exit_code.tmp" && '
              'mv "$_dtn_dir/exit_code.tmp" "$_dtn_dir/exit_code"')
_EC_APPEND = 'echo "$_dtn_ec" >> "$_dtn_dir/exit_code"'
_LEFTOVER = "{ sleep 3600 </dev/null >/dev/null 2>&1 & } 2>/dev/null\n"


def _children(pid):
    kids = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def _session_processes(outer):
    """Every process a session's shell started (not the shell, not the
    bwrap processes around it, not the port relay beside it), walked from
    /proc; the tree is the sandbox's, so it stays small."""
    found, todo = [], [(outer, False)]
    while todo and len(found) < 10000:
        pid, under_bwrap = todo.pop()
        bwrap = _comm(pid) == "bwrap"
        if not bwrap and not under_bwrap:
            found.append(pid)
        todo += [(k, bwrap) for k in _children(pid)]
    return found


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _exists(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


class Session:
    """A long-lived shell in the sandbox that runs the session's commands."""

    def __init__(self, sb, sid, env):
        self.id = sid
        self.box = sb.box
        self.faults = sb.emu.faults
        self.fidelity = self.faults.fidelity
        self.commands = {}
        self.order = []
        self.lock = threading.Lock()   # one command written at a time
        self.dir = "%s/sessions/%s" % (HOME + "/.daytona" if self.fidelity else DAEMON_DIR,
                                       uuid.uuid4().hex)
        os.makedirs(self.box.root + self.dir)
        self.shell = self.box.spawn([SHELL], env, cwd=HOME, stdin=True)
        # The shell's own output (outside any command) goes nowhere, as the
        # daemon's does; drained so the shell never blocks on it.
        for f in (self.shell.stdout, self.shell.stderr):
            threading.Thread(target=lambda f=f: f.read(), daemon=True).start()

    def alive(self):
        return self.shell.poll() is None

    def run(self, command, run_async):
        """Starts a command; the Command, or None if the shell is gone."""
        c = Command(str(uuid.uuid4()), command, None,
                    self.faults.exit_code_window if self.fidelity else 0.0, self.fidelity)
        inside = "%s/%s" % (self.dir, c.id)
        c.host_dir = self.box.root + inside
        os.makedirs(c.host_dir)
        with open(os.path.join(c.host_dir, "cmd.sh"), "w") as f:
            f.write(command)
        open(os.path.join(c.host_dir, "output.log"), "wb").close()
        for name in ("stdout.pipe", "stderr.pipe") + (("input.pipe",) if run_async else ()):
            os.mkfifo(os.path.join(c.host_dir, name))
        # An async command's stdin stays open (POST .../input writes to it):
        # the shell holds the FIFO's other end on fd 9 while it runs.
        fill = {"dir": shlex.quote(inside), "hold": "", "stdin": "/dev/null", "close": "",
                "release": "", "out_loop": _loop(r"\001\001\001", "stdout.pipe"),
                "err_loop": _loop(r"\002\002\002", "stderr.pipe"),
                "write_ec": _EC_APPEND if self.fidelity else _EC_ATOMIC,
                "leftover": _LEFTOVER if run_async and self.fidelity and
                self.faults.async_leftover else ""}
        if run_async:
            fill.update(hold='exec 9<> "$_dtn_dir/input.pipe"\n',
                        stdin='"$_dtn_dir/input.pipe"', close=" 9>&-", release="exec 9>&-\n")
        text = _WRAPPER % fill
        with self.lock:
            if not self.alive():
                return None
            try:
                self.shell.stdin.write(text.encode())
                self.shell.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                return None
            self.commands[c.id] = c
            self.order.append(c.id)
        return c

    def send_input(self, c, data):
        """Writes to a running async command's stdin; False if it has none."""
        path = os.path.join(c.host_dir, "input.pipe")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return True

    def kill(self, grace=0.0):
        """Ends the shell and everything its commands started; with grace,
        as the daemon deletes a session: SIGTERM to every process the
        shell started, up to `grace` seconds for them to go, then SIGKILL."""
        if not self.alive():
            return
        if grace > 0:
            targets = _session_processes(self.shell.pid)
            for p in targets:
                _signal(p, signal.SIGTERM)
            end = time.monotonic() + grace
            while time.monotonic() < end and any(_exists(p) for p in targets):
                time.sleep(0.05)
        self.box.kill(self.shell)

    def view(self):
        return {"sessionId": self.id, "commands": [self.commands[c].view() for c in self.order]}


class Sandbox:
    def __init__(self, emu, body):
        self.emu = emu
        self.id = str(uuid.uuid4())
        now = time.time()
        self.created = now
        self.body = body
        self.labels = dict(body.get("labels") or {})
        self.env = dict(body.get("env") or {})
        self.state = "creating"
        self.error_reason = None
        self.deleted = False
        self.box = Box(parent_dir=emu.workdir, home=HOME, allow_ports=emu.allow_ports,
                       private=(DAEMON_DIR,))
        self.sessions = {}
        self.updated = now
        self._write_profile()

    def _write_profile(self):
        """The image's ~/.profile.  A login shell (`bash -lc`, as clients
        such as metaflow-sandbox run their commands) reads /etc/profile,
        which resets PATH to the system directories; a real image keeps its
        interpreter in one of those, the emulated image keeps it in
        `image_path`, so its profile puts those directories back in front."""
        dirs = self.emu.image_path
        if not dirs:
            return
        with open(self.box.host_path(HOME + "/.profile"), "w") as f:
            f.write('PATH=%s:"$PATH"\nexport PATH\n' % shlex.quote(":".join(dirs)))

    def set_state(self, state, reason=None):
        self.state = state
        self.error_reason = reason
        self.updated = time.time()

    def view(self, listing=False):
        b = self.body
        d = {
            "id": self.id, "organizationId": ORG, "name": b.get("name") or self.id,
            "snapshot": b.get("snapshot") or (None if b.get("buildInfo") else
                                              self.emu.default_snapshot),
            "user": b.get("user") or "daytona", "env": self.env, "labels": self.labels,
            "public": bool(b.get("public", False)),
            "networkBlockAll": bool(b.get("networkBlockAll", False)),
            "target": b.get("target") or "us", "cpu": int(b.get("cpu") or 1), "gpu": int(b.get("gpu") or 0),
            "memory": int(b.get("memory") or 1), "disk": int(b.get("disk") or 3),
            "state": self.state, "desiredState": "destroyed" if self.deleted else "started",
            "errorReason": self.error_reason, "recoverable": False,
            "autoStopInterval": b.get("autoStopInterval", 15),
            "autoArchiveInterval": b.get("autoArchiveInterval", 10080),
            "autoDeleteInterval": b.get("autoDeleteInterval", -1),
            "createdAt": _iso(self.created), "updatedAt": _iso(self.updated),
            "daemonVersion": "0.190.0", "kvm": False,
            "toolboxProxyUrl": "" if self.emu.faults.empty_toolbox_url else self.emu.toolbox_url,
        }
        if not listing:
            d["volumes"] = b.get("volumes") or []
        return d

    def destroy(self):
        for s in list(self.sessions.values()):
            s.kill()
        self.box.close()


class ApiError(Exception):
    def __init__(self, status, message, code=None, headers=()):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = tuple(headers)


NO_CODE = ""   # an ApiError code: the body carries no "code" at all
EXIT_CODE_RACE = ('failed to convert exit code to int: strconv.Atoi: parsing "": '
                  'invalid syntax')
REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           408: "Request Timeout", 409: "Conflict", 429: "Too Many Requests",
           500: "Internal Server Error"}
CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 404: "NOT_FOUND", 408: "REQUEST_TIMEOUT",
         409: "CONFLICT", 500: "INTERNAL_SERVER_ERROR"}


class Emulator:
    def __init__(self, api_key="dtn_" + "0" * 40, workdir=None, allow_ports=(),
                 default_snapshot="daytona-small", image_path=(), jwt_token=None,
                 fidelity=True):
        self.api_key = api_key
        # A JWT is accepted too, with X-Daytona-Organization-ID naming ORG
        # (API keys are scoped to their organization and need no header).
        self.jwt_token = jwt_token
        self.organization_id = ORG
        self.workdir = workdir
        # Directories the snapshot "image" has on PATH before the system ones
        # (e.g. a venv with metaflow and boto3, as a custom snapshot would).
        self.image_path = list(image_path)
        self.allow_ports = tuple(allow_ports)
        self.default_snapshot = default_snapshot
        self.faults = Faults()
        self.faults.fidelity = fidelity
        # Bytes of command logs sent (GET .../logs bodies and follow frames):
        # what a client's log reading costs.
        self.log_bytes_served = 0
        self.exit_code_races = 0      # status reads answered with the race's 500
        self.sandboxes = {}
        self.lock = threading.Lock()
        self.requests = []
        self.created_total = 0
        self.throttled_total = 0      # creates refused by create_rate
        self._window = (0, 0)         # (second, creates let through in it)
        self.create_bodies = []       # JSON bodies of the creates that made a sandbox
        self.ws_ping_interval = 20.0  # seconds between pings on a log-follow WebSocket
        self.httpd = None

    # -- lifecycle -----------------------------------------------------
    def start(self, port=0):
        emu = self

        class Handler(_Handler):
            emulator = emu
        self.httpd = _Server(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            boxes = list(self.sandboxes.values())
            self.sandboxes.clear()
        for sb in boxes:
            sb.destroy()

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def url(self):
        return "http://127.0.0.1:%d/api" % self.port

    @property
    def toolbox_url(self):
        return "http://127.0.0.1:%d/toolbox" % self.port

    def live(self):
        with self.lock:
            return [sb for sb in self.sandboxes.values() if not sb.deleted]

    def live_count(self):
        return len(self.live())

    # -- state machine -------------------------------------------------
    def _boot(self, sb):
        """creating -> started (or error) after the configured delay; an
        image build goes pending_build -> building_snapshot -> started (or
        build_failed), half the delay in each."""
        delay, reason = self.faults.create_delay, self.faults.create_error
        build = bool(sb.body.get("buildInfo"))
        build_error = self.faults.build_error if build else None
        if build:
            sb.set_state("pending_build")

        def run():
            if build and delay:
                time.sleep(delay / 2)
                if sb.deleted:
                    return
                sb.set_state("building_snapshot")
                time.sleep(delay / 2)
            elif delay:
                time.sleep(delay)
            if sb.deleted:
                return
            if build_error:
                sb.set_state("build_failed", build_error)
            elif reason:
                sb.set_state("error", reason)
            else:
                sb.set_state("started")
        if delay:
            threading.Thread(target=run, daemon=True).start()
        else:
            run()

    def get(self, ident):
        with self.lock:
            sb = self.sandboxes.get(ident)
            if sb is None:
                for s in self.sandboxes.values():
                    if s.body.get("name") == ident:
                        sb = s
        if sb is None or sb.state == "destroyed":
            raise ApiError(404, "Sandbox with ID or name %s not found" % ident)
        return sb

    def delete(self, sb):
        if self.faults.delete_conflicts > 0:
            self.faults.delete_conflicts -= 1
            raise ApiError(409, "Sandbox state change in progress")
        if sb.state in TRANSITIONS:
            raise ApiError(409, "Sandbox state change in progress")
        sb.deleted = True
        sb.set_state("destroying")
        sb.destroy()

        def gone():
            time.sleep(0.2)
            sb.set_state("destroyed")
            with self.lock:
                self.sandboxes.pop(sb.id, None)
        threading.Thread(target=gone, daemon=True).start()

    def kill_sandbox(self, sb, reason):
        """The sandbox dies (runner lost, OOM): processes gone, state error."""
        sb.set_state("error", reason)
        for s in list(sb.sessions.values()):
            s.kill()


def _semver(v):
    m = SEMVER.match(v or "")
    return tuple(int(x) for x in m.groups()) if m else None


def _strip(raw):
    return raw.replace(OUT_MARK, b"").replace(ERR_MARK, b"")


def _strip_held(raw):
    """(markers removed, trailing bytes that may begin a marker)."""
    out = _strip(raw)
    for k in (2, 1):
        if out[-k:] in (OUT_MARK[:k], ERR_MARK[:k]):
            return out[:-k], out[-k:]
    return out, b""


def _version_subprotocol(headers):
    """The `X-Daytona-SDK-Version~<ver>` entry of Sec-WebSocket-Protocol."""
    for p in (headers.get("Sec-WebSocket-Protocol") or "").split(","):
        if p.strip().startswith(VERSION_SUBPROTOCOL):
            return p.strip()
    return None


def _demux(raw):
    out, err = bytearray(), bytearray()
    for line in raw.splitlines(keepends=True):
        if line.startswith(OUT_MARK):
            out += line[3:]
        elif line.startswith(ERR_MARK):
            err += line[3:]
    return bytes(out), bytes(err)


class _Server(ThreadingHTTPServer):
    # A fan-out of a thousand clients connects at once: the default backlog
    # of 5 would leave most of them retrying SYNs for a second or more.
    request_queue_size = 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    emulator = None  # set by Emulator.start
    # Headers and body leave in separate writes: with Nagle on, the body
    # waits for the client's delayed ACK (up to 40 ms a request).
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    # -- plumbing ------------------------------------------------------
    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    lose = False  # set per request by _mark_lost

    def _send_raw(self, status, data=b"", ctype=None, headers=()):
        if self.lose:
            self.lose = False
            return self._cut()
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status, obj, headers=()):
        self._send_raw(status, json.dumps(obj).encode(), "application/json; charset=utf-8",
                       headers)

    def _api_error(self, e, headers=()):
        """The API's NestJS error body, or the daemon's Go one on the toolbox."""
        if self.path.startswith("/toolbox/"):
            body = {"statusCode": e.status, "message": e.message,
                    "code": e.code or CODES.get(e.status, "ERROR"),
                    "timestamp": _iso(time.time()), "path": self.path.split("?")[0],
                    "method": self.command}
            if e.code == NO_CODE:
                del body["code"]
        else:
            body = {"path": self.path.split("?")[0], "timestamp": _iso(time.time()),
                    "statusCode": e.status, "error": REASONS.get(e.status, "Error"),
                    "message": e.message}
        self._json(e.status, body, headers)

    def _matches(self, pat, key):
        m, _, p = pat.partition(" ")
        return m in ("*", self.command) and fnmatch.fnmatchcase(key, p)

    def _injected(self, key):
        """A status from faults.statuses for this request, consumed."""
        f = self.emulator.faults
        for pat, sts in list(f.statuses.items()):
            if sts and self._matches(pat, key):
                return sts.pop(0)
        return None

    def _stall(self, key):
        """faults.stalls: this request hangs first."""
        f = self.emulator.faults
        for pat, waits in list(f.stalls.items()):
            if waits and self._matches(pat, key):
                time.sleep(waits.pop(0))
                return

    def _mark_lost(self, key):
        """faults.lose_response: this request is carried out, its answer cut."""
        f = self.emulator.faults
        for pat, n in list(f.lose_response.items()):
            if n and self._matches(pat, key):
                if isinstance(n, list):
                    self.lose = n.pop(0)
                else:
                    f.lose_response[pat] = n - 1
                    self.lose = True
                return

    def _cut(self):
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def _dispatch(self):
        emu = self.emulator
        parsed = urllib.parse.urlsplit(self.path)
        path, q = parsed.path, urllib.parse.parse_qs(parsed.query)
        body = self._body()
        with emu.lock:
            emu.requests.append((self.command, path))
        if path.startswith("/_emulator/"):
            return self._control(path, body)
        if path.startswith("/api/"):
            key = path[len("/api"):]
        elif path.startswith("/toolbox/"):
            key = "/toolbox/" + path[len("/toolbox/"):].partition("/")[2]
        else:
            return self._api_error(ApiError(404, "Cannot %s %s" % (self.command, path)))
        self._stall(key)
        st = self._injected(key)
        if st == 0:
            return self._cut()
        if st is not None:
            if st == 429:
                ra = str(emu.faults.retry_after)
                return self._api_error(ApiError(429, "ThrottlerException: Too Many Requests"),
                                       [("Retry-After", ra), ("Retry-After-sandbox-create", ra)])
            if st in (502, 503, 504):
                return self._send_raw(st)
            return self._api_error(ApiError(st, REASONS.get(st, "injected")))
        self._mark_lost(key)
        if key == "/config":
            return self._json(200, {"proxyToolboxUrl": emu.toolbox_url,
                                    "proxyTemplateUrl": emu.toolbox_url,
                                    "defaultSnapshot": emu.default_snapshot,
                                    "maxAutoArchiveInterval": 43200,
                                    "maintananceMode": False, "version": "0.190.0",
                                    "environment": "emulator", "analyticsApiUrl": None})
        auth = self.headers.get("Authorization", "")
        if emu.jwt_token and auth == "Bearer " + emu.jwt_token:
            if self.headers.get("X-Daytona-Organization-ID") != emu.organization_id:
                return self._api_error(ApiError(403, "Organization ID is required with a JWT"
                                                if path.startswith("/api/") else "forbidden"))
        elif auth != "Bearer " + emu.api_key:
            return self._api_error(ApiError(401, "Invalid credentials"))
        try:
            if path.startswith("/api/"):
                return self._api(key, q, body)
            return self._toolbox(path[len("/toolbox/"):], q, body)
        except ApiError as e:
            return self._api_error(e, e.headers)

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    # -- control -------------------------------------------------------
    def _control(self, path, body):
        emu = self.emulator
        if path == "/_emulator/live":
            return self._json(200, {"live": emu.live_count(),
                                    "ids": [sb.id for sb in emu.live()]})
        if path == "/_emulator/requests":
            since = int((urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                         .get("since") or ["0"])[0])
            with emu.lock:
                rows = emu.requests[since:]
            return self._json(200, {"requests": rows, "created_total": emu.created_total})
        if path == "/_emulator/faults" and self.command == "POST":
            try:
                emu.faults.update(json.loads(body or b"{}"))
            except (KeyError, ValueError) as e:
                return self._json(400, {"message": "unknown fault %s" % e})
            return self._json(200, {})
        return self._json(404, {"message": "no such control"})

    # -- main API ------------------------------------------------------
    def _api(self, key, q, body):
        emu = self.emulator
        parts = key.strip("/").split("/")
        if parts[0] != "sandbox":
            raise ApiError(404, "Cannot %s /api%s" % (self.command, key))
        if len(parts) == 1:
            if self.command == "POST":
                return self._create(body)
            if self.command == "GET":
                return self._list(q)
        elif len(parts) == 2:
            sb = emu.get(parts[1])
            if self.command == "GET":
                return self._json(200, sb.view())
            if self.command == "DELETE":
                emu.delete(sb)
                return self._json(200, sb.view())
        elif len(parts) == 3 and parts[2] == "toolbox-proxy-url" and self.command == "GET":
            emu.get(parts[1])
            return self._json(200, {"url": emu.toolbox_url})
        elif len(parts) == 3 and parts[2] == "labels" and self.command == "PUT":
            sb = emu.get(parts[1])
            sb.labels = dict(json.loads(body).get("labels") or {})
            return self._json(200, {"labels": sb.labels})
        raise ApiError(404, "Cannot %s /api%s" % (self.command, key))

    def _throttle(self):
        """faults.create_rate: like the throttler, before anything is made."""
        emu, rate = self.emulator, self.emulator.faults.create_rate
        if not rate:
            return
        now = time.time()
        with emu.lock:
            sec, n = emu._window
            if int(now) != sec:
                sec, n = int(now), 0
            if n < rate:
                emu._window = (sec, n + 1)
                return
            emu.throttled_total += 1
        ra = str(max(1, int(sec + 1 - now + 0.999)))
        raise ApiError(429, "ThrottlerException: Too Many Requests",
                       headers=[("Retry-After", ra), ("Retry-After-sandbox-create", ra),
                                ("X-RateLimit-Limit-sandbox-create", str(rate)),
                                ("X-RateLimit-Remaining-sandbox-create", "0")])

    def _create(self, raw):
        emu = self.emulator
        self._throttle()
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            raise ApiError(400, "Invalid JSON body")
        for k in ("env", "labels"):
            v = body.get(k)
            if v is not None and not (isinstance(v, dict) and
                                      all(isinstance(x, str) for x in v.values())):
                raise ApiError(400, "%s must be an object of strings" % k)
        for k in ("cpu", "gpu", "memory", "disk", "autoStopInterval", "autoArchiveInterval",
                  "autoDeleteInterval"):
            v = body.get(k)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise ApiError(400, "%s must be an integer number" % k)
        if body.get("buildInfo") and body.get("snapshot"):
            raise ApiError(400, "Cannot specify a snapshot when using a build info entry")
        if not body.get("buildInfo") and any(body.get(k) for k in ("cpu", "gpu", "memory", "disk")):
            raise ApiError(400, "Cannot specify Sandbox resources when using a snapshot")
        if body.get("buildInfo") and not (body["buildInfo"] or {}).get("dockerfileContent"):
            raise ApiError(400, "buildInfo.dockerfileContent should not be empty")
        sb = Sandbox(emu, body)
        with emu.lock:
            emu.sandboxes[sb.id] = sb
            emu.created_total += 1
            emu.create_bodies.append(body)
        emu._boot(sb)
        if emu.faults.create_drop > 0:
            emu.faults.create_drop -= 1
            return self._cut()
        if not body.get("buildInfo"):
            deadline = time.monotonic() + emu.faults.server_wait
            while sb.state == "creating" and time.monotonic() < deadline:
                time.sleep(0.02)
            if sb.state in ("error", "build_failed"):
                raise ApiError(400, "Sandbox failed to start: %s" % sb.error_reason)
        return self._json(200, sb.view())

    def _list(self, q):
        emu = self.emulator
        want = {}
        if q.get("labels"):
            try:
                want = json.loads(q["labels"][0])
            except ValueError:
                raise ApiError(400, "labels must be a JSON object")
        states = set(q.get("states", []))
        limit = int((q.get("limit") or ["100"])[0])
        if not 1 <= limit <= 200:
            raise ApiError(400, "limit must not be greater than 200")
        start = int((q.get("cursor") or ["0"])[0] or 0)
        with emu.lock:
            items = [sb for sb in sorted(emu.sandboxes.values(), key=lambda s: s.created)
                     if sb.state != "destroyed"
                     and all(sb.labels.get(k) == v for k, v in want.items())
                     and (not states or sb.state in states)]
        page = items[start:start + limit]
        nxt = str(start + limit) if start + limit < len(items) else None
        return self._json(200, {"items": [sb.view(listing=True) for sb in page],
                                 "nextCursor": nxt})

    # -- toolbox -------------------------------------------------------
    def _toolbox(self, rest, q, body):
        emu = self.emulator
        sid, _, sub = rest.partition("/")
        try:
            sb = emu.get(sid)
        except ApiError:
            raise ApiError(404, "sandbox not found")
        if sb.state != "started":
            # The proxy cannot reach a sandbox that is not running.
            return self._send_raw(502)
        sub = "/" + sub
        if sub == "/process/execute" and self.command == "POST":
            return self._execute(sb, body)
        if sub == "/files/bulk-upload" and self.command == "POST":
            return self._bulk_upload(sb, body)
        if sub == "/files/bulk-download" and self.command == "POST":
            return self._bulk_download(sb, body)
        if sub == "/files/download" and self.command == "GET":
            return self._download(sb, q)
        if sub == "/files/folder" and self.command == "POST":
            p = sb.box.host_path((q.get("path") or [""])[0])
            if p is None:
                raise ApiError(403, "permission denied")
            try:
                mode = int((q.get("mode") or ["755"])[0], 8)
            except ValueError:
                raise ApiError(400, "invalid mode")
            if not os.path.isdir(p):
                os.makedirs(p)
                os.chmod(p, mode)
            return self._send_raw(201)
        if sub in ("/work-dir", "/user-home-dir") and self.command == "GET":
            return self._json(200, {"dir": HOME})
        if sub == "/version":
            return self._json(200, {"version": "0.190.0"})
        if sub.startswith("/process/session"):
            return self._session(sb, sub[len("/process/session"):], q, body)
        raise ApiError(404, "route not found")

    def _env(self, sb, extra):
        env = {"PATH": ":".join(self.emulator.image_path + [STD_PATH]), "HOME": HOME,
               "USER": "daytona"}
        env.update(sb.env)
        env.update(extra or {})
        return env

    def _execute(self, sb, raw):
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, "invalid request body")
        cmd = req.get("command")
        if not isinstance(cmd, str) or not cmd.strip():
            raise ApiError(400, "command is required")
        envs = req.get("envs") or {}
        for k in envs:
            if not ENV_KEY.match(k):
                raise ApiError(400, "invalid environment variable name: %s" % k)
        cwd = req.get("cwd") or HOME
        timeout = req.get("timeout") or None
        p = sb.box.spawn(["sh", "-c", cmd], self._env(sb, envs), cwd=cwd)
        try:
            out, err = p.communicate(timeout=timeout)
        except Exception:  # TimeoutExpired
            sb.box.kill(p)
            p.communicate()
            raise ApiError(408, "command execution timeout", "PROCESS_EXECUTION_TIMEOUT")
        code = p.returncode if p.returncode >= 0 else 128 - p.returncode
        return self._json(200, {"exitCode": code,
                                "result": (out + err).decode("utf-8", "replace")})

    def _bulk_upload(self, sb, raw):
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            raise ApiError(400, "request Content-Type isn't multipart/form-data")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
        if not msg.is_multipart():
            raise ApiError(400, "error parsing multipart form")
        dests, files, errors = {}, [], []
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition") or ""
            m = re.match(r"^files\[(\d+)\]\.(path|file)$", name)
            if not m:
                continue
            i, kind = m.group(1), m.group(2)
            data = part.get_payload(decode=True) or b""
            if kind == "path":
                dests[i] = data.decode()
                continue
            if i not in dests:
                errors.append("files[%s]: path must come before file" % i)
                continue
            hp = sb.box.host_path(dests[i])
            if hp is None:
                errors.append("%s: permission denied" % dests[i])
                continue
            os.makedirs(os.path.dirname(hp), exist_ok=True)
            with open(hp, "wb") as f:
                f.write(data)
            files.append({"path": dests[i], "bytes": len(data)})
        if errors:
            return self._json(400, {"errors": errors, "files": files})
        return self._json(200, {"files": files})

    def _read(self, sb, path):
        hp = sb.box.host_path(path)
        if hp is None:
            # Outside the writable places: readable from the read-only host.
            hp = os.path.normpath(path if path.startswith("/") else os.path.join(HOME, path))
        if os.path.isdir(hp):
            raise ApiError(400, "path is a directory", "BAD_REQUEST")
        try:
            with open(hp, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ApiError(404, "file not found: %s" % path, "FILE_NOT_FOUND")
        except PermissionError:
            raise ApiError(403, "permission denied: %s" % path)

    def _download(self, sb, q):
        path = (q.get("path") or [""])[0]
        data = self._read(sb, path)
        name = os.path.basename(path)
        return self._send_raw(200, data, "application/octet-stream",
                              [("Content-Disposition", 'attachment; filename="%s"' % name)])

    def _bulk_download(self, sb, raw):
        try:
            paths = json.loads(raw or b"{}")["paths"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, "invalid request body")
        out = bytearray()
        for p in paths:
            out += b"--" + BOUNDARY.encode() + b"\r\n"
            try:
                data = self._read(sb, p)
                out += ('Content-Disposition: form-data; name="file"; filename="%s"\r\n'
                        'Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n'
                        % (p, len(data))).encode()
                out += data
            except ApiError as e:
                err = json.dumps({"statusCode": e.status, "message": e.message,
                                  "code": e.code or CODES.get(e.status, "ERROR")}).encode()
                out += ('Content-Disposition: form-data; name="error"; filename="%s"\r\n'
                        'Content-Type: application/json\r\n\r\n' % p).encode()
                out += err
            out += b"\r\n"
        out += b"--" + BOUNDARY.encode() + b"--\r\n"
        return self._send_raw(200, bytes(out), "multipart/form-data; boundary=" + BOUNDARY)

    # -- sessions ------------------------------------------------------
    def _sdk_version(self):
        """The header, else the version a WebSocket client offers as the
        subprotocol `X-Daytona-SDK-Version~<ver>`; None without either."""
        v = self.headers.get("X-Daytona-SDK-Version")
        if v:
            return v
        p = _version_subprotocol(self.headers)
        return p[len(VERSION_SUBPROTOCOL):] if p else None

    def _output_mode(self):
        """How session output is shaped for this client (reference §3.4)."""
        v = self._sdk_version()
        if v is not None:
            sv = _semver(v)
            if sv is None:
                return "raw"
            if sv >= (0, 167, 0):
                return "json"
            if sv < (0, 27, 0):
                return "stripped"
            return "raw"
        if (self.headers.get("X-Daytona-Split-Output") or "").lower() == "true":
            return "raw"
        return "stripped"

    def _session(self, sb, rest, q, raw):
        parts = [p for p in rest.split("/") if p]
        if not parts:
            if self.command == "POST":
                try:
                    sid = json.loads(raw or b"{}").get("sessionId")
                except ValueError:
                    sid = None
                if not sid:
                    raise ApiError(400, "sessionId is required")
                if sid == "entrypoint":
                    raise ApiError(400, "session id entrypoint is reserved")
                with self.emulator.lock:
                    if sid in sb.sessions:
                        raise ApiError(409, "session already exists", "CONFLICT")
                    sb.sessions[sid] = Session(sb, sid, self._env(sb, {}))
                return self._send_raw(201)
            return self._json(200, [s.view() for s in list(sb.sessions.values())])
        sid = parts[0]
        s = sb.sessions.get(sid)
        fidelity = self.emulator.faults.fidelity
        if s is None:
            if fidelity and parts[1:] == ["exec"]:
                raise ApiError(500, "session %s not found" % sid, NO_CODE)
            raise ApiError(404, "session not found", "NOT_FOUND")
        if len(parts) == 1:
            if self.command == "GET":
                return self._json(200, s.view())
            if self.command == "DELETE":
                s.kill(self.emulator.faults.kill_grace if fidelity else 0.0)
                sb.sessions.pop(sid, None)
                return self._send_raw(204)
        if len(parts) == 2 and parts[1] == "exec" and self.command == "POST":
            return self._session_exec(sb, s, raw)
        if len(parts) >= 3 and parts[1] == "command":
            c = s.commands.get(parts[2])
            if c is None:
                raise ApiError(404, "command not found", "NOT_FOUND")
            if len(parts) == 3 and self.command == "GET":
                if fidelity and c.racing():
                    with self.emulator.lock:
                        self.emulator.exit_code_races += 1
                    raise ApiError(500, EXIT_CODE_RACE)
                return self._json(200, c.view())
            if len(parts) == 4 and parts[3] == "logs" and self.command == "GET":
                if (self.headers.get("Upgrade") or "").strip().lower() == "websocket":
                    return self._follow_logs(sb, s, c, (q.get("follow") or [""])[0] == "true")
                log = c.log()
                mode = self._output_mode()
                if mode == "json":
                    out, err = _demux(log)
                    self._count_log(len(log) + len(out) + len(err))
                    return self._json(200, {"output": log.decode("utf-8", "replace"),
                                            "stdout": out.decode("utf-8", "replace"),
                                            "stderr": err.decode("utf-8", "replace")})
                data = log if mode == "raw" else _strip(log)
                self._count_log(len(data))
                return self._send_raw(200, data, "text/plain; charset=utf-8")
            if len(parts) == 4 and parts[3] == "input" and self.command == "POST":
                try:
                    data = json.loads(raw or b"{}").get("data")
                except ValueError:
                    data = None
                if not isinstance(data, str):
                    raise ApiError(400, "data is required")
                if c.exit() is not None or not s.send_input(c, data.encode()):
                    raise ApiError(400, "command is not running or takes no input")
                return self._send_raw(204)
        raise ApiError(404, "route not found")

    def _follow_logs(self, sb, s, c, follow):
        """The log as binary frames while it grows, as the daemon streams it:
        raw with markers unless this client gets combined output (§3.4);
        without `follow` what is there so far, then close.  Close 1000 once
        the command has an exit code (its log is whole then) or its session
        ended; a sandbox that dies takes the connection with it."""
        emu = self.emulator
        try:
            f = open(os.path.join(c.host_dir, "output.log"), "rb")
        except FileNotFoundError:
            raise ApiError(404, "command log not found", "NOT_FOUND")
        with f:
            if self.lose:
                return self._cut()
            # Imported here: only the log-follow WebSocket needs wsproto (from
            # the venv); the rest of the emulator runs on a bare python3, as
            # tests/valgrind-runs.sh starts it.
            from ..common.websocket import WebSocket
            ws = WebSocket.accept(self, _version_subprotocol(self.headers))
            if ws is None:
                return
            strip = self._output_mode() == "stripped"
            held = b""   # a marker may be split across two reads
            next_ping = time.monotonic() + emu.ws_ping_interval
            while not ws.closed:
                if sb.deleted or sb.state != "started":
                    return ws.cut()
                ended = (c.exit() is not None or not s.alive()
                         or sb.sessions.get(s.id) is not s)
                if time.monotonic() >= next_ping:
                    ws.ping()
                    next_ping = time.monotonic() + emu.ws_ping_interval
                data = c.clean(f.read())
                if data:
                    if strip:
                        data, held = _strip_held(held + data)
                    if data:
                        self._count_log(len(data))
                    if data and not ws.send(data):
                        return ws.cut()
                    continue
                if ended or not follow:
                    break
                time.sleep(0.02)
            if held:
                ws.send(held)
            ws.close(1000)

    def _count_log(self, n):
        with self.emulator.lock:
            self.emulator.log_bytes_served += n

    def _session_exec(self, sb, s, raw):
        emu = self.emulator
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, "invalid request body")
        cmd = req.get("command")
        if not isinstance(cmd, str) or not cmd.strip():
            raise ApiError(400, "command is required")
        run_async = bool(req.get("runAsync") or req.get("async"))
        c = s.run(cmd, run_async)
        if c is None:
            if emu.faults.fidelity:
                raise ApiError(500, "write |1: broken pipe")
            raise ApiError(400, "failed to write command: the session's shell has exited",
                           "SESSION_ENDED")
        if emu.faults.die_after_output:
            def watch():
                while c.exit() is None and s.alive() and sb.state == "started":
                    if c.log():
                        emu.kill_sandbox(sb, "sandbox crashed (emulated)")
                        return
                    time.sleep(0.01)
            threading.Thread(target=watch, daemon=True).start()
        if run_async:
            return self._json(202, {"cmdId": c.id})
        # Like the daemon: no server timeout, the exit-code file polled.
        while c.exit() is None:
            if not s.alive() or sb.deleted or sb.state != "started":
                raise ApiError(400, "session cancelled: the session's shell has exited",
                               "SESSION_ENDED")
            time.sleep(0.05)
        log = c.log()
        mode = self._output_mode()
        resp = {"cmdId": c.id, "exitCode": c.exit_code}
        if mode == "json":
            out, err = _demux(log)
            resp.update(output=log.decode("utf-8", "replace"), stdout=out.decode("utf-8", "replace"),
                        stderr=err.decode("utf-8", "replace"))
        else:
            resp["output"] = (log if mode == "raw" else _strip(log)).decode("utf-8", "replace")
        return self._json(200, resp)
