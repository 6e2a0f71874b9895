"""The real ./mfsandbox against a provider API that answers what no real one
does: each answer is a peer's input, and a strange one must end in one line
and a documented exit status, never a hang."""
import http.server
import json
import threading

import pytest

from mfs_cli import clean_env, mfs


class Endless(http.server.BaseHTTPRequestHandler):
    """Every listing page says there is another: the cursor it was sent
    (`same`) or a new one each time."""
    same = True
    pages = 0
    rows = None

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        cls = type(self)
        cls.pages += 1
        if cls.rows is not None:                       # one page of these rows
            body = json.dumps({"items": cls.rows, "nextCursor": None}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        token = "c1" if cls.same else "c%d" % cls.pages
        if self.path.startswith("/v2/sandboxes"):      # E2B: X-Next-Token
            body, headers = b"[]", {"X-Next-Token": token}
        else:                                          # Daytona: nextCursor
            body, headers = json.dumps({"items": [], "nextCursor": token}).encode(), {}
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def endless():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    Endless.pages = 0
    Endless.rows = None
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join()


def provider_env(backend, url):
    env = {k: v for k, v in clean_env().items()
           if not k.startswith(("DAYTONA_", "E2B_"))}
    if backend == "daytona":
        env.update(DAYTONA_API_KEY="dtn_test", DAYTONA_API_URL=url)
    else:
        env.update(E2B_API_KEY="e2b_test", E2B_API_URL=url)
    return env


@pytest.mark.parametrize("same", [True, False], ids=["same-cursor", "new-cursor"])
@pytest.mark.parametrize("backend", ["daytona", "e2b"])
def test_listing_that_never_ends_is_an_error_not_a_hang(endless, backend, same):
    """`ls` (and a failed create's lookup by nonce) followed the next cursor
    for as long as the API gave one: an answer repeating the cursor it was
    sent held the launcher forever."""
    Endless.same = same
    url = "http://127.0.0.1:%d" % endless.server_address[1]
    # The timeout only turns the old hang into a failure.
    r = mfs("ls", "--backend", backend, env=provider_env(backend, url), timeout=120)
    assert r.returncode == 203, r.stderr
    assert "listing does not end" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert Endless.pages == (2 if same else 1000)


def test_created_label_far_in_the_past_is_an_unknown_age(endless):
    """Without createdAt, `ls` takes the age from the `mfsandbox.created`
    label, which anyone with the key can set: now minus -2^63 overflowed
    (UBSan: signed overflow) and the row claimed an age of 0 s."""
    Endless.rows = [{"id": "sb-1", "state": "started",
                     "labels": {"mfsandbox": "1",
                                "mfsandbox.created": "-9223372036854775808"}}]
    url = "http://127.0.0.1:%d" % endless.server_address[1]
    r = mfs("ls", "--backend", "daytona", env=provider_env("daytona", url), timeout=120)
    assert r.returncode == 0, r.stderr
    (row,) = [line for line in r.stdout.splitlines() if line.startswith("sb-1")]
    assert row.split()[-2] == "?", row
