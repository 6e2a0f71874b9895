"""Benchmark instrumentation, on PYTHONPATH only for the flows that
bench/daytona_compare.py runs.  When MFS_BENCH_RUSAGE names a file, the
Metaflow runtime process (`flow.py ... run`) writes, at exit, the CPU
seconds of its reaped children: the per-task processes and everything they
started (not the heartbeat sidecar: Metaflow never waits for it).  The bench
subtracts that from the whole tree's CPU (wait4) to get the runtime's own
share, interpreter finalisation included."""
import os
import sys

_OUT = os.environ.pop("MFS_BENCH_RUSAGE", None)
if _OUT and "run" in sys.argv[1:]:
    import atexit
    import resource

    def _dump():
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(_OUT, "w") as f:
            f.write("children %.6f\n" % (kids.ru_utime + kids.ru_stime))
    atexit.register(_dump)
