"""Loads every fixture module under tests/py/fixtures: one module per real
server or emulator (S3 on moto, metaflow-local-service, Daytona, E2B), so each
owner adds a file instead of editing this one."""
import pathlib

_here = pathlib.Path(__file__).parent
pytest_plugins = sorted(
    "fixtures." + p.stem
    for p in (_here / "fixtures").glob("*.py")
    if not p.stem.startswith("_")
)
