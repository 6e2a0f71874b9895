"""A Metaflow flow with @daytona, end to end: the real Metaflow from PyPI, the
real ./mfsandbox, the Daytona emulator (sandboxes reach S3 on moto and
nothing else) and the real metaflow-local-service, which the sandboxes cannot
reach: their metadata gets there through mfsandbox's relay.  Results, logs
and retries are read back from the S3 datastore, metadata from the service;
nothing may leak."""
import collections

from mf_e2e import FlowRun

FLOW = "MfsDaytonaFlow"


def test_daytona_flow_end_to_end(s3_server, metadata_service, daytona_emulator, daytona_env,
                                 tmp_path):
    fr = FlowRun("daytona_flow.py", FLOW, s3_server, metadata_service, daytona_emulator,
                 daytona_env, tmp_path).run("--greeting", "hey \u2713")
    assert fr.returncode == 0, fr.console[-8000:]
    console, read = fr.console, fr.read
    start = read("start", 0, "backend", "marker", "service_reachable", "greeting_seen", "colour")
    assert start["backend"] == "daytona"
    assert (start["greeting_seen"], start["colour"]) == ("hey \u2713", "teal")
    assert start["marker"].startswith("/home/daytona/")
    assert start["service_reachable"] is False  # only the relay may talk to the service
    assert "hello from daytona \u2713" in start["stdout"]
    assert "to stderr" in start["stderr"] and "to stderr" not in start["stdout"]
    # the live output reached the launcher's console once
    assert console.count("hello from daytona") == 1

    first = read("flaky", 0, "attempt_seen", "fresh")
    assert first["attempt_seen"] == 0 and "first attempt fails on purpose" in first["stderr"]
    second = read("flaky", 1, "attempt_seen", "fresh", "total")
    assert second == dict(second, attempt_seen=1, fresh=True, total=6)  # a fresh sandbox
    assert read("end", 0, "done")["done"] == 12
    assert read("join", 0, "squares")["squares"] == [1, 4, 9]

    # metadata the sandbox wrote locally reached the service through the relay,
    # every row of the task exactly once, both attempts of the retried step
    fields, names = fr.assert_metadata_once_per_attempt("flaky", fr.task("flaky"))
    for a in (0, 1):
        assert ("attempt", a) in fields and ("attempt_ok", a) in fields, sorted(fields)
    assert names[("total", 1)] == 1

    assert daytona_emulator.created_total == 8  # start, 3 squares, join, flaky twice, end
    # each sandbox says whose task it runs, and is marked as ours
    labels = [b["labels"] for b in daytona_emulator.create_bodies]
    assert all(l["mfsandbox"] == "1" and l["mfsandbox.flow"] == FLOW for l in labels)
    assert collections.Counter(l["mfsandbox.step"] for l in labels) == \
        {"start": 1, "square": 3, "join": 1, "flaky": 2, "end": 1}
    assert {(l["mfsandbox.run"], l["mfsandbox.task"]) for l in labels
            if l["mfsandbox.step"] == "flaky"} == {(fr.run_id, fr.task("flaky"))}
    assert sorted(l.get("mfsandbox.attempt") for l in labels
                  if l["mfsandbox.step"] == "flaky") == ["0", "1"]
    assert daytona_emulator.live_count() == 0
