/*
 * Limits and clean-up on the local backend: the memory limit stops a greedy
 * command, destroy leaves no directory, process or cgroup, and kill never
 * touches a cgroup that is not its own.
 * Real bubblewrap sandboxes driven through mfs_local_ops; the fixtures are
 * in local_fixture.h.
 */
#include "local_fixture.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(destroy_leaves_no_dir_or_cgroup, no_leftovers),
		cmocka_unit_test_teardown(memory_limit_stops_a_greedy_command, no_leftovers),
		cmocka_unit_test_teardown(kill_trusts_only_its_own_cgroups, no_leftovers),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
