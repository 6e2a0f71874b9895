"""The real ./mfsandbox with --backend e2b against the E2B emulator: exit
codes a user (and Metaflow's @retry) depends on, and no sandbox left behind
whatever goes wrong."""
import hashlib
import os
import re
import signal
import socket
import subprocess

import pytest

from mfs_cli import launcher_labels, BINARY, clean_env, mfs


@pytest.fixture
def emu(e2b_emulator):
    yield e2b_emulator
    assert e2b_emulator.live_count() == 0, "a sandbox leaked"
    assert e2b_emulator.violations == []


@pytest.fixture
def env(e2b_env):
    base = {k: v for k, v in clean_env().items() if not k.startswith("E2B_")}
    base.update(e2b_env)
    return base


def run(env, *cmd, flags=(), **kw):
    return mfs("run", "--backend", "e2b", *flags, "--", *cmd, env=env, **kw)


def test_code_upload_env_and_exit_status(emu, env, tmp_path):
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "pkg" / "mod.py").write_text("VALUE = 'from code'\n")
    (code / "main.py").write_text("import pkg.mod\nprint(pkg.mod.VALUE)\n")
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(range(256)) * 4096)
    env = dict(env, API_TOKEN="tok-123")
    r = run(env, "sh", "-c", 'python3 main.py && sha256sum input/data.bin | cut -d" " -f1 && '
                             'echo "$API_TOKEN" && pwd && exit 5',
            flags=["--code", code, "--upload", f"{data}:input/data.bin", "--env", "API_TOKEN"])
    assert r.returncode == 5, r.stderr
    assert r.stdout.splitlines() == ["from code", hashlib.sha256(data.read_bytes()).hexdigest(),
                                     "tok-123", "/home/user"]
    assert emu.created_total == 1


def test_sizes_are_reported_in_one_line_not_ignored(emu, env):
    r = run(env, "true", flags=["--cpu", "4", "--memory", "8192"])
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert all(f in lines[0] for f in ("warning:", "--cpu", "--memory", "template base"))
    # a disk is what the contract refuses: the template decides it
    r = run(env, "true", flags=["--cpu", "4", "--disk", "20"])
    assert r.returncode == 202 and "--disk" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and emu.created_total == 1
    r = run(env, "true", flags=["--memory", "8192", "--image", "big-one"])
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("template big-one") == 1 and len(r.stderr.strip().splitlines()) == 1
    assert run(env, "true").stderr == ""  # no size asked: nothing to say


def test_gpu_is_refused_before_any_request(emu, env):
    r = run(env, "true", flags=["--gpu", "1"])
    assert r.returncode == 202
    assert "--gpu" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert emu.requests == []


def test_bad_key_is_202_and_makes_nothing(emu, env):
    r = run(dict(env, E2B_API_KEY="e2b_0badc0de"), "true")
    assert r.returncode == 202
    assert "E2B_API_KEY" in r.stderr and "0badc0de" not in r.stderr
    assert emu.created_total == 0


def test_key_with_a_line_break_is_202_before_any_request(emu, env):
    """A key read from a file keeps its newline: it went into the X-API-Key
    line as given, ending the head early or adding a header."""
    env["E2B_API_KEY"] += "\r\n"
    r = run(env, "true")
    assert r.returncode == 202, r.stderr
    assert "E2B_API_KEY" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert emu.requests == []


@pytest.mark.parametrize("var, value", [("E2B_API_URL", "{url}\n"), ("E2B_API_URL", "htp://x"),
                                        ("E2B_DOMAIN", "e2b.app\n"),
                                        ("E2B_SANDBOX_URL", "localhost:49983")])
def test_bad_url_or_domain_is_202_before_any_request(emu, env, var, value):
    """A URL with a file's newline failed like a dead service (203, retried
    by @retry), with a warning about removing a sandbox never made."""
    env[var] = value.format(url=env.get("E2B_API_URL", ""))
    r = run(env, "true")
    assert r.returncode == 202, r.stderr
    assert var in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert emu.requests == []


def test_missing_key_is_202_before_any_request(emu, env):
    del env["E2B_API_KEY"]
    r = run(env, "true")
    assert r.returncode == 202
    assert "E2B_API_KEY" in r.stderr
    assert emu.requests == []


def test_timeout_is_204(emu, env):
    r = run(env, "sh", "-c", "echo begin; sleep 30", flags=["--timeout", "3"])
    assert r.returncode == 204, r.stderr
    assert r.stdout == "begin\n"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_run_signals_the_process_and_deletes(emu, env, sig):
    p = subprocess.Popen([str(BINARY), "run", "--backend", "e2b", "--", "sh", "-c",
                          "echo started; sleep 300"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdout.readline() == b"started\n"
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 128 + sig, err
    assert emu.envd_requests("/process.Process/SendSignal")


def test_keep_ls_and_kill(emu, env, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "hello.py").write_text("print('task ran')\n")
    r = run(env, "python3", "hello.py", "step", "start", "--run-id", "77", "--task-id", "5",
            flags=["--keep", "--code", code])
    assert r.returncode == 0, r.stderr
    m = re.search(r"kept e2b sandbox (\S+)", r.stderr)
    assert m, r.stderr
    sid = m.group(1)
    assert emu.live_count() == 1

    ls = mfs("ls", "--backend", "e2b", env=env)
    assert ls.returncode == 0, ls.stderr
    row = [line for line in ls.stdout.splitlines() if line.startswith(sid)]
    assert len(row) == 1 and "hello/77/start/5" in row[0]

    k = mfs("kill", "--backend", "e2b", "--pathspec", "hello/77", env=env)
    assert k.returncode == 0, k.stderr
    assert sid in k.stdout
    again = mfs("kill", "--backend", "e2b", sid, env=env)
    assert again.returncode == 202


def ours(emu, **labels):
    meta = {"mfsandbox": "1"}
    meta.update({"mfsandbox." + k: v for k, v in labels.items()})
    return emu.create("base", 600, meta, {}, True)


def test_ls_pages_through_metadata_and_shows_only_ours(emu, env):
    emu.faults.list_page = 2  # E2B pages by at most 100; three pages here
    mine = {ours(emu, flow="F", run="1", step="s", task=str(i)).id for i in range(5)}
    other = emu.create("base", 600, {"someone": "else"}, {}, True)
    ls = mfs("ls", "--backend", "e2b", env=env)
    assert ls.returncode == 0, ls.stderr
    listed = {line.split()[0] for line in ls.stdout.splitlines()[1:] if line.strip()}
    assert listed == mine, ls.stdout
    assert all("mfsandbox.e2b.nonce=" not in q["query"].get("metadata", "")
               for q in emu.requests)
    assert [q["query"]["metadata"] for q in emu.requests if q["path"] == "/v2/sandboxes"] \
        == ["mfsandbox=1"] * 3
    for sb in list(emu.live()):
        emu.remove(sb.id)
    assert other.id not in listed


def test_kill_stale_takes_orphans_and_expired_ones_only(emu, env):
    host = socket.gethostname()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a launcher pid that no longer exists
    orphan = ours(emu, host=host, timeout="3600", **launcher_labels(gone.pid))
    expired = ours(emu, host=host, pid=str(os.getpid()), timeout="10")
    expired.started -= 60  # older than its own timeout label
    live = ours(emu, host=host, timeout="3600", **launcher_labels(os.getpid()))
    # Same hostname, another machine: its pid means nothing here.
    elsewhere = ours(emu, host=host, timeout="3600",
                     **dict(launcher_labels(gone.pid), machine="0" * 32))
    foreign = emu.create("base", 600, {"mfsandbox.pid": str(gone.pid),
                                       "mfsandbox.host": host}, {}, True)
    k = mfs("kill", "--backend", "e2b", "--stale", env=env)
    assert k.returncode == 0, k.stderr
    assert {s.id for s in emu.live()} == {live.id, elsewhere.id, foreign.id}
    assert orphan.id in k.stdout and expired.id in k.stdout
    for s in (live, elsewhere, foreign):
        emu.remove(s.id)
