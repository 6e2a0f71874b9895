"""Hostile input at the command line: each is refused with one line and exit
202 before any sandbox exists, and leaves nothing behind (issue 16).  None of
these needs a working backend: every refusal comes before `create`."""
import os

import pytest

from mfs_cli import clean_env, mfs


def one_error_line(r):
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("mfsandbox: ")
    return lines[0]


def test_code_tree_deeper_than_the_limit_is_refused_and_leaves_no_temp_file(tmp_path):
    # ~2,000 levels once overflowed the stack (SIGSEGV, exit 139) and left
    # the half-written /tmp/mfs-code-* behind.
    top = tmp_path / "deep"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(2000):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
    try:
        tmp = tmp_path / "tmp"
        tmp.mkdir()
        r = mfs("run", "--backend", "local", "--code", top, "--", "true",
                env=clean_env(TMPDIR=str(tmp)))
        assert r.returncode == 202, r.stderr
        assert "nested more than 256 deep" in one_error_line(r)
        assert os.listdir(tmp) == []
    finally:
        remove_chain(top)


def remove_chain(top):
    """Removes top/d/d/... one level at a time: pytest's own clean-up of old
    temp dirs recurses and would fail on 2,000 levels, for every later run."""
    d, spare = top / "d", top / "spare"
    while d.exists():
        if (d / "d").exists():
            os.rename(d / "d", spare)
            os.rmdir(d)
            os.rename(spare, d)
        else:
            os.rmdir(d)
    os.rmdir(top)


@pytest.mark.parametrize("flag", ["--env-file", "--metaflow-spec"])
def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path, flag):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # The timeout only turns the old hang into a failure; the refusal
    # itself is immediate (no open() or read() waits on the FIFO).
    r = mfs("run", "--backend", "local", flag, fifo, "--", "true", timeout=30)
    assert r.returncode == 202, r.stderr
    assert f"{flag} {fifo}: not a regular file" in one_error_line(r)


@pytest.mark.parametrize("remote,expect", [
    ("/tmp/", "must name a file, not a directory"),
    (".", "must name a file, not a directory"),
    ("out/.", "must name a file, not a directory"),
    ("a/../../etc/passwd", "must not contain '..'"),
    ("x" * 256, "has a name longer than 255 bytes"),
    ("d/" + "y" * 256 + "/f", "has a name longer than 255 bytes"),
    ("d/" * 2048 + "f", "is longer than 4095 bytes"),
    ("a\nb", "holds a control character"),
])
def test_bad_upload_destination_is_202_before_any_sandbox(tmp_path, remote, expect):
    src = tmp_path / "in.txt"
    src.write_text("x")
    # --dry-run would succeed if the flag were accepted: the refusal is the
    # parser's, before a backend is even asked.
    r = mfs("run", "--backend", "local", "--dry-run", "--upload", f"{src}:{remote}", "--", "true")
    assert r.returncode == 202, r.stderr
    assert expect in one_error_line(r)


def test_a_good_upload_destination_still_passes(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("x")
    r = mfs("run", "--backend", "local", "--dry-run", "--upload", f"{src}:/tmp/in.txt",
            "--upload", f"{src}:{'n' * 255}", "--", "true")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("env", ["A\nB=1", "A\rB=1", "\x1b[31mRED=1"])
def test_a_control_byte_in_an_env_name_keeps_the_error_on_one_line(env):
    r = mfs("run", "--backend", "local", "--env", env, "--", "true")
    assert r.returncode == 202
    assert "is not a variable name" in one_error_line(r)
    assert "\x1b" not in r.stderr and "\r" not in r.stderr


def test_a_long_env_file_is_read_in_linear_time(tmp_path):
    # 200,000 distinct names: the key list once compared each new name with
    # every earlier one (2e10 comparisons, minutes); the timeout only stops
    # a regression from hanging the suite.
    envfile = tmp_path / "env"
    envfile.write_text("".join(f"K{i}=v{i}\n" for i in range(200_000)) + "K7=last\n")
    r = mfs("run", "--backend", "local", "--dry-run", "--env-file", envfile, "--", "true",
            timeout=60)
    assert r.returncode == 0, r.stderr[-300:]
    assert "K199999=v199999" in r.stdout
    assert "K7=last" in r.stdout and "K7=v7" not in r.stdout


def test_a_variable_longer_than_linux_passes_is_202_naming_it(tmp_path):
    """Linux passes no NAME=value of 128 KiB or more to a program (nor an
    argument, which could not reach us either): such a variable once failed
    as "cannot run bwrap" (203, retried by @retry, "set MFSANDBOX_BWRAP"),
    and on the remote backends inside the sandbox."""
    state = tmp_path / "state"
    env_file = tmp_path / "env"
    env_file.write_text("BIG=%s\n" % ("x" * 131068))   # 131072 with "BIG="
    r = mfs("run", "--backend", "local", "--env-file", env_file, "--", "true",
            env=clean_env(MFSANDBOX_LOCAL_STATE_DIR=str(state)))
    assert r.returncode == 202, r.stderr
    line = one_error_line(r)
    assert "variable BIG" in line and "xxxx" not in line
    assert not state.exists() or os.listdir(state) == []
    env_file.write_text("BIG=%s\n" % ("x" * 131067))   # the most that passes
    r = mfs("run", "--backend", "local", "--env-file", env_file, "--", "sh", "-c",
            'echo ${#BIG}', env=clean_env(MFSANDBOX_LOCAL_STATE_DIR=str(state)))
    assert r.returncode == 0 and r.stdout == "131067\n", r.stderr


def test_a_damaged_spool_entry_is_named_and_the_others_are_replayed(tmp_path):
    """One unreadable spec.json (damaged, edited, another version's) stopped
    `relay replay` for every task with a usage error naming nothing (202)."""
    spool = tmp_path / "spool"
    bad, good = spool / "F/1/s/2/0", spool / "F/1/s/3/0"
    bad.mkdir(parents=True)
    good.mkdir(parents=True)
    (bad / "spec.json").write_text("{damaged")
    # A task that wrote no metadata: replayed as done, its entry removed.
    (good / "spec.json").write_text(
        '{"flow": "F", "run_id": "1", "step": "s", "task_id": "3", "attempt": 0, '
        '"ds_type": "local", "ds_root": "%s", "metadata": "local"}' % (tmp_path / "ds"))
    r = mfs("relay", "--spool", spool, "replay", "F")
    assert r.returncode == 203, r.stderr
    assert str(bad / "spec.json") in one_error_line(r)
    assert not (good / "spec.json").exists()
    assert (bad / "spec.json").exists()
