/*
 * The local backend's probe, its refusals, and `ls`/`kill` from the state
 * files while a command runs and after.
 * Real bubblewrap sandboxes driven through mfs_local_ops; the fixtures are
 * in local_fixture.h.
 */
#include "local_fixture.h"
#include "../../backends/local/local.h"

#include <sys/resource.h>

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

/* What a command may leave in its work dir: a chain deeper than the
 * descriptors we may open (the walk once held one per level, gave up, and
 * the sandbox could never be removed, not even by kill) and directories it
 * made 000. */
static void deep_and_locked_trees_are_removed(void **state)
{
	(void)state;
	struct rlimit old, low;
	char top[256], cwd[4096], path[300];
	struct stat st;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(top, sizeof(top), "%s/deep", state_root);
	assert_int_equal(mkdir(top, 0755), 0);
	assert_int_equal(chdir(top), 0);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(mkdir("a", 0755), 0);
		if (i % 100 == 0) {
			close(open("f", O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
			assert_int_equal(mkdir("locked", 0), 0);
			assert_int_equal(symlink("/etc", "link"), 0);
		}
		assert_int_equal(chdir("a"), 0);
	}
	assert_int_equal(chdir(cwd), 0);
	snprintf(path, sizeof(path), "%s/a", top);
	assert_int_equal(chmod(path, 0), 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = 256;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	int rc = local_rm_dir(top);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(rc, 0);
	assert_int_not_equal(lstat(top, &st), 0);
	assert_int_equal(lstat("/etc/passwd", &st), 0); /* links were not followed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(probe_names_the_fix, no_leftovers),
		cmocka_unit_test_teardown(unsupported_requests_are_refused, no_leftovers),
		cmocka_unit_test_teardown(list_and_kill_work_from_state, no_leftovers),
		cmocka_unit_test_teardown(deep_and_locked_trees_are_removed, no_leftovers),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
