"""Helpers for running the real ./mfsandbox binary in integration tests."""
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
# `make asan` points this at the sanitizer build.
BINARY = pathlib.Path(os.environ.get("MFSANDBOX_BIN") or ROOT / "mfsandbox")


def clean_env(**extra):
    """Our environment without a backend chosen, plus extra."""
    env = {k: v for k, v in os.environ.items() if k != "METAFLOW_SANDBOX_BACKEND"}
    env.update(extra)
    return env


def mfs(*args, env=None, input=None, timeout=120, text=True, **kw):
    return subprocess.run(
        [str(BINARY), *map(str, args)],
        capture_output=True,
        text=text,
        input=input,
        env=env if env is not None else clean_env(),
        timeout=timeout,
        **kw,
    )


def launcher_labels(pid, start=None):
    """The `kill --stale` identity labels (src/util/launcher_id.c) of a
    launcher on this machine with this pid; start defaults to the pid's own
    start time (field 22 of /proc/PID/stat), or 1 when it has exited."""
    import hashlib

    def h(text):
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def first_line(*paths):
        for p in paths:
            try:
                return pathlib.Path(p).read_text().splitlines()[0].strip()
            except (OSError, IndexError):
                continue
        return ""

    if start is None:
        try:
            stat = pathlib.Path("/proc/%d/stat" % int(pid)).read_text()
            start = stat[stat.rindex(")") + 2:].split()[19]
        except OSError:
            start = "1"
    mid = first_line("/etc/machine-id", "/var/lib/dbus/machine-id")
    ns = os.readlink("/proc/self/ns/pid")
    return {"machine": h("mfsandbox machine\n%s\n%s\n" % (mid, ns)),
            "boot": h(first_line("/proc/sys/kernel/random/boot_id")),
            "pid": str(pid), "pidstart": str(start)}
