"""Signatures of the C S3 client recomputed with botocore.

Requests made by build/tests/s3tool are captured on a loopback listener that
answers like S3 would (enough for each operation to proceed), and every
captured Authorization header is checked against botocore's S3SigV4Auth over
the same method, raw path, query, signed headers, body and timestamp."""
import http.server
import pathlib
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
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = "http://127.0.0.1:%d" % srv.server_address[1]
    yield srv
    srv.shutdown()
    srv.server_close()


def botocore_signature(method, raw_path, headers, body, region, token):
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
