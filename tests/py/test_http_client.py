"""The C HTTP client (src/net/http.c) against a real loopback server, through the
test-only driver build/tests/httptool."""
import hashlib
import json
import pathlib
import signal
import subprocess
import time

from fixtures.http_server import payload

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = str(ROOT / "build" / "tests" / "httptool")


def run(*args, **kw):
    return subprocess.run([TOOL, *args], capture_output=True, **kw)


def status_of(r):
    return int(r.stdout.split(b"\n", 1)[0].split()[1])


def test_retry_after_is_honoured_for_idempotent_requests(http_server):
    r = run("-r", "3", http_server.url + "/flaky/a?fail=2&retry_after=1")
    assert r.returncode == 0, r.stderr
    assert status_of(r) == 200
    assert b"ok after 2" in r.stdout
    times = [e["t"] for e in http_server.log]
    assert len(times) == 3
    # Retry-After: 1 means at least a second between attempts.
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.95


def test_retries_on_429_502_504_and_dropped_connections(http_server):
    for st in (429, 502, 504):
        r = run("-r", "2", http_server.url + "/flaky/s%d?fail=1&status=%d" % (st, st))
        assert status_of(r) == 200, r.stderr
    r = run("-r", "2", http_server.url + "/drop/x?fail=1")
    assert r.returncode == 0, r.stderr
    assert status_of(r) == 200


def test_no_retry_without_budget_or_for_post(http_server):
    r = run(http_server.url + "/flaky/b?fail=1")
    assert status_of(r) == 503
    r = run("-X", "POST", "-d", "{}", "-r", "3", http_server.url + "/flaky/c?fail=1")
    assert status_of(r) == 503
    assert len([e for e in http_server.log if e["path"] == "/flaky/c"]) == 1
    r = run("-X", "POST", "-d", "{}", "-r", "3", "--retry-safe", http_server.url + "/flaky/d?fail=1")
    assert status_of(r) == 200


def test_last_status_is_returned_when_retries_run_out(http_server):
    r = run("-r", "1", http_server.url + "/flaky/e?fail=5&retry_after=0")
    assert status_of(r) == 503
    assert len([e for e in http_server.log if e["path"] == "/flaky/e"]) == 2


def test_a_deadline_cuts_a_hung_request_and_stops_retries(http_server):
    r = run("-r", "3", "--deadline-ms", "800", http_server.url + "/slow?secs=30", timeout=20)
    assert r.returncode == 1 and b"timeout" in r.stderr, r.stderr
    # Retry-After 2 s does not fit in what is left: the 503 stands, not retried.
    r = run("-r", "3", "--deadline-ms", "1500", http_server.url + "/flaky/g?fail=5&retry_after=2")
    assert status_of(r) == 503
    assert len([e for e in http_server.log if e["path"] == "/flaky/g"]) == 1


def test_streams_download_to_file_and_callback(http_server, tmp_path):
    n = 5 * 1024 * 1024 + 7
    out = tmp_path / "out.bin"
    r = run("-o", str(out), http_server.url + "/bytes?n=%d" % n)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == payload(n)
    r = run("--on-data", http_server.url + "/bytes?n=%d" % n)
    assert b"on_data %d" % n in r.stdout
    r = run("--on-data", "--abort-after", "1", http_server.url + "/bytes?n=%d" % n)
    assert r.returncode == 1 and b"receiver stopped" in r.stderr


def test_a_body_read_into_memory_is_bounded(http_server):
    """The relay reads objects the step wrote (S3) whole: one larger than the
    bound ends the transfer instead of filling memory."""
    n = 5 * 1024 * 1024
    r = run("--max-body", str(n), http_server.url + "/bytes?n=%d" % n)
    assert r.returncode == 0 and r.stdout.endswith(payload(n)), r.stderr
    r = run("--max-body", str(n), "-r", "2", http_server.url + "/bytes?n=%d" % (n + 1))
    assert r.returncode == 1 and b"protocol" in r.stderr and b"larger than" in r.stderr
    assert len([e for e in http_server.log if e["path"] == "/bytes"]) == 2  # not retried


def test_empty_object_creates_empty_file_and_errors_stay_out_of_it(http_server, tmp_path):
    out = tmp_path / "empty"
    r = run("-o", str(out), http_server.url + "/bytes?n=0")
    assert r.returncode == 0 and out.exists() and out.stat().st_size == 0
    out2 = tmp_path / "missing"
    r = run("-o", str(out2), http_server.url + "/status/404")
    assert status_of(r) == 404
    assert not out2.exists()
    assert b"status body line" in r.stdout


def test_streams_upload_from_file_and_memory(http_server, tmp_path):
    src = tmp_path / "in.bin"
    data = payload(3 * 1024 * 1024 + 1)
    src.write_bytes(data)
    r = run("-X", "PUT", "-f", str(src), http_server.url + "/echo")
    doc = json.loads(r.stdout.split(b"\n", 1)[1])
    assert doc["method"] == "PUT" and doc["sha256"] == hashlib.sha256(data).hexdigest()
    r = run("-X", "POST", "-f", str(src), http_server.url + "/echo")
    assert json.loads(r.stdout.split(b"\n", 1)[1])["method"] == "POST"
    r = run("-X", "POST", "-H", "Content-Type: application/json", "-d", '{"a":1}',
            http_server.url + "/echo")
    doc = json.loads(r.stdout.split(b"\n", 1)[1])
    assert doc["sha256"] == hashlib.sha256(b'{"a":1}').hexdigest()
    assert doc["headers"]["content-type"] == "application/json"
    r = run("-X", "HEAD", http_server.url + "/bytes?n=10")
    assert status_of(r) == 200


def test_multipart_form_streams_a_file_part(http_server, tmp_path):
    """The form helper (libcurl's curl_mime) frames parts the stdlib parses
    back byte for byte, in order, with a binary file read while sending."""
    src = tmp_path / "big.bin"
    data = payload(20 * 1024 * 1024 + 7)
    src.write_bytes(data)
    r = run("-X", "POST", "--form-data", "files[0].path=/home/x/data.bin",
            "--form-file", "files[0].file=" + str(src), "-r", "2", "--retry-safe",
            http_server.url + "/echo")
    assert status_of(r) == 200, r.stderr
    doc = json.loads(r.stdout.split(b"\n", 1)[1])
    assert doc["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    path, blob = doc["parts"]
    assert path["name"] == "files[0].path" and path["filename"] is None
    assert path["sha256"] == hashlib.sha256(b"/home/x/data.bin").hexdigest()
    assert (blob["name"], blob["filename"], blob["type"]) == \
        ("files[0].file", "upload.bin", "application/octet-stream")
    assert blob["len"] == len(data) and blob["sha256"] == hashlib.sha256(data).hexdigest()
    # a file that cannot be read is an io error naming it, and nothing is sent
    before = len(http_server.log)
    r = run("-X", "POST", "--form-file", "f=" + str(tmp_path / "missing"),
            http_server.url + "/echo")
    assert r.returncode == 1 and b"httptool: io: " in r.stderr and b"missing" in r.stderr
    assert len(http_server.log) == before


def test_keep_alive_reuses_the_connection(http_server):
    # Retries go through the cached handle: one TCP connection for all three.
    r = run("-r", "3", http_server.url + "/flaky/k?fail=2&retry_after=0")
    assert status_of(r) == 200
    ports = {e["peer_port"] for e in http_server.log if e["path"] == "/flaky/k"}
    assert len(ports) == 1


def test_errors_name_method_and_url_but_never_secrets(http_server):
    secret = "SuperSecretToken123"
    r = run("-X", "POST", "-H", "Authorization: Bearer " + secret, "-d", "{}",
            http_server.url.replace("http://", "http://user:%s@" % secret) + "/status/403?token=" + secret)
    assert secret.encode() not in r.stdout + r.stderr
    assert b"POST " + http_server.url.encode() + b"/status/403: HTTP 403" in r.stderr
    # Transport failure: a port nobody listens on.
    r = run("-H", "X-Api-Key: " + secret, "-r", "1", "http://127.0.0.1:1/x?sig=" + secret)
    assert r.returncode == 1
    assert secret.encode() not in r.stderr
    assert r.stderr.startswith(b"httptool: http: GET http://127.0.0.1:1/x: ")
    assert b"(2 attempts)" in r.stderr


def test_sigterm_cancels_a_transfer(http_server):
    p = subprocess.Popen([TOOL, "--cancel-on-sigterm", http_server.url + "/slow?secs=60"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while not http_server.log:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1
    assert b"httptool: cancelled: GET " in err


def test_a_post_whose_reused_connection_dies_is_not_sent_again(http_server):
    """libcurl re-sends a request, silently, when the reused connection it
    went out on closes before any answer; the server may have carried out a
    POST already, so such requests go out on a fresh connection instead and
    the failure comes back to the caller, who decides."""
    r = run("--prime", http_server.url + "/echo", "-X", "POST", "-d", "{}",
            http_server.url + "/drop/once?fail=1")
    assert r.returncode == 1 and b"httptool: http: POST " in r.stderr
    assert len([e for e in http_server.log if e["path"] == "/drop/once"]) == 1
    # an idempotent request still rides the kept-alive connection
    before = len(http_server.log)
    r = run("--prime", http_server.url + "/echo", http_server.url + "/echo")
    assert r.returncode == 0, r.stderr
    assert len({e["peer_port"] for e in http_server.log[before:]}) == 1
