/* kill --stale's launcher identity (src/util/launcher_id.c): only a launcher
 * on this machine, boot and pid namespace can be called gone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mfs/util/launcher_id.h"

static struct mfs_launcher_id self;
static char pid[32], start[32];
static bool known;

static int setup(void **state)
{
	(void)state;
	known = mfs_launcher_self(&self); /* no machine-id here: every test skips */
	snprintf(pid, sizeof(pid), "%ld", self.pid);
	snprintf(start, sizeof(start), "%llu", self.start);
	return 0;
}

static enum mfs_launcher_state st(const char *m, const char *b, const char *p, const char *s)
{
	if (!known)
		skip();
	return mfs_launcher_state(&self, m, b, p, s);
}

static void own_launcher_is_alive(void **state)
{
	(void)state;
	if (!known)
		skip();
	assert_int_equal(strlen(self.machine), 32);
	assert_int_equal(st(self.machine, self.boot, pid, start), MFS_LAUNCHER_ALIVE);
}

static void reused_pid_is_gone(void **state)
{
	(void)state;
	char other[32];
	snprintf(other, sizeof(other), "%llu", self.start + 1);
	assert_int_equal(st(self.machine, self.boot, pid, other), MFS_LAUNCHER_GONE);
}

static void dead_pid_is_gone(void **state)
{
	(void)state;
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	assert_true(child > 0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	char dead[32];
	snprintf(dead, sizeof(dead), "%ld", (long)child);
	assert_int_equal(st(self.machine, self.boot, dead, start), MFS_LAUNCHER_GONE);
}

static void other_boot_is_gone(void **state)
{
	(void)state;
	assert_int_equal(st(self.machine, "0123456789abcdef0123456789abcdef", pid, start),
			 MFS_LAUNCHER_GONE);
}

static void other_machine_or_unreadable_labels_are_unknown(void **state)
{
	(void)state;
	/* Even a dead-looking pid: it is another machine's pid. */
	assert_int_equal(st("0123456789abcdef0123456789abcdef", self.boot, "4194304", "1"),
			 MFS_LAUNCHER_UNKNOWN);
	assert_int_equal(st(NULL, self.boot, pid, start), MFS_LAUNCHER_UNKNOWN);
	assert_int_equal(st(self.machine, NULL, pid, start), MFS_LAUNCHER_UNKNOWN);
	const char *bad[] = { "", "-1", "0", "12abc", "99999999999999999999999", " 1", NULL };
	for (size_t i = 0; bad[i]; i++) {
		assert_int_equal(st(self.machine, self.boot, bad[i], start), MFS_LAUNCHER_UNKNOWN);
		assert_int_equal(st(self.machine, self.boot, pid, bad[i]), MFS_LAUNCHER_UNKNOWN);
	}
	assert_int_equal(st(self.machine, self.boot, pid, NULL), MFS_LAUNCHER_UNKNOWN);
	/* Above Linux's PID_MAX_LIMIT: names no process anywhere. */
	assert_int_equal(st(self.machine, self.boot, "4194305", start), MFS_LAUNCHER_UNKNOWN);
	struct mfs_launcher_id nobody = { .machine = "" };
	assert_int_equal(mfs_launcher_state(&nobody, "", "", pid, start), MFS_LAUNCHER_UNKNOWN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(own_launcher_is_alive),
		cmocka_unit_test(reused_pid_is_gone),
		cmocka_unit_test(dead_pid_is_gone),
		cmocka_unit_test(other_boot_is_gone),
		cmocka_unit_test(other_machine_or_unreadable_labels_are_unknown),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
