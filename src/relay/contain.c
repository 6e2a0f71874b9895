/* contain.c - the path rule for a task's metadata archive (include/mfs/relay/contain.h). */
#include "mfs/relay/contain.h"

#include <string.h>
#include <sys/stat.h>

/* Deepest member that can be applied: <F>/<R>/<S>/<T>/_meta/<file>. */
#define MAX_DEPTH 6

struct span {
	const char *p;
	size_t n;
};

static bool is(const struct span *s, const char *word)
{
	return s->n == strlen(word) && !memcmp(s->p, word, s->n);
}

static bool has_suffix(const struct span *s, const char *suffix)
{
	size_t m = strlen(suffix);
	return s->n > m && !memcmp(s->p + s->n - m, suffix, m);
}

/* True when c[0..n) is a directory on the way to this task's files:
 * F, F/_meta, F/R, F/R/_meta, ..., F/R/S/T/_meta. */
static bool on_path(const struct mfs_task_ids *ids, const struct span *c, size_t n)
{
	const char *want[4] = { ids->flow, ids->run_id, ids->step, ids->task_id };
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && is(&c[i], "_meta"))
			return i == n - 1;
		if (i >= 4 || !is(&c[i], want[i]))
			return false;
	}
	return true;
}

static enum mfs_member_verdict file_verdict(const struct mfs_task_ids *ids, const struct span *c,
					    size_t n, const char **why)
{
	*why = "is outside this task's metadata";
	if (n == 2 && is(&c[0], ids->flow) && is(&c[1], "conda.manifest"))
		return MFS_MEMBER_SKIP;
	if (n < 3 || !is(&c[n - 2], "_meta") || !on_path(ids, c, n - 1))
		return MFS_MEMBER_REFUSE;
	const struct span *file = &c[n - 1];
	if (n == MAX_DEPTH) {
		if (file->p[0] != '.' && has_suffix(file, ".json"))
			return MFS_MEMBER_TASK;
		*why = "is not a metadata file (<name>.json)";
		return MFS_MEMBER_REFUSE;
	}
	if (is(file, "_self.json"))
		return MFS_MEMBER_ONCE;
	return MFS_MEMBER_REFUSE;
}

enum mfs_member_verdict mfs_relay_member(const struct mfs_task_ids *ids, const char *name,
					 mode_t type, bool link, const char **rel,
					 const char **why)
{
	struct span c[MAX_DEPTH];
	size_t n = 0;
	bool below = false;

	*rel = NULL;
	*why = "";
	if (!name || !*name)
		return *why = "has no name", MFS_MEMBER_REFUSE;
	if (name[0] == '/')
		return *why = "is an absolute path", MFS_MEMBER_REFUSE;
	if (link)
		return *why = "is a link", MFS_MEMBER_REFUSE;
	if (type != S_IFREG && type != S_IFDIR)
		return *why = "is not a regular file or directory", MFS_MEMBER_REFUSE;
	const char *p = name;
	while (p[0] == '.' && p[1] == '/')
		p += 2; /* "./.metaflow/..." as tar writes a relative directory */
	while (*p) {
		struct span s = { p, strcspn(p, "/") };
		if (s.n == 0)
			return *why = "has an empty path component", MFS_MEMBER_REFUSE;
		if (is(&s, ".") || is(&s, ".."))
			return *why = "has a '.' or '..' component", MFS_MEMBER_REFUSE;
		if (below) {
			if (n == MAX_DEPTH)
				return *why = "is outside this task's metadata", MFS_MEMBER_REFUSE;
			c[n++] = s;
		} else if (is(&s, ".metaflow")) {
			below = true;
		}
		p += s.n;
		if (*p == '/')
			p++; /* a trailing slash ends a directory's name */
	}
	if (!below) {
		/* Directories above .metaflow (an absolute sysroot) create nothing. */
		*why = "is not below .metaflow/";
		return type == S_IFDIR ? MFS_MEMBER_SKIP : MFS_MEMBER_REFUSE;
	}
	if (type == S_IFDIR) {
		*why = "is outside this task's metadata";
		return on_path(ids, c, n) ? MFS_MEMBER_SKIP : MFS_MEMBER_REFUSE;
	}
	enum mfs_member_verdict v = file_verdict(ids, c, n, why);
	if (v == MFS_MEMBER_TASK || v == MFS_MEMBER_ONCE) {
		*rel = c[0].p;
		*why = "";
	}
	return v;
}
