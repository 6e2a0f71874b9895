"""A plain @sandbox: its backend comes from METAFLOW_SANDBOX_BACKEND."""
from metaflow import FlowSpec, sandbox, step


class MfsPlainFlow(FlowSpec):
    @sandbox
    @step
    def start(self):
        import os

        self.backend = os.environ.get("METAFLOW_SANDBOX_BACKEND")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MfsPlainFlow()
