"""The flow bench/daytona_compare.py runs with both implementations: every
step in a Daytona sandbox, a foreach of N tasks in the middle.  Each foreach
task prints `BENCHLAT <i> <epoch seconds>` lines `gap` seconds apart; the
bench stamps each line again when it reaches the launcher's console, and
the difference is the log latency (sandbox and launcher share one clock)."""
import time

from metaflow import FlowSpec, Parameter, daytona, step


class BenchFanoutFlow(FlowSpec):
    n = Parameter("n", default=10)
    lines = Parameter("lines", default=4)
    gap = Parameter("gap", default=0.5)

    @daytona
    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @daytona
    @step
    def work(self):
        for i in range(self.lines):
            print("BENCHLAT %d %.6f" % (i, time.time()), flush=True)
            time.sleep(self.gap)
        self.out = self.input
        self.next(self.join)

    @daytona
    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @daytona
    @step
    def end(self):
        pass


if __name__ == "__main__":
    BenchFanoutFlow()
