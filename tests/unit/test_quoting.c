/* Quoting round trip: what --dry-run and the Metaflow script builder print
 * must be read back by a real POSIX shell as exactly the original words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "mfs/util/buf.h"

static void shell_reads_back_every_word(void **state)
{
	(void)state;
	const char *words[] = {
		"plain", "with space", "it's", "\"double\"", "$HOME", "`uname`", "$(id)", "a\nb",
		"tab\there", "*", "?", "[x]", "~", "#hash", "semi;colon", "back\\slash", "",
		"caf\xc3\xa9 \xe2\x9c\x93", "--flag=v a l", "'", "''", "!bang", "{a,b}", NULL,
	};
	struct mfs_buf cmd = MFS_BUF_INIT;
	mfs_buf_adds(&cmd, "printf '%s\\0' ");
	mfs_buf_add_argv_quoted(&cmd, words);

	const char *argv[] = { "sh", "-c", cmd.data, NULL };
	struct mfs_buf line = MFS_BUF_INIT;
	mfs_buf_add_argv_quoted(&line, argv);
	FILE *p = popen(line.data, "r");
	assert_non_null(p);
	char out[4096];
	size_t n = fread(out, 1, sizeof(out), p);
	assert_int_equal(WEXITSTATUS(pclose(p)), 0);

	size_t off = 0;
	for (size_t i = 0; words[i]; i++) {
		size_t len = strlen(words[i]);
		assert_true(off + len < n);
		assert_memory_equal(out + off, words[i], len);
		assert_int_equal(out[off + len], '\0');
		off += len + 1;
	}
	assert_int_equal(off, n);
	mfs_buf_release(&cmd);
	mfs_buf_release(&line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(shell_reads_back_every_word),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
