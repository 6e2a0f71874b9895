"""`mfsandbox run` end to end on the real local (bubblewrap) backend: what a
Metaflow task sees.  Statuses, streams kept apart and byte-exact, env/upload/
code propagation, argv untouched, timeout, signals leaving nothing behind,
--keep with ls/kill.  Every test gets its own state dir under /var/tmp (the
local backend refuses a work dir under /tmp) and checks it is empty after."""
import hashlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import uuid

import pytest

from fault_matrix import left_processes as procs_with
from mfs_cli import BINARY, clean_env, launcher_labels, mfs


@pytest.fixture
def sandbox_env(tmp_path):
    state = pathlib.Path(tempfile.mkdtemp(prefix="mfs-cli-test-", dir="/var/tmp"))
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = clean_env(MFSANDBOX_LOCAL_STATE_DIR=str(state), TMPDIR=str(tmpdir),
                    METAFLOW_SANDBOX_BACKEND="local")
    yield env
    left = sorted(os.listdir(state))
    temp_left = sorted(os.listdir(tmpdir))
    shutil.rmtree(state, ignore_errors=True)
    assert left == [], f"sandboxes left behind: {left}"
    assert temp_left == [], f"temp files left behind: {temp_left}"


def run(env, *cmd, flags=(), **kw):
    return mfs("run", *flags, "--", *cmd, env=env, **kw)


@pytest.mark.parametrize("cmd,status", [
    (["true"], 0),
    (["false"], 1),
    (["sh", "-c", "exit 42"], 42),
    (["sh", "-c", "kill -KILL $$"], 137),
    (["sh", "-c", "kill -TERM $$"], 143),
    (["sh", "-c", "kill -SEGV $$"], 139),
])
def test_exit_status_is_the_commands(sandbox_env, cmd, status):
    r = run(sandbox_env, *cmd)
    assert r.returncode == status, r.stderr
    assert r.stderr == ""


def test_local_run_loads_neither_libcurl_nor_libarchive(sandbox_env):
    """They are dlopen()ed on first use only (src/lazy_*.c): mapping them cost
    a local run several ms and MB.  ld.so's own trace (LD_DEBUG=files) names
    every library mfsandbox loads; the sandboxed command gets a clean
    environment, so the trace is mfsandbox's alone."""
    r = run(dict(sandbox_env, LD_DEBUG="files"), "true")
    assert r.returncode == 0, r.stderr
    loaded = set(re.findall(r"file=(\S+) \[", r.stderr))
    assert "libc.so.6" in loaded  # the trace works here
    assert not [lib for lib in loaded if "curl" in lib or "archive" in lib], loaded


def test_missing_command_is_127_not_an_executor_error(sandbox_env):
    r = run(sandbox_env, "no-such-command-xyz")
    assert r.returncode == 127


def test_stdout_and_stderr_kept_apart(sandbox_env):
    r = run(sandbox_env, "sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2")
    assert r.returncode == 0
    assert r.stdout == "out1\nout2\n"
    assert r.stderr == "err1\nerr2\n"


def test_binary_output_and_last_line_without_newline(sandbox_env):
    r = run(sandbox_env, "sh", "-c", r"printf 'a\000b\377c\r\nlast'; printf '\000e\376' >&2", text=False)
    assert r.returncode == 0
    assert r.stdout == b"a\x00b\xffc\r\nlast"
    assert r.stderr == b"\x00e\xfe"


def test_100_mb_of_output_checksum_matches(sandbox_env):
    n = 100 * 1024 * 1024
    r = run(sandbox_env, "sh", "-c",
            f"head -c {n} /dev/urandom > /tmp/d && sha256sum /tmp/d >&2 && cat /tmp/d", text=False,
            timeout=300)
    assert r.returncode == 0, r.stderr[-300:]
    assert len(r.stdout) == n
    assert r.stderr.split()[0].decode() == hashlib.sha256(r.stdout).hexdigest()


def test_argv_passes_through_unchanged(sandbox_env):
    args = ["with space", "it's", '"dq"', "$HOME", "`id`", "$(id)", "a\nb", "tab\t", "*", "",
            "caf\u00e9 \u2713", "--backend", "--", "\\", "x=$PATH;rm -rf /"]
    cmd = ["sh", "-c", 'printf "%s\\0" "$@"', "sh", *args]
    r = subprocess.run([str(BINARY), "run", "--", *cmd], capture_output=True, env=sandbox_env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"".join(a.encode() + b"\0" for a in args)
    # raw non-UTF-8 bytes too
    raw = b"\xff\xfe-raw"
    r = subprocess.run([BINARY, b"run", b"--", b"printf", b"%s", raw], capture_output=True,
                       env=sandbox_env)
    assert r.stdout == raw


def test_env_and_env_file_reach_the_command(sandbox_env, tmp_path):
    envfile = tmp_path / "vars"
    envfile.write_text("FROM_FILE='file value'\nOVERRIDE=file\n")
    env = dict(sandbox_env, HOST_ONLY="not passed", COPIED="copied value")
    r = run(env, "sh", "-c", 'printf "%s|%s|%s|%s|%s" "$FROM_FILE" "$OVERRIDE" "$SPACED" "$COPIED" "${HOST_ONLY-unset}"',
            flags=["--env-file", envfile, "--env", "OVERRIDE=flag", "--env", "SPACED=a  b $x",
                   "--env", "COPIED"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "file value|flag|a  b $x|copied value|unset"


def test_uploads_and_code_land_in_the_work_dir(sandbox_env, tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(range(256)) * 10)
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "pkg" / "mod.py").write_text("VALUE = 'from code'\n")
    (code / "main.py").write_text("import pkg.mod\nprint(pkg.mod.VALUE)\n")
    (code / "link.py").symlink_to("main.py")
    script = ("python3 link.py && sha256sum input/data.bin | cut -d' ' -f1 && "
              "test ! -e .mfs-code.tar && pwd")
    r = run(sandbox_env, "sh", "-c", script,
            flags=["--upload", f"{data}:input/data.bin", "--code", code])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "from code"
    assert lines[1] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert lines[2].startswith(sandbox_env["MFSANDBOX_LOCAL_STATE_DIR"])


def test_code_tarball_is_unpacked(sandbox_env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("from tarball\n")
    tarball = tmp_path / "code.tgz"
    subprocess.run(["tar", "-czf", tarball, "-C", src, "."], check=True)
    r = run(sandbox_env, "cat", "hello.txt", flags=["--code", tarball])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from tarball\n"


def test_bad_code_tarball_is_an_infrastructure_error(sandbox_env, tmp_path):
    bogus = tmp_path / "not-a-tarball"
    bogus.write_text("hello")
    r = run(sandbox_env, "true", flags=["--code", bogus])
    assert r.returncode == 203
    assert "unpacking --code in the sandbox failed" in r.stderr.splitlines()[-1]


def test_missing_upload_is_202_and_creates_nothing(sandbox_env):
    r = run(sandbox_env, "true", flags=["--upload", "/nonexistent/f:x"])
    assert r.returncode == 202
    assert r.stderr == "mfsandbox: --upload /nonexistent/f: No such file or directory\n"


def test_timeout_is_204(sandbox_env):
    # 3 s, not 1: under ASan on a loaded machine the sandbox alone once took
    # more than a second, and "before" never ran (make asan-ci in CI).
    r = run(sandbox_env, "sh", "-c", "echo before; sleep 60; echo after", flags=["--timeout", "3"])
    assert r.returncode == 204
    assert r.stdout == "before\n"
    assert "--timeout 3s reached" in r.stderr


def test_refused_option_is_202(sandbox_env):
    r = run(sandbox_env, "true", flags=["--image", "python:3.11"])
    assert r.returncode == 202
    assert len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_mid_run_leaves_nothing_behind(sandbox_env, sig):
    marker = f"mfs-marker-{uuid.uuid4().hex}"
    p = subprocess.Popen(
        [str(BINARY), "run", "--", "sh", "-c", f"echo started; sleep 300; : {marker}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=sandbox_env,
    )
    assert p.stdout.readline() == b"started\n"
    assert procs_with(marker), "the command should be running"
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 128 + sig, err
    assert procs_with(marker) == []
    # the fixture checks: no sandbox dir, no temp file


def test_keep_then_ls_and_kill(sandbox_env, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "hello.py").write_text("print('task ran')\n")
    cmd = ["python3", "hello.py", "--quiet", "--metadata", "local", "step", "start",
           "--run-id", "77", "--task-id", "5", "--retry-count", "1"]
    r = run(sandbox_env, *cmd, flags=["--keep", "--code", code])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "task ran\n"
    err = r.stderr.splitlines()
    assert re.match(r"mfsandbox: hello/77/start/5 \(attempt 1\) in local sandbox \S+$", err[0])
    m = re.search(r"kept local sandbox (\S+) \(--keep\)", r.stderr)
    assert m, r.stderr
    sid = m.group(1)
    assert f"mfsandbox kill {sid}" in r.stderr or f"mfsandbox kill --backend local {sid}" in r.stderr

    ls = mfs("ls", "--backend", "local", env=sandbox_env)
    assert ls.returncode == 0, ls.stderr
    row = [line for line in ls.stdout.splitlines() if line.startswith(sid)]
    assert len(row) == 1
    assert row[0].split()[1:4] == ["local", "hello/77/start/5", "1"]

    k = mfs("kill", "--backend", "local", sid, env=sandbox_env)
    assert k.returncode == 0, k.stderr
    assert k.stdout == f"killed {sid} (local)\n"
    assert sid not in mfs("ls", env=sandbox_env).stdout
    again = mfs("kill", "--backend", "local", sid, env=sandbox_env)
    assert again.returncode == 202
    assert "no sandbox with id" in again.stderr


def test_quiet_suppresses_the_header(sandbox_env, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "f.py").write_text("")
    cmd = ["python3", "f.py", "step", "a", "--run-id", "1", "--task-id", "2"]
    assert "in local sandbox" in run(sandbox_env, *cmd, flags=["--code", code]).stderr
    assert run(sandbox_env, *cmd, flags=["--code", code, "--quiet"]).stderr == ""


def test_kill_stale_removes_sandboxes_whose_launcher_is_gone(sandbox_env):
    def keep():
        r = run(sandbox_env, "python3", "-c", "pass", flags=["--keep", "--quiet"])
        assert r.returncode == 0
        return re.search(r"kept local sandbox (\S+)", r.stderr).group(1)

    # the mfsandbox that created them has exited: both are stale;
    # plain commands carry no flow labels, so no pathspec matches them
    a = keep()
    b = keep()
    k = mfs("kill", "--pathspec", "NoSuchFlow/1", env=sandbox_env)
    assert k.returncode == 0 and k.stdout == ""
    k = mfs("kill", "--stale", env=sandbox_env)
    assert k.returncode == 0, k.stderr
    assert sorted(k.stdout.splitlines()) == sorted([f"killed {a} (local)", f"killed {b} (local)"])


def test_kill_by_pathspec_matches_labels(sandbox_env, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "MyFlow.py").write_text("")
    ids = []
    for step in ("start", "end"):
        r = run(sandbox_env, "python3", "MyFlow.py", "step", step, "--run-id", "9", "--task-id", "1",
                flags=["--keep", "--quiet", "--code", code])
        ids.append(re.search(r"kept local sandbox (\S+)", r.stderr).group(1))
    k = mfs("kill", "--pathspec", "MyFlow/9/start", env=sandbox_env)
    assert k.stdout == f"killed {ids[0]} (local)\n"
    k = mfs("kill", "--pathspec", "MyFlow/9", env=sandbox_env)
    assert k.stdout == f"killed {ids[1]} (local)\n"


def test_kill_stale_spares_live_sandboxes_and_takes_expired_ones(sandbox_env):
    # A sandbox whose launcher is still running and whose timeout has not
    # passed is not stale: `kill --stale` from elsewhere leaves it alone.
    marker = f"mfs-marker-{uuid.uuid4().hex}"
    p = subprocess.Popen(
        [str(BINARY), "run", "--", "sh", "-c", f"echo started; sleep 300; : {marker}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=sandbox_env,
    )
    try:
        assert p.stdout.readline() == b"started\n"
        assert "running" in mfs("ls", "--backend", "local", env=sandbox_env).stdout
        k = mfs("kill", "--stale", env=sandbox_env)
        assert k.returncode == 0 and k.stdout == "", k.stderr
        assert procs_with(marker), "a live sandbox must survive kill --stale"
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)

    # Older than its own timeout label: stale even though its launcher lives.
    # The launcher here is this test process (the state file's pid label is
    # pointed at it), so only the age can make the sandbox stale.
    r = run(sandbox_env, "true", flags=["--keep", "--quiet", "--timeout", "5"])
    sid = re.search(r"kept local sandbox (\S+)", r.stderr).group(1)
    state = pathlib.Path(sandbox_env["MFSANDBOX_LOCAL_STATE_DIR"]) / f"{sid}.state"

    def rewrite(created):
        lines = []
        for line in state.read_text().splitlines():
            key = line.split("=", 1)[0]
            if key == "label.mfsandbox.pid":
                line = f"{key}={os.getpid()}"
            elif key == "label.mfsandbox.pidstart":  # this process, not a reused pid
                line = f"{key}={launcher_labels(os.getpid())['pidstart']}"
            elif key == "created":
                line = f"{key}={created}"
            lines.append(line)
        state.write_text("\n".join(lines) + "\n")

    created = int(re.search(r"^created=(\d+)$", state.read_text(), re.M).group(1))
    rewrite(created)
    k = mfs("kill", "--stale", env=sandbox_env)
    assert k.returncode == 0 and k.stdout == "", k.stderr
    rewrite(created - 3600)  # the timeout label is 5 + 60 s
    k = mfs("kill", "--stale", env=sandbox_env)
    assert k.returncode == 0, k.stderr
    assert k.stdout == f"killed {sid} (local)\n"
