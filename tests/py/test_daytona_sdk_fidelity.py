"""The official `daytona` SDK (PyPI) drives the emulator: create, exec,
session exec with logs, upload, download, delete.  Whatever the SDK rejects
is a bug in the emulator, so this is what keeps the emulator honest for the
C backend's tests."""
import time

import daytona  # a hard import: `make check` must not pass by skipping
import daytona_api_client
import pytest


# The daemon appends a command's exit code to its file, so for a moment a
# status read answers 500 with this (docs/architecture.md, Daytona daemon
# quirks; the emulator's fidelity mode does it too): an SDK user retries it.
RACE = "failed to convert exit code to int"


def command(sb, sid, cid):
    """get_session_command, the exit-code race retried."""
    for _ in range(100):
        try:
            return sb.process.get_session_command(sid, cid)
        except daytona.DaytonaError as e:
            if RACE not in str(e):
                raise
            time.sleep(0.02)
    raise AssertionError("the exit-code race never ended")


async def acommand(sb, sid, cid):
    import asyncio
    for _ in range(100):
        try:
            return await sb.process.get_session_command(sid, cid)
        except daytona.DaytonaError as e:
            if RACE not in str(e):
                raise
            await asyncio.sleep(0.02)
    raise AssertionError("the exit-code race never ended")


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
        command="python3 job/run.py; echo oops >&2; sleep 0.2; (exit 5)", run_async=True))
    cmd_id = resp.cmd_id
    for _ in range(200):
        cmd = command(sb, "s1", cmd_id)
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


def wait_exit(sb, sid, cmd_id):
    for _ in range(400):
        cmd = command(sb, sid, cmd_id)
        if cmd.exit_code is not None:
            return cmd.exit_code
        time.sleep(0.05)
    raise AssertionError("session command never finished")


def test_sdk_session_is_one_long_lived_shell(client, daytona_emulator):
    """A session is one shell: cd, export and variables of one command are
    there for the next, sync or async; output still comes per command, and
    an async command's log grows while it runs."""
    sb = client.create()
    sb.process.create_session("sh")
    run = sb.process.execute_session_command
    r = run("sh", daytona.SessionExecuteRequest(
        command="mkdir -p work/sub && cd work/sub && export STEP_NAME=start; GREETING=hi"))
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    r = run("sh", daytona.SessionExecuteRequest(command='pwd; echo "$STEP_NAME $GREETING" >&2'))
    assert (r.exit_code, r.stdout, r.stderr) == (0, "/home/daytona/work/sub\n", "start hi\n")

    # async: its log streams while it runs (it waits for a file we upload
    # once its first line is visible), and its cd/export reach the next one
    first = run("sh", daytona.SessionExecuteRequest(
        command="cd /tmp && export LATER=yes; echo first; echo warn >&2; "
                "while [ ! -e go ]; do sleep 0.02; done; echo second", run_async=True))
    for _ in range(400):
        logs = sb.process.get_session_command_logs("sh", first.cmd_id)
        if logs.stdout and logs.stderr:
            break
        time.sleep(0.05)
    assert (logs.stdout, logs.stderr) == ("first\n", "warn\n")
    assert command(sb, "sh", first.cmd_id).exit_code is None
    sb.fs.upload_file(b"", "/tmp/go")
    assert wait_exit(sb, "sh", first.cmd_id) == 0
    logs = sb.process.get_session_command_logs("sh", first.cmd_id)
    assert (logs.stdout, logs.stderr) == ("first\nsecond\n", "warn\n")
    r = run("sh", daytona.SessionExecuteRequest(command='echo "$(pwd) $LATER $STEP_NAME"'))
    assert (r.exit_code, r.stdout) == (0, "/tmp yes start\n")

    # sessions do not share a shell, and process.exec is not a session
    sb.process.create_session("other")
    r = run("other", daytona.SessionExecuteRequest(command='echo "$(pwd) [$STEP_NAME]"'))
    assert r.stdout == "/home/daytona []\n"
    assert sb.process.exec('echo "$(pwd) [$STEP_NAME]"').result == "/home/daytona []\n"

    # `exit` ends the session's shell, as in the daemon: that command never
    # gets an exit code and the session takes no further command
    gone = run("other", daytona.SessionExecuteRequest(command="exit 3", run_async=True))
    with pytest.raises(daytona.DaytonaError):
        run("other", daytona.SessionExecuteRequest(command="echo never"))
    assert command(sb, "other", gone.cmd_id).exit_code is None
    sb.delete()
    assert daytona_emulator.live_count() == 0


def test_sdk_sees_validation_and_start_failure(client, daytona_emulator):
    api = daytona_api_client
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


# Prints on both streams with pauses, and waits (10 s at most) for a file
# the stdout callback uploads when it sees the first line: live streaming
# finds the command still running then; a log delivered only at the end
# finds it finished.
STREAMED = ("echo out1; echo err1 >&2; i=0; while [ ! -e /tmp/seen ] && [ $i -lt 500 ]; "
            "do sleep 0.02; i=$((i+1)); done; "
            "sleep 0.1; echo out2; sleep 0.1; echo err2 >&2; sleep 0.1; echo out3; (exit 4)")


def lines(chunks):
    return "".join(chunks).splitlines()


def test_sdk_follows_session_logs_over_websocket(client, daytona_emulator):
    """process.get_session_command_logs_async: the log-follow WebSocket
    delivers stdout and stderr apart, live, through pings, and ends when
    the command does."""
    import asyncio
    daytona_emulator.ws_ping_interval = 0.05   # pings between the frames
    sb = client.create()
    sb.process.create_session("live")
    cmd = sb.process.execute_session_command("live", daytona.SessionExecuteRequest(
        command=STREAMED, run_async=True))
    out, err, exit_when_first = [], [], []

    def on_stdout(chunk):
        out.append(chunk)
        if not exit_when_first:
            exit_when_first.append(command(sb, "live", cmd.cmd_id).exit_code)
            sb.fs.upload_file(b"", "/tmp/seen")

    asyncio.run(sb.process.get_session_command_logs_async("live", cmd.cmd_id, on_stdout,
                                                          err.append))
    assert exit_when_first == [None]
    assert lines(out) == ["out1", "out2", "out3"]
    assert lines(err) == ["err1", "err2"]
    # it returned because the command ended, not before
    assert command(sb, "live", cmd.cmd_id).exit_code == 4
    sb.delete()
    assert daytona_emulator.live_count() == 0


def test_async_sdk_follows_session_logs_over_websocket(daytona_env, daytona_emulator, monkeypatch):
    """The same through AsyncDaytona (aiohttp, its own 20 s heartbeat), with
    async callbacks."""
    import asyncio
    for k, v in daytona_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DAYTONA_TARGET", raising=False)
    daytona_emulator.ws_ping_interval = 0.05

    async def main():
        async with daytona.AsyncDaytona() as client:
            sb = await client.create()
            await sb.process.create_session("live")
            cmd = await sb.process.execute_session_command("live", daytona.SessionExecuteRequest(
                command=STREAMED, run_async=True))
            out, err, exit_when_first = [], [], []

            async def on_stdout(chunk):
                out.append(chunk)
                if not exit_when_first:
                    c = await acommand(sb, "live", cmd.cmd_id)
                    exit_when_first.append(c.exit_code)
                    await sb.fs.upload_file(b"", "/tmp/seen")

            async def on_stderr(chunk):
                err.append(chunk)

            await sb.process.get_session_command_logs_async("live", cmd.cmd_id, on_stdout,
                                                            on_stderr)
            done = await acommand(sb, "live", cmd.cmd_id)
            await sb.delete()
            return out, err, exit_when_first, done.exit_code

    out, err, exit_when_first, code = asyncio.run(main())
    assert exit_when_first == [None]
    assert (lines(out), lines(err), code) == (["out1", "out2", "out3"], ["err1", "err2"], 4)
    assert daytona_emulator.live_count() == 0
