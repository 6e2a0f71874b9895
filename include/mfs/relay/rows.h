/*
 * rows.h - which rows of a task's archive go to the metadata service.
 *
 * Only this attempt's: sysmeta_* files tagged attempt_id:N (an untagged one
 * counts as attempt 0, as Metaflow writes it then) and N_artifact_* files,
 * so a retried task never resends an earlier attempt's rows.  A row that
 * names another flow, run, step or task would be posted under this task's
 * URL: it refuses the whole archive.  Pure JSON, no network: the relay
 * fuzz harness runs it.
 */
#ifndef MFS_RELAY_ROWS_H
#define MFS_RELAY_ROWS_H

#include <jansson.h>

#include "mfs/relay/archive.h"

struct mfs_relay_rows {
	struct mfs_relay_tar *tar;  /* whose rows; a refusal is recorded there */
	json_t *metadata;           /* arrays the rows are appended to */
	json_t *artifact;
};

/* An mfs_relay_member_fn (archive.h); ctx is a struct mfs_relay_rows. */
enum mfs_code mfs_relay_collect_row(void *ctx, const char *rel, const struct mfs_buf *data,
				    time_t mtime, bool once, struct mfs_err *err);

#endif
