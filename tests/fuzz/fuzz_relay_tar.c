/* fuzz_relay_tar.c - the metadata tarball a sandboxed task leaves behind
 * (src/relay/relay.c), read as for a metadata service: only rows are
 * collected, nothing is written.  The relay's reader is static, so this
 * harness compiles relay.c into itself (libmfs.a's copy is then not linked). */
#include "../../src/relay/relay.c"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_relay_spec spec = {
		.flow = "F", .run_id = "1", .step = "s", .task_id = "2", .attempt = 0,
		.ds_type = "local", .ds_root = "/nonexistent", .metadata = "service",
	};
	struct mfs_relay_report rep;
	struct relay r;
	struct mfs_buf tgz = MFS_BUF_INIT;
	struct mfs_err err = { MFS_OK, "" };
	memset(&rep, 0, sizeof(rep));
	memset(&r, 0, sizeof(r));
	r.spec = &spec;
	r.rep = &rep;
	r.meta_rows = json_array();
	r.artifact_rows = json_array();
	mfs_buf_grow(&tgz, size); /* never NULL, even for no input */
	mfs_buf_add(&tgz, data, size);
	read_tarball(&r, &tgz, true, &err);
	/* The member-name filter on its own, over the raw input as a name. */
	char *name = fuzz_cstr(data, size);
	const char *rel = member_rel(name);
	if (rel && (rel[0] == '/' || strstr(rel, "../") == rel))
		abort();
	free(name);
	json_decref(r.meta_rows);
	json_decref(r.artifact_rows);
	mfs_buf_release(&tgz);
	return 0;
}
