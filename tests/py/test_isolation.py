"""What a step's code can reach from inside a local sandbox, tried as an
attacker would: the launcher's home, /root, /etc/shadow, another sandbox's
files, listening Unix sockets in /tmp, /var/tmp and /run, writes anywhere
outside its own directories, host processes, the network with --network
none.  Every attempt must fail: the probe script inside reports each one it
managed, and the test fails on any.  Then what must keep working: --ro-bind,
--bind, a venv's interpreter, and the flags' errors (exit 202)."""
import ctypes
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid

import pytest

from mfs_cli import clean_env, mfs

MARK = "mfs-iso-" + uuid.uuid4().hex[:10]

# Runs inside the sandbox with the system python3: one JSON line saying
# which attempts succeeded.  argv[1] is a JSON object of targets.
PROBE = r'''
import json, os, socket, sys
t = json.loads(sys.argv[1])
got = {}

def attempt(name, fn):
    try:
        r = fn()
        if r is not False:
            got[name] = repr(r)[:200]
    except Exception:
        pass

for p in t["read"]:
    attempt("read " + p, lambda p=p: open(p, "rb").read() or False)
for p in t["list"]:
    attempt("list " + p, lambda p=p: os.listdir(p) or False)
for p in t["write"]:
    def w(p=p):
        with open(p, "w") as f:
            f.write("x")
    attempt("write " + p, w)
for p in t["sockets"]:
    def c(p=p):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(3)
        s.connect(p)
        return True
    attempt("unix " + p, c)
if t.get("abstract"):
    def a():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(3)
        s.connect("\0" + t["abstract"])
        return True
    attempt("abstract @" + t["abstract"], a)
if t.get("tcp"):
    def tc():
        socket.create_connection(("127.0.0.1", t["tcp"]), timeout=3)
        return True
    attempt("tcp 127.0.0.1:%d" % t["tcp"], tc)
seen = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            seen.append(open("/proc/%s/cmdline" % pid, "rb").read())
        except OSError:
            pass
# the marker process's own argv; ours (and bwrap's) hold only the marker
if any(b"time.sleep(120)\0" + t["marker"].encode() in c for c in seen):
    got["host pid"] = "a host process is visible"
print(json.dumps(got))
'''


@pytest.fixture
def env():
    state = pathlib.Path(tempfile.mkdtemp(prefix="mfs-iso-test-", dir="/var/tmp"))
    e = clean_env(MFSANDBOX_LOCAL_STATE_DIR=str(state), METAFLOW_SANDBOX_BACKEND="local")
    yield e
    left = sorted(os.listdir(state))
    shutil.rmtree(state, ignore_errors=True)
    assert left == [], f"sandboxes left behind: {left}"


@pytest.fixture
def planted(tmp_path):
    """Secrets and listening sockets where a host keeps them; removed after."""
    made, servers = [], []

    def plant_file(path, text="planted secret " + MARK):
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        made.append(path)
        return str(path)

    def listen(path):
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.listen(8)
        s.settimeout(0.2)
        servers.append((s, path))
        return path

    home = pathlib.Path(tempfile.mkdtemp(prefix="mfs-iso-home-", dir="/var/tmp"))
    targets = {"home": str(home), "files": [], "sockets": []}
    targets["files"].append(plant_file(home / ".aws" / "credentials"))
    if os.access("/root", os.W_OK):
        targets["files"].append(plant_file(f"/root/.{MARK}"))
    run_dir = "/run" if os.access("/run", os.W_OK) else os.environ.get("XDG_RUNTIME_DIR")
    for d in ("/tmp", "/var/tmp", run_dir):
        if d:
            targets["sockets"].append(listen(f"{d}/{MARK}.sock"))
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + MARK)
    abstract.listen(8)
    targets["abstract"] = MARK
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    targets["tcp"] = tcp.getsockname()[1]
    marker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", MARK])
    yield targets
    marker.kill()
    marker.wait()
    for s, path in servers:
        s.close()
        os.unlink(path)
    abstract.close()
    tcp.close()
    for p in made:
        p.unlink()
    shutil.rmtree(home, ignore_errors=True)


def probe(env, targets, flags=(), home=None):
    # a PATH without interpreters under a home: their prefixes would be
    # shown (as mount points under /root), which is not what is tested here
    e = dict(env, PATH="/usr/bin:/bin")
    if home:
        e["HOME"] = home
    r = mfs("run", *flags, "--", "/usr/bin/python3", "-c", PROBE, json.dumps(targets), env=e)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def keep_other_sandbox(env):
    """A kept sandbox holding a file: (its id, the file's host path)."""
    r = mfs("run", "--keep", "--quiet", "--", "sh", "-c", f"echo {MARK} > secret", env=env)
    assert r.returncode == 0, r.stderr
    sid = re.search(r"kept local sandbox (\S+)", r.stderr).group(1)
    workdir = re.search(r"work dir (\S+)", r.stderr).group(1)
    return sid, os.path.join(workdir, "secret")


def attack_targets(planted, other_file, state_root):
    writes = ["/usr/" + MARK, "/etc/" + MARK, "/" + MARK, "/var/" + MARK,
              os.path.join(state_root, MARK), os.path.join(os.path.dirname(other_file), MARK),
              os.path.join(planted["home"], MARK)]
    return {
        "read": planted["files"] + ["/etc/shadow", "/etc/gshadow", other_file],
        "list": ["/root", planted["home"], "/home", "/run", "/var/run",
                 os.path.dirname(other_file)],
        "write": writes,
        "sockets": planted["sockets"],
        "abstract": planted["abstract"],
        "tcp": planted["tcp"],
        "marker": MARK,
    }


def landlock_abi():
    """The kernel's Landlock ABI version, 0 without Landlock."""
    libc = ctypes.CDLL(None, use_errno=True)
    v = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))  # create_ruleset
    return max(v, 0)


def test_abstract_sockets_scope_is_said(env):
    """`mfsandbox backends` says whether a --network host sandbox reaches the
    host's abstract sockets, as the kernel allows."""
    r = mfs("backends", env=env)
    want = "out of reach" if landlock_abi() >= 6 else "reachable with --network host"
    assert "abstract Unix sockets of the host: " + want in r.stdout, r.stdout


def test_own_abstract_sockets_still_work(env):
    """The scope keeps the host's sockets out, not the command's own."""
    code = ("import socket\ns = socket.socket(socket.AF_UNIX); s.bind('\\0own'); s.listen(1)\n"
            "c = socket.socket(socket.AF_UNIX); c.connect('\\0own'); print('ok')")
    r = mfs("run", "--", "/usr/bin/python3", "-c", code, env=env)
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr


@pytest.mark.parametrize("network", ["none", "host"])
def test_every_attack_from_inside_fails(env, planted, network):
    sid, other_file = keep_other_sandbox(env)
    try:
        state_root = env["MFSANDBOX_LOCAL_STATE_DIR"]
        targets = attack_targets(planted, other_file, state_root)
        if network == "host":
            # the host's network namespace is the policy here: loopback TCP
            # is reachable by design (docs/security.md); abstract sockets
            # only where Landlock cannot scope them out
            targets.pop("tcp")
            if landlock_abi() < 6:
                targets.pop("abstract")
        # the launcher's home: a planted one, and the real one (/root for root)
        home = planted["home"] if network == "none" else None
        got = probe(env, targets, flags=["--network", network], home=home)
        assert got == {}, f"reached from inside a --network {network} sandbox: {got}"
        for w in targets["write"]:
            assert not os.path.exists(w), f"{w} was written from inside"
        assert pathlib.Path(other_file).read_text() == MARK + "\n"
    finally:
        assert mfs("kill", "--backend", "local", sid, env=env).returncode == 0


def test_the_probe_can_see_what_it_is_given(env, planted, tmp_path):
    """The probe is not blind: the same attempts succeed outside a sandbox,
    and a secret shown with --ro-bind is read."""
    targets = {"read": [planted["files"][0]], "list": [], "write": [],
               "sockets": planted["sockets"], "abstract": planted["abstract"],
               "tcp": planted["tcp"], "marker": MARK}
    r = subprocess.run(["/usr/bin/python3", "-c", PROBE, json.dumps(targets)],
                       capture_output=True, text=True, timeout=60)
    outside = json.loads(r.stdout)
    assert set(outside) == {"read " + planted["files"][0], "host pid", "tcp 127.0.0.1:%d" % planted["tcp"],
                            "abstract @" + MARK} | {"unix " + s for s in planted["sockets"]}
    got = probe(env, dict(targets, sockets=[], abstract=None, tcp=None),
                flags=["--ro-bind", planted["files"][0]])
    assert list(got) == ["read " + planted["files"][0]]


def test_ro_bind_and_bind_show_host_paths(env, tmp_path):
    ro = pathlib.Path(tempfile.mkdtemp(prefix="mfs-iso-ro-", dir="/var/tmp"))
    rw = pathlib.Path(tempfile.mkdtemp(prefix="mfs-iso-rw-", dir="/var/tmp"))
    try:
        (ro / "in.txt").write_text("input\n")
        r = mfs("run", "--ro-bind", f"{ro}:/data/in", "--bind", f"{rw}:/data/out", "--",
                "sh", "-c", "cat /data/in/in.txt; touch /data/in/x 2>/dev/null && echo wrote-ro; "
                "echo result > /data/out/r.txt", env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "input\n"
        assert (rw / "r.txt").read_text() == "result\n"
        assert sorted(os.listdir(ro)) == ["in.txt"]
        # HOST alone: shown at the same path
        r = mfs("run", "--ro-bind", str(ro), "--", "cat", f"{ro}/in.txt", env=env)
        assert (r.returncode, r.stdout) == (0, "input\n"), r.stderr
    finally:
        shutil.rmtree(ro)
        shutil.rmtree(rw)


def test_a_venv_interpreter_still_runs(env, tmp_path):
    venv = pathlib.Path(tempfile.mkdtemp(prefix="mfs-iso-venv-", dir="/var/tmp"))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                       timeout=120)
        py = venv / "bin" / "python"
        code = "import sys, json; print(sys.prefix, sys.base_prefix)"
        want = subprocess.run([str(py), "-c", code], capture_output=True, text=True).stdout
        r = mfs("run", "--", str(py), "-c", code, env=env)
        assert (r.returncode, r.stdout) == (0, want), r.stderr
        # the test suite's own interpreter (a venv too), as Metaflow names it
        r = mfs("run", "--", sys.executable, "-c", "import metaflow, sys; print(sys.prefix)", env=env)
        assert (r.returncode, r.stdout) == (0, sys.prefix + "\n"), r.stderr
    finally:
        shutil.rmtree(venv)


@pytest.mark.parametrize("flag,value,says", [
    ("--ro-bind", "relative/path", "both absolute"),
    ("--bind", "/etc:rel", "both absolute"),
    ("--bind", "/etc:/", "DEST not /"),
    ("--ro-bind", "/etc/../root", "without . or .."),
    ("--ro-bind", "/no/such/" + MARK, "it must exist"),
])
def test_bad_bind_is_one_line_exit_202(env, flag, value, says):
    r = mfs("run", flag, value, "--", "true", env=env)
    assert r.returncode == 202
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("mfsandbox: ")
    assert says in r.stderr


def test_bind_is_refused_by_a_remote_backend(env):
    r = mfs("run", "--backend", "e2b", "--ro-bind", "/etc", "--dry-run", "--", "true", env=env)
    assert r.returncode == 202
    assert "--ro-bind/--bind" in r.stderr and r.stderr.count("\n") == 1


def test_binds_show_in_dry_run_and_backends(env):
    r = mfs("run", "--dry-run", "--ro-bind", "/etc/hostname:/in/h", "--bind", "/var/tmp:/scratch",
            "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    assert "/etc/hostname -> /in/h (read-only)" in r.stdout
    assert "/var/tmp -> /scratch (writable)" in r.stdout
    b = mfs("backends", env=env)
    local = [line for line in b.stdout.splitlines() if line.startswith("local")][0]
    assert "filesystem: read-only /usr" in local and "--ro-bind/--bind" in local
