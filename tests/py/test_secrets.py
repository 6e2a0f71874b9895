"""What mfsandbox prints must not carry secrets or someone else's terminal
escapes (issue 14): env-file errors never echo a value, --dry-run hides
secrets by name, in URLs and by value under any other name (rule set in
src/util/redact.c), and `mfsandbox ls` escapes provider strings."""
import json
import urllib.request

import pytest

from fixtures.daytona import API_KEY
from mfs_cli import clean_env, mfs

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def one_line(r):
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize("line", [
    "AWS_SECRET_ACCESS_KEY: " + SECRET,        # YAML, not an env file
    "AWS_SECRET_ACCESS_KEY " + SECRET,
    SECRET,                                    # a bare key pasted alone
    SECRET + "==",                             # base64 padding looks like KEY=
])
def test_env_file_errors_never_echo_the_line(tmp_path, line):
    envfile = tmp_path / "env"
    envfile.write_text("OK=1\n" + line + "\n")
    r = mfs("run", "--backend", "local", "--env-file", envfile, "--", "true")
    assert r.returncode == 202
    msg = one_line(r)
    assert msg.startswith("mfsandbox: --env-file %s:2: " % envfile)
    for part in SECRET.split("/"):
        assert part not in msg


def test_dry_run_hides_pats_passwords_url_credentials_and_copies(tmp_path):
    env = clean_env(MY_FORWARDED_TOKEN="fwd-tok-9876")
    r = mfs("run", "--backend", "local", "--dry-run",
            "--env", "GITHUB_PAT=ghp_abcdef123456", "--env", "DB_PASSWORD=hunter2hunter2",
            "--env", "DB_URL=postgres://app:pg-pass-777@db:5432/x",
            "--env", "COPY_OF_IT=ghp_abcdef123456", "--env", "PATH_EXTRA=/opt/bin",
            "--forward-env", "MY_FORWARDED_TOKEN",
            "--", "sh", "-c", "git clone https://ghp_abcdef123456@github.com/o/r; echo fwd-tok-9876",
            env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for secret in ("ghp_abcdef123456", "hunter2hunter2", "pg-pass-777", "fwd-tok-9876"):
        assert secret not in out
    assert "GITHUB_PAT=<redacted>" in out and "DB_PASSWORD=<redacted>" in out
    assert "postgres://app:<redacted>@db:5432/x" in out
    assert "COPY_OF_IT='<redacted>'" in out
    assert "PATH_EXTRA=/opt/bin" in out  # PATH is not a PAT


def test_ls_escapes_provider_strings(daytona_emulator):
    """A provider (or whoever can label sandboxes in the account) controls
    these strings; none of their control bytes may reach the terminal."""
    hostile = "\x1b]0;owned\x07\x1b[2J"
    body = json.dumps({"labels": {"mfsandbox": "1", "mfsandbox.flow": "F" + hostile,
                                  "mfsandbox.run": "1", "mfsandbox.step": "s",
                                  "mfsandbox.task": "2", "mfsandbox.attempt": "\x9b" + "0"}})
    req = urllib.request.Request(daytona_emulator.url + "/sandbox", data=body.encode(),
                                 method="POST",
                                 headers={"Authorization": "Bearer " + API_KEY,
                                          "Content-Type": "application/json"})
    sid = json.loads(urllib.request.urlopen(req).read())["id"]
    env = clean_env(DAYTONA_API_KEY=API_KEY, DAYTONA_API_URL=daytona_emulator.url)
    r = mfs("ls", "--backend", "daytona", env=env, text=False)
    assert r.returncode == 0, r.stderr
    row = [l for l in r.stdout.splitlines() if l.startswith(sid.encode())]
    assert len(row) == 1
    assert b"\x1b" not in r.stdout and b"\x07" not in r.stdout and b"\x9b" not in r.stdout
    assert b"F\\x1b]0;owned\\x07\\x1b[2J/1/s/2" in row[0]
    k = mfs("kill", "--backend", "daytona", sid, env=env)
    assert k.returncode == 0, k.stderr
