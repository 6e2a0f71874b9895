/* fuzz_relay_tar.c - the metadata tarball a sandboxed task leaves behind
 * (src/relay/relay.c), read as for a metadata service: only rows are
 * collected, nothing is written.  The relay's reader (read_tarball) is
 * static, so this harness compiles relay.c into itself (libmfs.a's copy is
 * then not linked); the path rule (mfs_relay_member, contain.h) is public
 * and is also fed the raw input as a member name. */
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
	mfs_buf_adds(&r.pathspec, "F/1/s/2");
	mfs_buf_grow(&tgz, size); /* never NULL, even for no input */
	mfs_buf_add(&tgz, data, size);
	read_tarball(&r, &tgz, true, &err);
	/* The path rule on its own: whatever it lets through stays relative
	 * and never climbs. */
	char *name = fuzz_cstr(data, size);
	const struct mfs_task_ids ids = { "F", "1", "s", "2" };
	const char *rel = NULL, *why = NULL;
	enum mfs_member_verdict v = mfs_relay_member(&ids, name, AE_IFREG, false, &rel, &why);
	if ((v == MFS_MEMBER_TASK || v == MFS_MEMBER_ONCE) &&
	    (!rel || rel[0] == '/' || !strncmp(rel, "../", 3) || strstr(rel, "/../")))
		abort();
	free(name);
	json_decref(r.meta_rows);
	json_decref(r.artifact_rows);
	mfs_buf_release(&tgz);
	mfs_buf_release(&r.pathspec);
	return 0;
}
