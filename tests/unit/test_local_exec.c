/*
 * Exec on the local backend: exit statuses, output that arrives intact and
 * apart, upload and download, the environment, timeout and cancellation of
 * the whole tree, bubblewrap's own failures told apart from the command's.
 * Real bubblewrap sandboxes driven through mfs_local_ops; the fixtures are
 * in local_fixture.h.
 */
#include "local_fixture.h"

static void exit_statuses_are_the_commands(void **state)
{
	(void)state;
	struct mfs_sandbox *sb = make_sandbox(NULL);
	struct { const char *script; int status; } cases[] = {
		{ "exit 0", 0 }, { "exit 1", 1 }, { "exit 137", 137 }, { "exit 255", 255 },
		{ "kill -KILL $$", 137 }, { "kill -TERM $$", 143 }, { "kill -SEGV $$", 139 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct capture c = { 0 };
		assert_int_equal(run_sh(sb, cases[i].script, &c), cases[i].status);
		capture_release(&c);
	}
	destroy(sb);
}

static void output_is_byte_exact_and_apart(void **state)
{
	(void)state;
	struct mfs_sandbox *sb = make_sandbox(NULL);
	struct capture c = { 0 };
	assert_int_equal(run_sh(sb, "printf 'a\\000b\\377\\n\\tend'; printf 'to stderr' >&2; "
				    "head -c 3000000 /dev/zero | tr '\\000' x", &c), 0);
	static const char head[] = "a\0b\377\n\tend";
	assert_int_equal(c.out.len, sizeof(head) - 1 + 3000000);
	assert_memory_equal(c.out.data, head, sizeof(head) - 1);
	for (size_t i = sizeof(head) - 1; i < c.out.len; i++)
		if (c.out.data[i] != 'x')
			fail_msg("byte %zu is %d", i, c.out.data[i]);
	assert_int_equal(c.err.len, 9);
	assert_memory_equal(c.err.data, "to stderr", 9);
	capture_release(&c);
	destroy(sb);
}

/* Random bytes uploaded, catted back four times: checks upload, and
 * that binary output survives in bulk. */
static void uploaded_binary_comes_back_intact(void **state)
{
	(void)state;
	struct mfs_sandbox *sb = make_sandbox(NULL);
	size_t n = 2 * 1024 * 1024;
	char *data = mfs_xmalloc(n);
	int fd = open("/dev/urandom", O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, data, n), (ssize_t)n);
	close(fd);
	char local[] = "/var/tmp/mfs-local-upload-XXXXXX";
	fd = mkstemp(local);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);

	struct mfs_err err = { 0 };
	assert_int_equal(OPS.upload(sb, local, "in/sub/blob", &err), MFS_OK);
	struct capture c = { 0 };
	assert_int_equal(run_sh(sb, "cat in/sub/blob in/sub/blob in/sub/blob in/sub/blob", &c), 0);
	assert_int_equal(c.out.len, 4 * n);
	for (int i = 0; i < 4; i++)
		assert_memory_equal(c.out.data + i * n, data, n);

	/* and back out: download of what the command wrote */
	capture_release(&c);
	memset(&c, 0, sizeof(c));
	assert_int_equal(run_sh(sb, "cp in/sub/blob /tmp/copy", &c), 0);
	assert_int_equal(OPS.download(sb, "/tmp/copy", local, &err), MFS_OK);
	fd = open(local, O_RDONLY);
	char *back = mfs_xmalloc(n + 1);
	assert_int_equal(read(fd, back, n + 1), (ssize_t)n);
	close(fd);
	assert_memory_equal(back, data, n);

	assert_int_equal(OPS.upload(sb, local, "/etc/blob", &err), MFS_ERR_USAGE);
	assert_int_equal(OPS.upload(sb, local, "../escape", &err), MFS_ERR_USAGE);
	assert_int_equal(OPS.download(sb, "missing", local, &err), MFS_ERR_NOTFOUND);
	unlink(local);
	free(back);
	free(data);
	capture_release(&c);
	destroy(sb);
}

/* The command owns its work dir and /tmp: links and FIFOs it leaves there
 * must not make the launcher read a host file it was never given, write
 * over one, or hang.  Before the fix, download followed the link and
 * copied the host file out, and upload wrote through a linked dir. */
static void links_and_fifos_left_by_the_command_are_never_followed(void **state)
{
	(void)state;
	char secret[] = "/var/tmp/mfs-local-secret-XXXXXX";
	int fd = mkstemp(secret);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "launcher only", 13), 13);
	close(fd);
	char hostdir[] = "/var/tmp/mfs-local-hostdir-XXXXXX";
	assert_non_null(mkdtemp(hostdir));
	struct mfs_sandbox *sb = make_sandbox(NULL);
	struct mfs_buf script = MFS_BUF_INIT;
	mfs_buf_addf(&script, "ln -s %s out.txt && ln -s %s linked && ln -s %s /tmp/t && "
		     "mkfifo pipe && mkdir d", secret, hostdir, secret);
	struct capture c = { 0 };
	assert_int_equal(run_sh(sb, script.data, &c), 0);

	char got[] = "/var/tmp/mfs-local-got-XXXXXX";
	fd = mkstemp(got);
	assert_true(fd >= 0);
	close(fd);
	struct mfs_err err = { 0 };
	assert_int_equal(OPS.download(sb, "out.txt", got, &err), MFS_ERR_USAGE);
	assert_non_null(strstr(err.msg, "out.txt"));
	assert_int_equal(OPS.download(sb, "/tmp/t", got, &err), MFS_ERR_USAGE);
	assert_int_equal(OPS.download(sb, "pipe", got, &err), MFS_ERR_USAGE);
	assert_int_equal(OPS.download(sb, "d", got, &err), MFS_ERR_USAGE);
	struct stat st;
	assert_int_equal(stat(got, &st), 0);
	assert_int_equal(st.st_size, 0);  /* nothing of the secret came out */

	assert_int_equal(OPS.upload(sb, got, "linked/planted", &err), MFS_ERR_USAGE);
	assert_int_equal(OPS.upload(sb, got, "out.txt", &err), MFS_ERR_USAGE);
	assert_int_equal(OPS.upload(sb, got, "pipe", &err), MFS_ERR_USAGE);
	struct mfs_buf planted = MFS_BUF_INIT;
	mfs_buf_addf(&planted, "%s/planted", hostdir);
	assert_int_not_equal(access(planted.data, F_OK), 0);
	assert_int_equal(stat(secret, &st), 0);
	assert_int_equal(st.st_size, 13);  /* not truncated through the link */

	unlink(got);
	unlink(secret);
	rmdir(hostdir);
	mfs_buf_release(&planted);
	mfs_buf_release(&script);
	capture_release(&c);
	destroy(sb);
}

static void environment_is_clean_plus_given(void **state)
{
	(void)state;
	setenv("MFS_TEST_LAUNCHER_ONLY", "leak", 1);
	struct mfs_kvlist senv = MFS_KVLIST_INIT, renv = MFS_KVLIST_INIT;
	mfs_kvlist_set(&senv, "A", "from spec");
	mfs_kvlist_set(&senv, "B", "spec loses");
	mfs_kvlist_set(&renv, "B", "from req $x 'q'");
	struct mfs_sandbox_spec spec = { .name = "env", .env = &senv };
	struct mfs_sandbox *sb = make_sandbox(&spec);

	const char *argv[] = { "/bin/sh", "-c",
		"printf '%s|%s|%s|%s|' \"$A\" \"$B\" \"$TMPDIR\" \"${MFS_TEST_LAUNCHER_ONLY-unset}\"; "
		"python3 -c 'print(\"py\")'", NULL };
	struct mfs_exec_req req = { .argv = argv, .env = &renv };
	struct capture c = { 0 };
	struct mfs_err err = { 0 };
	int status = -1;
	assert_int_equal(run_req(sb, &req, &c, &status, &err), MFS_OK);
	assert_int_equal(status, 0);
	assert_string_equal(c.out.data, "from spec|from req $x 'q'|/tmp|unset|py\n");
	unsetenv("MFS_TEST_LAUNCHER_ONLY");
	mfs_kvlist_release(&senv);
	mfs_kvlist_release(&renv);
	capture_release(&c);
	destroy(sb);
}

static void timeout_kills_the_whole_tree(void **state)
{
	(void)state;
	char marker[64];
	make_marker(marker, sizeof(marker));
	struct mfs_sandbox *sb = make_sandbox(NULL);
	struct mfs_buf script = MFS_BUF_INIT;
	/* a grandchild in its own session, plus the foreground child */
	mfs_buf_addf(&script, "setsid sleep %s & sleep %s; echo not reached", marker, marker);
	const char *argv[] = { "/bin/sh", "-c", script.data, NULL };
	struct mfs_exec_req req = { .argv = argv, .timeout_s = 1 };
	struct capture c = { 0 };
	struct mfs_err err = { 0 };
	int status = -1;
	assert_int_equal(run_req(sb, &req, &c, &status, &err), MFS_ERR_TIMEOUT);
	assert_int_equal(processes_with(marker), 0);
	assert_null(c.out.data);
	mfs_buf_release(&script);
	capture_release(&c);
	destroy(sb);
}

static void cancel_with_sigterm(struct capture *c)
{
	(void)c;
	mfs_cancel_request(SIGTERM);
}

static void cancellation_is_forwarded_then_forced(void **state)
{
	(void)state;
	struct mfs_sandbox *sb = make_sandbox(NULL);
	struct mfs_err err = { 0 };
	int status = -1;

	/* a command that handles the signal gets to finish its cleanup */
	const char *polite[] = { "/bin/sh", "-c",
		"trap 'echo cleaned; exit 3' TERM; echo ready; while :; do sleep 0.05; done", NULL };
	struct mfs_exec_req req = { .argv = polite };
	struct capture c = { .trigger = "ready", .on_trigger = cancel_with_sigterm };
	assert_int_equal(run_req(sb, &req, &c, &status, &err), MFS_ERR_CANCELLED);
	assert_string_equal(c.out.data, "ready\ncleaned\n");
	assert_int_equal(status, 3);
	capture_release(&c);
	mfs_cancel_reset();

	/* one that ignores it is killed after the grace period, tree and all */
	char marker[64];
	make_marker(marker, sizeof(marker));
	struct mfs_buf script = MFS_BUF_INIT;
	mfs_buf_addf(&script, "trap '' TERM; sleep %s & echo ready; sleep %s", marker, marker);
	const char *stubborn[] = { "/bin/sh", "-c", script.data, NULL };
	req.argv = stubborn;
	struct capture c2 = { .trigger = "ready", .on_trigger = cancel_with_sigterm };
	assert_int_equal(run_req(sb, &req, &c2, &status, &err), MFS_ERR_CANCELLED);
	assert_int_equal(processes_with(marker), 0);
	mfs_cancel_reset();

	/* a request that came before exec: nothing starts */
	mfs_cancel_request(SIGINT);
	const char *never[] = { "/bin/sh", "-c", "echo ran", NULL };
	req.argv = never;
	struct capture c3 = { 0 };
	assert_int_equal(run_req(sb, &req, &c3, &status, &err), MFS_ERR_CANCELLED);
	assert_null(c3.out.data);
	mfs_cancel_reset();

	mfs_buf_release(&script);
	capture_release(&c2);
	destroy(sb);
}

static void bwrap_failures_are_not_the_commands(void **state)
{
	(void)state;
	struct mfs_sandbox *sb = make_sandbox(NULL);
	struct mfs_err err = { 0 };
	int status = -1;
	const char *argv[] = { "true", NULL };
	struct mfs_exec_req req = { .argv = argv, .cwd = "no/such/dir" };
	struct capture c = { 0 };
	assert_int_equal(run_req(sb, &req, &c, &status, &err), MFS_ERR_BACKEND);
	assert_non_null(strstr(err.msg, "chdir"));
	capture_release(&c);

	/* a missing program is the command's failure, as in a shell */
	const char *missing[] = { "mfs-no-such-program", NULL };
	struct mfs_exec_req req2 = { .argv = missing };
	memset(&c, 0, sizeof(c));
	assert_int_equal(run_req(sb, &req2, &c, &status, &err), MFS_OK);
	assert_int_equal(status, 127);
	capture_release(&c);

	/* and a file that is there but not executable gives 126 */
	memset(&c, 0, sizeof(c));
	assert_int_equal(run_sh(sb, "echo 'echo hi' > script; chmod 644 script", &c), 0);
	const char *noexec[] = { "./script", NULL };
	struct mfs_exec_req req3 = { .argv = noexec };
	assert_int_equal(run_req(sb, &req3, &c, &status, &err), MFS_OK);
	assert_int_equal(status, 126);
	capture_release(&c);
	destroy(sb);

	/* bubblewrap itself cannot be started: an infrastructure error that
	 * names the binary, and nothing is left running or behind */
	char fake[] = "/var/tmp/mfs-local-fakebwrap-XXXXXX";
	int fd = mkstemp(fake);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\x7f" "ELF not really", 15), 15);
	assert_int_equal(fchmod(fd, 0755), 0);
	close(fd);
	setenv("MFSANDBOX_BWRAP", fake, 1);
	sb = make_sandbox(NULL);
	memset(&c, 0, sizeof(c));
	status = 0;
	assert_int_equal(run_req(sb, &req2, &c, &status, &err), MFS_ERR_BACKEND);
	assert_int_equal(status, -1);
	assert_non_null(strstr(err.msg, fake));
	assert_int_equal(c.out.len + c.err.len, 0);
	capture_release(&c);
	destroy(sb);
	unsetenv("MFSANDBOX_BWRAP");
	unlink(fake);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(exit_statuses_are_the_commands, no_leftovers),
		cmocka_unit_test_teardown(output_is_byte_exact_and_apart, no_leftovers),
		cmocka_unit_test_teardown(uploaded_binary_comes_back_intact, no_leftovers),
		cmocka_unit_test_teardown(links_and_fifos_left_by_the_command_are_never_followed,
					  no_leftovers),
		cmocka_unit_test_teardown(environment_is_clean_plus_given, no_leftovers),
		cmocka_unit_test_teardown(timeout_kills_the_whole_tree, no_leftovers),
		cmocka_unit_test_teardown(cancellation_is_forwarded_then_forced, no_leftovers),
		cmocka_unit_test_teardown(bwrap_failures_are_not_the_commands, no_leftovers),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
