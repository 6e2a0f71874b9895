"""A foreach whose children run in a Daytona sandbox, for the production
scheduler tests: compiled by `argo-workflows create` / `step-functions
create`, then run pod by pod as the scheduler would.  The first attempt of
the first child fails on purpose (the scheduler retries it)."""
import os
import socket
import urllib.parse

from metaflow import FlowSpec, current, environment, retry, sandbox, step


class MfsSchedFlow(FlowSpec):
    @step
    def start(self):
        self.values = [3, 4]
        self.next(self.square, foreach="values")

    @retry(times=1, minutes_between_retries=0)
    @sandbox(backend="daytona")
    # Read at deploy time: the probe below needs a target inside the sandbox.
    @environment(vars={"MFS_TEST_SERVICE_URL": os.environ.get("MFS_TEST_SERVICE_URL", "")})
    @step
    def square(self):
        self.attempt_seen = current.retry_count
        if self.input == 3 and current.retry_count == 0:
            raise RuntimeError("first attempt fails on purpose")
        self.square_value = self.input * self.input
        # Seen from inside: the sandbox's marker and home, none of the pod's.
        self.in_sandbox = os.environ.get("METAFLOW_SANDBOX_WORKLOAD") == "1"
        self.backend = os.environ.get("METAFLOW_SANDBOX_BACKEND")
        self.home = os.environ.get("HOME")
        self.pod_env = sorted(k for k in os.environ
                              if k.startswith(("METAFLOW_KUBERNETES", "AWS_BATCH", "ARGO_",
                                               "DAYTONA_")))
        u = urllib.parse.urlsplit(os.environ["MFS_TEST_SERVICE_URL"])
        try:
            socket.create_connection((u.hostname, u.port), 3).close()
            self.service_reachable = True
        except OSError:
            self.service_reachable = False
        print("square %d in a sandbox" % self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = sorted(i.square_value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.squares)


if __name__ == "__main__":
    MfsSchedFlow()
