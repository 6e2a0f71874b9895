"""Sandbox sizes as mfsandbox receives them: the decorator's defaults,
@resources merged (max per field) and @timeout raising the deadline."""
from metaflow import FlowSpec, resources, sandbox, step, timeout


class SizesFlow(FlowSpec):
    @sandbox(backend="local")
    @step
    def start(self):
        self.next(self.merged)

    @resources(cpu=2, memory=512)
    @sandbox(backend="local", memory=2048)
    @step
    def merged(self):
        self.next(self.slow)

    @timeout(seconds=900)
    @sandbox(backend="local")
    @step
    def slow(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SizesFlow()
