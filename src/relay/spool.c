/* spool.c - a relay's spool entry <spool>/<Flow>/<run>/<step>/<task>/<attempt>/
 * (spec.json, payload.json, state, lock), and `mfsandbox relay replay`,
 * which finishes the entries under a pathspec (include/mfs/relay/relay.h). */
#include "relay_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfs/util/file.h"

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

static void spool_path(const struct relay *r, const char *file, struct mfs_buf *out)
{
	mfs_buf_reset(out);
	mfs_buf_addf(out, "%s/%s", r->entry.data, file);
}

enum mfs_code relay_spool_write(struct relay *r, const char *file, const char *text,
				struct mfs_err *err)
{
	struct mfs_buf p = MFS_BUF_INIT;
	spool_path(r, file, &p);
	enum mfs_code rc = mfs_write_file_atomic(p.data, text, strlen(text), 0, err);
	mfs_buf_release(&p);
	return rc;
}

void relay_spool_read_state(struct relay *r, struct mfs_buf *state)
{
	struct mfs_buf p = MFS_BUF_INIT;
	spool_path(r, "state", &p);
	if (!mfs_read_file(p.data, state))
		mfs_buf_reset(state);
	while (state->len && (state->data[state->len - 1] == '\n'))
		state->data[--state->len] = '\0';
	mfs_buf_release(&p);
}

enum mfs_code relay_spool_save_spec(struct relay *r, struct mfs_err *err)
{
	const struct mfs_relay_spec *sp = r->spec;
	/* jansson refuses a string that is not UTF-8 (a path can be any bytes):
	 * the pack fails as a whole rather than drop one member. */
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s*, s:s*}", "flow",
			      sp->flow, "run_id", sp->run_id, "step", sp->step, "task_id",
			      sp->task_id, "attempt", sp->attempt, "ds_type", sp->ds_type, "ds_root",
			      sp->ds_root, "metadata", sp->metadata, "service_url", sp->service_url,
			      "local_root", r->local_root);
	char *text = j ? json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(1)) : NULL;
	json_decref(j);
	if (!text)
		return mfs_fail(err, MFS_ERR_CONFIG, "an id, the datastore root or the service URL "
				"is not UTF-8 text, which the spool cannot keep");
	enum mfs_code rc = relay_spool_write(r, "spec.json", text, err);
	free(text);
	return rc;
}

enum mfs_code relay_spool_open(struct relay *r, struct mfs_err *err)
{
	struct mfs_buf p = MFS_BUF_INIT;
	enum mfs_code rc = mfs_make_dirs(r->entry.data, err);

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

void relay_spool_remove(struct relay *r)
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

bool relay_spool_load_payload(struct relay *r)
{
	struct mfs_buf p = MFS_BUF_INIT, text = MFS_BUF_INIT;
	bool ok = false;

	spool_path(r, "payload.json", &p);
	if (mfs_read_file(p.data, &text)) {
		json_t *j = json_loads(text.data, 0, NULL);
		json_t *m = json_object_get(j, "metadata"), *a = json_object_get(j, "artifact");
		if (json_is_array(m) && json_is_array(a)) {
			json_array_extend(r->rows.metadata, m);
			json_array_extend(r->rows.artifact, a);
			ok = true;
		}
		json_decref(j);
	}
	mfs_buf_release(&p);
	mfs_buf_release(&text);
	return ok;
}

enum mfs_code relay_spool_save_payload(struct relay *r, struct mfs_err *err)
{
	json_t *j = json_pack("{s:O, s:O}", "metadata", r->rows.metadata, "artifact",
			      r->rows.artifact);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return mfs_fail(err, MFS_ERR_PROTOCOL, "the task's rows could not be kept");
	enum mfs_code rc = relay_spool_write(r, "payload.json", text, err);
	if (rc == MFS_OK)
		rc = relay_spool_write(r, "state", RELAY_STATE_FETCHED "\n", err);
	free(text);
	return rc;
}

/* ---- `mfsandbox relay replay` ---- */

static enum mfs_code replay_entry(const char *dir, const char *spool, long timeout_s,
				  unsigned *done, unsigned *failed, struct mfs_err *err)
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
		.timeout_s = timeout_s,
	};
	rc = mfs_relay_run(&sp, &rep, err);
	if (rc != MFS_OK) {
		/* An entry that cannot be read (damaged, edited, from another
		 * version) is named and counted; the others are still replayed. */
		(*failed)++;
		mfs_err_prefix(err, "relay replay: %s", p.data);
		rc = MFS_OK;
		goto out;
	}
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

/* Recursion bounded by depth: an entry is five levels below the spool. */
static enum mfs_code replay_tree(const char *dir, int depth, const char *spool, long timeout_s,
				 unsigned *done, unsigned *failed, struct mfs_err *err)
{
	if (depth == 5)
		return replay_entry(dir, spool, timeout_s, done, failed, err);
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
		rc = replay_tree(sub.data, depth + 1, spool, timeout_s, done, failed, err);
		if (rc != MFS_OK)
			break;
	}
	closedir(d);
	mfs_buf_release(&sub);
	return rc;
}

/* The pathspec becomes a path below the spool: each component must be a
 * plain name.  Sets *depth to the number of components. */
static enum mfs_code pathspec_dir(const char *pathspec, const char *spool, struct mfs_buf *dir,
				  int *depth, struct mfs_err *err)
{
	char *copy = mfs_xstrdup(pathspec ? pathspec : "");
	enum mfs_code rc = MFS_OK;

	*depth = 0;
	mfs_buf_adds(dir, spool);
	for (char *save = NULL, *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!relay_valid_name(c) || *depth == 5) {
			rc = mfs_fail(err, MFS_ERR_USAGE,
				      "relay replay: '%s' is not a pathspec Flow[/run[/step[/task[/attempt]]]]",
				      pathspec);
			break;
		}
		mfs_buf_addf(dir, "/%s", c);
		(*depth)++;
	}
	if (rc == MFS_OK && !*depth)
		rc = mfs_fail(err, MFS_ERR_USAGE, "relay replay: give a pathspec, e.g. MyFlow/123");
	free(copy);
	return rc;
}

enum mfs_code mfs_relay_replay(const char *pathspec, const char *spool_dir, long timeout_s,
			       unsigned *done, unsigned *failed, struct mfs_err *err)
{
	char *spool = spool_dir ? mfs_xstrdup(spool_dir) : mfs_relay_default_spool();
	struct mfs_buf dir = MFS_BUF_INIT;
	struct mfs_err last = { 0 };
	int depth;

	*done = *failed = 0;
	enum mfs_code rc = pathspec_dir(pathspec, spool, &dir, &depth, err);
	if (rc == MFS_OK && access(dir.data, F_OK) != 0)
		rc = mfs_fail(err, MFS_ERR_NOTFOUND, "relay replay: nothing spooled for %s in %s",
			      pathspec, spool);
	if (rc == MFS_OK) {
		rc = replay_tree(dir.data, depth, spool, timeout_s, done, failed, &last);
		if (rc != MFS_OK)
			*err = last;
		else if (*failed)
			rc = mfs_fail(err, MFS_ERR_BACKEND, "%s", last.msg);
	}
	free(spool);
	mfs_buf_release(&dir);
	return rc;
}
