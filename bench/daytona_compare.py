"""mfsandbox against the original metaflow-sandbox (0.1.1, PyPI) on the Daytona
emulator: the same foreach flow (bench/flows/fanout_flow.py), the same S3 on
moto (signature checking on) and metaflow-local-service, runs alternating
ours/original so that drift in the machine's load cancels out in the ratios.
Prints figures only; nothing here passes or fails on a timing.

Per flow run (all steps in sandboxes, N + 3 tasks):
  cpu/task     user+sys CPU of the whole process tree under `flow.py run`
               (wait4), divided by the tasks; the emulator and the servers
               run outside that tree.  Split into the Metaflow runtime's own
               share and the per-task processes' share (bench/instrument).
               Metaflow's heartbeat sidecar is told to exit, never waited
               for, so its CPU is sampled and shown apart.
  rss/inflight sum of RSS of the per-task process trees (the runtime's
               children and their descendants), sampled every 0.2 s, divided
               by how many were in flight; median over samples.
  latency      arrival of each `BENCHLAT` line on the launcher's console
               minus the time the sandbox printed it.
  wall         the flow's wall time.
  emu cpu/task the emulator process's own CPU per task: what serving each
               implementation's requests costs the (Python) server.
  sandbox cpu  the CPU of everything in the sandboxes per task (a cpuacct
               cgroup around the emulator, where one is writable).
Also, once: the emulator's floor (create + run `true` + delete over raw HTTP,
no client work) and `mfsandbox run --backend daytona -- true` against it.

Knobs (environment): BENCH_PLAN="10:3,100:1" (N:pairs, one pair = one run of
each), BENCH_MAX_WORKERS (Metaflow --max-workers, default 16),
BENCH_LINES / BENCH_GAP (log lines per foreach task and seconds apart),
BENCH_IMPLS (default "ours,original"; one of them alone while profiling),
BENCH_PROFILE_RUNTIME=DIR (the runtime under cProfile, DIR/<run>.prof; for
diagnosis only, it inflates the runtime's CPU),
BENCH_ORIG_VENV (default build/bench/orig-venv), BENCH_OUT (JSON results,
default build/bench/daytona_compare.json).  Run through `make bench-compare`.
"""
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MFSANDBOX_BIN") or os.path.join(ROOT, "mfsandbox")
FLOW = os.path.join(ROOT, "bench", "flows", "fanout_flow.py")
INSTRUMENT = os.path.join(ROOT, "bench", "instrument")
ORIG_VENV = os.environ.get("BENCH_ORIG_VENV") or os.path.join(ROOT, "build", "bench", "orig-venv")
OUT = os.environ.get("BENCH_OUT") or os.path.join(ROOT, "build", "bench", "daytona_compare.json")
PLAN = [tuple(int(x) for x in p.split(":")) for p in
        os.environ.get("BENCH_PLAN", "10:3,100:1").split(",") if p]
MAX_WORKERS = int(os.environ.get("BENCH_MAX_WORKERS", "16"))
ONLY = os.environ.get("BENCH_IMPLS", "ours,original").split(",")
LINES = int(os.environ.get("BENCH_LINES", "4"))
GAP = float(os.environ.get("BENCH_GAP", "0.5"))
API_KEY = "dtn_" + "be9c" * 16
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
LAT = re.compile(r"BENCHLAT (\d+) (\d+\.\d+)")

IMPLS = {
    "ours": {"python": sys.executable},
    "original": {"python": os.path.join(ORIG_VENV, "bin", "python")},
}


# -- the emulator, one fresh process per flow run --------------------------
class EmulatorProc:
    def __init__(self, workdir, image_bin, allow_port):
        env = dict(os.environ, DAYTONA_API_KEY=API_KEY)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulators.daytona", "--allow-port", str(allow_port),
             "--image-path", image_bin, "--workdir", workdir],
            cwd=os.path.join(ROOT, "tests"), env=env, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("DAYTONA_API_URL="):
            self.proc.kill()
            raise RuntimeError("emulator did not start: %r" % line)
        self.url = line.split("=", 1)[1]
        self.cpu0 = _cpu(self.proc.pid)   # its start-up, left out
        self.cg = CpuGroup(self.proc.pid)

    def live(self):
        u = self.url[:-len("/api")] + "/_emulator/live"
        with urllib.request.urlopen(u, timeout=30) as r:
            return json.loads(r.read())["live"]

    def stop(self):
        """SIGTERM; returns the emulator process's own CPU seconds (serving
        the API, not the sandboxes' commands: session shells are killed,
        never waited for, so their CPU is not counted anywhere)."""
        cpu = _cpu(self.proc.pid) - self.cpu0
        self.sandbox_cpu = self.cg.seconds() - cpu
        self.proc.send_signal(signal.SIGTERM)
        os.waitpid(self.proc.pid, 0)
        self.proc.returncode = 0
        self.proc.stdout.close()
        self.cg.remove()
        return cpu


class CpuGroup:
    """A cgroup-v1 cpuacct group around the emulator, where the machine
    has a writable one: it counts the CPU of every process in the
    sandboxes, killed ones included (their parents never wait for them,
    so rusage cannot).  Without one, seconds() is NaN."""
    ROOT = "/sys/fs/cgroup/cpuacct"

    def __init__(self, pid):
        self.path = os.path.join(self.ROOT, "mfs-bench-%d" % pid)
        try:
            os.mkdir(self.path)
            with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                f.write(str(pid))
        except OSError:
            self.remove()
            self.path = None

    def seconds(self):
        if not self.path:
            return float("nan")
        with open(os.path.join(self.path, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9

    def remove(self):
        for _ in range(50):
            try:
                if self.path:
                    os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)  # killed sandbox processes still exiting


# -- launcher-side sampling ------------------------------------------------
def _cpu(pid):
    """A live process's own user+sys CPU seconds (0 once it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(pid):
    out = []
    for f in glob.glob("/proc/%d/task/*/children" % pid):
        try:
            with open(f) as fh:
                out += [int(x) for x in fh.read().split()]
        except OSError:
            pass
    return out


def _rss(pid):
    """(resident, resident and not file-backed) bytes."""
    try:
        with open("/proc/%d/statm" % pid) as f:
            v = f.read().split()
        return int(v[1]) * PAGE, (int(v[1]) - int(v[2])) * PAGE
    except (OSError, IndexError, ValueError):
        return 0, 0


def _tree_rss(pid):
    total, anon, todo = 0, 0, [pid]
    while todo:
        p = todo.pop()
        r, a = _rss(p)
        total, anon = total + r, anon + a
        todo += _children(p)
    return total, anon


def _is_sidecar(pid, seen):
    """Metaflow's heartbeat sidecar is the runtime's, not a task's."""
    if pid not in seen:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                seen[pid] = b"metaflow/sidecar/" in f.read()
        except OSError:
            return True
    return seen[pid]


class Sampler(threading.Thread):
    """Every 0.2 s: how many per-task processes the runtime has (its
    children but the sidecar) and the summed RSS of their trees."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.done = pid, [], threading.Event()
        self.sidecar_cpu = {}   # pid -> last CPU seconds seen

    def run(self):
        seen = {}
        while not self.done.wait(0.2):
            kids = _children(self.pid)
            for k in kids:
                if _is_sidecar(k, seen):
                    self.sidecar_cpu[k] = max(self.sidecar_cpu.get(k, 0.0), _cpu(k))
            kids = [k for k in kids if not _is_sidecar(k, seen)]
            if kids:
                rss = [_tree_rss(k) for k in kids]
                self.samples.append((len(kids), sum(r for r, _ in rss), sum(a for _, a in rss)))


def _reader(stream, latencies, tail):
    for line in stream:
        now = time.time()
        m = LAT.search(line)
        if m:
            latencies.append(now - float(m.group(2)))
        tail.append(line)
        del tail[:-200]


# -- one flow run ----------------------------------------------------------
def run_flow(impl, n, s3_server, metadata_service, work):
    python = IMPLS[impl]["python"]
    os.makedirs(work)
    shutil.copy(FLOW, work)
    os.makedirs(os.path.join(work, "emu"))
    emu = EmulatorProc(os.path.join(work, "emu"), os.path.dirname(python),
                       urllib.parse.urlsplit(s3_server.url).port)
    rusage_file = os.path.join(work, "runtime-rusage")
    env = s3_server.env(
        METAFLOW_USER="bench", USER="bench", METAFLOW_HOME=os.path.join(work, "mfhome"),
        METAFLOW_DEFAULT_DATASTORE="s3",
        METAFLOW_DATASTORE_SYSROOT_S3="s3://%s/bench-%s" % (s3_server.bucket,
                                                            os.path.basename(work)),
        METAFLOW_DEFAULT_METADATA="service", METAFLOW_SERVICE_URL=metadata_service.url,
        DAYTONA_API_KEY=API_KEY, DAYTONA_API_URL=emu.url, PYTHONUNBUFFERED="1",
        PYTHONPATH=INSTRUMENT, MFS_BENCH_RUSAGE=rusage_file)
    env = {k: v for k, v in env.items() if not k.startswith("MFSANDBOX_")}
    if impl == "ours":
        env["MFSANDBOX_BIN"] = BIN
    else:
        # offline: no micromamba download (the flow needs no environment)
        env["METAFLOW_SANDBOX_STAGE_MICROMAMBA"] = "0"
    prof = os.environ.get("BENCH_PROFILE_RUNTIME")
    profile = ["-m", "cProfile", "-o", os.path.join(prof, os.path.basename(work) + ".prof")] \
        if prof else []
    argv = [python] + profile + ["fanout_flow.py", "--no-pylint", "run", "--n", str(n),
            "--lines", str(LINES), "--gap", str(GAP), "--max-workers", str(MAX_WORKERS),
            "--max-num-splits", str(max(100, n))]
    latencies, tail = [], []
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, errors="replace")
    sampler = Sampler(p.pid)
    sampler.start()
    readers = [threading.Thread(target=_reader, args=(s, latencies, tail), daemon=True)
               for s in (p.stdout, p.stderr)]
    for r in readers:
        r.start()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    sampler.done.set()
    for r in readers:
        r.join()
    sampler.join()
    try:
        leaked = emu.live()
    finally:
        emu_cpu = emu.stop()
    sandbox_cpu = emu.sandbox_cpu
    if p.returncode != 0:
        raise RuntimeError("%s flow failed (%d):\n%s" % (impl, p.returncode, "".join(tail[-60:])))
    split = {}
    with open(rusage_file) as f:
        for line in f:
            k, v = line.split()
            split[k] = float(v)
    tasks = n + 3
    cpu = ru.ru_utime + ru.ru_stime
    per_inflight = [rss / k for k, rss, _ in sampler.samples]
    anon_per_inflight = [anon / k for k, _, anon in sampler.samples]
    return {
        "impl": impl, "n": n, "tasks": tasks, "wall": wall,
        "cpu": cpu,
        "cpu_runtime": cpu - split["children"],
        "cpu_task_procs": split["children"],
        "cpu_sidecar": sum(sampler.sidecar_cpu.values()),
        "rss_per_inflight": statistics.median(per_inflight) if per_inflight else 0.0,
        "anon_per_inflight": statistics.median(anon_per_inflight) if anon_per_inflight else 0.0,
        "max_inflight": max((k for k, _, _ in sampler.samples), default=0),
        "latencies": latencies, "emu_cpu": emu_cpu, "sandbox_cpu": sandbox_cpu,
        "leaked": leaked,
    }


# -- the floor: the emulator with no client work --------------------------
def _call(url, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": "Bearer " + API_KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def floor(s3_server, work, runs=10):
    """Per sandbox: wall and emulator CPU of create + execute `true` +
    delete over raw HTTP, and of `mfsandbox run --backend daytona -- true`
    (wall, and its own CPU from wait4)."""
    out = {}
    for kind in ("raw", "mfsandbox"):
        d = os.path.join(work, "floor-" + kind)
        os.makedirs(d)
        emu = EmulatorProc(d, os.path.dirname(sys.executable),
                           urllib.parse.urlsplit(s3_server.url).port)
        walls, cpus = [], []
        env = {k: v for k, v in os.environ.items() if not k.startswith("MFSANDBOX_")}
        env.update(DAYTONA_API_KEY=API_KEY, DAYTONA_API_URL=emu.url)
        for _ in range(runs):
            t0 = time.monotonic()
            if kind == "raw":
                sb = _call(emu.url + "/sandbox", "POST", {})
                _call("%s/%s/process/execute" % (sb["toolboxProxyUrl"], sb["id"]), "POST",
                      {"command": "true"})
                _call(emu.url + "/sandbox/" + sb["id"], "DELETE")
            else:
                p = subprocess.Popen([BIN, "run", "--backend", "daytona", "--quiet", "--", "true"],
                                     env=env, stdout=subprocess.DEVNULL)
                _, st, ru = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(st)
                if p.returncode != 0:
                    raise RuntimeError("mfsandbox run failed: %d" % p.returncode)
                cpus.append(ru.ru_utime + ru.ru_stime)
            walls.append(time.monotonic() - t0)
        time.sleep(0.5)  # deletes settle before the emulator is stopped
        emu_cpu = emu.stop()
        out[kind] = {"wall": statistics.median(walls), "emu_cpu": emu_cpu / runs,
                     "cpu": statistics.median(cpus) if cpus else None}
    return out


# -- the report ------------------------------------------------------------
def _med(runs, impl, n, key):
    vals = [r[key] for r in runs if r["impl"] == impl and r["n"] == n]
    return statistics.median(vals) if vals else float("nan")


def _lat(runs, impl, n):
    vals = [x for r in runs if r["impl"] == impl and r["n"] == n for x in r["latencies"]]
    return statistics.median(vals) if vals else float("nan")


def table(runs, fl):
    rows = []
    ns = sorted({r["n"] for r in runs})
    for n in ns:
        def per_task(impl, key):
            vals = [r[key] / r["tasks"] for r in runs if r["impl"] == impl and r["n"] == n]
            return statistics.median(vals) if vals else float("nan")
        metrics = [
            ("launcher CPU s/task", lambda i: per_task(i, "cpu"), "ratio <= 0.05"),
            ("  runtime's share", lambda i: per_task(i, "cpu_runtime"), ""),
            ("  per-task processes", lambda i: per_task(i, "cpu_task_procs"), ""),
            ("heartbeat sidecar, sampled", lambda i: per_task(i, "cpu_sidecar"), ""),
            ("RSS MiB/in-flight task", lambda i: _med(runs, i, n, "rss_per_inflight") / 2**20,
             "ratio <= 0.10"),
            ("  of it not file-backed", lambda i: _med(runs, i, n, "anon_per_inflight") / 2**20,
             ""),
            ("log latency s (median)", lambda i: _lat(runs, i, n), "ours <= 0.1 s"),
            ("wall s", lambda i: _med(runs, i, n, "wall"), "ratio <= 0.5 at N=100"),
            ("emulator process CPU s/task", lambda i: per_task(i, "emu_cpu"), ""),
            ("sandboxes' CPU s/task", lambda i: per_task(i, "sandbox_cpu"), ""),
        ]
        pairs = len([r for r in runs if r["impl"] == "ours" and r["n"] == n])
        rows.append("N=%d (%d run(s) each, max-workers %d)" % (n, pairs, MAX_WORKERS))
        for name, f, target in metrics:
            a, b = f("ours"), f("original")
            ratio = a / b if b else float("nan")
            rows.append("  %-26s ours %9.4f  original %9.4f  ratio %7.3f  %s" % (
                name, a, b, ratio, ("target " + target) if target else ""))
        leaks = sum(r["leaked"] for r in runs if r["n"] == n)
        rows.append("  leaked sandboxes: %d" % leaks)
    rows.append("emulator floor (create + execute true + delete, raw HTTP): wall %.3f s, "
                "emulator CPU %.3f s per sandbox" % (fl["raw"]["wall"], fl["raw"]["emu_cpu"]))
    rows.append("mfsandbox run --backend daytona -- true: wall %.3f s (%.2fx floor), own CPU "
                "%.4f s, emulator CPU %.3f s" % (fl["mfsandbox"]["wall"],
                                                 fl["mfsandbox"]["wall"] / fl["raw"]["wall"],
                                                 fl["mfsandbox"]["cpu"],
                                                 fl["mfsandbox"]["emu_cpu"]))
    return "\n".join(rows)


def machine():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    return {"nproc": os.cpu_count(), "mem_mib": mem, "kernel": os.uname().release,
            "loadavg": os.getloadavg()}


def test_daytona_compare(s3_server, metadata_service, tmp_path):
    if not os.access(IMPLS["original"]["python"], os.X_OK):
        raise SystemExit("bench: no %s; `make bench-compare` builds it" % ORIG_VENV)
    m0 = machine()
    fl = floor(s3_server, str(tmp_path))
    runs = []
    for n, pairs in PLAN:
        for k in range(pairs):
            order = ("ours", "original") if k % 2 == 0 else ("original", "ours")
            for impl in (i for i in order if i in ONLY):
                r = run_flow(impl, n, s3_server, metadata_service,
                             str(tmp_path / ("%s-%d-%d" % (impl, n, k))))
                print("  %-8s N=%-4d wall %6.1f s  cpu %6.2f s  rss/in-flight %6.1f MiB  "
                      "lat median %s  load %.1f" % (
                          impl, n, r["wall"], r["cpu"], r["rss_per_inflight"] / 2**20,
                          "%.3f s" % statistics.median(r["latencies"]) if r["latencies"] else "-",
                          os.getloadavg()[0]), flush=True)
                runs.append(r)
    m1 = machine()
    print("\nmachine: %d CPUs, %d MiB, kernel %s; load average %.2f before, %.2f after" % (
        m0["nproc"], m0["mem_mib"], m0["kernel"], m0["loadavg"][0], m1["loadavg"][0]))
    print(table(runs, fl))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"machine": m0, "machine_after": m1, "floor": fl, "runs": runs,
                   "max_workers": MAX_WORKERS, "lines": LINES, "gap": GAP,
                   "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, f, indent=1)
    print("results: %s" % OUT)
