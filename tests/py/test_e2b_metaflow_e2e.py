"""A Metaflow flow with @e2b, end to end: the real Metaflow from PyPI, the
real ./mfsandbox, the E2B emulator (sandboxes reach S3 on moto and nothing
else) and the real metaflow-local-service, which the sandboxes cannot reach:
their metadata gets there through mfsandbox's relay, armed by the task spec
alone.  Checked as for the other backends: every task and attempt through
the Client API, metadata rows and artifacts once per attempt, the `logs`
command, a retry in a fresh sandbox, no sandbox left, and no credential on
any mfsandbox command line or in any log."""
import collections
import shutil

import pytest

from mf_e2e import FlowRun

FLOW = "MfsE2BFlow"

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")


@pytest.fixture
def emu(e2b_emulator):
    yield e2b_emulator
    assert e2b_emulator.live_count() == 0, "a sandbox leaked"
    assert e2b_emulator.violations == []


def secrets_of(fr):
    return {name: fr.env[name] for name in ("E2B_API_KEY", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_ACCESS_KEY_ID")}


def test_e2b_flow_end_to_end(s3_server, metadata_service, emu, e2b_env, tmp_path):
    fr = FlowRun("e2b_flow.py", FLOW, s3_server, metadata_service, emu, e2b_env,
                 tmp_path).run("--greeting", "it's \"quoted\"  \u2713")
    assert fr.returncode == 0, fr.console[-8000:]

    # from S3: both attempts of the retried step, the second in a fresh sandbox
    a0 = fr.read("start", 0, "attempt_seen", "fresh")
    assert a0["attempt_seen"] == 0 and "attempt 0 fails on purpose" in a0["stderr"]
    a1 = fr.read("start", 1, "_success", "attempt_seen", "fresh", "greeting_seen", "colour", "home",
                 "backend", "e2b_env", "service_reachable")
    assert a1 == dict(a1, _success=True, attempt_seen=1, fresh=True, greeting_seen="it's \"quoted\"  \u2713",
                      colour="teal", home="/home/user", backend="e2b",
                      e2b_env=["E2B_SANDBOX"])  # envd's own marker; no credential
    assert a1["service_reachable"] is False  # only the relay may talk to the service
    assert a1["stdout"].count("unicode: h\u00e9llo \u2713") == 1
    assert "to stderr: \u00fcber" in a1["stderr"] and "\u00fcber" not in a1["stdout"]
    assert sorted(fr.read("square", 0, "value", task=t)["value"]
                  for t in fr.tasks["square"]) == [1, 4, 9]

    # through the Client API: every step, task and attempt, no artifact twice
    seen = fr.client("attempt_seen", "greeting_seen", "value", "total")
    assert sorted(seen) == ["end", "join", "square", "start"]
    start = seen["start"][fr.task("start")]
    assert start["current_attempt"] == 1
    assert start["attempts"]["0"]["data"] == {"attempt_seen": 0}
    assert start["attempts"]["1"]["data"] == {"attempt_seen": 1,
                                              "greeting_seen": "it's \"quoted\"  \u2713"}
    assert sorted(t["attempts"]["0"]["data"]["value"] for t in seen["square"].values()) == \
        [1, 4, 9]
    assert [t["attempts"]["0"]["data"]["total"] for t in seen["join"].values()] == [14]
    for step in seen.values():
        for task in step.values():
            for att in task["attempts"].values():
                assert len(att["names"]) == len(set(att["names"]))
    # in the service: each attempt's rows, relayed exactly once
    for step, tasks in seen.items():
        for task, info in tasks.items():
            fields, names = fr.assert_metadata_once_per_attempt(step, task)
            for a in range(info["current_attempt"] + 1):
                assert {("attempt", a), ("attempt_ok", a)} <= fields, (step, sorted(fields))
                if step != "end":
                    assert ("sandbox-backend", a) in fields, (step, sorted(fields))
    fields, names = fr.assert_metadata_once_per_attempt("start", fr.task("start"))
    assert names[("greeting_seen", 1)] == 1

    # the logs command shows the task's own lines, once
    assert fr.logs("start").count("unicode: h\u00e9llo \u2713") == 1
    assert fr.logs("start", "--stderr").count("to stderr: \u00fcber") == 1

    # one sandbox per task attempt, each saying whose task it ran
    assert emu.created_total == 6  # start twice, 3 squares, join
    meta = emu.create_metadata
    assert all(m["mfsandbox"] == "1" and m["mfsandbox.flow"] == FLOW for m in meta)
    assert collections.Counter(m["mfsandbox.step"] for m in meta) == \
        {"start": 2, "square": 3, "join": 1}
    assert sorted(m.get("mfsandbox.attempt") for m in meta
                  if m["mfsandbox.step"] == "start") == ["0", "1"]

    # the size note only where a size was asked for (@resources on square),
    # once per task, written by mfsandbox: the decorator passes its default
    # sizes on too, and mfsandbox alone decides they earn no note on E2B
    notes = [l for l in fr.console.splitlines() if "are not applied" in l]
    assert len(notes) == 3 and all("/square/" in l for l in notes), notes
    assert all("mfsandbox: warning: e2b: --cpu and --memory are not applied" in l
               for l in notes), notes
    runs = [a for a in fr.argv_seen if "--metaflow-spec" in a]
    assert runs and all("--cpu" in a and "--memory" in a for a in runs), fr.argv_seen

    # no credential on a command line or in any log
    assert fr.argv_seen, "no mfsandbox process was seen running"
    logs = [fr.console, a0["stdout"], a0["stderr"], a1["stdout"], a1["stderr"],
            fr.logs("start"), fr.logs("start", "--stderr")]
    for name, value in secrets_of(fr).items():
        assert not [a for a in fr.argv_seen if any(value in w for w in a)], name
        assert not [l for l in logs if value in l], name


def test_bad_api_key_fails_once_without_retry(s3_server, metadata_service, emu, e2b_env,
                                              tmp_path):
    """A refused key is a configuration error: one line naming E2B_API_KEY,
    exit 202, which Metaflow does not retry even under @retry."""
    bad = dict(e2b_env, E2B_API_KEY="e2b_" + "0badc0de" * 5)
    fr = FlowRun("e2b_flow.py", FLOW, s3_server, metadata_service, emu, bad,
                 tmp_path).run()
    assert fr.returncode != 0
    lines = [l for l in fr.console.splitlines() if "E2B_API_KEY" in l]
    assert len(lines) == 1, fr.console[-6000:]
    assert "0badc0de" not in fr.console
    assert fr.console.count("Task is starting") == 1  # @retry did not try again
    assert emu.created_total == 0
