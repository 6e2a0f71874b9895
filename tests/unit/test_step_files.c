/* Unit tests for step_files.c: which options of a step command name a file
 * on the launcher, how each becomes an upload and a path inside the
 * sandbox, and that a bad file stops the run before anything changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfs/core/step_files.h"

static char dir[] = "/tmp/mfs-step-files-XXXXXX";
static char cfg[128], other[128], inputs[128];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/mfs-step-files-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(cfg, sizeof(cfg), "%s/tmpab12cd", dir);
	snprintf(other, sizeof(other), "%s/my conf$.json", dir);
	snprintf(inputs, sizeof(inputs), "%s/mf-input-paths", dir);
	write_file(cfg, "{\"user_configs\": {}}");
	write_file(other, "{\"a\": 1}");
	write_file(inputs, "1/start/1");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Parses argv into a step and a job-like pair (argv, uploads). */
struct fixture {
	struct mfs_strv argv;
	struct mfs_step st;
	struct mfs_kvlist uploads;
};

static void load(struct fixture *fx, const char *const *argv)
{
	mfs_strv_init(&fx->argv);
	mfs_strv_pushv(&fx->argv, argv);
	mfs_kvlist_init(&fx->uploads);
	assert_true(mfs_step_parse((const char *const *)fx->argv.v, &fx->st));
}

static void unload(struct fixture *fx)
{
	mfs_strv_release(&fx->argv);
	mfs_step_release(&fx->st);
	mfs_kvlist_release(&fx->uploads);
}

static void ships_every_file_option(void **state)
{
	(void)state;
	struct fixture fx;
	struct mfs_err err;
	const char *argv[] = {
		"python3", "-u", "flow.py", "--quiet", "--metadata", "local", "--config-value", "cfg",
		"kv.cfg", "--config", "extra", other, "--local-config-file", cfg, "step", "start",
		"--run-id", "5", "--task-id", "6", "--input-paths-filename", inputs, NULL,
	};
	load(&fx, argv);
	assert_int_equal(mfs_step_ship_files(&fx.argv, &fx.st, "metaflow", &fx.uploads, &err), MFS_OK);
	/* options point at the copies, as seen from the step's directory */
	assert_string_equal(fx.argv.v[11], ".mfs-files/0-my_conf_.json");
	assert_string_equal(fx.argv.v[13], ".mfs-files/1-tmpab12cd");
	assert_string_equal(fx.argv.v[21], ".mfs-files/2-mf-input-paths");
	/* the copies land below the step's directory */
	assert_int_equal(fx.uploads.n, 3);
	assert_string_equal(mfs_kvlist_get(&fx.uploads, "metaflow/.mfs-files/0-my_conf_.json"), other);
	assert_string_equal(mfs_kvlist_get(&fx.uploads, "metaflow/.mfs-files/1-tmpab12cd"), cfg);
	assert_string_equal(mfs_kvlist_get(&fx.uploads, "metaflow/.mfs-files/2-mf-input-paths"), inputs);
	/* everything else as it was; still the same step */
	assert_string_equal(fx.argv.v[8], "kv.cfg");
	assert_string_equal(fx.argv.v[10], "extra");
	assert_int_equal(fx.argv.n, 22);
	mfs_step_release(&fx.st);
	assert_true(mfs_step_parse((const char *const *)fx.argv.v, &fx.st));
	assert_string_equal(fx.st.step, "start");
	unload(&fx);
}

static void equals_form_and_work_dir(void **state)
{
	(void)state;
	struct fixture fx;
	struct mfs_err err;
	char opt[200];
	snprintf(opt, sizeof(opt), "--local-config-file=%s", cfg);
	const char *argv[] = { "python", "flow.py", opt, "step", "a", "--run-id=1", "--task-id=2", NULL };
	load(&fx, argv);
	assert_int_equal(mfs_step_ship_files(&fx.argv, &fx.st, NULL, &fx.uploads, &err), MFS_OK);
	assert_string_equal(fx.argv.v[2], "--local-config-file=.mfs-files/0-tmpab12cd");
	assert_string_equal(mfs_kvlist_get(&fx.uploads, ".mfs-files/0-tmpab12cd"), cfg);
	unload(&fx);
}

static void leaves_values_that_are_not_files(void **state)
{
	(void)state;
	struct fixture fx;
	struct mfs_err err;
	/* --config-value holds content; a converted --config value is content
	 * too; --package-suffixes, --branch (@project) and the step's
	 * --clone-run-id (resume) are names; a file path given to an option
	 * we do not know is left to the command */
	const char *argv[] = {
		"python", "flow.py", "--config-value", "c", "{\"x\": 1}", "--config", "d",
		"@!c!@:{\"y\": 2}", "--package-suffixes", ".py,.json", "--branch", "feature",
		"--production", "--my-deco-opt", cfg, "step", "a", "--run-id", "1", "--task-id", "2",
		"--clone-run-id", "0", "--input-paths", "1/start/1", NULL,
	};
	load(&fx, argv);
	assert_int_equal(mfs_step_ship_files(&fx.argv, &fx.st, "metaflow", &fx.uploads, &err), MFS_OK);
	assert_int_equal(fx.uploads.n, 0);
	for (size_t i = 0; argv[i]; i++)
		assert_string_equal(fx.argv.v[i], argv[i]);
	unload(&fx);
}

/* A bad file is one error naming the option and path; nothing changed. */
static void refuses(const char *path, const char *expect)
{
	struct fixture fx;
	struct mfs_err err = { MFS_OK, "" };
	const char *argv[] = { "python", "flow.py", "--local-config-file", cfg, "--config", "n", path,
			       "step", "a", "--run-id", "1", "--task-id", "2", NULL };
	load(&fx, argv);
	assert_int_equal(mfs_step_ship_files(&fx.argv, &fx.st, NULL, &fx.uploads, &err), MFS_ERR_USAGE);
	assert_non_null(strstr(err.msg, expect));
	assert_non_null(strstr(err.msg, "--config"));
	assert_int_equal(fx.uploads.n, 0);
	assert_string_equal(fx.argv.v[3], cfg);
	assert_string_equal(fx.argv.v[6], path);
	unload(&fx);
}

static void refuses_missing_fifo_dir_and_huge(void **state)
{
	(void)state;
	char path[200];
	snprintf(path, sizeof(path), "%s/missing.json", dir);
	refuses(path, "No such file or directory");
	/* a FIFO is refused without opening it (opening would wait for a writer) */
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	refuses(path, "not a regular file");
	refuses(dir, "not a regular file");
	refuses("", "empty path");
	snprintf(path, sizeof(path), "%s/huge", dir);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, MFS_STEP_FILE_MAX + 1), 0); /* sparse: no disk used */
	close(fd);
	refuses(path, "over the 64 MiB");
	if (geteuid() != 0) { /* root reads anything */
		snprintf(path, sizeof(path), "%s/secret", dir);
		write_file(path, "x");
		assert_int_equal(chmod(path, 0), 0);
		refuses(path, "Permission denied");
	}
}

static void not_a_step_is_left_alone(void **state)
{
	(void)state;
	struct mfs_strv argv = MFS_STRV_INIT;
	struct mfs_step st;
	struct mfs_kvlist uploads = MFS_KVLIST_INIT;
	struct mfs_err err;
	const char *words[] = { "python", "flow.py", "--local-config-file", "/nonexistent", "run", NULL };
	mfs_strv_pushv(&argv, words);
	assert_false(mfs_step_parse((const char *const *)argv.v, &st));
	assert_int_equal(mfs_step_ship_files(&argv, &st, NULL, &uploads, &err), MFS_OK);
	assert_int_equal(uploads.n, 0);
	assert_string_equal(argv.v[3], "/nonexistent");
	mfs_strv_release(&argv);
	mfs_kvlist_release(&uploads);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ships_every_file_option),
		cmocka_unit_test(equals_form_and_work_dir),
		cmocka_unit_test(leaves_values_that_are_not_files),
		cmocka_unit_test(refuses_missing_fifo_dir_and_huge),
		cmocka_unit_test(not_a_step_is_left_alone),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
