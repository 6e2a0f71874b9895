"""`mfsandbox kill --stale` by launcher identity (issue 14): a sandbox is
stale by its launcher only when that launcher ran on this machine, boot and
pid namespace (labels mfsandbox.machine/.boot, src/util/launcher_id.c) and
its pid is gone or now belongs to a process started at another time.  A
sandbox from another machine is never stale, whatever its hostname label.
Labels are rewritten where each backend keeps them: the local backend's
state file, the Daytona emulator's label API."""
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import tempfile
import urllib.request

import pytest

from fixtures.daytona import API_KEY
from mfs_cli import clean_env, launcher_labels, mfs

OTHER_MACHINE = "0123456789abcdef0123456789abcdef"


def start_ticks(pid):
    return int(launcher_labels(pid)["pidstart"])


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def relabel_cases():
    """(name, label changes, stale?) applied to a kept sandbox whose own
    launcher has exited."""
    me = os.getpid()
    return [
        ("same machine, launcher gone", {}, True),
        ("same machine, launcher alive", {"mfsandbox.pid": str(me),
                                          "mfsandbox.pidstart": str(start_ticks(me))}, False),
        ("pid reused by a later process", {"mfsandbox.pid": str(me),
                                           "mfsandbox.pidstart": str(start_ticks(me) - 1)}, True),
        ("other machine, same hostname, dead pid", {"mfsandbox.machine": OTHER_MACHINE,
                                                    "mfsandbox.host": socket.gethostname()}, False),
        ("other machine, pid alive here", {"mfsandbox.machine": OTHER_MACHINE,
                                           "mfsandbox.pid": str(me)}, False),
        ("older label set (hostname and pid only)", {"mfsandbox.machine": None,
                                                      "mfsandbox.boot": None,
                                                      "mfsandbox.pidstart": None,
                                                      "mfsandbox.host": socket.gethostname(),
                                                      "mfsandbox.pid": str(dead_pid())}, False),
    ]


CASES = [c[0] for c in relabel_cases()]


def changes_for(name):
    return {c[0]: (c[1], c[2]) for c in relabel_cases()}[name]


# ---- local backend: labels live in <state>/<id>.state as label.K=V lines


@pytest.fixture
def local_env(tmp_path):
    state = pathlib.Path(tempfile.mkdtemp(prefix="mfs-stale-", dir="/var/tmp"))
    yield clean_env(MFSANDBOX_LOCAL_STATE_DIR=str(state), TMPDIR=str(tmp_path))
    left = sorted(p for p in os.listdir(state))
    shutil.rmtree(state, ignore_errors=True)
    assert left == [], "sandboxes left behind: %s" % left


def keep_local(env):
    r = mfs("run", "--backend", "local", "--keep", "--quiet", "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    return re.search(r"kept local sandbox (\S+)", r.stderr).group(1)


def relabel_local(env, sid, changes):
    state = pathlib.Path(env["MFSANDBOX_LOCAL_STATE_DIR"]) / ("%s.state" % sid)
    lines, seen = [], set()
    for line in state.read_text().splitlines():
        key = line.split("=", 1)[0]
        label = key[len("label."):] if key.startswith("label.") else None
        if label in changes:
            seen.add(label)
            if changes[label] is None:
                continue
            line = "%s=%s" % (key, changes[label])
        lines.append(line)
    lines += ["label.%s=%s" % (k, v) for k, v in changes.items() if k not in seen and v]
    state.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("case", CASES)
def test_local_stale_by_launcher_identity(local_env, case):
    changes, stale = changes_for(case)
    sid = keep_local(local_env)
    labels = (pathlib.Path(local_env["MFSANDBOX_LOCAL_STATE_DIR"]) / ("%s.state" % sid)).read_text()
    assert re.search(r"^label\.mfsandbox\.machine=[0-9a-f]{32}$", labels, re.M)
    assert re.search(r"^label\.mfsandbox\.pidstart=\d+$", labels, re.M)
    relabel_local(local_env, sid, changes)
    k = mfs("kill", "--stale", "--backend", "local", env=local_env)
    assert k.returncode == 0, k.stderr
    assert k.stdout == ("killed %s (local)\n" % sid if stale else ""), case
    if not stale:
        assert sid in mfs("ls", "--backend", "local", env=local_env).stdout
        assert mfs("kill", "--backend", "local", sid, env=local_env).returncode == 0


# ---- Daytona emulator: labels through the provider's label API


def api(emu, method, path, body=None):
    req = urllib.request.Request(emu.url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + API_KEY,
                                          "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req).read() or b"null")


@pytest.mark.parametrize("case", ["same machine, launcher gone", "pid reused by a later process",
                                  "other machine, same hostname, dead pid"])
def test_daytona_stale_by_launcher_identity(daytona_emulator, case):
    changes, stale = changes_for(case)
    env = clean_env(DAYTONA_API_KEY=API_KEY, DAYTONA_API_URL=daytona_emulator.url)
    r = mfs("run", "--backend", "daytona", "--keep", "--quiet", "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    sid = re.search(r"kept daytona sandbox (\S+)", r.stderr).group(1)
    labels = api(daytona_emulator, "GET", "/sandbox/" + sid)["labels"]
    assert re.fullmatch(r"[0-9a-f]{32}", labels["mfsandbox.machine"])
    for k, v in changes.items():
        if v is None:
            labels.pop(k, None)
        else:
            labels[k] = v
    api(daytona_emulator, "PUT", "/sandbox/%s/labels" % sid, {"labels": labels})
    k = mfs("kill", "--stale", "--backend", "daytona", env=env)
    assert k.returncode == 0, k.stderr
    assert k.stdout == ("killed %s (daytona)\n" % sid if stale else ""), case
    assert daytona_emulator.live_count() == (0 if stale else 1)
    if not stale:
        assert mfs("kill", "--backend", "daytona", sid, env=env).returncode == 0
