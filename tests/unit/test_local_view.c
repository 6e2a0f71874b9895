/*
 * What a local sandbox sees: only the work dir and /tmp are writable, the
 * host view is minimal, --network none leaves loopback only, and binds
 * show paths at their own host path.
 * Real bubblewrap sandboxes driven through mfs_local_ops; the fixtures are
 * in local_fixture.h.
 */
#include "local_fixture.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(only_workdir_and_tmp_are_writable, no_leftovers),
		cmocka_unit_test_teardown(network_none_has_only_loopback, no_leftovers),
		cmocka_unit_test_teardown(rw_paths_are_writable_at_the_same_path, no_leftovers),
		cmocka_unit_test_teardown(the_host_view_is_minimal_and_binds_show_paths, no_leftovers),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
