"""foreach + join, @retry (fresh sandbox per attempt), @catch, @timeout,
all in local sandboxes."""
import os
import time

from metaflow import FlowSpec, catch, current, retry, sandbox, step, timeout


class MfsSemanticsFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.square, foreach="items")

    @sandbox(backend="local")
    @step
    def square(self):
        self.value = self.input * self.input
        print("square %d -> %d" % (self.input, self.value))
        self.next(self.join)

    @sandbox(backend="local")
    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.flaky)

    @retry(times=1, minutes_between_retries=0)
    @sandbox(backend="local")
    @step
    def flaky(self):
        # The work dir of attempt 0 must not leak into attempt 1.
        self.fresh = not os.path.exists("attempt-marker")
        open("attempt-marker", "w").close()
        self.attempt_seen = current.retry_count
        if current.retry_count == 0:
            raise RuntimeError("failing once on purpose")
        self.next(self.caught)

    @catch(var="failure")
    @sandbox(backend="local")
    @step
    def caught(self):
        self.in_sandbox = os.environ.get("METAFLOW_SANDBOX_WORKLOAD")
        raise ValueError("always fails")
        self.next(self.slow)

    @catch(var="timed_out")
    @timeout(seconds=3)
    @sandbox(backend="local")
    @step
    def slow(self):
        time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MfsSemanticsFlow()
