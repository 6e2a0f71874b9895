"""Fails in `end` until the flag file exists; `resume` then re-runs only end."""
import os

from metaflow import FlowSpec, Parameter, sandbox, step


class MfsResumeFlow(FlowSpec):
    flag = Parameter("flag", default="")

    @sandbox(backend="local")
    @step
    def start(self):
        self.token = "from-start"
        self.next(self.end)

    @sandbox(backend="local")
    @step
    def end(self):
        if not os.path.exists(self.flag):
            raise RuntimeError("flag file missing")
        self.seen = self.token


if __name__ == "__main__":
    MfsResumeFlow()
