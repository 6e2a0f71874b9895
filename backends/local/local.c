/*
 * local.c - the `local` backend: a bubblewrap sandbox on this machine.
 *
 * A sandbox is, in the state root (MFSANDBOX_LOCAL_STATE_DIR), its work
 * dir ID/, its private /tmp ID.tmp/ and a small key=value file ID.state,
 * plus the cgroups that carry its limits.  Two directories and no third to
 * hold them: on a discard-mounted ext4 each rmdir waits for the disk.  No
 * process lives between commands: every exec() starts one bwrap with new
 * pid/ipc/uts/mount namespaces, the host filesystem read-only, and only
 * the work dir, the private /tmp and spec->rw_paths writable.  The work
 * dir is bound at the same path it has on the host, so paths printed
 * inside mean the same thing outside.
 *
 * Why the pieces look the way they do:
 * - bwrap runs in its own process group so a terminal's Ctrl-C reaches only
 *   mfsandbox, which forwards the signal to the command's process group and
 *   gives it a grace period; killing bwrap's group kills the pid namespace's
 *   init and with it every process inside (a daemonised grandchild too).
 * - bwrap's --json-status-fd tells the command's real exit status and
 *   whether it ran at all: without an "exit-code" record bwrap failed while
 *   setting up, which is an infrastructure failure, not the command's.
 * - The state file records bwrap's pid (with its start time against pid
 *   reuse) and the cgroups, so `mfsandbox kill ID` from another process can
 *   stop a running command and remove everything.
 */
#include "local.h"
#include "mfs/util/clock.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static enum mfs_code local_probe(struct mfs_buf *notes, struct mfs_err *err)
{
	char *bwrap = NULL;
	enum mfs_code rc = local_find_bwrap(&bwrap, err);
	if (rc)
		return rc;

	/* A real, minimal sandbox: proves namespaces can be created here. */
	const char *argv[] = { bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
			       "--unshare-pid", "--unshare-ipc", "--unshare-uts",
			       "--die-with-parent", "--", "true", NULL };
	struct mfs_buf out = MFS_BUF_INIT;
	int ws = local_run_capture(argv, &out);
	local_chomp(&out);
	if (ws == -1 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
		rc = mfs_fail(err, MFS_ERR_CONFIG,
			      "bubblewrap cannot create a sandbox here (%s); as non-root it needs "
			      "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)",
			      out.len ? out.data : "it did not start");
		goto out;
	}
	if (notes) {
		local_cg_describe(notes);
		mfs_buf_adds(notes, "network: host by default; --network none enforced (only lo)\n");
		local_scope_describe(bwrap, notes);
		mfs_buf_adds(notes, "filesystem: read-only /usr, /bin, /lib*, /etc without its private files, "
			     "the command's Python prefix; own $HOME, /tmp, /var/tmp, /dev, /proc; "
			     "other host paths only with --ro-bind/--bind\n");
		mfs_buf_adds(notes, "disk, gpu, image: not supported (host filesystem; --disk/--gpu/--image are refused)\n");
	}
out:
	mfs_buf_release(&out);
	free(bwrap);
	return rc;
}

/* "mfs-HelloFlow-1-start-2-0" -> same, with anything odd turned into '-'. */
static void make_id(const char *name, struct mfs_buf *id)
{
	size_t n = 0;
	for (const char *s = name && *name ? name : "mfs"; *s && n < 48; s++, n++) {
		char c = *s;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
		mfs_buf_addch(id, ok ? c : '-');
	}
	if (id->data[0] == '.')
		id->data[0] = '-';
	uint32_t r = 0;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (uint32_t)getpid() ^ (uint32_t)mfs_now_ms();
	mfs_buf_addf(id, "-%08x", (unsigned)r);
}

/* Makes the work dir and private /tmp of a new sandbox under root.  Both
 * directories new, or neither: teardown must never remove a name some
 * other sandbox already had. */
static enum mfs_code make_dirs(struct local_sandbox *ls, const char *root, const char *name,
			       struct mfs_err *err)
{
	for (int attempt = 0; ; attempt++) {
		struct mfs_buf id = MFS_BUF_INIT, work = MFS_BUF_INIT, tmp = MFS_BUF_INIT;
		make_id(name, &id);
		mfs_buf_addf(&work, "%s/%s", root, id.data);
		mfs_buf_addf(&tmp, "%s/%s" TMP_SUFFIX, root, id.data);
		int e = 0;
		if (mkdir(work.data, 0755) != 0) {
			e = errno;
		} else if (mkdir(tmp.data, 0700) != 0) {
			e = errno;
			rmdir(work.data);
		}
		if (!e)
			local_sandbox_set_paths(ls, root, id.data);
		mfs_buf_release(&id);
		mfs_buf_release(&work);
		mfs_buf_release(&tmp);
		if (!e)
			return MFS_OK;
		if (e != EEXIST || attempt == 8)
			return mfs_fail(err, MFS_ERR_IO, "cannot create a sandbox in %s: %s", root, strerror(e));
	}
}

/* Host paths bound in must exist, named by absolute paths; a DEST is an
 * absolute path too (the CLI says the same, for other callers). */
static enum mfs_code check_host_paths(const struct mfs_sandbox_spec *spec, struct mfs_err *err)
{
	for (size_t i = 0; spec->rw_paths && i < spec->rw_paths->n; i++) {
		const char *p = spec->rw_paths->v[i];
		if (p[0] != '/' || !local_is_dir(p))
			return mfs_fail(err, MFS_ERR_CONFIG,
					"read-write path %s must be an existing absolute directory", p);
	}
	const struct mfs_kvlist *lists[] = { spec->ro_binds, spec->rw_binds };
	for (size_t l = 0; l < 2; l++)
		for (size_t i = 0; lists[l] && i < lists[l]->n; i++) {
			const struct mfs_kv *kv = &lists[l]->items[i];
			if (kv->key[0] != '/' || !kv->key[1] || kv->value[0] != '/' ||
			    access(kv->value, F_OK) != 0)
				return mfs_fail(err, MFS_ERR_CONFIG,
						"%s %s:%s: HOST must exist and both be absolute paths",
						l ? "--bind" : "--ro-bind", kv->value, kv->key);
		}
	return MFS_OK;
}

/* An unknown network, or host paths that cannot be bound. */
static enum mfs_code check_spec(const struct mfs_sandbox_spec *spec, bool *net_none,
				struct mfs_err *err)
{
	*net_none = false;
	if (spec->network && strcmp(spec->network, "host") != 0) {
		if (strcmp(spec->network, "none") != 0)
			return mfs_fail(err, MFS_ERR_USAGE,
					"unknown network '%s' for the local backend: use host or none",
					spec->network);
		*net_none = true;
	}
	return check_host_paths(spec, err);
}

static void copy_binds(const struct mfs_kvlist *from, struct mfs_kvlist *to)
{
	for (size_t i = 0; from && i < from->n; i++)
		mfs_kvlist_set(to, from->items[i].key, from->items[i].value);
}

static enum mfs_code local_create(const struct mfs_sandbox_spec *spec,
				  struct mfs_sandbox **out, struct mfs_err *err)
{
	bool net_none = false;
	enum mfs_code rc = check_spec(spec, &net_none, err);
	if (rc)
		return rc;
	char *bwrap = NULL;
	rc = local_find_bwrap(&bwrap, err);
	if (rc)
		return rc;

	struct local_sandbox *ls = mfs_xcalloc(1, sizeof(*ls));
	char *root = NULL;
	ls->base.ops = &mfs_local_ops;
	ls->bwrap = bwrap;
	rc = local_state_root_ready(&root, err);
	if (rc)
		goto fail;
	rc = make_dirs(ls, root, spec->name, err);
	if (rc)
		goto fail;
	if (chmod(ls->tmpdir, 01777) != 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot chmod %s: %s", ls->tmpdir, strerror(errno));
		goto fail;
	}

	ls->net_none = net_none;
	ls->timeout_s = spec->timeout_s > 0 ? spec->timeout_s : 0;
	ls->created = time(NULL);
	for (size_t i = 0; spec->labels && i < spec->labels->n; i++)
		mfs_kvlist_set(&ls->labels, spec->labels->items[i].key, spec->labels->items[i].value);
	for (size_t i = 0; spec->env && i < spec->env->n; i++)
		mfs_kvlist_set(&ls->env, spec->env->items[i].key, spec->env->items[i].value);
	if (spec->rw_paths && spec->rw_paths->n)
		mfs_strv_pushv(&ls->rw_paths, (const char *const *)spec->rw_paths->v);
	copy_binds(spec->ro_binds, &ls->ro_binds);
	copy_binds(spec->rw_binds, &ls->rw_binds);
	rc = local_view_scan_etc(ls, err);
	if (rc)
		goto fail;
	local_cg_setup(ls, spec);

	rc = local_state_save(ls, err);
	if (rc)
		goto fail;
	free(root);
	*out = &ls->base;
	return MFS_OK;

fail:
	local_teardown(ls, NULL);
	local_sandbox_free(ls);
	free(root);
	return rc;
}

static enum mfs_code local_destroy(struct mfs_sandbox *sb, struct mfs_err *err)
{
	if (!sb)
		return MFS_OK;
	struct local_sandbox *ls = (struct local_sandbox *)sb;
	enum mfs_code rc = local_teardown(ls, err);
	local_sandbox_free(ls);
	return rc;
}

static void local_release(struct mfs_sandbox *sb)
{
	local_sandbox_free((struct local_sandbox *)sb);
}

static void local_describe(const struct mfs_sandbox *sb, struct mfs_buf *out)
{
	const struct local_sandbox *ls = (const struct local_sandbox *)sb;
	mfs_buf_addf(out, "local sandbox %s kept: work dir %s (same path on the host), private /tmp %s\n",
		     sb->id, sb->workdir, ls->tmpdir ? ls->tmpdir : "?");
	mfs_buf_addf(out, "remove it with: mfsandbox kill %s\n", sb->id);
}

/* Only to say why --image, --gpu and --disk are refused (by the executor). */
static unsigned local_caps_for(const struct mfs_sandbox_spec *spec, struct mfs_buf *why)
{
	(void)spec;
	mfs_buf_adds(why, "it runs on this machine's own filesystem");
	return mfs_local_ops.caps;
}

const struct mfs_backend_ops mfs_local_ops = {
	.name = "local",
	.summary = "bubblewrap sandbox on this machine (no account needed)",
	.caps = MFS_CAP_CPU | MFS_CAP_MEMORY | MFS_CAP_NETWORK | MFS_CAP_STREAM |
		MFS_CAP_DOWNLOAD | MFS_CAP_LIST | MFS_CAP_HOST_BINDS,
	.caps_for = local_caps_for,
	.probe = local_probe,
	.create = local_create,
	.upload = local_upload,
	.download = local_download,
	.exec = local_exec,
	.destroy = local_destroy,
	.release = local_release,
	.list = local_list,
	.kill = local_kill,
	.describe = local_describe,
};
