"""The sandbox's own deadline (@sandbox timeout) kills a task that hangs.
The deadline leaves the periodic log uploader time to run even on a loaded
machine."""
import sys
import time

from metaflow import FlowSpec, sandbox, step


class MfsDeadlineFlow(FlowSpec):
    @sandbox(backend="local", timeout=30)
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
