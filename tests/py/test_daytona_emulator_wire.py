"""Wire details of the Daytona emulator that the SDK fidelity test does not
reach but the C backend relies on: session output by SDK-version header,
409/404 around delete, auth, label filtering, injected faults, and a sandbox
that cannot reach the launcher's loopback services."""
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping,
                            RejectConnection, Request)

from fixtures.daytona import API_KEY


def call(url, method="GET", body=None, headers=None, key=API_KEY):
    h = {"Authorization": "Bearer " + key}
    if body is not None:
        h["Content-Type"] = "application/json"
        body = json.dumps(body).encode()
    h.update(headers or {})
    req = urllib.request.Request(url, data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture
def sandbox(daytona_emulator):
    st, _, body = call(daytona_emulator.url + "/sandbox", "POST", {"labels": {"k": "v"}})
    assert st == 200
    sb = json.loads(body)
    yield sb
    call(daytona_emulator.url + "/sandbox/" + sb["id"], "DELETE")


def tb(sb):
    return sb["toolboxProxyUrl"] + "/" + sb["id"]


def run_async(sb, command):
    st, _, _ = call(tb(sb) + "/process/session", "POST", {"sessionId": "s"})
    assert st == 201
    st, _, body = call(tb(sb) + "/process/session/s/exec", "POST",
                       {"command": command, "runAsync": True})
    assert st == 202
    cid = json.loads(body)["cmdId"]
    for _ in range(400):
        st, _, body = call(tb(sb) + "/process/session/s/command/" + cid)
        if "exitCode" in json.loads(body):
            return cid, json.loads(body)["exitCode"]
        time.sleep(0.025)
    raise AssertionError("command never finished")


def test_session_logs_follow_the_sdk_version_header(sandbox):
    cid, code = run_async(sandbox, "echo a; echo b >&2; printf tail")
    assert code == 0
    logs = tb(sandbox) + "/process/session/s/command/%s/logs" % cid
    _, h, body = call(logs)
    assert h["Content-Type"].startswith("text/plain")
    assert sorted(body.split(b"\n")) == sorted([b"a", b"b", b"tail", b""])
    _, h, raw = call(logs, headers={"X-Daytona-SDK-Version": "c-client/1"})
    assert b"\x01\x01\x01a\n" in raw and b"\x02\x02\x02b\n" in raw
    assert b"\x01\x01\x01tail\n" in raw
    _, h, body = call(logs, headers={"X-Daytona-SDK-Version": "0.200.0"})
    j = json.loads(body)
    assert (j["stdout"], j["stderr"]) == ("a\ntail\n", "b\n")


def follow_logs(sb, cid, headers=(), subprotocols=(), follow=True, on_ping=None):
    """A plain WebSocket client (wsproto, independent of the server's code)
    on the log-follow endpoint: the handshake's answer, the log bytes, the
    close code and how many pings came."""
    u = urllib.parse.urlsplit(tb(sb))
    target = "%s/process/session/s/command/%s/logs%s" % (u.path, cid,
                                                        "?follow=true" if follow else "")
    ws = WSConnection(ConnectionType.CLIENT)
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    sock.sendall(ws.send(Request(host=u.netloc, target=target, subprotocols=list(subprotocols),
                                 extra_headers=[("Authorization", "Bearer " + API_KEY)]
                                 + list(headers))))
    accept, log, pings = None, b"", 0
    with sock:
        while True:
            data = sock.recv(65536)
            ws.receive_data(data or None)
            for ev in ws.events():
                if isinstance(ev, (AcceptConnection, RejectConnection)):
                    accept = ev
                elif isinstance(ev, BytesMessage):
                    log += ev.data
                elif isinstance(ev, Ping):
                    sock.sendall(ws.send(ev.response()))
                    pings += 1
                    if on_ping:
                        on_ping()
                elif isinstance(ev, CloseConnection):
                    sock.sendall(ws.send(ev.response()))
                    return accept, log, ev.code, pings
            if not data:
                return accept, log, None, pings


def test_log_follow_websocket_markers_by_version(sandbox):
    """Frames carry the raw log (the client demuxes) or the markers are
    stripped, by the same rules as /logs, with the version also taken from
    the `X-Daytona-SDK-Version~<ver>` subprotocol, which the 101 echoes."""
    cid, _ = run_async(sandbox, "echo a; echo b >&2; printf tail")
    raw = call(tb(sandbox) + "/process/session/s/command/%s/logs" % cid,
               headers={"X-Daytona-Split-Output": "true"})[2]
    assert sorted(raw.splitlines()) == [b"\x01\x01\x01a", b"\x01\x01\x01tail", b"\x02\x02\x02b"]
    stripped = raw.replace(b"\x01\x01\x01", b"").replace(b"\x02\x02\x02", b"")

    accept, log, code, _ = follow_logs(sandbox, cid)
    assert (accept.subprotocol, log, code) == (None, stripped, 1000)
    accept, log, code, _ = follow_logs(sandbox, cid, subprotocols=["X-Daytona-SDK-Version~0.226.1"])
    assert (accept.subprotocol, log, code) == ("X-Daytona-SDK-Version~0.226.1", raw, 1000)
    accept, log, code, _ = follow_logs(sandbox, cid, subprotocols=["X-Daytona-SDK-Version~0.20.0"])
    assert (log, code) == (stripped, 1000)
    assert follow_logs(sandbox, cid, headers=[("X-Daytona-SDK-Version", "0.226.1")])[1] == raw
    assert follow_logs(sandbox, cid, headers=[("X-Daytona-Split-Output", "true")])[1] == raw

    # an Upgrade that is no valid handshake (urllib sends no key) is refused
    st, _, body = call(tb(sandbox) + "/process/session/s/command/%s/logs?follow=true" % cid,
                       headers={"Upgrade": "websocket"})
    assert st == 400 and body.startswith(b"Bad Request: websocket:")


def test_log_follow_websocket_streams_a_running_command(daytona_emulator, sandbox):
    """While the command runs: without follow, what is there and close; with
    follow, server pings (the command waits for the test to have seen one,
    10 s at most) and the rest as it comes, then close 1000 at its exit."""
    daytona_emulator.ws_ping_interval = 0.05
    st, _, _ = call(tb(sandbox) + "/process/session", "POST", {"sessionId": "s"})
    st, _, body = call(tb(sandbox) + "/process/session/s/exec", "POST", {
        "command": "echo first; i=0; while [ ! -e /tmp/go ] && [ $i -lt 500 ]; "
                   "do sleep 0.02; i=$((i+1)); done; echo second", "runAsync": True})
    cid = json.loads(body)["cmdId"]
    version = [("X-Daytona-SDK-Version", "0.226.1")]
    for _ in range(400):
        _, log, code, _ = follow_logs(sandbox, cid, version, follow=False)
        if log:
            break
        time.sleep(0.025)
    assert (log, code) == (b"\x01\x01\x01first\n", 1000)

    before = []   # the command's status when the first ping came

    def release():
        if not before:
            before.append(json.loads(call(tb(sandbox) + "/process/session/s/command/" + cid)[2]))
            call(tb(sandbox) + "/process/execute", "POST", {"command": "touch /tmp/go"})
    _, log, code, pings = follow_logs(sandbox, cid, version, on_ping=release)
    assert "exitCode" not in before[0]
    assert (log, code) == (b"\x01\x01\x01first\n\x01\x01\x01second\n", 1000)
    assert json.loads(call(tb(sandbox) + "/process/session/s/command/" + cid)[2])["exitCode"] == 0


def test_delete_conflicts_while_creating_then_404(daytona_emulator):
    daytona_emulator.faults.create_delay = 0.5
    daytona_emulator.faults.server_wait = 0.0
    st, _, body = call(daytona_emulator.url + "/sandbox", "POST", {})
    sb = json.loads(body)
    assert (st, sb["state"]) == (200, "creating")
    st, _, body = call(daytona_emulator.url + "/sandbox/" + sb["id"], "DELETE")
    assert st == 409 and json.loads(body)["message"] == "Sandbox state change in progress"
    for _ in range(100):
        if json.loads(call(daytona_emulator.url + "/sandbox/" + sb["id"])[2])["state"] == "started":
            break
        time.sleep(0.02)
    assert call(daytona_emulator.url + "/sandbox/" + sb["id"], "DELETE")[0] == 200
    assert daytona_emulator.live_count() == 0
    for _ in range(100):
        st, _, body = call(daytona_emulator.url + "/sandbox/" + sb["id"])
        if st == 404:
            break
        time.sleep(0.02)
    assert st == 404 and json.loads(body)["error"] == "Not Found"


def test_auth_labels_and_injected_faults(daytona_emulator, sandbox):
    api = daytona_emulator.url
    st, _, body = call(api + "/sandbox", key="wrong")
    assert st == 401 and json.loads(body)["statusCode"] == 401
    q = urllib.parse.quote(json.dumps({"k": "v"}))
    assert [s["id"] for s in json.loads(call(api + "/sandbox?labels=" + q)[2])["items"]] == \
        [sandbox["id"]]
    q = urllib.parse.quote(json.dumps({"k": "other"}))
    assert json.loads(call(api + "/sandbox?labels=" + q)[2])["items"] == []

    daytona_emulator.faults.statuses = {"POST /sandbox": [429], "GET /sandbox/*": [502]}
    daytona_emulator.faults.retry_after = 7
    st, h, _ = call(api + "/sandbox", "POST", {})
    assert st == 429 and h["Retry-After"] == "7" and h["Retry-After-sandbox-create"] == "7"
    st, _, body = call(api + "/sandbox/" + sandbox["id"])
    assert (st, body) == (502, b"")
    assert daytona_emulator.live_count() == 1  # neither fault created anything

    daytona_emulator.faults.create_drop = 1
    with pytest.raises((urllib.error.URLError, ConnectionError, http_client_errors())):
        call(api + "/sandbox", "POST", {"labels": {"lost": "1"}})
    q = urllib.parse.quote(json.dumps({"lost": "1"}))
    assert len(json.loads(call(api + "/sandbox?labels=" + q)[2])["items"]) == 1


def http_client_errors():
    import http.client
    return http.client.HTTPException


def test_sandbox_cannot_reach_launcher_loopback(sandbox):
    host = socket.socket()
    host.bind(("127.0.0.1", 0))
    host.listen(1)  # stands for the metadata service on the launcher
    try:
        port = host.getsockname()[1]
        st, _, body = call(tb(sandbox) + "/process/execute", "POST", {
            "command": "python3 -c \"import socket; socket.create_connection(('127.0.0.1', %d), 3)\""
                       % port})
        r = json.loads(body)
        assert st == 200 and r["exitCode"] != 0 and "ConnectionRefusedError" in r["result"]
    finally:
        host.close()


def test_login_shell_keeps_the_image_interpreter(daytona_emulator, tmp_path):
    # metaflow-sandbox runs every command as `bash -lc ...`; /etc/profile
    # resets PATH there, and the image's python must still come first.
    image = tmp_path / "image-bin"
    image.mkdir()
    (image / "python").symlink_to("/usr/bin/python3")
    daytona_emulator.image_path = [str(image)]
    st, _, body = call(daytona_emulator.url + "/sandbox", "POST", {})
    sb = json.loads(body)
    try:
        st, _, body = call(tb(sb) + "/process/execute", "POST",
                           {"command": "bash -lc 'command -v python'"})
        r = json.loads(body)
        assert (st, r["exitCode"], r["result"].strip()) == (200, 0, str(image / "python"))
    finally:
        call(daytona_emulator.url + "/sandbox/" + sb["id"], "DELETE")
