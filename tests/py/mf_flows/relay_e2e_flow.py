"""@sandbox(backend="local") steps with the S3 datastore and service metadata:
the relay carries every attempt's metadata to the service."""
import os

from metaflow import FlowSpec, current, retry, sandbox, step


class RelayE2EFlow(FlowSpec):
    @sandbox(backend="local")
    @retry(times=1, minutes_between_retries=0)
    @step
    def start(self):
        self.x = 41 + current.retry_count
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails on purpose")
        self.next(self.end)

    @sandbox(backend="local")
    @step
    def end(self):
        self.y = self.x + 1
        # Which sandbox providers' keys the step can see (none unless asked).
        self.provider_keys = sorted(k for k in ("DAYTONA_API_KEY", "E2B_API_KEY")
                                    if k in os.environ)


if __name__ == "__main__":
    RelayE2EFlow()
