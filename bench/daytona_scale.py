#!/usr/bin/env python3
"""Executor-only scale on Daytona: N concurrent `mfsandbox run --backend daytona
-- echo task-I` against the Daytona emulator (tests/emulators/daytona), next to
the emulator's own service time for the same N tasks.  Figures only, no
assertions.

Rows, alternated when BENCH_REPEAT > 1 so that drift on a shared machine
falls on every row alike:
  floor   N minimal clients at once (asyncio, one connection each), each doing
          the least a task needs: POST /sandbox, POST .../process/execute,
          DELETE /sandbox.  Their client work is near nothing, so the wall
          time is the emulator's service time.
  floor+  the same clients sending the request sequence mfsandbox sends for
          an echo (create, session, async exec, status + log polls on the
          same schedule, delete): the emulator's cost of our protocol,
          without our processes.
  ours    N `mfsandbox run` processes started at once by bench/fanout.c.

Printed for `ours`: errors (exit status or output wrong), sandboxes leaked
(the emulator's live count afterwards), wall time, CPU per task (user+sys of
each process, from wait4), HTTP requests per task and their mix, peak RSS per
process (wait4) and, sampled from /proc/PID/smaps_rollup while they run, RSS,
PSS and private (unshared) memory per process and the peak PSS sum.

usage: bench/daytona_scale.py [N]    (default 1000; BENCH_REPEAT, default 1)
"""
import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.environ.get("MFSANDBOX_BIN", os.path.join(ROOT, "mfsandbox")))
FANOUT = os.path.join(ROOT, "build", "bench", "fanout")
N = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_N", "1000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "1"))
API_KEY = "dtn_" + "b" * 40
ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mfs-[0-9a-f]+"
                r"|\.sh$")


# -- the emulator -----------------------------------------------------------
class Emulator:
    def __init__(self):
        py = os.path.join(ROOT, ".venv", "bin", "python")
        env = dict(os.environ, DAYTONA_API_KEY=API_KEY)
        self.proc = subprocess.Popen([py if os.path.exists(py) else sys.executable, "-m",
                                      "emulators.daytona", "--port", "0"],
                                     cwd=os.path.join(ROOT, "tests"), env=env,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("DAYTONA_API_URL="):
            raise SystemExit("the emulator did not start")
        self.url = line.strip().split("=", 1)[1]
        self.base = self.url[:-len("/api")]
        self.port = int(self.base.rsplit(":", 1)[1])

    def get(self, path):
        with urllib.request.urlopen(self.base + path, timeout=60) as r:
            return json.load(r)

    def requests_since(self, k):
        rows = self.get("/_emulator/requests?since=%d" % k)["requests"]
        return [(m, p) for m, p in rows if not p.startswith("/_emulator/")]

    def mark(self):
        return len(self.get("/_emulator/requests?since=0")["requests"])

    def live_after_settling(self):
        """Live sandboxes once deletes in flight have landed (a few seconds at most)."""
        live = None
        for _ in range(50):
            live = self.get("/_emulator/live")["live"]
            if live == 0:
                break
            time.sleep(0.1)
        return live

    def cpu_s(self):
        """The emulator's CPU, with the sandboxes' processes it has reaped."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


# -- the floor: minimal clients on raw HTTP/1.1 -----------------------------
class Conn:
    def __init__(self, port):
        self.port = port
        self.r = self.w = None

    async def call(self, method, path, body=None, ctype="application/json"):
        if self.w is None:
            self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)
        data = body.encode() if isinstance(body, str) else (body or b"")
        head = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                "Content-Length: %d\r\n" % (method, path, API_KEY, len(data)))
        if body is not None:
            head += "Content-Type: %s\r\n" % ctype
        self.w.write(head.encode() + b"\r\n" + data)
        status = int((await self.r.readline()).split()[1])
        length = 0
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            if k.lower() == "content-length":
                length = int(v)
        return status, await self.r.readexactly(length)

    def close(self):
        if self.w:
            self.w.close()


CREATE = json.dumps({"labels": {"mfsandbox": "1"}, "env": {}, "autoStopInterval": 15,
                     "autoDeleteInterval": 0})


async def floor_task(port, i, protocol):
    c = Conn(port)
    try:
        st, body = await c.call("POST", "/api/sandbox", CREATE)
        if st != 200:
            return False
        sid = json.loads(body)["id"]
        tb = "/toolbox/" + sid
        ok = True
        if protocol == "floor":
            st, body = await c.call("POST", tb + "/process/execute",
                                    json.dumps({"command": "echo task-%d" % i}))
            ok = st == 200 and json.loads(body)["result"] == "task-%d\n" % i
        else:
            script = "cd /home/daytona || exit 1\nexec echo task-%d </dev/null\n" % i
            await c.call("POST", tb + "/process/session", json.dumps({"sessionId": "s"}))
            st, body = await c.call("POST", tb + "/process/session/s/exec",
                                    json.dumps({"command": "sh -c '%s' t" % script,
                                                "runAsync": True}))
            cmd = tb + "/process/session/s/command/" + json.loads(body)["cmdId"]
            wait = 0.02
            while True:
                st, body = await c.call("GET", cmd)
                done = "exitCode" in json.loads(body)
                st, log = await c.call("GET", cmd + "/logs")
                if done:
                    break
                await asyncio.sleep(wait)
                wait = min(wait * 1.5, 0.5)
            ok = log.endswith(b"task-%d\n" % i)
        st, _ = await c.call("DELETE", "/api/sandbox/" + sid)
        return ok and st in (200, 204)
    except (OSError, ValueError, KeyError, IndexError, asyncio.IncompleteReadError):
        return False
    finally:
        c.close()


def run_floor(emu, protocol):
    async def all_tasks():
        return await asyncio.gather(*(floor_task(emu.port, i, protocol) for i in range(N)))
    mark, cpu0, ecpu0 = emu.mark(), time.process_time(), emu.cpu_s()
    t0 = time.perf_counter()
    oks = asyncio.run(all_tasks())
    wall = time.perf_counter() - t0
    reqs = emu.requests_since(mark)
    return {"wall": wall, "errors": oks.count(False), "leaked": emu.live_after_settling(),
            "client_cpu": (time.process_time() - cpu0) / N, "emu_cpu": emu.cpu_s() - ecpu0,
            "reqs": len(reqs) / N}


# -- ours -------------------------------------------------------------------
def run_ours(emu):
    out = tempfile.mkdtemp(prefix="scale-")
    env = dict(os.environ, DAYTONA_API_KEY=API_KEY, DAYTONA_API_URL=emu.url)
    env.pop("DAYTONA_JWT_TOKEN", None)
    mark, ecpu0 = emu.mark(), emu.cpu_s()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run([FANOUT, "-o", out, "-i", "1000", str(N), BIN, "run", "--backend",
                          "daytona", "--quiet", "--", "echo", "task-{}"],
                         env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows, total = [], None
    for line in res.stdout.splitlines():
        f = line.split()
        if f[0] == "total":
            total = [int(x) for x in f[1:]]
        else:
            rows.append([int(x) for x in f])
    errors, first_err = 0, None
    for i, status, *_ in rows:
        with open(os.path.join(out, "%d.out" % i)) as f:
            got = f.read()
        if status != 0 or got != "task-%d\n" % i:
            errors += 1
            if first_err is None:
                with open(os.path.join(out, "%d.err" % i)) as f:
                    first_err = "task %d: status %d, stdout %r, stderr %r" % (
                        i, status, got[:80], f.read()[-300:])
    shutil.rmtree(out, ignore_errors=True)
    reqs = emu.requests_since(mark)
    mix = {}
    for m, p in reqs:
        key = m + " " + ID.sub("{id}", p)
        mix[key] = mix.get(key, 0) + 1
    cpu = [r[3] / 1e3 for r in rows]
    walls = sorted(r[2] / 1e6 for r in rows)
    return {
        "wall": wall, "errors": errors, "first_error": first_err,
        "leaked": emu.live_after_settling(), "emu_cpu": emu.cpu_s() - ecpu0,
        "client_cpu_total": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "cpu_ms_median": statistics.median(cpu), "cpu_ms_mean": statistics.mean(cpu),
        "task_wall": (walls[len(walls) // 2], walls[int(len(walls) * 0.9)], walls[-1]),
        "maxrss_kib_median": statistics.median(r[4] for r in rows),
        "maxrss_kib_max": max(r[4] for r in rows),
        "rss_kib": statistics.median(r[5] for r in rows if r[5]) if any(r[5] for r in rows) else 0,
        "pss_kib": statistics.median(r[6] for r in rows if r[6]) if any(r[6] for r in rows) else 0,
        "private_kib": statistics.median(r[7] for r in rows if r[7]) if any(r[7] for r in rows) else 0,
        "peak_live": total[1], "peak_pss_sum_kib": total[2], "samples": total[3],
        "reqs": len(reqs) / N, "mix": {k: v / N for k, v in sorted(mix.items())},
    }


def main():
    if not os.path.exists(FANOUT):
        raise SystemExit("build bench/fanout.c first: make bench-scale")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * N + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * N + 64), hard))
    emu = Emulator()
    runs = {"floor": [], "floor+": [], "ours": []}
    try:
        for _ in range(REPEAT):
            runs["floor"].append(run_floor(emu, "floor"))
            runs["floor+"].append(run_floor(emu, "floor+"))
            runs["ours"].append(run_ours(emu))
    finally:
        emu.stop()
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print("Daytona executor-only scale: N=%d concurrent tasks, %d repeat(s), %d CPUs, "
          "load average %s" % (N, REPEAT, os.cpu_count(), " ".join(load)))

    def med(row, k):
        return statistics.median(r[k] for r in runs[row])
    floor = med("floor", "wall")
    print("%-7s %9s %7s %7s %7s %12s %12s" % ("row", "wall s", "x floor", "errors", "leaked",
                                              "req/task", "emu CPU s"))
    # emu CPU: the emulator and the sandbox processes it reaped (bwrap, shells).
    for row in runs:
        print("%-7s %9.2f %7.2f %7d %7d %12.1f %12.1f" % (
            row, med(row, "wall"), med(row, "wall") / floor, sum(r["errors"] for r in runs[row]),
            sum(r["leaked"] or 0 for r in runs[row]), med(row, "reqs"), med(row, "emu_cpu")))
    o = runs["ours"][-1]
    print("\nours, per task (median over tasks, last repeat):")
    print("  CPU (user+sys)        %.1f ms (mean %.1f ms; all processes %.1f s)" % (
        o["cpu_ms_median"], o["cpu_ms_mean"], o["client_cpu_total"]))
    print("  peak RSS (wait4)      %.1f MiB (max %.1f MiB)" % (
        o["maxrss_kib_median"] / 1024, o["maxrss_kib_max"] / 1024))
    print("  sampled RSS / PSS / private   %.1f / %.1f / %.1f MiB" % (
        o["rss_kib"] / 1024, o["pss_kib"] / 1024, o["private_kib"] / 1024))
    print("  peak live processes %d, peak PSS sum %.0f MiB (estimated from %d reads)" % (
        o["peak_live"], o["peak_pss_sum_kib"] / 1024, o["samples"]))
    print("  task wall time        median %.1f s, p90 %.1f s, max %.1f s" % o["task_wall"])
    print("  floor client CPU      %.2f ms/task (asyncio, one process)" % (
        1000 * med("floor", "client_cpu")))
    print("  requests per task     %.2f (floor %.0f):" % (o["reqs"], med("floor", "reqs")))
    for k, v in o["mix"].items():
        print("    %5.2f  %s" % (v, k))
    if o["first_error"]:
        print("  first error: %s" % o["first_error"])


if __name__ == "__main__":
    main()
