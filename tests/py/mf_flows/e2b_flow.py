"""@e2b steps against the E2B emulator: parameters, @environment, @retry
(attempt 0 fails on purpose), a foreach fan-out, artifacts crossing steps
through S3, Unicode output on both streams, and a step that checks it cannot
reach the launcher's metadata service (only the relay can)."""
import os
import socket
import sys

from metaflow import FlowSpec, Parameter, current, e2b, environment, retry, step


class MfsE2BFlow(FlowSpec):
    greeting = Parameter("greeting", default="hi")

    @e2b
    @retry(times=1, minutes_between_retries=0)
    @environment(vars={"MFS_COLOUR": "teal",
                       "MFS_TEST_MDS_PORT": os.environ.get("MFS_TEST_MDS_PORT", "0")})
    @step
    def start(self):
        self.attempt_seen = current.retry_count
        if current.retry_count == 0:
            print("attempt 0 fails on purpose", file=sys.stderr)
            raise RuntimeError("first attempt fails")
        self.greeting_seen = self.greeting
        self.colour = os.environ.get("MFS_COLOUR")
        self.home = os.environ.get("HOME")
        self.items = [1, 2, 3]
        port = int(os.environ.get("MFS_TEST_MDS_PORT", "0"))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            self.mds_reachable = True
        except OSError:
            self.mds_reachable = False
        print("unicode: h\u00e9llo \u2713")
        print("to stderr: \u00fcber", file=sys.stderr)
        self.next(self.square, foreach="items")

    @e2b
    @step
    def square(self):
        self.value = self.input * self.input
        self.next(self.join)

    @e2b
    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.greeting_seen = inputs[0].greeting_seen
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    MfsE2BFlow()
