/*
 * local_fixture.h - what the local backend's tests (tests/unit/test_local_*.c)
 * share: a state root of their own per test binary, running commands with
 * their output captured, and a teardown that fails a test which left a
 * sandbox behind.  Functions are static inline: each test file uses some.
 */
#ifndef MFS_TEST_LOCAL_FIXTURE_H
#define MFS_TEST_LOCAL_FIXTURE_H

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

static inline void capture_write(void *ctx, enum mfs_stream stream, const char *data, size_t len)
{
	struct capture *c = ctx;
	mfs_buf_add(stream == MFS_STDOUT ? &c->out : &c->err, data, len);
	if (c->trigger && !c->fired && c->out.data && strstr(c->out.data, c->trigger)) {
		c->fired = true;
		c->on_trigger(c);
	}
}

static inline void capture_release(struct capture *c)
{
	mfs_buf_release(&c->out);
	mfs_buf_release(&c->err);
}

static inline enum mfs_code run_req(struct mfs_sandbox *sb, const struct mfs_exec_req *req,
				    struct capture *c, int *status, struct mfs_err *err)
{
	struct mfs_io io = { capture_write, c };
	c->sb = sb;
	return OPS.exec(sb, req, &io, status, err);
}

/* Runs `sh -c script` and returns the status; asserts exec succeeded. */
static inline int run_sh(struct mfs_sandbox *sb, const char *script, struct capture *c)
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

static inline struct mfs_sandbox *make_sandbox(const struct mfs_sandbox_spec *given)
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

static inline void destroy(struct mfs_sandbox *sb)
{
	struct mfs_err err = { 0 };
	assert_int_equal(OPS.destroy(sb, &err), MFS_OK);
}

/* A token no other process on the machine has in its command line. */
static inline void make_marker(char *buf, size_t n)
{
	snprintf(buf, n, "1000.%d%ld", (int)getpid(), random() % 100000);
}

/* Number of processes whose command line contains marker. */
static inline int processes_with(const char *marker)
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

static inline int entries_in(const char *dir)
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
static inline void state_cgroups(const struct mfs_sandbox *sb, struct mfs_strv *out)
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

static inline bool notes_say(const char *what)
{
	struct mfs_buf notes = MFS_BUF_INIT;
	struct mfs_err err = { 0 };
	assert_int_equal(OPS.probe(&notes, &err), MFS_OK);
	bool yes = notes.data && strstr(notes.data, what);
	mfs_buf_release(&notes);
	return yes;
}
static inline void kill_listed(void *ctx, const struct mfs_sandbox_info *info)
{
	struct mfs_strv *ids = ctx;
	mfs_strv_push(ids, info->id);
}

/* A failing assertion skips the test's own destroy: remove what it left
 * (so later tests start clean), and fail if anything was left. */
static inline int no_leftovers(void **state)
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

static inline int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(state_root))
		return -1;
	setenv("MFSANDBOX_LOCAL_STATE_DIR", state_root, 1);
	srandom((unsigned)getpid());
	return mfs_cancel_init();
}

static inline int group_teardown(void **state)
{
	(void)state;
	int left = entries_in(state_root);
	rmdir(state_root);
	return left == 0 ? 0 : -1;
}

#endif
