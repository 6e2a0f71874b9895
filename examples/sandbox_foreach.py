"""A foreach whose branches each run in their own local sandbox.

    python examples/sandbox_foreach.py run --max-workers 4

Needs `pip install ./python` (or MFSANDBOX_BIN pointing at ./mfsandbox).
"""
from metaflow import FlowSpec, step, sandbox


class SandboxForeachFlow(FlowSpec):
    @step
    def start(self):
        self.numbers = [1, 2, 3, 4]
        self.next(self.square, foreach="numbers")

    @sandbox(backend="local")
    @step
    def square(self):
        import os
        import socket

        self.value = self.input * self.input
        self.where = "%s pid %d" % (socket.gethostname(), os.getpid())
        print("square of %d is %d (in sandbox %s)" % (self.input, self.value, self.where))
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = sorted(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("sum of squares of 1..4 = %d (expected 30)" % sum(self.squares))


if __name__ == "__main__":
    SandboxForeachFlow()
