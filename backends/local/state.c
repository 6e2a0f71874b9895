/*
 * state.c - the on-disk record of a local sandbox, so that `mfsandbox ls`
 * and `kill` in another process find it: ID.state (written once at create),
 * ID.pid (while a command runs), and teardown, which removes all of it.
 */
#include "local.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void state_add(struct mfs_buf *b, const char *key, const char *value)
{
	mfs_buf_adds(b, key);
	mfs_buf_addch(b, '=');
	for (const char *s = value; *s; s++) {
		if (*s == '\\')
			mfs_buf_adds(b, "\\\\");
		else if (*s == '\n')
			mfs_buf_adds(b, "\\n");
		else
			mfs_buf_addch(b, *s);
	}
	mfs_buf_addch(b, '\n');
}

static void state_unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (*r == '\\' && r[1]) {
			r++;
			*w++ = *r == 'n' ? '\n' : *r;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/* ROOT/ID<suffix> of a sandbox (suffix "" for its work dir). */
void local_sandbox_path(const struct local_sandbox *ls, const char *suffix, struct mfs_buf *out)
{
	mfs_buf_addf(out, "%s/%s%s", ls->state_root, ls->base.id, suffix);
}

/* Writes the state file, once, when the sandbox is created: it never
 * changes afterwards (the running command's pid goes to ID.pid). */
enum mfs_code local_state_save(const struct local_sandbox *ls, struct mfs_err *err)
{
	struct mfs_buf b = MFS_BUF_INIT, path = MFS_BUF_INIT;
	char num[64];
	enum mfs_code rc = MFS_OK;

	state_add(&b, "id", ls->base.id);
	state_add(&b, "workdir", ls->base.workdir);
	snprintf(num, sizeof(num), "%lld", (long long)ls->created);
	state_add(&b, "created", num);
	snprintf(num, sizeof(num), "%ld", ls->timeout_s);
	state_add(&b, "timeout", num);
	for (size_t i = 0; i < ls->cgroups.n; i++)
		state_add(&b, "cgroup", ls->cgroups.v[i]);
	for (size_t i = 0; i < ls->labels.n; i++) {
		struct mfs_buf key = MFS_BUF_INIT;
		mfs_buf_addf(&key, "label.%s", ls->labels.items[i].key);
		state_add(&b, key.data, ls->labels.items[i].value);
		mfs_buf_release(&key);
	}
	local_sandbox_path(ls, STATE_SUFFIX, &path);
	if (local_publish_file(path.data, b.data, b.len) != 0)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", path.data, strerror(errno));
	mfs_buf_release(&b);
	mfs_buf_release(&path);
	return rc;
}

/* While a command runs, ID.pid holds "PID STARTTIME" of its bwrap, for
 * `mfsandbox ls` (running/idle) and `kill` from another process. */
void local_pid_publish(const struct local_sandbox *ls)
{
	char text[64];
	int n = snprintf(text, sizeof(text), "%d %llu\n", (int)ls->pid, ls->pid_start);
	struct mfs_buf path = MFS_BUF_INIT;
	local_sandbox_path(ls, PID_SUFFIX, &path);
	(void)local_publish_file(path.data, text, (size_t)n);  /* best effort */
	mfs_buf_release(&path);
}

void local_pid_clear(const struct local_sandbox *ls)
{
	struct mfs_buf path = MFS_BUF_INIT;
	local_sandbox_path(ls, PID_SUFFIX, &path);
	unlink(path.data);
	mfs_buf_release(&path);
}

static void pid_load(struct local_sandbox *ls)
{
	struct mfs_buf path = MFS_BUF_INIT;
	local_sandbox_path(ls, PID_SUFFIX, &path);
	char *text = local_read_text(path.data);
	mfs_buf_release(&path);
	if (!text)
		return;
	char *end;
	long pid = strtol(text, &end, 10);
	unsigned long long start = strtoull(end, NULL, 10);
	if (pid > 0 && start) {
		ls->pid = (pid_t)pid;
		ls->pid_start = start;
	}
	free(text);
}

void local_sandbox_free(struct local_sandbox *ls)
{
	if (!ls)
		return;
	free(ls->base.id);
	free(ls->base.workdir);
	free(ls->bwrap);
	free(ls->tmpdir);
	free(ls->state_root);
	mfs_kvlist_release(&ls->labels);
	mfs_kvlist_release(&ls->env);
	mfs_strv_release(&ls->rw_paths);
	mfs_kvlist_release(&ls->ro_binds);
	mfs_kvlist_release(&ls->rw_binds);
	mfs_strv_release(&ls->etc_hidden);
	mfs_strv_release(&ls->etc_links);
	mfs_strv_release(&ls->cgroups);
	free(ls);
}

/* The work dir and /tmp of sandbox ID in root: derived from the name, never
 * read from the state file, whose paths teardown would remove. */
void local_sandbox_set_paths(struct local_sandbox *ls, const char *root, const char *id)
{
	struct mfs_buf w = MFS_BUF_INIT, t = MFS_BUF_INIT;
	ls->state_root = mfs_xstrdup(root);
	ls->base.id = mfs_xstrdup(id);
	local_sandbox_path(ls, "", &w);
	local_sandbox_path(ls, TMP_SUFFIX, &t);
	ls->base.workdir = mfs_buf_detach(&w, NULL);
	ls->tmpdir = mfs_buf_detach(&t, NULL);
}

/* Loads root/id.state into a new sandbox struct (for list and kill). */
enum mfs_code local_state_load(const char *root, const char *id,
				struct local_sandbox **out, struct mfs_err *err)
{
	struct mfs_buf path = MFS_BUF_INIT;
	mfs_buf_addf(&path, "%s/%s" STATE_SUFFIX, root, id);
	char *text = local_read_text(path.data);
	if (!text) {
		enum mfs_code rc = errno == ENOENT
			? mfs_fail(err, MFS_ERR_NOTFOUND, "no local sandbox %s (see `mfsandbox ls`)", id)
			: mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", path.data, strerror(errno));
		mfs_buf_release(&path);
		return rc;
	}
	mfs_buf_release(&path);

	struct local_sandbox *ls = mfs_xcalloc(1, sizeof(*ls));
	ls->base.ops = &mfs_local_ops;
	local_sandbox_set_paths(ls, root, id);
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		char *v = eq + 1;
		state_unescape(v);
		if (!strcmp(line, "created"))
			ls->created = (time_t)strtoll(v, NULL, 10);
		else if (!strcmp(line, "timeout"))
			ls->timeout_s = strtol(v, NULL, 10);
		else if (!strcmp(line, "cgroup") && local_cg_is_ours(v))
			mfs_strv_push(&ls->cgroups, v);
		else if (!strncmp(line, "label.", 6))
			mfs_kvlist_set(&ls->labels, line + 6, v);
	}
	free(text);
	pid_load(ls);
	*out = ls;
	return MFS_OK;
}

/* Stops whatever still runs and removes cgroups, directories and files.
 * The state file goes last: while anything is left, `kill` can retry. */
enum mfs_code local_teardown(struct local_sandbox *ls, struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	if (local_process_alive(ls->pid, ls->pid_start)) {
		kill(-ls->pid, SIGKILL);  /* bwrap's group: outer bwrap and the pid-ns init */
		kill(ls->pid, SIGKILL);
	}
	for (size_t i = 0; i < ls->cgroups.n; i++)
		if (local_cg_remove(ls->cgroups.v[i]) != 0 && rc == MFS_OK)
			rc = mfs_fail(err, MFS_ERR_IO, "cannot remove cgroup %s: %s",
				      ls->cgroups.v[i], strerror(errno));
	if (!ls->base.id)
		return rc;  /* create() failed before it made anything */
	struct mfs_buf path = MFS_BUF_INIT;
	local_sandbox_path(ls, PID_SUFFIX, &path);
	(void)unlink(path.data);
	const char *dirs[] = { ls->base.workdir, ls->tmpdir };
	bool left = false;
	for (size_t i = 0; i < 2; i++) {
		if (!dirs[i] || local_rm_dir(dirs[i]) == 0)
			continue;
		left = true;
		if (rc == MFS_OK)
			rc = mfs_fail(err, MFS_ERR_IO, "cannot remove %s: %s", dirs[i], strerror(errno));
	}
	mfs_buf_reset(&path);
	local_sandbox_path(ls, STATE_SUFFIX, &path);
	if (!left && unlink(path.data) != 0 && errno != ENOENT && rc == MFS_OK)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot remove %s: %s", path.data, strerror(errno));
	mfs_buf_release(&path);
	return rc;
}
