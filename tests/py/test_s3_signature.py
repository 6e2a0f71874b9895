"""Signatures of the C S3 client recomputed with botocore.

Requests made by build/tests/s3tool are captured on a loopback listener that
answers like S3 would (enough for each operation to proceed), and every
captured Authorization header is checked against botocore's S3SigV4Auth over
the same method, raw path, query, signed headers, body and timestamp."""
import collections
import http.server
import pathlib
import socket
import struct
import subprocess
import threading
import urllib.parse

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = str(ROOT / "build" / "tests" / "s3tool")
KEY_ID, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "tok/en+=="
MiB = 1024 * 1024


class _Capture(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _reply(self, status=200, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.server.seen.append((self.command, self.path, dict(self.headers.items()), body))
        if self.path.startswith("/moved/"):
            return self._reply(301, b"<Error><Code>PermanentRedirect</Code><Message>use the "
                                    b"right endpoint</Message></Error>",
                               [("x-amz-bucket-region", "eu-central-1")])
        if self.path.startswith("/malformed/"):
            return self._reply(400, b"<Error><Code>AuthorizationHeaderMalformed</Code><Region>"
                                    b"ap-south-1</Region></Error>")
        if self.path.startswith("/broken/"):
            return self._reply(500, b"<Error><Code>InternalError</Code></Error>")
        self.server.hits[(self.command, self.path)] += 1
        hit = self.server.hits[(self.command, self.path)]
        if self.path.startswith("/slow/") and hit <= 2:
            return self._reply(503, b"<Error><Code>SlowDown</Code><Message>Please reduce your "
                                    b"request rate.</Message></Error>")
        if self.path.startswith("/busy/"):
            return self._reply(503, b"<Error><Code>SlowDown</Code></Error>")
        if self.path.startswith("/reset/") and hit == 1:
            # The request was read; answer with a TCP reset instead of a response.
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)
        if self.command == "POST" and "uploads" in q:
            return self._reply(200, b"<InitiateMultipartUploadResult><UploadId>up/id+1==</UploadId>"
                                    b"</InitiateMultipartUploadResult>")
        if self.command == "PUT" and "partNumber" in q:
            return self._reply(200, headers=[("ETag", '"etag-%s"' % q["partNumber"][0])])
        if self.command == "POST" and "uploadId" in q:
            return self._reply(200, b"<CompleteMultipartUploadResult><ETag>x</ETag>"
                                    b"</CompleteMultipartUploadResult>")
        if "list-type" in q:
            more = "continuation-token" not in q
            doc = ("<ListBucketResult><Contents><Key>k</Key><Size>1</Size></Contents>"
                   "<IsTruncated>%s</IsTruncated>%s</ListBucketResult>"
                   % ("true" if more else "false",
                      "<NextContinuationToken>1/a+b=c d&amp;e</NextContinuationToken>" if more else ""))
            return self._reply(200, doc.encode())
        return self._reply(200, b"x", headers=[("ETag", '"e"')])

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


@pytest.fixture
def capture():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    srv.daemon_threads = True
    srv.seen = []
    srv.hits = collections.Counter()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = "http://127.0.0.1:%d" % srv.server_address[1]
    yield srv
    srv.shutdown()
    srv.server_close()


def botocore_signature(method, raw_path, headers, body, region, token=None):
    h = {k.lower(): v for k, v in headers.items()}
    auth = h["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    req = AWSRequest(method=method, url="http://" + h["host"] + raw_path,
                     headers={k: h[k] for k in signed}, data=body)
    req.context["timestamp"] = h["x-amz-date"]
    signer = S3SigV4Auth(Credentials(KEY_ID, SECRET, token), "s3", region)
    canonical = signer.canonical_request(req)
    return signer.signature(signer.string_to_sign(req, canonical), req), signed


PATHS = ["plain.txt", "dir/a b.txt", "x+y", "t~ilde", "é/ü", "!'()*", "a=b&c", "deep/er/key"]


def run_ops(capture, tmp_path, env):
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"hello world")
    big.write_bytes(b"\x01" * (5 * MiB + 5))
    ops = []
    for p in PATHS:
        ops += [["cat", "b", p], ["put", "b", p, str(small)], ["head", "b", p], ["rm", "b", p]]
    ops += [["ls", "b", "some prefix/+é"], ["ls", "b", ""],
            ["--part-size", str(5 * MiB), "put", "b", "multi part", str(big)]]
    for op in ops:
        r = subprocess.run([TOOL, *op], env=env, capture_output=True)
        assert r.returncode == 0, (op, r.stderr)
    return capture.seen


@pytest.mark.parametrize("token", [None, TOKEN])
def test_every_request_signature_matches_botocore(capture, tmp_path, token):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "METAFLOW_S3_ENDPOINT_URL": capture.url,
           "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "eu-west-3"}
    if token:
        env["AWS_SESSION_TOKEN"] = token
    seen = run_ops(capture, tmp_path, env)
    kinds = set()
    for method, raw_path, headers, body in seen:
        h = {k.lower(): v for k, v in headers.items()}
        want, signed = botocore_signature(method, raw_path, headers, body, "eu-west-3", token)
        got = h["authorization"].split("Signature=")[1]
        assert got == want, (method, raw_path, signed)
        assert "/eu-west-3/s3/aws4_request" in h["authorization"]
        assert "x-amz-content-sha256" in signed and "host" in signed
        assert h["host"] == capture.url[len("http://"):]
        assert ("x-amz-security-token" in signed) == bool(token)
        if token:
            assert h["x-amz-security-token"] == token
        kinds.add((method, urllib.parse.urlsplit(raw_path).query.split("=")[0]))
    # Every request shape was exercised: plain, list (+continuation), multipart.
    assert {("GET", ""), ("PUT", ""), ("HEAD", ""), ("DELETE", ""), ("GET", "continuation-token"),
            ("GET", "list-type"), ("POST", "uploads"), ("PUT", "partNumber"),
            ("POST", "uploadId")} <= kinds


def test_queries_are_sorted_and_value_less_params_have_equals(capture, tmp_path):
    env = {"HOME": str(tmp_path), "METAFLOW_S3_ENDPOINT_URL": capture.url,
           "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
    seen = run_ops(capture, tmp_path, env)
    for _, raw_path, _, _ in seen:
        query = urllib.parse.urlsplit(raw_path).query
        if not query:
            continue
        names = [p.split("=")[0] for p in query.split("&")]
        assert names == sorted(names), raw_path
        assert all("=" in p for p in query.split("&")), raw_path
    assert any(urllib.parse.urlsplit(p).query == "uploads=" for _, p, _, _ in seen)


def test_wrong_region_names_the_right_one(capture, tmp_path):
    env = {"HOME": str(tmp_path), "METAFLOW_S3_ENDPOINT_URL": capture.url,
           "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-west-2"}
    r = subprocess.run([TOOL, "cat", "moved", "k"], env=env, capture_output=True)
    assert r.returncode == 1
    assert (b"config: S3 GET s3://moved/k: bucket moved is in region eu-central-1, not "
            b"us-west-2: set AWS_REGION=eu-central-1") in r.stderr
    r = subprocess.run([TOOL, "head", "moved", "k"], env=env, capture_output=True)
    assert b"region eu-central-1" in r.stderr
    r = subprocess.run([TOOL, "cat", "malformed", "k"], env=env, capture_output=True)
    assert b"set AWS_REGION=ap-south-1" in r.stderr


def test_internal_errors_are_retried_then_reported(capture, tmp_path):
    env = {"HOME": str(tmp_path), "METAFLOW_S3_ENDPOINT_URL": capture.url,
           "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
    r = subprocess.run([TOOL, "cat", "broken", "k"], env=env, capture_output=True)
    assert r.returncode == 1
    assert b"backend: S3 GET s3://broken/k: HTTP 500 InternalError" in r.stderr
    assert len([p for _, p, _, _ in capture.seen if p.startswith("/broken/")]) == 4


def _env(capture, tmp_path, **extra):
    env = {"HOME": str(tmp_path), "METAFLOW_S3_ENDPOINT_URL": capture.url,
           "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
    env.update(extra)
    return env


def _signature_ok(method, raw_path, headers, body, region, token=None):
    want, _ = botocore_signature(method, raw_path, headers, body, region, token)
    return {k.lower(): v for k, v in headers.items()}["authorization"].endswith("Signature=" + want)


def test_slow_down_503_is_retried_with_the_same_signed_body(capture, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"payload after two SlowDowns")
    r = subprocess.run([TOOL, "put", "slow", "k", str(src)], env=_env(capture, tmp_path),
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    puts = [s for s in capture.seen if s[0] == "PUT" and s[1] == "/slow/k"]
    assert len(puts) == 3 and b"requests 3" in r.stderr
    assert all(body == src.read_bytes() for _, _, _, body in puts)
    assert all(_signature_ok(*s, "us-east-1") for s in puts)
    r = subprocess.run([TOOL, "cat", "slow", "g"], env=_env(capture, tmp_path), capture_output=True)
    assert r.returncode == 0 and r.stdout == b"x", r.stderr


def test_slow_down_that_never_ends_is_one_line(capture, tmp_path):
    r = subprocess.run([TOOL, "cat", "busy", "k"], env=_env(capture, tmp_path), capture_output=True)
    assert r.returncode == 1
    assert [l for l in r.stderr.decode().splitlines() if l.startswith("s3tool:")] == [
        "s3tool: backend: S3 GET s3://busy/k: HTTP 503 SlowDown"]
    assert len([p for _, p, _, _ in capture.seen if p == "/busy/k"]) == 5  # 1 + 4 retries
    assert b"requests 5" in r.stderr


@pytest.mark.parametrize("op", ["cat", "put"])
def test_connection_reset_is_retried(capture, tmp_path, op):
    src = tmp_path / "src"
    src.write_bytes(b"body")
    args = ["cat", "reset", "k"] if op == "cat" else ["put", "reset", "k", str(src)]
    r = subprocess.run([TOOL, *args], env=_env(capture, tmp_path), capture_output=True)
    assert r.returncode == 0, r.stderr
    assert len([p for _, p, _, _ in capture.seen if p == "/reset/k"]) == 2
    if op == "cat":
        assert r.stdout == b"x"


def test_r2_signs_for_region_auto_and_never_sends_a_session_token(capture, tmp_path):
    # curl resolves *.localhost to the loopback itself, so an R2-shaped host
    # name reaches the capturing listener.
    port = capture.server_address[1]
    endpoint = "http://acct.r2.cloudflarestorage.com.localhost:%d" % port
    for style, host in (("path", "acct.r2.cloudflarestorage.com.localhost"),
                        ("virtual", "b.acct.r2.cloudflarestorage.com.localhost")):
        capture.seen.clear()
        env = _env(capture, tmp_path, METAFLOW_S3_ENDPOINT_URL=endpoint, AWS_REGION="eu-west-3",
                   AWS_SESSION_TOKEN=TOKEN, MFSANDBOX_S3_ADDRESSING=style)
        src = tmp_path / "src"
        src.write_bytes(b"r2 object")
        for args in (["put", "b", "dir/k 1", str(src)], ["cat", "b", "dir/k 1"], ["ls", "b", "dir/"]):
            r = subprocess.run([TOOL, *args], env=env, capture_output=True)
            assert r.returncode == 0, (style, args, r.stderr)
        assert len(capture.seen) >= 4
        for method, raw_path, headers, body in capture.seen:
            h = {k.lower(): v for k, v in headers.items()}
            assert h["host"] == "%s:%d" % (host, port)
            assert "/auto/s3/aws4_request" in h["authorization"]
            assert "x-amz-security-token" not in h and TOKEN not in h["authorization"]
            assert raw_path.startswith("/b/" if style == "path" else "/dir") or "list-type" in raw_path
            assert _signature_ok(method, raw_path, headers, body, "auto"), (style, method, raw_path)


def test_virtual_hosted_requests_put_the_bucket_in_the_host(capture, tmp_path):
    port = capture.server_address[1]
    env = _env(capture, tmp_path, METAFLOW_S3_ENDPOINT_URL="http://localhost:%d" % port,
               AWS_REGION="eu-west-3", MFSANDBOX_S3_ADDRESSING="virtual")
    r = subprocess.run([TOOL, "cat", "my-bucket", "a b/c"], env=env, capture_output=True)
    assert r.returncode == 0, r.stderr
    (method, raw_path, headers, body), = capture.seen
    assert headers["Host"] == "my-bucket.localhost:%d" % port and raw_path == "/a%20b/c"
    assert _signature_ok(method, raw_path, headers, body, "eu-west-3")
    # Dotted bucket names stay path-style (a dotted virtual host breaks TLS).
    capture.seen.clear()
    r = subprocess.run([TOOL, "cat", "my.bucket", "k"], env=env, capture_output=True)
    assert r.returncode == 0, r.stderr
    assert capture.seen[0][2]["Host"] == "localhost:%d" % port and capture.seen[0][1] == "/my.bucket/k"


def test_signing_region_precedence_and_profile_keys(capture, tmp_path):
    """AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region in the
    config file, else us-east-1; keys from the profile sign the request."""
    (tmp_path / "creds").write_text("[ci]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                                    % (KEY_ID, SECRET))
    (tmp_path / "config").write_text("[profile ci]\nregion = ap-south-1\n")
    base = {"HOME": str(tmp_path), "METAFLOW_S3_ENDPOINT_URL": capture.url, "AWS_PROFILE": "ci",
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "creds"),
            "AWS_CONFIG_FILE": str(tmp_path / "config")}
    cases = [({}, "ap-south-1"), ({"AWS_DEFAULT_REGION": "eu-west-2"}, "eu-west-2"),
             ({"AWS_DEFAULT_REGION": "eu-west-2", "AWS_REGION": "ca-central-1"}, "ca-central-1"),
             ({"AWS_CONFIG_FILE": str(tmp_path / "none")}, "us-east-1")]
    for extra, region in cases:
        capture.seen.clear()
        r = subprocess.run([TOOL, "cat", "b", "k"], env=dict(base, **extra), capture_output=True)
        assert r.returncode == 0, (extra, r.stderr)
        (method, raw_path, headers, body), = capture.seen
        assert "Credential=%s/" % KEY_ID in headers["Authorization"]
        assert "/%s/s3/aws4_request" % region in headers["Authorization"], extra
        assert _signature_ok(method, raw_path, headers, body, region), extra
