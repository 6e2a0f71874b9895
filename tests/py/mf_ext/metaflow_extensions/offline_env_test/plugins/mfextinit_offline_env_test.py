"""Test-only Metaflow extension: an environment whose bootstrap commands
install a wheel shipped in the code package, with no network (see
tests/py/test_offline_bootstrap.py)."""

ENVIRONMENTS_DESC = [
    ("offlinepip", ".offline_environment.OfflinePipEnvironment"),
]
