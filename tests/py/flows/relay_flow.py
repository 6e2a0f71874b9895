"""A flow whose first step fails on its first attempt, so the relay sees a
retried task (attempts 0 and 1) with artifacts in each."""
from metaflow import FlowSpec, current, retry, step


class RelayFlow(FlowSpec):
    @retry(times=1, minutes_between_retries=0)
    @step
    def start(self):
        self.x = 41 + current.retry_count
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails on purpose")
        self.next(self.end)

    @step
    def end(self):
        self.y = self.x + 1


if __name__ == "__main__":
    RelayFlow()
