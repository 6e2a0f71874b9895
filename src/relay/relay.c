/* relay.c - one relay of a task's metadata from the datastore to the
 * launcher: fetch, then merge locally or send to the service, else keep it
 * in the spool (include/mfs/relay/relay.h; the files it uses: relay_int.h). */
#include "relay_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfs/net/s3.h"
#include "mfs/util/clock.h"
#include "mfs/util/file.h"

#define MAX_TARBALL (256u * 1024 * 1024)

static void warn(struct relay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct relay *r, const char *fmt, ...)
{
	char msg[MFS_ERR_MSG_MAX + 200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(r->rep->warning, sizeof(r->rep->warning), "relay: %s attempt %d: %s",
		 r->pathspec.data, r->spec->attempt, msg);
}

enum mfs_code mfs_relay_timeout_from_env(long *timeout_s, struct mfs_err *err)
{
	const char *v = getenv(MFS_RELAY_TIMEOUT_ENV);
	char *end;

	*timeout_s = 0;
	if (!v || !*v)
		return MFS_OK;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (*end || errno || n < 1 || n > 3600)
		return mfs_fail(err, MFS_ERR_USAGE, "%s '%.40s': expected a whole number of seconds "
				"from 1 to 3600", MFS_RELAY_TIMEOUT_ENV, v);
	*timeout_s = n;
	return MFS_OK;
}

bool relay_valid_name(const char *s)
{
	if (!s || !*s || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	return !strchr(s, '/');
}

/* One object of the datastore, rel below its root. */
static enum mfs_code fetch(struct relay *r, const char *rel, struct mfs_buf *out,
			   struct mfs_err *err)
{
	const struct mfs_relay_spec *sp = r->spec;
	struct mfs_buf path = MFS_BUF_INIT;
	enum mfs_code rc;

	if (!strcmp(sp->ds_type, "local")) {
		mfs_buf_addf(&path, "%s/%s", sp->ds_root, rel);
		rc = mfs_read_regular(path.data, MAX_TARBALL, out, err);
		mfs_buf_release(&path);
		return rc;
	}
	char *bucket = NULL, *prefix = NULL;
	rc = mfs_s3_parse_url(sp->ds_root, &bucket, &prefix, err);
	if (rc == MFS_OK && !r->s3 && (rc = mfs_s3_open(&r->s3, err)) == MFS_OK)
		mfs_s3_set_deadline(r->s3, r->deadline);
	if (rc == MFS_OK) {
		size_t pl = strlen(prefix);
		while (pl && prefix[pl - 1] == '/')
			prefix[--pl] = '\0';
		mfs_buf_addf(&path, "%s%s%s", prefix, pl ? "/" : "", rel);
		rc = mfs_s3_get_buf(r->s3, bucket, path.data, MAX_TARBALL, out, err);
	}
	free(bucket);
	free(prefix);
	mfs_buf_release(&path);
	return rc;
}

static enum mfs_code check_spec(const struct mfs_relay_spec *sp, struct mfs_err *err)
{
	if (!relay_valid_name(sp->flow) || !relay_valid_name(sp->run_id) ||
	    !relay_valid_name(sp->step) || !relay_valid_name(sp->task_id) || sp->attempt < 0)
		return mfs_fail(err, MFS_ERR_USAGE, "relay: flow, run, step and task must be "
				"plain names and attempt >= 0");
	if (!sp->ds_type || (strcmp(sp->ds_type, "s3") && strcmp(sp->ds_type, "local")))
		return mfs_fail(err, MFS_ERR_UNSUPPORTED,
				"relay: datastore '%s' is not supported (s3 or local)",
				sp->ds_type ? sp->ds_type : "");
	if (!sp->ds_root || !*sp->ds_root)
		return mfs_fail(err, MFS_ERR_CONFIG, "relay: no datastore root: pass "
				"--datastore-root or set METAFLOW_DATASTORE_SYSROOT_S3");
	if (!sp->metadata || (strcmp(sp->metadata, "local") && strcmp(sp->metadata, "service")))
		return mfs_fail(err, MFS_ERR_UNSUPPORTED,
				"relay: metadata '%s' is not supported (local or service)",
				sp->metadata ? sp->metadata : "");
	if (!strcmp(sp->metadata, "service") && (!sp->service_url || !*sp->service_url))
		return mfs_fail(err, MFS_ERR_CONFIG,
				"relay: metadata service without a URL: set METAFLOW_SERVICE_URL");
	return MFS_OK;
}

/* Fetches and applies; any failure here is one the spool can retry. */
static enum mfs_code relay_fetch(struct relay *r, bool service, struct mfs_err *err)
{
	const struct mfs_relay_spec *sp = r->spec;
	struct mfs_buf rel = MFS_BUF_INIT, doc = MFS_BUF_INIT;
	json_t *j = NULL;
	enum mfs_code rc;

	mfs_buf_addf(&rel, "%s/%s/%s/%s/%d.local_metadata", sp->flow, sp->run_id, sp->step,
		     sp->task_id, sp->attempt);
	rc = fetch(r, rel.data, &doc, err);
	if (rc != MFS_OK)
		goto out;
	r->rep->found = true;
	j = json_loadb(doc.data, doc.len, JSON_DECODE_ANY, NULL);
	const char *key = json_string_value(j);
	if (!key || !relay_valid_name(key) || strlen(key) < 3) {
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "%s does not hold a datastore key", rel.data);
		goto out;
	}
	mfs_buf_reset(&rel);
	mfs_buf_addf(&rel, "%s/data/%.2s/%s", sp->flow, key, key);
	rc = fetch(r, rel.data, &doc, err);
	if (rc == MFS_OK && doc.len > MAX_TARBALL)
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "metadata tarball larger than %u bytes",
			      MAX_TARBALL);
	if (rc == MFS_OK && service)
		rc = mfs_relay_read_tarball(&r->tar, &doc, mfs_relay_collect_row, &r->rows, err);
	else if (rc == MFS_OK)
		rc = mfs_relay_read_tarball(&r->tar, &doc, relay_merge_local, r, err);
out:
	json_decref(j);
	mfs_buf_release(&rel);
	mfs_buf_release(&doc);
	return rc;
}

/* A relay that failed keeps what is needed to finish later (`relay
 * replay`); only a failure to keep it is fatal. */
static enum mfs_code keep_for_later(struct relay *r, bool service, const struct mfs_err *why,
				    struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	if (!service) {
		rc = mfs_make_dirs(r->entry.data, err);
		if (rc == MFS_OK)
			rc = relay_spool_write(r, "state", "pending\n", err);
	}
	if (rc == MFS_OK)
		rc = relay_spool_save_spec(r, err);
	if (rc != MFS_OK) {
		mfs_err_prefix(err, "relay of %s attempt %d failed (%s) and could not be kept",
			       r->pathspec.data, r->spec->attempt, why->msg);
		return rc;
	}
	r->rep->spooled = true;
	/* Which bound cut it, and how to raise it when the peer is merely slow. */
	if (why->code == MFS_ERR_TIMEOUT)
		warn(r, "not relayed within %ld s (%s), kept for later: run `mfsandbox relay replay "
		     "%s/%d` (spool %s): %s", r->budget_s, MFS_RELAY_TIMEOUT_ENV, r->pathspec.data,
		     r->spec->attempt, r->entry.data, why->msg);
	else
		warn(r, "not relayed, kept for later: run `mfsandbox relay replay %s/%d` (spool %s): %s",
		     r->pathspec.data, r->spec->attempt, r->entry.data, why->msg);
	return MFS_OK;
}

static void relay_init(struct relay *r, const struct mfs_relay_spec *spec,
		       struct mfs_relay_report *rep)
{
	*r = (struct relay){ .spec = spec, .rep = rep, .lock_fd = -1 };
	r->tar.ids = (struct mfs_task_ids){ spec->flow, spec->run_id, spec->step, spec->task_id };
	r->tar.attempt = spec->attempt;
	r->rows = (struct mfs_relay_rows){ &r->tar, json_array(), json_array() };
	mfs_buf_addf(&r->pathspec, "%s/%s/%s/%s", spec->flow, spec->run_id, spec->step,
		     spec->task_id);
	char *spool = spec->spool_dir ? mfs_xstrdup(spec->spool_dir) : mfs_relay_default_spool();
	mfs_buf_addf(&r->entry, "%s/%s/%d", spool, r->pathspec.data, spec->attempt);
	free(spool);
	r->local_root = spec->local_root ? mfs_xstrdup(spec->local_root) : mfs_relay_local_root();
	r->budget_s = spec->timeout_s > 0 ? spec->timeout_s : MFS_RELAY_TIMEOUT_S;
	r->deadline = mfs_now_s() + (double)r->budget_s;
}

static void relay_release(struct relay *r)
{
	if (r->s3) {
		r->rep->s3_requests = mfs_s3_request_count(r->s3);
		mfs_s3_close(r->s3);
	}
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	json_decref(r->rows.metadata);
	json_decref(r->rows.artifact);
	free(r->local_root);
	mfs_buf_release(&r->pathspec);
	mfs_buf_release(&r->entry);
}

/* Service relays resume from their spool entry: *done when an earlier relay
 * finished, *loaded when a fetched payload waits to be sent. */
static enum mfs_code resume(struct relay *r, bool *done, bool *loaded, struct mfs_err *err)
{
	struct mfs_buf state = MFS_BUF_INIT;
	enum mfs_code rc = relay_spool_open(r, err);

	*done = *loaded = false;
	if (rc == MFS_OK) {
		relay_spool_read_state(r, &state);
		if (state.data && !strcmp(state.data, RELAY_STATE_DONE))
			*done = true;
		else if (state.len && relay_spool_load_payload(r))
			*loaded = true;
	}
	if (*done || *loaded)
		r->rep->found = true;
	r->rep->already_done = *done;
	mfs_buf_release(&state);
	return rc;
}

/* After a fetch that failed: a refused archive or a task without metadata
 * ends the relay (*over); anything else is spooled by the caller. */
static enum mfs_code fetch_failed(struct relay *r, bool service, enum mfs_code rc,
				  const struct mfs_err *why, bool *over, struct mfs_err *err)
{
	*over = true;
	if (r->tar.refused) {
		*err = *why;
		if (service)
			relay_spool_remove(r);
		return rc;
	}
	if (rc == MFS_ERR_NOTFOUND && !r->rep->found) {
		/* The task never reached task_finished (bootstrap failure, OOM,
		 * kill): there is nothing to relay, and the step's own exit
		 * code must stay what the caller reports. */
		warn(r, "the task wrote no metadata (it died before finishing); nothing to relay");
		if (service)
			relay_spool_remove(r);
		return MFS_OK;
	}
	*over = false;
	return rc;
}

enum mfs_code mfs_relay_run(const struct mfs_relay_spec *spec, struct mfs_relay_report *rep,
			    struct mfs_err *err)
{
	struct relay r;
	struct mfs_err why = { 0 };
	bool done = false, loaded = false, over;

	memset(rep, 0, sizeof(*rep));
	enum mfs_code rc = check_spec(spec, err);
	if (rc != MFS_OK)
		return rc;
	bool service = !strcmp(spec->metadata, "service");
	relay_init(&r, spec, rep);
	if (service && ((rc = resume(&r, &done, &loaded, err)) != MFS_OK || done))
		goto out;
	if (!loaded) {
		rc = relay_fetch(&r, service, &why);
		if (rc != MFS_OK) {
			rc = fetch_failed(&r, service, rc, &why, &over, err);
			if (!over)
				rc = keep_for_later(&r, service, &why, err);
			goto out;
		}
		if (!service) {
			/* A previous failure of this attempt may be spooled: it is done now. */
			if (access(r.entry.data, F_OK) == 0)
				relay_spool_remove(&r);
			goto out;
		}
		rc = relay_spool_save_payload(&r, err);
		if (rc != MFS_OK)
			goto out;
	}
	rc = relay_send_payload(&r, &why);
	if (rc != MFS_OK)
		rc = keep_for_later(&r, service, &why, err);
out:
	relay_release(&r);
	return rc;
}
