"""The official e2b SDK (pinned in requirements-dev.txt) drives the emulator:
whatever the SDK rejects is an emulator bug, so this is what makes the
emulator's answers trustworthy for the C backend's tests."""
import io
import time

import pytest

e2b = pytest.importorskip("e2b")


@pytest.fixture
def sdk_env(e2b_env, monkeypatch):
    for k, v in e2b_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    return e2b_env


def test_create_run_stream_files_kill(sdk_env, e2b_emulator):
    sbx = e2b.Sandbox.create(timeout=120, metadata={"mfsandbox": "1", "who": "fidelity"},
                             envs={"GREETING": "hello"})
    assert e2b_emulator.live_count() == 1
    out, err = [], []
    r = sbx.commands.run("echo $GREETING; echo oops >&2; printf 'a\\nb\\n'",
                         on_stdout=out.append, on_stderr=err.append)
    assert r.exit_code == 0
    assert r.stdout == "hello\na\nb\n"
    assert "".join(out) == "hello\na\nb\n"
    assert "".join(err) == "oops\n"

    with pytest.raises(e2b.CommandExitException) as ei:
        sbx.commands.run("echo partial; exit 7")
    assert ei.value.exit_code == 7
    assert ei.value.stdout == "partial\n"

    sbx.files.write("/home/user/dir/note.txt", "from the sdk\n")             # multipart
    sbx.files.write("/tmp/blob.bin", io.BytesIO(bytes(range(256)) * 300))    # octet-stream
    assert sbx.files.read("/home/user/dir/note.txt") == "from the sdk\n"
    assert sbx.files.read("/tmp/blob.bin", format="bytes") == bytes(range(256)) * 300
    r = sbx.commands.run("cat dir/note.txt; wc -c < /tmp/blob.bin", cwd="/home/user")
    assert r.stdout == "from the sdk\n76800\n"

    listed = list(e2b.Sandbox.list(query=e2b.SandboxQuery(metadata={"who": "fidelity"}))
                  .next_items())
    assert [s.sandbox_id for s in listed] == [sbx.sandbox_id]
    assert listed[0].metadata["mfsandbox"] == "1"
    assert list(e2b.Sandbox.list(query=e2b.SandboxQuery(metadata={"who": "other"}))
                .next_items()) == []

    sbx.kill()
    assert e2b_emulator.live_count() == 0
    assert e2b_emulator.violations == []


def test_background_command_killed_by_signal(sdk_env, e2b_emulator):
    sbx = e2b.Sandbox.create(timeout=60)
    try:
        h = sbx.commands.run("echo started; sleep 600", background=True)
        assert h.pid
        assert sbx.commands.kill(h.pid) is True
        with pytest.raises(e2b.CommandExitException) as ei:
            h.wait()
        assert ei.value.exit_code == -1
        assert sbx.commands.kill(h.pid) is False  # gone: not_found
    finally:
        sbx.kill()
    assert e2b_emulator.violations == []


def test_connect_follows_a_running_command_then_not_found(sdk_env, e2b_emulator):
    """The SDK's commands.connect(pid): a start event, then only what the
    command prints from then on (envd replays nothing), then its exit;
    once it ended the pid is unknown."""
    sbx = e2b.Sandbox.create(timeout=60)
    try:
        h = sbx.commands.run("echo before; sleep 1.5; echo after; exit 3", background=True)
        time.sleep(0.5)  # "before" is out by then
        follow = sbx.commands.connect(h.pid, timeout=30)
        assert follow.pid == h.pid
        with pytest.raises(e2b.CommandExitException) as ei:
            follow.wait()
        assert ei.value.exit_code == 3
        assert ei.value.stdout == "after\n"
        h.disconnect()
        with pytest.raises(e2b.NotFoundException):
            sbx.commands.connect(h.pid).wait()
    finally:
        sbx.kill()
    assert e2b_emulator.violations == []


def test_old_envd_gets_multipart(sdk_env, e2b_emulator):
    e2b_emulator.envd_version = "0.4.3"
    sbx = e2b.Sandbox.create(timeout=60)
    try:
        sbx.files.write("/home/user/old.txt", io.BytesIO(b"old envd\n"))
        assert sbx.files.read("/home/user/old.txt") == "old envd\n"
        ups = [r for r in e2b_emulator.envd_requests("/files") if r["method"] == "POST"]
        assert ups and all(r["headers"]["content-type"].startswith("multipart/form-data")
                           for r in ups)
    finally:
        sbx.kill()
    assert e2b_emulator.violations == []


def test_bad_api_key_is_an_authentication_error(sdk_env, monkeypatch, e2b_emulator):
    monkeypatch.setenv("E2B_API_KEY", "e2b_" + "bad0" * 10)
    with pytest.raises(e2b.AuthenticationException):
        e2b.Sandbox.create(timeout=60)
    assert e2b_emulator.live_count() == 0


def test_killed_sandbox_reports_not_found(sdk_env, e2b_emulator):
    sbx = e2b.Sandbox.create(timeout=60)
    e2b_emulator.remove(sbx.sandbox_id)
    with pytest.raises(e2b.SandboxException):
        sbx.commands.run("true")
    assert e2b.Sandbox.kill(sbx.sandbox_id) is False


def test_debug_mode_talks_to_envd_only(e2b_env, monkeypatch, e2b_emulator):
    monkeypatch.setenv("E2B_DEBUG", "true")
    monkeypatch.setenv("E2B_SANDBOX_URL", e2b_env["E2B_SANDBOX_URL"])
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    e2b_emulator.add_debug_sandbox()
    sbx = e2b.Sandbox.create()
    assert sbx.sandbox_id == "debug_sandbox_id"
    assert sbx.commands.run("echo dbg").stdout == "dbg\n"
    assert [r for r in e2b_emulator.requests if not r["envd"]] == []
