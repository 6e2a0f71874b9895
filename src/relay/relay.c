/* relay.c - metadata relay from the datastore to the launcher (include/mfs/relay/relay.h). */
#include "mfs/relay/relay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "mfs/relay/contain.h"
#include "mfs/util/buf.h"
#include "mfs/util/file.h"
#include "mfs/util/lazy.h"
#include "mfs/util/redact.h"
#include "mfs/net/http.h"
#include "mfs/net/s3.h"

#define STATE_FETCHED "fetched"
#define STATE_META_SENT "metadata-sent"
#define STATE_DONE "done"
#define MAX_TARBALL (256u * 1024 * 1024)

/* ---- small file helpers ---- */

/* mkdir -p that refuses to walk through symlinks, so nothing written below
 * can land outside the tree the caller meant. */
static enum mfs_code mkdirs(const char *path, struct mfs_err *err)
{
	char *p = mfs_xstrdup(path);
	enum mfs_code rc = MFS_OK;

	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = '\0';
		struct stat st;
		if (lstat(p, &st) == 0) {
			if (!S_ISDIR(st.st_mode)) {
				rc = mfs_fail(err, MFS_ERR_IO, "%s exists and is not a directory", p);
				break;
			}
		} else if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			rc = mfs_fail(err, MFS_ERR_IO, "cannot create %s: %s", p, strerror(errno));
			break;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return rc;
}

/* Writes data to path atomically (temp + rename), mode 0600. */
static enum mfs_code write_file(const char *path, const void *data, size_t len, time_t mtime,
				struct mfs_err *err)
{
	struct mfs_buf tmp = MFS_BUF_INIT;
	enum mfs_code rc = MFS_OK;
	int fd;

	mfs_buf_addf(&tmp, "%s.tmp-%ld", path, (long)getpid());
	fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", tmp.data, strerror(errno));
		goto out;
	}
	const char *p = data;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, p + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", tmp.data, strerror(errno));
			close(fd);
			unlink(tmp.data);
			goto out;
		}
		off += (size_t)n;
	}
	if (mtime) {
		struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
		futimens(fd, ts);
	}
	if (close(fd) != 0 || rename(tmp.data, path) != 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", path, strerror(errno));
		unlink(tmp.data);
	}
out:
	mfs_buf_release(&tmp);
	return rc;
}

char *mfs_relay_default_spool(void)
{
	const char *v = getenv("MFSANDBOX_RELAY_SPOOL");
	struct mfs_buf b = MFS_BUF_INIT;

	if (v && *v)
		return mfs_xstrdup(v);
	v = getenv("XDG_STATE_HOME");
	if (v && *v == '/')
		mfs_buf_addf(&b, "%s/mfsandbox/relay", v);
	else
		mfs_buf_addf(&b, "%s/.local/state/mfsandbox/relay",
			     getenv("HOME") && *getenv("HOME") ? getenv("HOME") : "/tmp");
	return mfs_buf_detach(&b, NULL);
}

char *mfs_relay_local_root(void)
{
	const char *sys = getenv("METAFLOW_DATASTORE_SYSROOT_LOCAL");
	struct mfs_buf b = MFS_BUF_INIT;
	char cwd[4096];

	if (sys && *sys) {
		mfs_buf_addf(&b, "%s/.metaflow", sys);
		return mfs_buf_detach(&b, NULL);
	}
	if (!getcwd(cwd, sizeof(cwd)))
		return mfs_xstrdup(".metaflow");
	/* Metaflow uses the nearest .metaflow above the working directory. */
	for (size_t len = strlen(cwd); len > 0;) {
		struct stat st;
		mfs_buf_reset(&b);
		mfs_buf_add(&b, cwd, len);
		mfs_buf_adds(&b, len == 1 ? ".metaflow" : "/.metaflow");
		if (stat(b.data, &st) == 0 && S_ISDIR(st.st_mode))
			return mfs_buf_detach(&b, NULL);
		while (len > 1 && cwd[len - 1] != '/')
			len--;
		if (len > 1)
			len--; /* drop the slash */
		else if (len == 1 && cwd[0] == '/')
			break;
	}
	mfs_buf_reset(&b);
	mfs_buf_addf(&b, "%s/.metaflow", cwd);
	return mfs_buf_detach(&b, NULL);
}

/* ---- the relay state ---- */

struct relay {
	const struct mfs_relay_spec *spec;
	struct mfs_relay_report *rep;
	struct mfs_s3 *s3;
	char *local_root;
	struct mfs_buf pathspec;  /* Flow/run/step/task */
	struct mfs_buf entry;     /* spool entry dir */
	json_t *meta_rows;        /* service: this attempt's sysmeta dicts */
	json_t *artifact_rows;
	int lock_fd;
	bool refused;             /* the archive broke the path rule (contain.h) */
};

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

static bool valid_name(const char *s)
{
	if (!s || !*s || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	return !strchr(s, '/');
}

static enum mfs_code fetch(struct relay *r, const char *rel, struct mfs_buf *out,
			   struct mfs_err *err)
{
	const struct mfs_relay_spec *sp = r->spec;
	struct mfs_buf path = MFS_BUF_INIT;
	enum mfs_code rc;

	if (!strcmp(sp->ds_type, "local")) {
		mfs_buf_addf(&path, "%s/%s", sp->ds_root, rel);
		if (mfs_read_file(path.data, out))
			rc = MFS_OK;
		else
			rc = mfs_fail(err, errno == ENOENT ? MFS_ERR_NOTFOUND : MFS_ERR_IO,
				      "cannot read %s: %s", path.data, strerror(errno));
		mfs_buf_release(&path);
		return rc;
	}
	char *bucket = NULL, *prefix = NULL;
	rc = mfs_s3_parse_url(sp->ds_root, &bucket, &prefix, err);
	if (rc == MFS_OK && !r->s3)
		rc = mfs_s3_open(&r->s3, err);
	if (rc == MFS_OK) {
		size_t pl = strlen(prefix);
		while (pl && prefix[pl - 1] == '/')
			prefix[--pl] = '\0';
		mfs_buf_addf(&path, "%s%s%s", prefix, pl ? "/" : "", rel);
		rc = mfs_s3_get_buf(r->s3, bucket, path.data, out, err);
	}
	free(bucket);
	free(prefix);
	mfs_buf_release(&path);
	return rc;
}

/* ---- reading the tarball safely ---- */

/* The archive was written by the step's code: bounded before it is unpacked. */
#define MAX_MEMBERS 50000
#define MAX_UNPACKED (64u * 1024 * 1024)

/* Refuses the whole archive: the step tried to write outside its task.  Not
 * spooled, since a replay would fetch the same archive. */
static enum mfs_code refuse(struct relay *r, const char *name, const char *why,
			    struct mfs_err *err)
{
	struct mfs_buf shown = MFS_BUF_INIT;
	mfs_escape_text(&shown, name ? name : "", 160);
	r->refused = true;
	enum mfs_code rc = mfs_fail(err, MFS_ERR_PROTOCOL,
				    "relay: %s attempt %d: refused the task's metadata archive, "
				    "nothing of it written: member '%s' %s",
				    r->pathspec.data, r->spec->attempt, shown.data, why);
	mfs_buf_release(&shown);
	return rc;
}

static enum mfs_member_verdict verdict(struct relay *r, struct archive_entry *e,
				       const char **rel, const char **why)
{
	const struct mfs_task_ids ids = { r->spec->flow, r->spec->run_id, r->spec->step,
					  r->spec->task_id };
	bool link = archive_entry_hardlink(e) || archive_entry_symlink(e);
	return mfs_relay_member(&ids, archive_entry_pathname(e), archive_entry_filetype(e), link,
				rel, why);
}

static enum mfs_code tar_open(struct archive **a, const struct mfs_buf *tgz, struct mfs_err *err)
{
	*a = archive_read_new();
	archive_read_support_filter_all(*a);
	archive_read_support_format_all(*a);
	if (archive_read_open_memory(*a, tgz->data, tgz->len) != ARCHIVE_OK)
		return mfs_fail(err, MFS_ERR_PROTOCOL, "metadata tarball unreadable: %s",
				archive_error_string(*a));
	return MFS_OK;
}

/* Reads the current member's data into out (NULL: only counts it), keeping
 * *total within MAX_UNPACKED. */
static enum mfs_code tar_data(struct relay *r, struct archive *a, struct archive_entry *e,
			      struct mfs_buf *out, size_t *total, struct mfs_err *err)
{
	char chunk[16384];
	la_ssize_t n;

	while ((n = archive_read_data(a, chunk, sizeof(chunk))) > 0) {
		*total += (size_t)n;
		if (*total > MAX_UNPACKED)
			return refuse(r, archive_entry_pathname(e),
				      "takes the archive past 64 MiB unpacked", err);
		if (out)
			mfs_buf_add(out, chunk, (size_t)n);
	}
	if (n < 0)
		return mfs_fail(err, MFS_ERR_PROTOCOL, "metadata tarball: %s",
				archive_error_string(a));
	return MFS_OK;
}

/* First pass: every member must pass the path rule, and the archive must
 * stay within its bounds, before anything is written or sent. */
static enum mfs_code check_tarball(struct relay *r, const struct mfs_buf *tgz,
				   struct mfs_err *err)
{
	struct archive *a;
	struct archive_entry *e;
	size_t members = 0, total = 0;
	const char *rel, *why;
	int ar = ARCHIVE_EOF;

	enum mfs_code rc = tar_open(&a, tgz, err);
	while (rc == MFS_OK && (ar = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (++members > MAX_MEMBERS)
			rc = refuse(r, archive_entry_pathname(e), "is one more than the "
				    "50000 members a task's metadata may have", err);
		else if (verdict(r, e, &rel, &why) == MFS_MEMBER_REFUSE)
			rc = refuse(r, archive_entry_pathname(e), why, err);
		else
			rc = tar_data(r, a, e, NULL, &total, err);
	}
	if (rc == MFS_OK && ar != ARCHIVE_EOF)
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "metadata tarball: %s", archive_error_string(a));
	archive_read_free(a);
	return rc;
}

static enum mfs_code merge_local(struct relay *r, const char *rel, const struct mfs_buf *data,
				 time_t mtime, bool once, struct mfs_err *err)
{
	struct mfs_buf dst = MFS_BUF_INIT;
	struct stat st;
	enum mfs_code rc = MFS_OK;
	time_t now = time(NULL);

	/* A future mtime would make the step's copy win every later merge. */
	if (mtime > now)
		mtime = now;
	mfs_buf_addf(&dst, "%s/%s", r->local_root, rel);
	/* Newer files win, like Metaflow's copy_tree(update=True); flow, run and
	 * step records are the launcher's once it has them. */
	if (lstat(dst.data, &st) == 0) {
		if (once || !S_ISREG(st.st_mode) || st.st_mtime >= mtime)
			goto out;
	}
	char *slash = strrchr(dst.data, '/');
	*slash = '\0';
	rc = mkdirs(dst.data, err);
	*slash = '/';
	if (rc == MFS_OK)
		rc = write_file(dst.data, data->data ? data->data : "", data->len, mtime, err);
	if (rc == MFS_OK)
		r->rep->files_merged++;
out:
	mfs_buf_release(&dst);
	return rc;
}

static bool has_attempt_tag(json_t *row, int attempt, bool *tagged)
{
	char want[32];
	json_t *tags = json_object_get(row, "tags"), *t;
	size_t i;

	snprintf(want, sizeof(want), "attempt_id:%d", attempt);
	*tagged = false;
	json_array_foreach(tags, i, t) {
		const char *s = json_string_value(t);
		if (s && !strncmp(s, "attempt_id:", 11)) {
			*tagged = true;
			if (!strcmp(s, want))
				return true;
		}
	}
	return false;
}

/* A row naming another task would be posted under this task's URL; the
 * service must never see it. */
static bool row_is_this_task(const struct mfs_relay_spec *sp, json_t *row)
{
	const char *keys[] = { "flow_id", "run_number", "step_name", "task_id" };
	const char *want[] = { sp->flow, sp->run_id, sp->step, sp->task_id };
	for (int i = 0; i < 4; i++) {
		json_t *v = json_object_get(row, keys[i]);
		char num[32];
		if (!v || json_is_null(v))
			continue;
		if (json_is_integer(v))
			snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		const char *s = json_is_integer(v) ? num : json_string_value(v);
		if (!s || strcmp(s, want[i]) != 0)
			return false;
	}
	return true;
}

/* Keeps the rows of this attempt only: a retried task must not resend
 * earlier attempts.  rel is already known to be this task's (contain.h). */
static enum mfs_code collect_row(struct relay *r, const char *rel, const struct mfs_buf *data,
				 struct mfs_err *err)
{
	const struct mfs_relay_spec *sp = r->spec;
	char prefix[32];
	const char *file = strrchr(rel, '/') + 1;

	snprintf(prefix, sizeof(prefix), "%d_artifact_", sp->attempt);
	bool sysmeta = !strncmp(file, "sysmeta_", 8);
	bool artifact = !strncmp(file, prefix, strlen(prefix));
	if (!sysmeta && !artifact)
		return MFS_OK;
	json_t *row = json_loadb(data->data ? data->data : "", data->len, 0, NULL);
	bool tagged;
	if (!json_is_object(row) ||
	    (sysmeta && !has_attempt_tag(row, sp->attempt, &tagged) && (tagged || sp->attempt))) {
		json_decref(row);
		return MFS_OK;
	}
	if (!row_is_this_task(sp, row)) {
		json_decref(row);
		return refuse(r, rel, "holds a row of another task", err);
	}
	json_array_append_new(sysmeta ? r->meta_rows : r->artifact_rows, row);
	return MFS_OK;
}

/* Second pass, on an archive check_tarball accepted. */
static enum mfs_code apply_tarball(struct relay *r, const struct mfs_buf *tgz, bool service,
				   struct mfs_err *err)
{
	struct archive *a;
	struct archive_entry *e;
	struct mfs_buf data = MFS_BUF_INIT;
	size_t total = 0;
	const char *rel, *why;
	int ar = ARCHIVE_EOF;

	enum mfs_code rc = tar_open(&a, tgz, err);
	while (rc == MFS_OK && (ar = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		enum mfs_member_verdict v = verdict(r, e, &rel, &why);
		if (v != MFS_MEMBER_TASK && v != MFS_MEMBER_ONCE)
			continue;
		mfs_buf_reset(&data);
		rc = tar_data(r, a, e, &data, &total, err);
		if (rc == MFS_OK && service)
			rc = collect_row(r, rel, &data, err);
		else if (rc == MFS_OK)
			rc = merge_local(r, rel, &data, archive_entry_mtime(e),
					 v == MFS_MEMBER_ONCE, err);
	}
	if (rc == MFS_OK && ar != ARCHIVE_EOF)
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "metadata tarball: %s", archive_error_string(a));
	archive_read_free(a);
	mfs_buf_release(&data);
	return rc;
}

static enum mfs_code read_tarball(struct relay *r, const struct mfs_buf *tgz, bool service,
				  struct mfs_err *err)
{
	enum mfs_code rc = mfs_need_archive(err);
	if (rc == MFS_OK)
		rc = check_tarball(r, tgz, err);
	return rc == MFS_OK ? apply_tarball(r, tgz, service, err) : rc;
}

/* ---- spool ---- */

static void spool_path(const struct relay *r, const char *file, struct mfs_buf *out)
{
	mfs_buf_reset(out);
	mfs_buf_addf(out, "%s/%s", r->entry.data, file);
}

static enum mfs_code spool_write(struct relay *r, const char *file, const char *text,
				 struct mfs_err *err)
{
	struct mfs_buf p = MFS_BUF_INIT;
	spool_path(r, file, &p);
	enum mfs_code rc = write_file(p.data, text, strlen(text), 0, err);
	mfs_buf_release(&p);
	return rc;
}

static void spool_read_state(struct relay *r, struct mfs_buf *state)
{
	struct mfs_buf p = MFS_BUF_INIT;
	spool_path(r, "state", &p);
	if (!mfs_read_file(p.data, state))
		mfs_buf_reset(state);
	while (state->len && (state->data[state->len - 1] == '\n'))
		state->data[--state->len] = '\0';
	mfs_buf_release(&p);
}

static enum mfs_code spool_save_spec(struct relay *r, struct mfs_err *err)
{
	const struct mfs_relay_spec *sp = r->spec;
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "flow", sp->flow,
			      "run_id", sp->run_id, "step", sp->step, "task_id", sp->task_id,
			      "attempt", sp->attempt, "ds_type", sp->ds_type, "ds_root", sp->ds_root,
			      "metadata", sp->metadata);
	if (sp->service_url)
		json_object_set_new(j, "service_url", json_string(sp->service_url));
	if (r->local_root)
		json_object_set_new(j, "local_root", json_string(r->local_root));
	char *text = json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(1));
	enum mfs_code rc = spool_write(r, "spec.json", text, err);
	free(text);
	json_decref(j);
	return rc;
}

static enum mfs_code spool_open(struct relay *r, struct mfs_err *err)
{
	struct mfs_buf p = MFS_BUF_INIT;
	enum mfs_code rc = mkdirs(r->entry.data, err);

	if (rc != MFS_OK)
		return rc;
	spool_path(r, "lock", &p);
	r->lock_fd = open(p.data, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	/* Two relays of one attempt (a re-run finish hook, a manual replay)
	 * take turns; the second then sees "done". */
	if (r->lock_fd < 0 || flock(r->lock_fd, LOCK_EX) != 0)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot lock %s: %s", p.data, strerror(errno));
	mfs_buf_release(&p);
	return rc;
}

static void spool_remove(struct relay *r)
{
	static const char *const files[] = { "spec.json", "payload.json", "state", "lock" };
	struct mfs_buf p = MFS_BUF_INIT;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		spool_path(r, files[i], &p);
		unlink(p.data);
	}
	rmdir(r->entry.data);
	mfs_buf_release(&p);
}

/* ---- service replay ---- */

static void add_service_headers(struct mfs_strv *h)
{
	const char *v = getenv("METAFLOW_SERVICE_HEADERS");
	json_t *j = v && *v ? json_loads(v, 0, NULL) : NULL;
	const char *k;
	json_t *val;

	mfs_strv_push(h, "Content-Type: application/json");
	json_object_foreach(j, k, val) {
		if (json_is_string(val))
			mfs_strv_pushf(h, "%s: %s", k, json_string_value(val));
	}
	json_decref(j);
}

static enum mfs_code post_rows(struct relay *r, const char *what, json_t *rows,
			       struct mfs_err *err)
{
	const struct mfs_relay_spec *sp = r->spec;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_strv headers = MFS_STRV_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc;
	size_t ul = strlen(sp->service_url);
	const char *parts[] = { sp->flow, sp->run_id, sp->step, sp->task_id };
	const char *names[] = { "/flows/", "/runs/", "/steps/", "/tasks/" };

	while (ul && sp->service_url[ul - 1] == '/')
		ul--;
	mfs_buf_add(&url, sp->service_url, ul);
	for (int i = 0; i < 4; i++) {
		mfs_buf_adds(&url, names[i]);
		mfs_http_urlencode(&url, parts[i], false);
	}
	mfs_buf_addf(&url, "/%s", what);
	add_service_headers(&headers);
	char *body = json_dumps(rows, JSON_COMPACT);
	/* No automatic retry: a POST whose answer was lost would add rows twice.
	 * A failure stays spooled instead. */
	struct mfs_http_req req = { .method = "POST", .url = url.data, .headers = &headers,
				    .body = body, .body_len = strlen(body),
				    .timeout_ms = 60000, .cancellable = true };
	mfs_http_resp_init(&resp);
	rc = mfs_http_do(&req, &resp, err);
	if (rc == MFS_OK && (resp.status < 200 || resp.status >= 300))
		rc = mfs_http_status_fail(err, &req, &resp);
	mfs_http_resp_release(&resp);
	free(body);
	mfs_strv_release(&headers);
	mfs_buf_release(&url);
	return rc;
}

static enum mfs_code send_payload(struct relay *r, struct mfs_err *err)
{
	struct mfs_buf state = MFS_BUF_INIT;
	enum mfs_code rc = MFS_OK;

	spool_read_state(r, &state);
	if (strcmp(state.data ? state.data : "", STATE_META_SENT) != 0 &&
	    json_array_size(r->meta_rows)) {
		rc = post_rows(r, "metadata", r->meta_rows, err);
		if (rc != MFS_OK)
			goto out;
		r->rep->metadata_rows = (unsigned)json_array_size(r->meta_rows);
		rc = spool_write(r, "state", STATE_META_SENT "\n", err);
		if (rc != MFS_OK)
			goto out;
	}
	if (json_array_size(r->artifact_rows)) {
		rc = post_rows(r, "artifact", r->artifact_rows, err);
		if (rc != MFS_OK)
			goto out;
		r->rep->artifact_rows = (unsigned)json_array_size(r->artifact_rows);
	}
	rc = spool_write(r, "state", STATE_DONE "\n", err);
out:
	mfs_buf_release(&state);
	return rc;
}

static bool load_payload(struct relay *r)
{
	struct mfs_buf p = MFS_BUF_INIT, text = MFS_BUF_INIT;
	bool ok = false;

	spool_path(r, "payload.json", &p);
	if (mfs_read_file(p.data, &text)) {
		json_t *j = json_loads(text.data, 0, NULL);
		json_t *m = json_object_get(j, "metadata"), *a = json_object_get(j, "artifact");
		if (json_is_array(m) && json_is_array(a)) {
			json_array_extend(r->meta_rows, m);
			json_array_extend(r->artifact_rows, a);
			ok = true;
		}
		json_decref(j);
	}
	mfs_buf_release(&p);
	mfs_buf_release(&text);
	return ok;
}

static enum mfs_code save_payload(struct relay *r, struct mfs_err *err)
{
	json_t *j = json_pack("{s:O, s:O}", "metadata", r->meta_rows, "artifact", r->artifact_rows);
	char *text = json_dumps(j, JSON_COMPACT);
	enum mfs_code rc = spool_write(r, "payload.json", text, err);
	if (rc == MFS_OK)
		rc = spool_write(r, "state", STATE_FETCHED "\n", err);
	free(text);
	json_decref(j);
	return rc;
}

/* ---- the relay ---- */

static enum mfs_code check_spec(const struct mfs_relay_spec *sp, struct mfs_err *err)
{
	if (!valid_name(sp->flow) || !valid_name(sp->run_id) || !valid_name(sp->step) ||
	    !valid_name(sp->task_id) || sp->attempt < 0)
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
	if (!key || !valid_name(key) || strlen(key) < 3) {
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "%s does not hold a datastore key", rel.data);
		goto out;
	}
	mfs_buf_reset(&rel);
	mfs_buf_addf(&rel, "%s/data/%.2s/%s", sp->flow, key, key);
	rc = fetch(r, rel.data, &doc, err);
	if (rc == MFS_OK && doc.len > MAX_TARBALL)
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "metadata tarball larger than %u bytes",
			      MAX_TARBALL);
	if (rc == MFS_OK)
		rc = read_tarball(r, &doc, service, err);
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
		rc = mkdirs(r->entry.data, err);
		if (rc == MFS_OK)
			rc = spool_write(r, "state", "pending\n", err);
	}
	if (rc == MFS_OK)
		rc = spool_save_spec(r, err);
	if (rc != MFS_OK) {
		mfs_err_prefix(err, "relay of %s attempt %d failed (%s) and could not be kept",
			       r->pathspec.data, r->spec->attempt, why->msg);
		return rc;
	}
	r->rep->spooled = true;
	warn(r, "not relayed, kept for later: run `mfsandbox relay replay %s/%d` (spool %s): %s",
	     r->pathspec.data, r->spec->attempt, r->entry.data, why->msg);
	return MFS_OK;
}

static void relay_release(struct relay *r)
{
	if (r->s3) {
		r->rep->s3_requests = mfs_s3_request_count(r->s3);
		mfs_s3_close(r->s3);
	}
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	json_decref(r->meta_rows);
	json_decref(r->artifact_rows);
	free(r->local_root);
	mfs_buf_release(&r->pathspec);
	mfs_buf_release(&r->entry);
}

enum mfs_code mfs_relay_run(const struct mfs_relay_spec *spec, struct mfs_relay_report *rep,
			    struct mfs_err *err)
{
	struct relay r = { .spec = spec, .rep = rep, .lock_fd = -1 };
	struct mfs_buf state = MFS_BUF_INIT;
	struct mfs_err why = { 0 };
	char *spool = NULL;
	enum mfs_code rc;
	bool service;

	memset(rep, 0, sizeof(*rep));
	rc = check_spec(spec, err);
	if (rc != MFS_OK)
		return rc;
	service = !strcmp(spec->metadata, "service");
	mfs_buf_addf(&r.pathspec, "%s/%s/%s/%s", spec->flow, spec->run_id, spec->step,
		     spec->task_id);
	spool = spec->spool_dir ? mfs_xstrdup(spec->spool_dir) : mfs_relay_default_spool();
	mfs_buf_addf(&r.entry, "%s/%s/%d", spool, r.pathspec.data, spec->attempt);
	r.local_root = spec->local_root ? mfs_xstrdup(spec->local_root) : mfs_relay_local_root();
	r.meta_rows = json_array();
	r.artifact_rows = json_array();

	if (service) {
		rc = spool_open(&r, err);
		if (rc != MFS_OK)
			goto out;
		spool_read_state(&r, &state);
		if (state.data && !strcmp(state.data, STATE_DONE)) {
			rep->already_done = true;
			rep->found = true;
			goto out;
		}
		if (state.len && load_payload(&r)) {
			rep->found = true;
			goto send;
		}
	}

	rc = relay_fetch(&r, service, &why);
	if (r.refused) {
		*err = why;
		if (service)
			spool_remove(&r);
		goto out;
	}
	if (rc == MFS_ERR_NOTFOUND && !rep->found) {
		/* The task never reached task_finished (bootstrap failure, OOM,
		 * kill): there is nothing to relay, and the step's own exit
		 * code must stay what the caller reports. */
		warn(&r, "the task wrote no metadata (it died before finishing); nothing to relay");
		if (service)
			spool_remove(&r);
		rc = MFS_OK;
		goto out;
	}
	if (rc != MFS_OK)
		goto spool;
	if (!service) {
		/* A previous failure of this attempt may be spooled: it is done now. */
		if (access(r.entry.data, F_OK) == 0)
			spool_remove(&r);
		goto out;
	}
	rc = save_payload(&r, err);
	if (rc != MFS_OK)
		goto out;
send:
	rc = send_payload(&r, &why);
	if (rc == MFS_OK)
		goto out;
spool:
	rc = keep_for_later(&r, service, &why, err);
out:
	relay_release(&r);
	free(spool);
	mfs_buf_release(&state);
	return rc;
}

/* ---- replay of spooled entries ---- */

static enum mfs_code replay_entry(const char *dir, const char *spool, unsigned *done,
				  unsigned *failed, struct mfs_err *err)
{
	struct mfs_buf p = MFS_BUF_INIT, text = MFS_BUF_INIT;
	struct mfs_relay_report rep;
	enum mfs_code rc = MFS_OK;
	json_t *j = NULL;

	mfs_buf_addf(&p, "%s/spec.json", dir);
	if (!mfs_read_file(p.data, &text))
		goto out; /* finished ("done" without spec) or not an entry */
	j = json_loads(text.data, 0, NULL);
	struct mfs_relay_spec sp = {
		.flow = json_string_value(json_object_get(j, "flow")),
		.run_id = json_string_value(json_object_get(j, "run_id")),
		.step = json_string_value(json_object_get(j, "step")),
		.task_id = json_string_value(json_object_get(j, "task_id")),
		.attempt = (int)json_integer_value(json_object_get(j, "attempt")),
		.ds_type = json_string_value(json_object_get(j, "ds_type")),
		.ds_root = json_string_value(json_object_get(j, "ds_root")),
		.metadata = json_string_value(json_object_get(j, "metadata")),
		.service_url = json_string_value(json_object_get(j, "service_url")),
		.local_root = json_string_value(json_object_get(j, "local_root")),
		.spool_dir = spool,
	};
	rc = mfs_relay_run(&sp, &rep, err);
	if (rc != MFS_OK)
		goto out;
	if (rep.spooled) {
		(*failed)++;
		mfs_fail(err, MFS_ERR_BACKEND, "%s", rep.warning);
	} else {
		(*done)++;
		unlink(p.data);
	}
out:
	json_decref(j);
	mfs_buf_release(&p);
	mfs_buf_release(&text);
	return rc;
}

static enum mfs_code replay_tree(const char *dir, int depth, const char *spool, unsigned *done,
				 unsigned *failed, struct mfs_err *err)
{
	if (depth == 5)
		return replay_entry(dir, spool, done, failed, err);
	DIR *d = opendir(dir);
	struct dirent *de;
	struct mfs_buf sub = MFS_BUF_INIT;
	enum mfs_code rc = MFS_OK;

	if (!d)
		return MFS_OK;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		mfs_buf_reset(&sub);
		mfs_buf_addf(&sub, "%s/%s", dir, de->d_name);
		struct stat st;
		if (lstat(sub.data, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		rc = replay_tree(sub.data, depth + 1, spool, done, failed, err);
		if (rc != MFS_OK)
			break;
	}
	closedir(d);
	mfs_buf_release(&sub);
	return rc;
}

enum mfs_code mfs_relay_replay(const char *pathspec, const char *spool_dir, unsigned *done,
			       unsigned *failed, struct mfs_err *err)
{
	char *spool = spool_dir ? mfs_xstrdup(spool_dir) : mfs_relay_default_spool();
	struct mfs_buf dir = MFS_BUF_INIT;
	struct mfs_err last = { 0 };
	enum mfs_code rc = MFS_OK;
	int depth = 0;

	*done = *failed = 0;
	/* Each component must be a plain name: the pathspec becomes a path. */
	char *copy = mfs_xstrdup(pathspec ? pathspec : "");
	mfs_buf_adds(&dir, spool);
	for (char *save = NULL, *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!valid_name(c) || depth == 5) {
			rc = mfs_fail(err, MFS_ERR_USAGE,
				      "relay replay: '%s' is not a pathspec Flow[/run[/step[/task[/attempt]]]]",
				      pathspec);
			goto out;
		}
		mfs_buf_addf(&dir, "/%s", c);
		depth++;
	}
	if (!depth) {
		rc = mfs_fail(err, MFS_ERR_USAGE, "relay replay: give a pathspec, e.g. MyFlow/123");
		goto out;
	}
	if (access(dir.data, F_OK) != 0) {
		rc = mfs_fail(err, MFS_ERR_NOTFOUND, "relay replay: nothing spooled for %s in %s",
			      pathspec, spool);
		goto out;
	}
	rc = replay_tree(dir.data, depth, spool, done, failed, &last);
	if (rc != MFS_OK)
		*err = last;
	else if (*failed)
		rc = mfs_fail(err, MFS_ERR_BACKEND, "%s", last.msg);
out:
	free(copy);
	free(spool);
	mfs_buf_release(&dir);
	return rc;
}
