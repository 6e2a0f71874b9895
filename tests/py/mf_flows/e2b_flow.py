"""@e2b steps against the E2B emulator: a parameter, @environment, @retry
(attempt 0 fails on purpose; attempt 1 must find a fresh sandbox), a foreach
fan-out and its join, artifacts crossing steps through S3, Unicode output on
both streams, and a step that checks it cannot reach the launcher's metadata
service (only the relay can) and was given no E2B credentials; one step asks
for a size through @resources."""
import os
import socket
import sys
import urllib.parse

from metaflow import FlowSpec, Parameter, current, e2b, environment, resources, retry, step


class MfsE2BFlow(FlowSpec):
    greeting = Parameter("greeting", default="hi")

    @e2b
    @retry(times=1, minutes_between_retries=0)
    # The launcher's service URL, read at launch: the sandbox gets it only
    # through @environment, so the reachability probe below has a target.
    @environment(vars={"MFS_COLOUR": "teal",
                       "MFS_TEST_SERVICE_URL": os.environ.get("MFS_TEST_SERVICE_URL", "")})
    @step
    def start(self):
        self.attempt_seen = current.retry_count
        self.fresh = not os.path.exists("/tmp/mfs-was-here")
        open("/tmp/mfs-was-here", "w").close()
        if current.retry_count == 0:
            print("attempt 0 fails on purpose", file=sys.stderr)
            raise RuntimeError("first attempt fails")
        self.greeting_seen = self.greeting
        self.colour = os.environ.get("MFS_COLOUR")
        self.home = os.environ.get("HOME")
        self.backend = os.environ.get("METAFLOW_SANDBOX_BACKEND")
        self.e2b_env = sorted(k for k in os.environ if k.startswith("E2B_"))
        self.items = [1, 2, 3]
        u = urllib.parse.urlsplit(os.environ["MFS_TEST_SERVICE_URL"])
        assert u.hostname and u.port, "no service URL to probe"
        try:
            socket.create_connection((u.hostname, u.port), timeout=3).close()
            self.service_reachable = True
        except OSError:
            self.service_reachable = False
        print("unicode: h\u00e9llo \u2713")
        print("to stderr: \u00fcber", file=sys.stderr)
        self.next(self.square, foreach="items")

    @e2b
    @resources(cpu=2)  # asks for a size: the only step that gets the size note
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
