"""Runs a sandbox's commands for real, in a bubblewrap namespace whose
writable places are the sandbox's own /home/user and /tmp (kept under one host
directory per sandbox), so files uploaded through /files are what the command
sees and nothing leaks between sandboxes."""
import os
import shutil
import subprocess
import tempfile

BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"
HOME = "/home/user"
WRITABLE = (HOME, "/tmp")


class SandboxFS:
    def __init__(self, parent=None):
        self.root = tempfile.mkdtemp(prefix="e2bemu-", dir=parent)
        for d in WRITABLE:
            os.makedirs(self.root + d, exist_ok=True)

    def host_path(self, path, home=HOME):
        """Maps a sandbox path to the host file behind it; None when the path
        is outside the writable places (envd would fail with EACCES)."""
        if not path.startswith("/"):
            path = os.path.join(home, path[2:] if path.startswith("~/") else path)
        elif path == "~" or path.startswith("~/"):
            path = home + path[1:]
        path = os.path.normpath(path)
        for d in WRITABLE:
            if path == d or path.startswith(d + "/"):
                return self.root + path
        return None

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)


def spawn(fs, argv, env, cwd, stdin_pipe):
    """Starts argv inside the sandbox; returns the Popen (own session, so a
    kill reaches the whole tree)."""
    cmd = [BWRAP, "--ro-bind", "/", "/", "--tmpfs", "/home",
           "--bind", fs.root + HOME, HOME, "--bind", fs.root + "/tmp", "/tmp",
           "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
           "--die-with-parent"]
    # The environment goes through execve's envp, never argv: it holds secrets.
    cmd += ["--chdir", cwd, "--"] + list(argv)
    return subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(env), start_new_session=True, close_fds=True)
