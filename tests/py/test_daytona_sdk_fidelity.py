"""The official `daytona` SDK (PyPI) drives the emulator: create, exec,
session exec with logs, upload, download, delete.  Whatever the SDK rejects
is a bug in the emulator, so this is what keeps the emulator honest for the
C backend's tests."""
import time

import pytest

daytona = pytest.importorskip("daytona")


@pytest.fixture
def client(daytona_env, monkeypatch):
    for k, v in daytona_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DAYTONA_TARGET", raising=False)
    return daytona.Daytona()


def test_sdk_lifecycle_exec_files_sessions(client, daytona_emulator):
    sb = client.create(daytona.CreateSandboxFromSnapshotParams(
        labels={"mfsandbox": "1", "mfsandbox.step": "start"}, auto_stop_interval=5,
        auto_delete_interval=0))
    assert sb.state == daytona.SandboxState.STARTED
    assert daytona_emulator.live_count() == 1

    r = sb.process.exec("echo out; echo err >&2; exit 3", env={"GREETING": "hi"})
    assert r.exit_code == 3
    assert "out" in r.result and "err" in r.result
    r = sb.process.exec('echo "$GREETING from $(pwd)"', cwd="/tmp", env={"GREETING": "hi"})
    assert (r.exit_code, r.result) == (0, "hi from /tmp\n")

    sb.fs.upload_file(b"print('uploaded ran')\n", "/home/daytona/job/run.py")
    assert sb.fs.download_file("/home/daytona/job/run.py") == b"print('uploaded ran')\n"
    with pytest.raises(daytona.DaytonaError):
        sb.fs.download_file("/home/daytona/no-such-file")

    sb.process.create_session("s1")
    resp = sb.process.execute_session_command("s1", daytona.SessionExecuteRequest(
        command="python3 job/run.py; echo oops >&2; sleep 0.2; exit 5", run_async=True))
    cmd_id = resp.cmd_id
    for _ in range(200):
        cmd = sb.process.get_session_command("s1", cmd_id)
        if cmd.exit_code is not None:
            break
        time.sleep(0.05)
    assert cmd.exit_code == 5
    logs = sb.process.get_session_command_logs("s1", cmd_id)
    assert logs.stdout == "uploaded ran\n"
    assert logs.stderr == "oops\n"
    sync = sb.process.execute_session_command("s1", daytona.SessionExecuteRequest(
        command="echo sync"))
    assert (sync.exit_code, sync.stdout) == (0, "sync\n")
    assert [c.id for c in sb.process.get_session("s1").commands] == [cmd_id, sync.cmd_id]
    sb.process.delete_session("s1")

    found = client.list(daytona.ListSandboxesQuery(labels={"mfsandbox.step": "start"}))
    assert [s.id for s in found] == [sb.id]
    assert list(client.list(daytona.ListSandboxesQuery(labels={"mfsandbox.step": "x"}))) == []

    sb.delete()
    assert daytona_emulator.live_count() == 0


def test_sdk_sees_validation_and_start_failure(client, daytona_emulator):
    api = pytest.importorskip("daytona_api_client")
    with pytest.raises(api.exceptions.BadRequestException) as e:
        client._sandbox_api.create_sandbox(api.CreateSandbox(snapshot="daytona-small", cpu=2))
    assert "Cannot specify Sandbox resources" in e.value.body
    assert daytona_emulator.live_count() == 0
    daytona_emulator.faults.create_error = "no capacity in region"
    with pytest.raises(daytona.DaytonaError, match="no capacity in region"):
        client.create()
    # the failed sandbox exists until someone deletes it, as in the cloud
    (failed,) = daytona_emulator.live()
    assert failed.state == "error"


def test_sdk_image_create(client, daytona_emulator):
    sb = client.create(daytona.CreateSandboxFromImageParams(
        image="python:3.12-slim", resources=daytona.Resources(cpu=2, memory=2, disk=5)))
    assert (sb.state, sb.cpu, sb.memory) == (daytona.SandboxState.STARTED, 2, 2)
    sb.delete()
    assert daytona_emulator.live_count() == 0


def test_sdk_waits_through_creating(client, daytona_emulator):
    """The server-side wait runs out while the sandbox is still creating; the
    SDK polls GET /sandbox/{id} until started."""
    daytona_emulator.faults.create_delay = 0.6
    daytona_emulator.faults.server_wait = 0.1
    sb = client.create()
    assert sb.state == daytona.SandboxState.STARTED
    assert ("GET", "/api/sandbox/" + sb.id) in daytona_emulator.requests
    sb.delete()
