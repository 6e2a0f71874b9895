/*
 * Tests of the local backend, driving mfs_local_ops directly with real
 * bubblewrap sandboxes: what a user depends on is exit statuses, output
 * that arrives intact and apart, isolation, limits, and that nothing (no
 * process, directory or cgroup) outlives a sandbox.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mfs/backend.h"
#include "mfs/util/buf.h"
#include "mfs/util/cancel.h"
#include "mfs/util/err.h"

extern const struct mfs_backend_ops mfs_local_ops;
#define OPS mfs_local_ops

static char state_root[] = "/var/tmp/mfs-local-test-XXXXXX";

/* ------------------------------------------------------------ helpers */

struct capture {
	struct mfs_buf out, err;
	const char *trigger;            /* when stdout holds this ... */
	void (*on_trigger)(struct capture *c);  /* ... call this once */
	bool fired;
	struct mfs_sandbox *sb;
};

static void capture_write(void *ctx, enum mfs_stream stream, const char *data, size_t len)
{
	struct capture *c = ctx;
	mfs_buf_add(stream == MFS_STDOUT ? &c->out : &c->err, data, len);
	if (c->trigger && !c->fired && c->out.data && strstr(c->out.data, c->trigger)) {
		c->fired = true;
		c->on_trigger(c);
	}
}

static void capture_release(struct capture *c)
{
	mfs_buf_release(&c->out);
	mfs_buf_release(&c->err);
}

static enum mfs_code run_req(struct mfs_sandbox *sb, const struct mfs_exec_req *req,
			     struct capture *c, int *status, struct mfs_err *err)
{
	struct mfs_io io = { capture_write, c };
	c->sb = sb;
	return OPS.exec(sb, req, &io, status, err);
}

/* Runs `sh -c script` and returns the status; asserts exec succeeded. */
static int run_sh(struct mfs_sandbox *sb, const char *script, struct capture *c)
{
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct mfs_exec_req req = { .argv = argv };
	struct mfs_err err = { 0 };
	int status = -1;
	enum mfs_code rc = run_req(sb, &req, c, &status, &err);
	if (rc != MFS_OK)
		fail_msg("exec failed: %s (%s)", err.msg, mfs_code_name(rc));
	return status;
}

static struct mfs_sandbox *make_sandbox(const struct mfs_sandbox_spec *given)
{
	struct mfs_sandbox_spec spec = { .name = "unit" };
	if (given)
		spec = *given;
	struct mfs_sandbox *sb = NULL;
	struct mfs_err err = { 0 };
	enum mfs_code rc = OPS.create(&spec, &sb, &err);
	if (rc != MFS_OK)
		fail_msg("create failed: %s", err.msg);
	return sb;
}

static void destroy(struct mfs_sandbox *sb)
{
	struct mfs_err err = { 0 };
	assert_int_equal(OPS.destroy(sb, &err), MFS_OK);
}

/* A token no other process on the machine has in its command line. */
static void make_marker(char *buf, size_t n)
{
	snprintf(buf, n, "1000.%d%ld", (int)getpid(), random() % 100000);
}

/* Number of processes whose command line contains marker. */
static int processes_with(const char *marker)
{
	DIR *d = opendir("/proc");
	assert_non_null(d);
	int found = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		char path[300], cmd[4096];
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (n <= 0)
			continue;
		for (ssize_t i = 0; i < n; i++)
			if (cmd[i] == '\0')
				cmd[i] = ' ';
		cmd[n] = '\0';
		if (strstr(cmd, marker))
			found++;
	}
	closedir(d);
	return found;
}

static int entries_in(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* The cgroup dirs recorded in a sandbox's state file. */
static void state_cgroups(const struct mfs_sandbox *sb, struct mfs_strv *out)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.state", state_root, sb->id);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "cgroup=", 7))
			mfs_strv_push(out, line + 7);
	}
	fclose(f);
}

static bool notes_say(const char *what)
{
	struct mfs_buf notes = MFS_BUF_INIT;
	struct mfs_err err = { 0 };
	assert_int_equal(OPS.probe(&notes, &err), MFS_OK);
	bool yes = notes.data && strstr(notes.data, what);
	mfs_buf_release(&notes);
	return yes;
}

/* -------------------------------------------------------------- tests */

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

static void only_workdir_and_tmp_are_writable(void **state)
{
	(void)state;
	char host_tmp[] = "/tmp/mfs-local-hostonly-XXXXXX";
	assert_non_null(mkdtemp(host_tmp));
	struct mfs_sandbox *sb = make_sandbox(NULL);
	struct capture c = { 0 };
	struct mfs_buf script = MFS_BUF_INIT;
	mfs_buf_addf(&script,
		     "test \"$(pwd)\" = %s || exit 10; echo hi > f && test -s f || exit 11; "
		     "touch /usr/mfs-local-test 2>/dev/null && exit 12; "
		     "ls -a /tmp | grep -q %s && exit 13; echo t > /tmp/t || exit 14; "
		     "ls %s | grep -v %s && exit 15; exit 0",
		     sb->workdir, strrchr(host_tmp, '/') + 1, state_root, sb->id);
	assert_int_equal(run_sh(sb, script.data, &c), 0);
	/* a host /tmp entry the command names is there, read-only */
	capture_release(&c);
	memset(&c, 0, sizeof(c));
	mfs_buf_reset(&script);
	mfs_buf_addf(&script, "test -d %s/. || exit 16; touch %s/x 2>/dev/null && exit 17; exit 0",
		     host_tmp, host_tmp);
	assert_int_equal(run_sh(sb, script.data, &c), 0);
	/* the files are on the host where the sandbox says they are */
	struct mfs_buf f = MFS_BUF_INIT;
	mfs_buf_addf(&f, "%s/f", sb->workdir);
	assert_int_equal(access(f.data, F_OK), 0);
	assert_int_equal(access("/usr/mfs-local-test", F_OK), -1);
	/* /tmp lasts as long as the sandbox, not one command */
	capture_release(&c);
	memset(&c, 0, sizeof(c));
	assert_int_equal(run_sh(sb, "cat /tmp/t", &c), 0);
	assert_string_equal(c.out.data, "t\n");
	rmdir(host_tmp);
	mfs_buf_release(&f);
	mfs_buf_release(&script);
	capture_release(&c);
	destroy(sb);
}

static void network_none_has_only_loopback(void **state)
{
	(void)state;
	struct mfs_sandbox_spec spec = { .name = "net", .network = "none" };
	struct mfs_sandbox *sb = make_sandbox(&spec);
	struct capture c = { 0 };
	assert_int_equal(run_sh(sb, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '", &c), 0);
	assert_string_equal(c.out.data, "lo\n");
	capture_release(&c);
	destroy(sb);

	struct mfs_err err = { 0 };
	spec.network = "bridge";
	assert_int_equal(OPS.create(&spec, &sb, &err), MFS_ERR_USAGE);
	assert_non_null(strstr(err.msg, "host or none"));
}

static void rw_paths_are_writable_at_the_same_path(void **state)
{
	(void)state;
	char shared[] = "/var/tmp/mfs-local-rw-XXXXXX";
	assert_non_null(mkdtemp(shared));
	struct mfs_strv rw = MFS_STRV_INIT;
	mfs_strv_push(&rw, shared);
	struct mfs_sandbox_spec spec = { .name = "rw", .rw_paths = &rw };
	struct mfs_sandbox *sb = make_sandbox(&spec);
	struct capture c = { 0 };
	struct mfs_buf script = MFS_BUF_INIT;
	mfs_buf_addf(&script, "echo x > %s/out", shared);
	assert_int_equal(run_sh(sb, script.data, &c), 0);
	struct mfs_buf out = MFS_BUF_INIT;
	mfs_buf_addf(&out, "%s/out", shared);
	assert_int_equal(unlink(out.data), 0);
	rmdir(shared);
	destroy(sb);

	struct mfs_err err = { 0 };
	assert_int_equal(OPS.create(&spec, &sb, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, shared));
	mfs_buf_release(&out);
	mfs_buf_release(&script);
	mfs_strv_release(&rw);
	capture_release(&c);
}

/* The default view shows the system, not the host: no /home, /root's
 * contents, /run, /sys or host /var; /etc/shadow hidden; spec binds shown
 * where they say, read-only or writable; a bad bind refused. */
static void the_host_view_is_minimal_and_binds_show_paths(void **state)
{
	(void)state;
	char ro[] = "/var/tmp/mfs-local-ro-XXXXXX", rwd[] = "/var/tmp/mfs-local-rwb-XXXXXX";
	assert_non_null(mkdtemp(ro));
	assert_non_null(mkdtemp(rwd));
	struct mfs_kvlist ro_binds = MFS_KVLIST_INIT, rw_binds = MFS_KVLIST_INIT;
	mfs_kvlist_set(&ro_binds, "/in", ro);
	mfs_kvlist_set(&rw_binds, "/out/deep", rwd);
	struct mfs_sandbox_spec spec = { .name = "view", .ro_binds = &ro_binds, .rw_binds = &rw_binds };
	/* no interpreter under a home on PATH: its prefix would be shown there */
	char *path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	setenv("PATH", "/usr/bin:/bin", 1);
	struct mfs_sandbox *sb = make_sandbox(&spec);
	struct capture c = { 0 };
	const char *script =
		"for p in /home /run /var/run /sys /opt /var/lib /var/tmp/mfs-local-ro-*; do "
		"  test -e $p && exit 20; done; "
		"test -z \"$(ls -A /root 2>/dev/null)\" || exit 21; "
		"cat /etc/shadow 2>/dev/null | grep -q . && exit 22; "
		"test -r /etc/passwd && test -x /usr/bin/env || exit 23; "
		"test -d /in && touch /in/x 2>/dev/null && exit 24; "
		"echo w > /out/deep/f || exit 25; touch /x 2>/dev/null && exit 26; exit 0";
	int status = run_sh(sb, script, &c);
	setenv("PATH", path, 1);
	free(path);
	assert_int_equal(status, 0);
	struct mfs_buf f = MFS_BUF_INIT;
	mfs_buf_addf(&f, "%s/f", rwd);
	assert_int_equal(unlink(f.data), 0);
	destroy(sb);

	struct mfs_err err = { 0 };
	mfs_kvlist_set(&ro_binds, "/gone", "/nonexistent/mfs-local");
	assert_int_equal(OPS.create(&spec, &sb, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "/nonexistent/mfs-local"));
	rmdir(ro);
	rmdir(rwd);
	mfs_buf_release(&f);
	mfs_kvlist_release(&ro_binds);
	mfs_kvlist_release(&rw_binds);
	capture_release(&c);
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

/* The executor refuses --image/--gpu/--disk (test_executor.c) on the
 * caps; local must not claim them and must say why. */
static void unsupported_requests_are_refused(void **state)
{
	(void)state;
	struct mfs_buf why = MFS_BUF_INIT;
	struct mfs_sandbox_spec spec = { .name = "x", .image = "python:3.11", .gpu = "1", .disk_gb = 10 };
	unsigned caps = OPS.caps_for(&spec, &why);
	assert_int_equal(caps & (MFS_CAP_IMAGE | MFS_CAP_GPU | MFS_CAP_DISK), 0);
	assert_true(caps & MFS_CAP_CPU);
	assert_non_null(strstr(why.data, "own filesystem"));
	mfs_buf_release(&why);
	assert_int_equal(entries_in(state_root), 0);
}

static void probe_names_the_fix(void **state)
{
	(void)state;
	struct mfs_buf notes = MFS_BUF_INIT;
	struct mfs_err err = { 0 };
	assert_int_equal(OPS.probe(&notes, &err), MFS_OK);
	assert_non_null(strstr(notes.data, "memory: "));
	assert_non_null(strstr(notes.data, "cpu: "));
	assert_non_null(strstr(notes.data, "image"));

	setenv("MFSANDBOX_BWRAP", "/nonexistent/bwrap", 1);
	assert_int_equal(OPS.probe(&notes, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "MFSANDBOX_BWRAP"));
	unsetenv("MFSANDBOX_BWRAP");

	char *path = mfs_xstrdup(getenv("PATH"));
	setenv("PATH", "/nonexistent", 1);
	assert_int_equal(OPS.probe(&notes, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "apt-get install bubblewrap"));
	setenv("PATH", path, 1);
	free(path);
	mfs_buf_release(&notes);
}

static void destroy_leaves_no_dir_or_cgroup(void **state)
{
	(void)state;
	struct mfs_sandbox_spec spec = { .name = "limits", .memory_mb = 256, .cpu = 0.5 };
	struct mfs_sandbox *sb = make_sandbox(&spec);
	struct mfs_strv cgroups = MFS_STRV_INIT;
	state_cgroups(sb, &cgroups);
	char marker[64];
	make_marker(marker, sizeof(marker));
	struct mfs_buf script = MFS_BUF_INIT;
	/* a daemon that outlives its command's shell inside the namespace */
	mfs_buf_addf(&script, "echo hi > f; (setsid sleep %s &) ; exit 0", marker);
	struct capture c = { 0 };
	assert_int_equal(run_sh(sb, script.data, &c), 0);

	if (notes_say("cpu: cgroup v1")) {
		bool quota_seen = false;
		for (size_t i = 0; i < cgroups.n; i++) {
			struct mfs_buf q = MFS_BUF_INIT;
			mfs_buf_addf(&q, "%s/cpu.cfs_quota_us", cgroups.v[i]);
			FILE *f = fopen(q.data, "r");
			if (f) {
				long quota = 0;
				assert_int_equal(fscanf(f, "%ld", &quota), 1);
				assert_int_equal(quota, 50000);
				quota_seen = true;
				fclose(f);
			}
			mfs_buf_release(&q);
		}
		assert_true(quota_seen);
	}
	char *dir = mfs_xstrdup(sb->workdir);
	destroy(sb);
	assert_int_equal(access(dir, F_OK), -1);
	for (size_t i = 0; i < cgroups.n; i++)
		assert_int_equal(access(cgroups.v[i], F_OK), -1);
	assert_int_equal(processes_with(marker), 0);
	assert_int_equal(entries_in(state_root), 0);
	free(dir);
	mfs_buf_release(&script);
	mfs_strv_release(&cgroups);
	capture_release(&c);
}

/* Over the limit, the command dies (cgroup OOM kill) or its allocation
 * fails (RLIMIT_AS fallback); never does it get the memory. */
static void memory_limit_stops_a_greedy_command(void **state)
{
	(void)state;
	bool cgroup = notes_say("memory: cgroup");
	struct mfs_sandbox_spec spec = { .name = "mem", .memory_mb = 64 };
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			setenv("MFSANDBOX_LOCAL_CGROUPS", "0", 1);
			assert_true(notes_say("memory: RLIMIT_AS"));
			cgroup = false;
		}
		struct mfs_sandbox *sb = make_sandbox(&spec);
		struct capture c = { 0 };
		/* touch every page so the cgroup really has to hold them */
		int status = run_sh(sb, "python3 -c 'b = bytearray(400 * 1024 * 1024); "
					"b[::4096] = b\"x\" * len(b[::4096]); print(\"got it\")'", &c);
		assert_null(c.out.data);
		if (cgroup)
			assert_int_equal(status, 137);
		else
			assert_non_null(strstr(c.err.data, "MemoryError"));
		capture_release(&c);
		destroy(sb);
	}
	unsetenv("MFSANDBOX_LOCAL_CGROUPS");
}

struct listing {
	int seen;
	bool found_a, found_b;
	const char *a, *b;
};

static void collect(void *ctx, const struct mfs_sandbox_info *info)
{
	struct listing *l = ctx;
	l->seen++;
	if (!strcmp(info->id, l->a)) {
		l->found_a = true;
		assert_string_equal(mfs_kvlist_get(info->labels, MFS_LABEL_STEP), "start");
		assert_true(info->created > 0);
		assert_string_equal(info->state, "idle");
	}
	if (!strcmp(info->id, l->b))
		l->found_b = true;
}

static void state_of(void *ctx, const struct mfs_sandbox_info *info)
{
	const char **want = ctx;
	if (!strcmp(info->id, want[0]))
		want[1] = info->state;  /* a string literal in local.c */
}

/* Another process's view while the command runs: `ls` says running, `kill`
 * stops it (both read what exec() published about its bwrap). */
static void kill_from_trigger(struct capture *c)
{
	struct mfs_err err = { 0 };
	const char *want[2] = { c->sb->id, NULL };
	assert_int_equal(OPS.list(state_of, want, &err), MFS_OK);
	assert_non_null(want[1]);
	assert_string_equal(want[1], "running");
	assert_int_equal(OPS.kill(c->sb->id, &err), MFS_OK);
}

static void list_and_kill_work_from_state(void **state)
{
	(void)state;
	struct mfs_kvlist labels = MFS_KVLIST_INIT;
	mfs_kvlist_set(&labels, MFS_LABEL_OWNER, "1");
	mfs_kvlist_set(&labels, MFS_LABEL_STEP, "start");
	mfs_kvlist_set(&labels, "odd", "multi\nline \\ value");
	struct mfs_sandbox_spec spec = { .name = "HelloFlow/1 start", .labels = &labels };
	struct mfs_sandbox *a = make_sandbox(&spec);
	struct mfs_sandbox *b = make_sandbox(&spec);
	assert_null(strchr(a->id, '/'));
	assert_string_not_equal(a->id, b->id);

	struct listing l = { .a = a->id, .b = b->id };
	struct mfs_err err = { 0 };
	assert_int_equal(OPS.list(collect, &l, &err), MFS_OK);
	assert_int_equal(l.seen, 2);
	assert_true(l.found_a && l.found_b);

	char *a_id = mfs_xstrdup(a->id);
	assert_int_equal(OPS.kill(a_id, &err), MFS_OK);
	assert_int_equal(OPS.kill(a_id, &err), MFS_ERR_NOTFOUND);
	assert_int_equal(OPS.kill("../etc", &err), MFS_ERR_USAGE);
	l = (struct listing){ .a = a_id, .b = b->id };
	assert_int_equal(OPS.list(collect, &l, &err), MFS_OK);
	assert_int_equal(l.seen, 1);
	assert_true(l.found_b);

	/* ID.tmp is a part of sandbox ID (its /tmp), never a sandbox to kill */
	struct mfs_buf part = MFS_BUF_INIT;
	mfs_buf_addf(&part, "%s.tmp", b->id);
	assert_int_equal(OPS.kill(part.data, &err), MFS_ERR_USAGE);
	mfs_buf_reset(&part);
	mfs_buf_addf(&part, "%s/%s.tmp", state_root, b->id);
	assert_int_equal(access(part.data, F_OK), 0);
	/* a crashed create's dirs without a state file: not listed, killed by id */
	char work[4096], tmp[4096], left[4200];
	snprintf(work, sizeof(work), "%s/crashed-0", state_root);
	snprintf(tmp, sizeof(tmp), "%s/crashed-0.tmp", state_root);
	snprintf(left, sizeof(left), "%s/left", work);
	assert_int_equal(mkdir(work, 0755), 0);
	assert_int_equal(mkdir(tmp, 0700), 0);
	close(open(left, O_WRONLY | O_CREAT, 0600));
	l = (struct listing){ .a = "crashed-0", .b = b->id };
	assert_int_equal(OPS.list(collect, &l, &err), MFS_OK);
	assert_int_equal(l.seen, 1);
	assert_int_equal(OPS.kill("crashed-0", &err), MFS_OK);
	assert_int_equal(access(work, F_OK), -1);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(OPS.kill("crashed-0", &err), MFS_ERR_NOTFOUND);
	mfs_buf_release(&part);
	/* the executor still holds a: destroying it after kill is fine */
	destroy(a);
	free(a_id);

	/* kill stops a running command, its children too */
	char marker[64];
	make_marker(marker, sizeof(marker));
	struct mfs_buf script = MFS_BUF_INIT;
	mfs_buf_addf(&script, "sleep %s & echo ready; sleep %s", marker, marker);
	const char *argv[] = { "/bin/sh", "-c", script.data, NULL };
	struct mfs_exec_req req = { .argv = argv };
	struct capture c = { .trigger = "ready", .on_trigger = kill_from_trigger };
	int status = -1;
	assert_int_equal(run_req(b, &req, &c, &status, &err), MFS_OK);
	assert_int_equal(status, 137);
	assert_int_equal(processes_with(marker), 0);
	destroy(b);
	assert_int_equal(entries_in(state_root), 0);

	struct mfs_buf d = MFS_BUF_INIT;
	struct mfs_sandbox *k = make_sandbox(NULL);
	OPS.describe(k, &d);
	assert_non_null(strstr(d.data, k->workdir));
	struct mfs_buf hint = MFS_BUF_INIT;
	mfs_buf_addf(&hint, "mfsandbox kill %s", k->id);
	assert_non_null(strstr(d.data, hint.data));
	destroy(k);

	mfs_buf_release(&hint);
	mfs_buf_release(&d);
	mfs_buf_release(&script);
	capture_release(&c);
	mfs_kvlist_release(&labels);
}

/* A hand-edited state file must not make kill SIGKILL a foreign cgroup's
 * processes: here a fake "cgroup" holding a sleep of ours. */
static void kill_trusts_only_its_own_cgroups(void **state)
{
	(void)state;
	struct mfs_sandbox *sb = make_sandbox(NULL);
	char *id = mfs_xstrdup(sb->id);
	pid_t victim = fork();
	assert_true(victim >= 0);
	if (victim == 0) {
		execlp("sleep", "sleep", "30", (char *)NULL);
		_exit(127);
	}
	char fake[] = "/var/tmp/mfs-local-fakecg-XXXXXX";
	assert_non_null(mkdtemp(fake));
	char path[4096];
	snprintf(path, sizeof(path), "%s/cgroup.procs", fake);
	FILE *f = fopen(path, "w");
	fprintf(f, "%d\n", (int)victim);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s.state", state_root, id);
	f = fopen(path, "a");
	/* never name a real cgroup here: a regression would SIGKILL its members */
	fprintf(f, "cgroup=%s\n", fake);
	fclose(f);

	struct mfs_err err = { 0 };
	assert_int_equal(OPS.kill(id, &err), MFS_OK);
	assert_int_equal(kill(victim, 0), 0);
	assert_int_equal(access(fake, F_OK), 0);
	kill(victim, SIGKILL);
	waitpid(victim, NULL, 0);
	snprintf(path, sizeof(path), "%s/cgroup.procs", fake);
	unlink(path);
	rmdir(fake);
	destroy(sb);
	free(id);
}

static void kill_listed(void *ctx, const struct mfs_sandbox_info *info)
{
	struct mfs_strv *ids = ctx;
	mfs_strv_push(ids, info->id);
}

/* A failing assertion skips the test's own destroy: remove what it left
 * (so later tests start clean), and fail if anything was left. */
static int no_leftovers(void **state)
{
	(void)state;
	struct mfs_strv ids = MFS_STRV_INIT;
	struct mfs_err err = { 0 };
	OPS.list(kill_listed, &ids, &err);
	for (size_t i = 0; i < ids.n; i++)
		OPS.kill(ids.v[i], &err);
	size_t left = ids.n;
	mfs_strv_release(&ids);
	mfs_cancel_reset();
	unsetenv("MFSANDBOX_LOCAL_CGROUPS");
	return left == 0 ? 0 : -1;
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(state_root))
		return -1;
	setenv("MFSANDBOX_LOCAL_STATE_DIR", state_root, 1);
	srandom((unsigned)getpid());
	return mfs_cancel_init();
}

static int group_teardown(void **state)
{
	(void)state;
	int left = entries_in(state_root);
	rmdir(state_root);
	return left == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(probe_names_the_fix, no_leftovers),
		cmocka_unit_test_teardown(exit_statuses_are_the_commands, no_leftovers),
		cmocka_unit_test_teardown(output_is_byte_exact_and_apart, no_leftovers),
		cmocka_unit_test_teardown(uploaded_binary_comes_back_intact, no_leftovers),
		cmocka_unit_test_teardown(environment_is_clean_plus_given, no_leftovers),
		cmocka_unit_test_teardown(only_workdir_and_tmp_are_writable, no_leftovers),
		cmocka_unit_test_teardown(network_none_has_only_loopback, no_leftovers),
		cmocka_unit_test_teardown(rw_paths_are_writable_at_the_same_path, no_leftovers),
		cmocka_unit_test_teardown(the_host_view_is_minimal_and_binds_show_paths, no_leftovers),
		cmocka_unit_test_teardown(timeout_kills_the_whole_tree, no_leftovers),
		cmocka_unit_test_teardown(cancellation_is_forwarded_then_forced, no_leftovers),
		cmocka_unit_test_teardown(bwrap_failures_are_not_the_commands, no_leftovers),
		cmocka_unit_test_teardown(unsupported_requests_are_refused, no_leftovers),
		cmocka_unit_test_teardown(destroy_leaves_no_dir_or_cgroup, no_leftovers),
		cmocka_unit_test_teardown(memory_limit_stops_a_greedy_command, no_leftovers),
		cmocka_unit_test_teardown(list_and_kill_work_from_state, no_leftovers),
		cmocka_unit_test_teardown(kill_trusts_only_its_own_cgroups, no_leftovers),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
