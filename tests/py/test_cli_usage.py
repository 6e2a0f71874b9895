"""The command line as a user meets it: help, version, bad input (one line,
exit 202), `backends`, and --dry-run (secrets redacted, nothing created).
None of these needs a working backend."""
import os

import pytest

from mfs_cli import clean_env, mfs


def one_error_line(r):
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("mfsandbox: ")
    return lines[0]


@pytest.mark.parametrize(
    "args,expect",
    [
        ([], "no command given"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["--backend", "local"], "options go after the command"),
        (["run", "true"], "pass --backend NAME or set METAFLOW_SANDBOX_BACKEND (one of: local, daytona, e2b)"),
        (["run", "--backend", "nope", "true"], "--backend 'nope' is not a backend"),
        (["run", "--backend", "local"], "no command given"),
        (["run", "--backend", "local", "--cpu", "lots", "true"], "--cpu 'lots'"),
        (["run", "--backend", "local", "--memory", "1g", "true"], "--memory '1g'"),
        (["run", "--backend", "local", "--timeout", "-1", "true"], "--timeout '-1'"),
        (["run", "--backend", "local", "--network", "bridge", "true"], "--network 'bridge'"),
        (["run", "--backend", "local", "--env", "NO SPACE=1", "true"], "is not a variable name"),
        (["run", "--backend", "local", "--upload", "justone", "true"], "expected LOCAL:REMOTE"),
        (["run", "--backend", "local", "--env-file", "/nonexistent", "true"], "--env-file /nonexistent"),
        (["run", "--frob", "true"], "unknown option --frob"),
        (["run", "--cpu"], "option --cpu needs a value"),
        (["ls", "extra"], "ls takes no arguments"),
        (["ls", "--backend", "nope"], "--backend 'nope' is not a backend"),
        (["kill"], "give sandbox IDs, --pathspec"),
        (["kill", "--pathspec", "OnlyFlow"], "expected FLOW/RUN[/STEP[/TASK]]"),
        (["kill", "--pathspec", "a/b/c/d/e"], "expected FLOW/RUN[/STEP[/TASK]]"),
        (["backends", "--all"], "unknown option --all"),
        (["version", "x"], "takes no arguments"),
        (["help", "nope"], "unknown command 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_202(args, expect):
    r = mfs(*args)
    assert r.returncode == 202, (r.returncode, r.stderr)
    assert expect in one_error_line(r)
    assert r.stdout == ""


def test_unknown_option_value_is_not_echoed():
    r = mfs("run", "--backend", "local", "--api-key=sk-live-123", "true")
    assert r.returncode == 202
    assert "sk-live-123" not in r.stderr
    assert "--api-key" in one_error_line(r)


def test_backend_from_environment():
    r = mfs("run", "--dry-run", "true", env=clean_env(METAFLOW_SANDBOX_BACKEND="local"))
    assert r.returncode == 0, r.stderr
    assert "backend: local" in r.stdout
    r = mfs("run", "--dry-run", "true", env=clean_env(METAFLOW_SANDBOX_BACKEND="k8s"))
    assert r.returncode == 202
    assert "METAFLOW_SANDBOX_BACKEND 'k8s' is not a backend" in one_error_line(r)


def test_unconfigured_cloud_backend_refuses_with_202():
    env = {k: v for k, v in clean_env().items() if not k.startswith("DAYTONA_")}
    r = mfs("run", "--backend", "daytona", "--", "true", env=env)
    assert r.returncode == 202
    assert "DAYTONA_API_KEY is not set" in one_error_line(r)


@pytest.mark.parametrize("cmd", ["run", "backends", "ls", "kill", "relay", "version", "help"])
def test_help_on_every_subcommand(cmd):
    r = mfs(cmd, "--help")
    assert r.returncode == 0
    assert r.stdout.startswith(f"usage: mfsandbox {cmd}")
    assert r.stderr == ""
    assert mfs("help", cmd).stdout == r.stdout


def test_top_level_help_and_version():
    r = mfs("--help")
    assert r.returncode == 0 and "commands:" in r.stdout
    for word in ("202", "203", "204"):
        assert word in r.stdout
    v = mfs("version")
    assert v.returncode == 0 and v.stdout.startswith("mfsandbox ")
    assert mfs("--version").stdout == v.stdout


def test_backends_lists_every_backend_once():
    r = mfs("backends")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["local", "daytona", "e2b"]
    by_name = {line.split()[0]: line for line in lines}
    assert by_name["daytona"].split()[1] == "unusable"
    assert "DAYTONA_API_KEY" in by_name["daytona"]
    assert by_name["e2b"].split()[1] == "unusable"
    # local says what it cannot enforce instead of staying silent
    assert "limits:" in by_name["local"]


def test_dry_run_redacts_and_creates_nothing(tmp_path):
    envfile = tmp_path / "env"
    envfile.write_text("DAYTONA_API_KEY=dtn-secret-1\nexport REGION=eu\n")
    marker = tmp_path / "marker"
    env = clean_env(AWS_SECRET_ACCESS_KEY="aws-secret-2", TMPDIR=str(tmp_path))
    before = set(os.listdir(tmp_path))
    r = mfs(
        "run", "--backend", "local", "--dry-run", "--memory", "512", "--timeout", "30",
        "--env", "AWS_SECRET_ACCESS_KEY", "--env", "PLAIN=hello world", "--env-file", envfile,
        "--upload", f"{envfile}:conf/env", "--code", tmp_path,
        "--", "python3", "flow.py", "--metadata", "local", "step", "start",
        "--run-id", "42", "--task-id", "7", "--retry-count", "2",
        "--api-token=tok-secret-3", f"touch {marker}",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for secret in ("dtn-secret-1", "aws-secret-2", "tok-secret-3"):
        assert secret not in out and secret not in r.stderr
    assert "AWS_SECRET_ACCESS_KEY=<redacted>" in out
    assert "DAYTONA_API_KEY=<redacted>" in out
    assert "PLAIN='hello world'" in out
    assert "REGION=eu" in out
    assert "memory:  512 MB" in out
    assert "sandbox: mfs-flow-42-start-7-2" in out
    assert "step: flow/42/start/7 (attempt 2)" in out
    assert f"{envfile} -> conf/env" in out
    assert "--api-token=<redacted>" in out
    # the exact command, quoted for a shell
    assert f"'touch {marker}'" in out
    assert not marker.exists()
    assert set(os.listdir(tmp_path)) == before  # no packed code, no temp files
    ls = mfs("ls", "--backend", "local")
    assert "mfs-flow-42" not in ls.stdout


def test_relay_replay_takes_spool_where_its_help_puts_it(tmp_path):
    """`mfsandbox relay replay [--spool DIR] PATHSPEC` (its help, the docs)
    was refused as bad usage (202): options after `replay` were not read."""
    for args in (["replay", "--spool", tmp_path, "F"], ["replay", "F", "--spool", tmp_path],
                 ["--spool", tmp_path, "replay", "F"]):
        r = mfs("relay", *args)
        assert r.returncode == 0, r.stderr
        assert r.stderr == "mfsandbox: relay replay: nothing spooled for F in %s\n" % tmp_path


def test_kill_reads_options_after_the_ids(tmp_path):
    """`kill ID --backend B` took "--backend" and "B" for two more ids: three
    lines, every backend asked."""
    r = mfs("kill", "nosuch", "--backend", "local",
            env=clean_env(MFSANDBOX_LOCAL_STATE_DIR=str(tmp_path / "state")))
    assert r.returncode == 202, r.stderr
    assert r.stderr == ("mfsandbox: no sandbox with id 'nosuch' in backend local "
                        "(see 'mfsandbox ls')\n")
