/* Unit tests for file.c: what the relay relies on when it writes into the
 * launcher's .metaflow and its spool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfs/util/file.h"

static char root[] = "/tmp/mfs-test-file-XXXXXX";

static void path(struct mfs_buf *b, const char *rel)
{
	mfs_buf_reset(b);
	mfs_buf_addf(b, "%s/%s", root, rel);
}

static void make_dirs_creates_and_refuses_symlinks(void **state)
{
	(void)state;
	struct mfs_buf p = MFS_BUF_INIT, q = MFS_BUF_INIT;
	struct mfs_err err = { 0 };
	struct stat st;

	path(&p, "a/b/c");
	assert_int_equal(mfs_make_dirs(p.data, &err), MFS_OK);
	assert_int_equal(stat(p.data, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(mfs_make_dirs(p.data, &err), MFS_OK); /* again: nothing to do */

	/* A symlink on the way could lead outside the tree: refused, nothing made. */
	path(&q, "out");
	assert_int_equal(mkdir(q.data, 0700), 0);
	path(&p, "link");
	assert_int_equal(symlink(q.data, p.data), 0);
	path(&p, "link/x");
	assert_int_equal(mfs_make_dirs(p.data, &err), MFS_ERR_IO);
	assert_non_null(strstr(err.msg, "is not a directory"));
	path(&q, "out/x");
	assert_int_not_equal(stat(q.data, &st), 0);
	mfs_buf_release(&p);
	mfs_buf_release(&q);
}

static void write_atomic_replaces_a_symlink_not_its_target(void **state)
{
	(void)state;
	struct mfs_buf p = MFS_BUF_INIT, target = MFS_BUF_INIT, text = MFS_BUF_INIT;
	struct mfs_err err = { 0 };
	struct stat st;

	path(&target, "target");
	assert_int_equal(mfs_write_file_atomic(target.data, "keep", 4, 0, &err), MFS_OK);
	path(&p, "f.json");
	assert_int_equal(symlink(target.data, p.data), 0);
	assert_int_equal(mfs_write_file_atomic(p.data, "new", 3, 1000000000, &err), MFS_OK);
	assert_int_equal(lstat(p.data, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_mtime, 1000000000);
	assert_true(mfs_read_file(p.data, &text));
	assert_string_equal(text.data, "new");
	assert_true(mfs_read_file(target.data, &text));
	assert_string_equal(text.data, "keep");

	path(&p, "no/such/dir/f");
	assert_int_equal(mfs_write_file_atomic(p.data, "x", 1, 0, &err), MFS_ERR_IO);
	mfs_buf_release(&p);
	mfs_buf_release(&target);
	mfs_buf_release(&text);
}

/* Files another party may have put where we read (the step, in a local
 * datastore): a FIFO must not block, a symlink not be followed, a big file
 * not be read past the bound. */
static void read_regular_refuses_fifos_links_and_big_files(void **state)
{
	(void)state;
	struct mfs_buf p = MFS_BUF_INIT, l = MFS_BUF_INIT, text = MFS_BUF_INIT;
	struct mfs_err err = { 0 };

	path(&p, "small");
	assert_int_equal(mfs_write_file_atomic(p.data, "12345", 5, 0, &err), MFS_OK);
	assert_int_equal(mfs_read_regular(p.data, 5, &text, &err), MFS_OK);
	assert_string_equal(text.data, "12345");
	assert_int_equal(mfs_read_regular(p.data, 4, &text, &err), MFS_ERR_IO);
	assert_non_null(strstr(err.msg, "larger than 4 bytes"));
	path(&l, "read-link");
	assert_int_equal(symlink(p.data, l.data), 0);
	assert_int_equal(mfs_read_regular(l.data, 100, &text, &err), MFS_ERR_IO);
	unlink(l.data);
	assert_int_equal(mkfifo(l.data, 0600), 0);
	assert_int_equal(mfs_read_regular(l.data, 100, &text, &err), MFS_ERR_IO);
	assert_non_null(strstr(err.msg, "not a regular file"));
	unlink(l.data);
	assert_int_equal(mfs_read_regular(l.data, 100, &text, &err), MFS_ERR_NOTFOUND);
	unlink(p.data);
	mfs_buf_release(&p);
	mfs_buf_release(&l);
	mfs_buf_release(&text);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(make_dirs_creates_and_refuses_symlinks),
		cmocka_unit_test(write_atomic_replaces_a_symlink_not_its_target),
		cmocka_unit_test(read_regular_refuses_fifos_links_and_big_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
