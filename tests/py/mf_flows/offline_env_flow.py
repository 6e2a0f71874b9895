"""A sandboxed step that imports a package its environment's bootstrap
commands installed inside the sandbox (tests/py/test_offline_bootstrap.py)."""
from metaflow import FlowSpec, sandbox, step


class OfflineEnvFlow(FlowSpec):
    @sandbox(backend="local")
    @step
    def start(self):
        import mfs_offline_probe

        self.value = mfs_offline_probe.VALUE
        self.location = mfs_offline_probe.__file__
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    OfflineEnvFlow()
