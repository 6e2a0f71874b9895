/* fuzz_relay_tar.c - the metadata tarball a sandboxed task leaves behind,
 * read as for a metadata service: the archive reader (src/relay/archive.c)
 * hands each accepted member to the row picker (src/relay/rows.c), so only
 * rows are collected and nothing is written.  Linked from libmfs.a like any
 * caller.  The path rule (mfs_relay_member, contain.h) is also fed the raw
 * input as a member name. */
#include <string.h>
#include <sys/stat.h>

#include "mfs/relay/rows.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_relay_tar tar = { .ids = { "F", "1", "s", "2" }, .attempt = 0 };
	struct mfs_relay_rows rows = { &tar, json_array(), json_array() };
	struct mfs_buf tgz = MFS_BUF_INIT;
	struct mfs_err err = { MFS_OK, "" };

	mfs_buf_grow(&tgz, size); /* never NULL, even for no input */
	mfs_buf_add(&tgz, data, size);
	mfs_relay_read_tarball(&tar, &tgz, mfs_relay_collect_row, &rows, &err);
	/* The path rule on its own: whatever it lets through stays relative
	 * and never climbs. */
	char *name = fuzz_cstr(data, size);
	const char *rel = NULL, *why = NULL;
	enum mfs_member_verdict v = mfs_relay_member(&tar.ids, name, S_IFREG, false, &rel, &why);
	if ((v == MFS_MEMBER_TASK || v == MFS_MEMBER_ONCE) &&
	    (!rel || rel[0] == '/' || !strncmp(rel, "../", 3) || strstr(rel, "/../")))
		abort();
	free(name);
	json_decref(rows.metadata);
	json_decref(rows.artifact);
	mfs_buf_release(&tgz);
	return 0;
}
