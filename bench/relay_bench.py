"""Relay bench: relay time and S3 requests per task, printed (no assertions).

Runs one real Metaflow task as a sandbox does (S3 datastore on moto with
signature checking, metaflow-local-service), then relays it RUNS times with
build/tests/relaytool, each time from a fresh spool (so every run really
fetches and POSTs), in both modes (service replay and local merge).

usage: bench/relay            (BENCH_RUNS, default 20)
"""
import os
import statistics
import subprocess
import time

from sandbox_emulation import init_parameters, run_in_sandbox

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELAY = os.path.join(ROOT, "build", "tests", "relaytool")
RUNS = int(os.environ.get("BENCH_RUNS", "20"))


def test_relay_bench(s3_server, metadata_service, tmp_path):
    ds_root = "s3://%s/bench-%s" % (s3_server.bucket, tmp_path.name)
    env = s3_server.env(METAFLOW_USER="bench", USER="bench",
                        METAFLOW_SERVICE_URL=metadata_service.url)
    run = metadata_service.new_run("RelayFlow")
    params = metadata_service.new_task("RelayFlow", run, "_parameters")
    init_parameters(tmp_path, "RelayFlow.py", ds_root, run, params, env)
    task = metadata_service.new_task("RelayFlow", run, "start")
    run_in_sandbox(tmp_path, "RelayFlow.py", "RelayFlow", ds_root, run, "start", task, 1,
                   "%s/_parameters/%s" % (run, params), env)
    for mode in ("service", "local"):
        times, reqs, rows = [], [], []
        for i in range(RUNS):
            args = [RELAY, "run", "--flow", "RelayFlow", "--run", run, "--step", "start",
                    "--task", task, "--attempt", "1", "--ds-type", "s3", "--ds-root", ds_root,
                    "--metadata", mode, "--service-url", metadata_service.url,
                    "--spool", str(tmp_path / ("spool-%s-%d" % (mode, i))),
                    "--local-root", str(tmp_path / ("mf-%d" % i) / ".metaflow")]
            t0 = time.perf_counter()
            r = subprocess.run(args, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            out = dict(l.split(" ", 1) for l in r.stdout.splitlines() if " " in l)
            reqs.append(int(out.get("s3_requests", -1)))
            rows.append(int(out.get("metadata_rows", 0)) + int(out.get("artifact_rows", 0))
                        if mode == "service" else int(out.get("files_merged", 0)))
        print("\nrelay %-7s runs=%d  median %.1f ms  min %.1f ms  max %.1f ms  "
              "S3 requests/task %s  %s/task %s" % (
                  mode, RUNS, 1000 * statistics.median(times), 1000 * min(times),
                  1000 * max(times), sorted(set(reqs)),
                  "rows" if mode == "service" else "files", sorted(set(rows))))
