"""@daytona end to end against the Daytona emulator: a parameter,
@environment, artifacts through S3, output on both streams, a foreach
fan-out and its join, a retried step in a fresh sandbox, metadata relayed to
the service the sandbox cannot reach."""
import os
import socket
import sys
import urllib.parse

from metaflow import FlowSpec, Parameter, current, daytona, environment, retry, step


class MfsDaytonaFlow(FlowSpec):
    greeting = Parameter("greeting", default="hi")

    @daytona
    # The launcher's service URL, read at launch: the sandbox gets it only
    # through @environment, so the reachability probe below has a target.
    @environment(vars={"MFS_COLOUR": "teal",
                       "MFS_TEST_SERVICE_URL": os.environ.get("MFS_TEST_SERVICE_URL", "")})
    @step
    def start(self):
        self.values = [1, 2, 3]
        self.greeting_seen = self.greeting
        self.colour = os.environ.get("MFS_COLOUR")
        self.backend = os.environ.get("METAFLOW_SANDBOX_BACKEND")
        self.marker = "%s/%s" % (os.environ.get("HOME"), os.getcwd())
        # The sandbox must not reach the launcher's metadata service.
        u = urllib.parse.urlsplit(os.environ["MFS_TEST_SERVICE_URL"])
        assert u.hostname and u.port, "no service URL to probe"
        try:
            socket.create_connection((u.hostname, u.port), 3).close()
            self.service_reachable = True
        except OSError:
            self.service_reachable = False
        print("hello from daytona \u2713")
        print("to stderr", file=sys.stderr)
        self.next(self.square, foreach="values")

    @daytona
    @step
    def square(self):
        self.square_value = self.input * self.input
        self.next(self.join)

    @daytona
    @step
    def join(self, inputs):
        self.squares = sorted(i.square_value for i in inputs)
        self.values = inputs[0].values
        self.next(self.flaky)

    @retry(times=1, minutes_between_retries=0)
    @daytona
    @step
    def flaky(self):
        self.attempt_seen = current.retry_count
        self.fresh = not os.path.exists("/tmp/mfs-was-here")
        open("/tmp/mfs-was-here", "w").close()
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails on purpose")
        self.total = sum(self.values)
        self.next(self.end)

    @daytona
    @step
    def end(self):
        self.done = self.total * 2


if __name__ == "__main__":
    MfsDaytonaFlow()
