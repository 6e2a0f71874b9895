"""No @sandbox in the source: `--with sandbox:backend=...` adds it."""
import os

from metaflow import FlowSpec, step


class MfsNoDecoFlow(FlowSpec):
    @step
    def start(self):
        self.workload = os.environ.get("METAFLOW_SANDBOX_WORKLOAD")
        self.backend = os.environ.get("METAFLOW_SANDBOX_BACKEND")
        self.next(self.end)

    @step
    def end(self):
        self.workload = os.environ.get("METAFLOW_SANDBOX_WORKLOAD")


if __name__ == "__main__":
    MfsNoDecoFlow()
