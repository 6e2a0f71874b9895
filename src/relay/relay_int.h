/*
 * relay_int.h - what the relay's files share (private to src/relay/).
 *
 * relay.c drives one relay (fetch, then apply or send, else spool);
 * archive.c reads the tarball (include/mfs/relay/archive.h); rows.c picks
 * the service's rows; local_store.c writes into the launcher's .metaflow;
 * service.c posts rows; spool.c keeps an attempt's state and replays it.
 */
#ifndef MFS_RELAY_INT_H
#define MFS_RELAY_INT_H

#include <stdbool.h>
#include <time.h>

#include <jansson.h>

#include "mfs/relay/archive.h"
#include "mfs/relay/relay.h"
#include "mfs/relay/rows.h"
#include "mfs/util/buf.h"
#include "mfs/util/err.h"

/* A spool entry's state file: payload fetched, metadata rows sent, done. */
#define RELAY_STATE_FETCHED "fetched"
#define RELAY_STATE_META_SENT "metadata-sent"
#define RELAY_STATE_DONE "done"

struct mfs_s3;

struct relay {
	const struct mfs_relay_spec *spec;
	struct mfs_relay_report *rep;
	struct mfs_s3 *s3;
	char *local_root;
	struct mfs_buf pathspec;    /* Flow/run/step/task */
	struct mfs_buf entry;       /* spool entry dir */
	struct mfs_relay_tar tar;   /* whose archive; refused: it broke the path rule */
	struct mfs_relay_rows rows; /* service: this attempt's rows */
	int lock_fd;
	long budget_s;              /* spec->timeout_s or its default */
	double deadline;            /* mfs_now_s() at the start + budget_s */
};

/* A flow, run, step or task id usable as one path component. */
bool relay_valid_name(const char *s);

/* local_store.c: an mfs_relay_member_fn, ctx a struct relay. */
enum mfs_code relay_merge_local(void *ctx, const char *rel, const struct mfs_buf *data,
				time_t mtime, bool once, struct mfs_err *err);

/* service.c */
enum mfs_code relay_send_payload(struct relay *r, struct mfs_err *err);

/* spool.c */
enum mfs_code relay_spool_open(struct relay *r, struct mfs_err *err);
enum mfs_code relay_spool_write(struct relay *r, const char *file, const char *text,
				struct mfs_err *err);
void relay_spool_read_state(struct relay *r, struct mfs_buf *state);
enum mfs_code relay_spool_save_spec(struct relay *r, struct mfs_err *err);
bool relay_spool_load_payload(struct relay *r);
enum mfs_code relay_spool_save_payload(struct relay *r, struct mfs_err *err);
void relay_spool_remove(struct relay *r);

#endif
