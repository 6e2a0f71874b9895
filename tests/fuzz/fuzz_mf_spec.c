/* fuzz_mf_spec.c - the --metaflow-spec JSON (src/core/metaflow_task.c):
 * parsed, and when it passes, turned into the in-sandbox script. */
#include "fuzz.h"
#include "mfs/core/metaflow_task.h"
#include "mfs/core/step.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const argv[] = {
		"python3", "flow.py", "--datastore", "local", "step", "start",
		"--run-id", "1", "--task-id", "2", "--input-paths", "1/_parameters/0", NULL,
	};
	struct mfs_mf_spec spec;
	struct mfs_err err = { MFS_OK, "" };
	mfs_mf_spec_init(&spec);
	if (mfs_mf_spec_parse((const char *)data, size, &spec, &err) == MFS_OK) {
		struct mfs_step st = MFS_STEP_INIT;
		struct mfs_kvlist env = MFS_KVLIST_INIT;
		struct mfs_buf script = MFS_BUF_INIT;
		if (mfs_step_parse(argv, &st))
			mfs_mf_build_script(&spec, &st, argv, &env, &script, &err);
		mfs_buf_release(&script);
		mfs_kvlist_release(&env);
		mfs_step_release(&st);
	}
	mfs_mf_spec_release(&spec);
	return 0;
}
