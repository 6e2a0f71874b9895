/* fuzz_step.c - the step command parser (src/core/step.c): argv words are
 * the input split at NUL bytes, as a Metaflow runtime would pass them. */
#include "fuzz.h"
#include "mfs/core/step.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_strv argv = MFS_STRV_INIT;
	struct mfs_step st = MFS_STEP_INIT;
	fuzz_words(data, size, 128, &argv);
	if (argv.v && mfs_step_parse((const char *const *)argv.v, &st)) {
		struct mfs_buf ps = MFS_BUF_INIT;
		struct mfs_err err = { MFS_OK, "" };
		mfs_step_pathspec(&st, &ps);
		mfs_step_set_flow_name(&st, "FuzzFlow");
		mfs_step_set_option(&argv, &st, "--datastore", "s3", &err);
		mfs_step_set_option(&argv, &st, "--run-id", "7", &err);
		mfs_buf_reset(&ps);
		mfs_step_pathspec(&st, &ps);
		mfs_buf_release(&ps);
	}
	mfs_step_release(&st);
	mfs_strv_release(&argv);
	return 0;
}
