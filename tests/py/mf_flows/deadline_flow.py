"""The sandbox's own deadline (@sandbox timeout) kills a task that hangs."""
import sys
import time

from metaflow import FlowSpec, sandbox, step


class MfsDeadlineFlow(FlowSpec):
    @sandbox(backend="local", timeout=10)
    @step
    def start(self):
        print("before the hang")
        sys.stdout.flush()
        time.sleep(120)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MfsDeadlineFlow()
