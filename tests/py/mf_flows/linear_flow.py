"""Linear flow, every step in a local sandbox: parameters, @environment,
a 50 MB artifact, Unicode and binary output on both streams."""
import hashlib
import os
import sys

from metaflow import FlowSpec, Parameter, environment, sandbox, step


class MfsLinearFlow(FlowSpec):
    greeting = Parameter("greeting", default="hi")

    @sandbox(backend="local")
    @environment(vars={"MFS_COLOUR": "teal"})
    @step
    def start(self):
        self.greeting_seen = self.greeting
        self.colour = os.environ.get("MFS_COLOUR")
        self.user = os.environ.get("METAFLOW_USER")
        self.workload = os.environ.get("METAFLOW_SANDBOX_WORKLOAD")
        self.big = os.urandom(50 * 1024 * 1024)
        self.big_sha = hashlib.sha256(self.big).hexdigest()
        print("unicode: h\u00e9llo \u2713 \u65e5\u672c")
        sys.stdout.flush()
        sys.stdout.buffer.write(b"binary: \xff\xfe end\n")
        sys.stdout.buffer.flush()
        print("to stderr: \u00fcber", file=sys.stderr)
        self.next(self.end)

    @sandbox(backend="local")
    @step
    def end(self):
        self.big_ok = hashlib.sha256(self.big).hexdigest() == self.big_sha
        self.big_len = len(self.big)
        print("end saw %d bytes" % self.big_len)


if __name__ == "__main__":
    MfsLinearFlow()
