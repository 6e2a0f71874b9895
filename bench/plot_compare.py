"""Plots bench/daytona_compare.py's results: launcher CPU seconds per task
against N for both implementations (the whole launcher, and the per-task
processes alone), medians over the runs at each N, log scale.

usage: plot_compare.py RESULTS.json OUT.png   (needs matplotlib)
"""
import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"ours": ("tab:blue", "mfsandbox"), "original": ("tab:orange", "metaflow-sandbox 0.1.1")}


def series(runs, impl, key):
    ns = sorted({r["n"] for r in runs if r["impl"] == impl})
    return ns, [statistics.median(r[key] / r["tasks"] for r in runs
                                  if r["impl"] == impl and r["n"] == n) for n in ns]


def main(src, dst):
    with open(src) as f:
        res = json.load(f)
    runs = res["runs"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for impl, (colour, label) in STYLE.items():
        ns, total = series(runs, impl, "cpu")
        _, own = series(runs, impl, "cpu_task_procs")
        ax.plot(ns, total, "o-", color=colour, label=label + ": whole launcher")
        ax.plot(ns, own, "s--", color=colour, alpha=0.7, label=label + ": per-task processes")
        for x, y in zip(ns, total):
            ax.annotate("%.3g" % y, (x, y), textcoords="offset points", xytext=(4, 6),
                        fontsize=8, color=colour)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ns = sorted({r["n"] for r in runs})
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.minorticks_off()
    ax.set_xlabel("foreach width N (flow has N + 3 tasks)")
    ax.set_ylabel("launcher CPU seconds per task")
    m, m1 = res["machine"], res.get("machine_after", res["machine"])
    ax.set_title("Launcher CPU per task on the Daytona emulator\n%d CPUs, load %.1f at start, "
                 "%.1f at end, %s" % (m["nproc"], m["loadavg"][0], m1["loadavg"][0],
                                      res["when"]), fontsize=9)
    ax.margins(x=0.12, y=0.15)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(dst)
    print("plot: %s" % dst)


if __name__ == "__main__":
    main(*sys.argv[1:3])
