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
#include "mfs/backend.h"
#include "mfs/util/buf.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/util/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Next to a sandbox's work dir ROOT/ID: ROOT/ID<suffix>. */
#define STATE_SUFFIX    ".state"
#define PID_SUFFIX      ".pid"   /* only while a command runs */
#define TMP_SUFFIX      ".tmp"   /* its /tmp */
#define CGROUP_PREFIX   "mfsandbox-"
#define GRACE_MS        2000   /* cancellation: signal, then this long, then SIGKILL */
#define DRAIN_MS        5000   /* after SIGKILL, how long we still collect output */
#define READ_CHUNK      (128 * 1024)
#define STDERR_TAIL     1024   /* kept to explain a bwrap set-up failure */
#define CPU_PERIOD_US   100000L

extern const struct mfs_backend_ops mfs_local_ops;

enum cg_mode { CG_NONE, CG_V1, CG_V2 };

struct local_sandbox {
	struct mfs_sandbox base;      /* first: the executor sees only this */
	char *bwrap;                  /* bubblewrap found by create() */
	char *tmpdir;                 /* host dir bound at /tmp */
	char *state_root;             /* parent of everything; hidden inside the sandbox */
	struct mfs_kvlist labels;
	struct mfs_kvlist env;        /* spec->env */
	struct mfs_strv rw_paths;
	struct mfs_strv cgroups;      /* cgroup dirs we created; commands join all */
	bool net_none;
	long mem_rlimit_mb;           /* memory limit when no cgroup enforces it */
	long timeout_s;               /* lifetime cap from spec, 0 none */
	time_t created;
	pid_t pid;                    /* bwrap of a running exec, read from state by kill */
	unsigned long long pid_start; /* its start time in clock ticks */
};

/* ---------------------------------------------------------------- helpers */

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), sl = strlen(suffix);
	return n >= sl && !strcmp(s + n - sl, suffix);
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int mkdir_p(const char *path, mode_t mode)
{
	char *p = mfs_xstrdup(path);
	int rc = 0;
	for (char *s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) != 0 && errno != EEXIST) {
			rc = -1;
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	if (rc == 0 && !is_dir(path)) {
		errno = ENOTDIR;
		rc = -1;
	}
	int saved = errno;
	free(p);
	errno = saved;
	return rc;
}

/* Removes name under dirfd and everything below it, without following
 * symlinks; makes directories writable first (a command may chmod them). */
static int rm_tree_at(int at, const char *name)
{
	struct stat st;
	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(at, name, 0) == 0 || errno == ENOENT ? 0 : -1;

	int rc = 0;
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	(void)fchmod(fd, 0700);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (rm_tree_at(dirfd(d), e->d_name) != 0)
			rc = -1;
	}
	closedir(d);
	if (unlinkat(at, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		rc = -1;
	return rc;
}

static int rm_tree(const char *path)
{
	return rm_tree_at(AT_FDCWD, path);
}

/* Reads a whole (small) file; NULL with errno set on failure. */
static char *read_text(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct mfs_buf b = MFS_BUF_INIT;
	char chunk[4096];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int saved = errno;
			close(fd);
			mfs_buf_release(&b);
			errno = saved;
			return NULL;
		}
		mfs_buf_add(&b, chunk, (size_t)n);
	}
	close(fd);
	mfs_buf_addch(&b, '\0');  /* data non-NULL even for an empty file */
	return mfs_buf_detach(&b, NULL);
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = strlen(text);
	ssize_t n = write(fd, text, len);
	int saved = errno;
	close(fd);
	if (n != (ssize_t)len) {
		errno = n < 0 ? saved : EIO;
		return -1;
	}
	return 0;
}

/* Publishes path with the given text: written to path.tmp, then renamed
 * onto a name that does not exist yet, so a reader sees all or nothing.
 * Never a rename over an existing file: on ext4 that forces the new data
 * to disk at once (auto_da_alloc), and a file whose blocks were allocated
 * costs a synchronous discard when removed on a discard-mounted fs.  A small
 * file created and removed within a run never reaches the disk. */
static int publish_file(const char *path, const char *text, size_t len)
{
	struct mfs_buf tmp = MFS_BUF_INIT;
	mfs_buf_addf(&tmp, "%s.tmp", path);
	int rc = -1;
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		bool ok = write(fd, text, len) == (ssize_t)len;
		int saved = errno;
		if (close(fd) != 0 && ok) {
			ok = false;
			saved = errno;
		}
		if (ok && rename(tmp.data, path) == 0) {
			rc = 0;
		} else {
			if (ok)
				saved = errno;
			unlink(tmp.data);
			errno = saved;
		}
	}
	mfs_buf_release(&tmp);
	return rc;
}

/* Start time of pid in clock ticks (field 22 of /proc/PID/stat), 0 if gone. */
static unsigned long long proc_start_time(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	char *text = read_text(path);
	if (!text)
		return 0;
	unsigned long long start = 0;
	char *p = strrchr(text, ')');
	/* after ")": state is field 3, starttime field 22 */
	for (int field = 2; p && *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (p && *p)
		start = strtoull(p, NULL, 10);
	free(text);
	return start;
}

static bool same_process_alive(pid_t pid, unsigned long long start)
{
	return pid > 0 && start && proc_start_time(pid) == start;
}

/* Host pids whose parent is ppid (reads every /proc/PID/stat: portable,
 * unlike /proc/PID/task/TID/children which needs CONFIG_PROC_CHILDREN). */
static void children_of(pid_t ppid, struct mfs_strv *out)
{
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		char path[300];
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		char *text = read_text(path);
		if (!text)
			continue;
		char *p = strrchr(text, ')');
		if (p && p[1] == ' ' && p[2] && p[3] == ' ' && atol(p + 4) == (long)ppid)
			mfs_strv_push(out, e->d_name);
		free(text);
	}
	closedir(d);
}

/* ------------------------------------------------------- configuration */

static char *state_root_path(void)
{
	const char *v = env_nonempty("MFSANDBOX_LOCAL_STATE_DIR");
	if (v)
		return mfs_xstrdup(v);
	/* /var/tmp, not /tmp: /tmp inside the sandbox is a private bind, so a
	 * work dir under the host's /tmp would need mount points created in it. */
	struct mfs_buf b = MFS_BUF_INIT;
	mfs_buf_addf(&b, "/var/tmp/mfsandbox-%u", (unsigned)getuid());
	return mfs_buf_detach(&b, NULL);
}

/* Creates the state root if needed; returns its canonical path. */
static enum mfs_code state_root_ready(char **out, struct mfs_err *err)
{
	char *root = state_root_path();
	enum mfs_code rc = MFS_OK;
	struct stat st;
	if (root[0] != '/') {
		rc = mfs_fail(err, MFS_ERR_CONFIG,
			      "MFSANDBOX_LOCAL_STATE_DIR must be an absolute path, got '%s'", root);
		goto out;
	}
	if ((stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) &&
	    (mkdir_p(root, 0700) != 0 || stat(root, &st) != 0)) {
		rc = mfs_fail(err, MFS_ERR_CONFIG,
			      "cannot create local sandbox state dir %s: %s (set MFSANDBOX_LOCAL_STATE_DIR)",
			      root, strerror(errno));
		goto out;
	}
	if (st.st_uid != getuid()) {
		rc = mfs_fail(err, MFS_ERR_CONFIG,
			      "local sandbox state dir %s belongs to another user (set MFSANDBOX_LOCAL_STATE_DIR)",
			      root);
		goto out;
	}
	char *real = realpath(root, NULL);
	if (!real) {
		rc = mfs_fail(err, MFS_ERR_CONFIG, "cannot resolve %s: %s", root, strerror(errno));
		goto out;
	}
	*out = mfs_xstrdup(real);
	free(real);
out:
	free(root);
	return rc;
}

/* Absolute path of bubblewrap: MFSANDBOX_BWRAP, else `bwrap` on PATH. */
static enum mfs_code find_bwrap(char **out, struct mfs_err *err)
{
	const char *forced = env_nonempty("MFSANDBOX_BWRAP");
	if (forced) {
		if (access(forced, X_OK) != 0)
			return mfs_fail(err, MFS_ERR_CONFIG,
					"MFSANDBOX_BWRAP=%s is not executable: %s", forced, strerror(errno));
		*out = mfs_xstrdup(forced);
		return MFS_OK;
	}
	const char *path = env_nonempty("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	const char *s = path;
	while (*s) {
		const char *colon = strchr(s, ':');
		size_t n = colon ? (size_t)(colon - s) : strlen(s);
		if (n) {
			struct mfs_buf b = MFS_BUF_INIT;
			mfs_buf_add(&b, s, n);
			mfs_buf_adds(&b, "/bwrap");
			if (access(b.data, X_OK) == 0) {
				*out = mfs_buf_detach(&b, NULL);
				return MFS_OK;
			}
			mfs_buf_release(&b);
		}
		s += n + (colon ? 1 : 0);
	}
	return mfs_fail(err, MFS_ERR_CONFIG,
			"bubblewrap (bwrap) not found on PATH: install it (apt-get install bubblewrap) or set MFSANDBOX_BWRAP");
}

/* ------------------------------------------------------------- cgroups */

static enum cg_mode cg_detect(void)
{
	const char *v = getenv("MFSANDBOX_LOCAL_CGROUPS");
	if (v && !strcmp(v, "0"))
		return CG_NONE;
	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0)
		return CG_V2;
	if (access("/sys/fs/cgroup/memory/cgroup.procs", F_OK) == 0)
		return CG_V1;
	return CG_NONE;
}

/* Our own cgroup for a v1 controller ("memory", "cpu") or the v2 tree (""),
 * from /proc/self/cgroup; new cgroups nest below it so that limits imposed
 * on the launcher keep applying to its sandboxes. */
static char *cg_own_path(const char *controller)
{
	char *text = read_text("/proc/self/cgroup");
	if (!text)
		return NULL;
	char *result = NULL;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctrls = c1 + 1;
		bool match = false;
		if (!*controller) {
			match = !*ctrls && !strncmp(line, "0:", 2);
		} else {
			size_t cl = strlen(controller);
			for (const char *s = ctrls; *s; ) {
				const char *comma = strchr(s, ',');
				size_t n = comma ? (size_t)(comma - s) : strlen(s);
				if (n == cl && !strncmp(s, controller, n))
					match = true;
				s += n + (comma ? 1 : 0);
			}
		}
		if (match) {
			result = mfs_xstrdup(c2 + 1);
			break;
		}
	}
	free(text);
	return result;
}

/* Makes the cgroup <mount>/<own path>/mfsandbox-<name> for a controller
 * ("" for v2); NULL (and *why) if that is not possible here. */
static char *cg_make(enum cg_mode mode, const char *controller, const char *name,
		     struct mfs_buf *why)
{
	char *own = cg_own_path(mode == CG_V2 ? "" : controller);
	if (!own) {
		mfs_buf_addf(why, "no %s cgroup in /proc/self/cgroup", mode == CG_V2 ? "v2" : controller);
		return NULL;
	}
	struct mfs_buf dir = MFS_BUF_INIT;
	if (mode == CG_V2)
		mfs_buf_adds(&dir, "/sys/fs/cgroup");
	else
		mfs_buf_addf(&dir, "/sys/fs/cgroup/%s", controller);
	if (strcmp(own, "/") != 0)
		mfs_buf_adds(&dir, own);
	free(own);
	mfs_buf_addf(&dir, "/" CGROUP_PREFIX "%s", name);
	if (mkdir(dir.data, 0755) != 0) {
		mfs_buf_addf(why, "cannot create %s: %s", dir.data, strerror(errno));
		mfs_buf_release(&dir);
		return NULL;
	}
	return mfs_buf_detach(&dir, NULL);
}

/* In v2 a controller works in a child only if the parent delegates it. */
static bool cg_v2_enable(const char *dir, const char *controller, const char *file)
{
	struct mfs_buf p = MFS_BUF_INIT;
	mfs_buf_addf(&p, "%s/%s", dir, file);
	bool ok = access(p.data, F_OK) == 0;
	if (!ok) {
		char *parent = mfs_xstrdup(dir);
		*strrchr(parent, '/') = '\0';
		struct mfs_buf sc = MFS_BUF_INIT, word = MFS_BUF_INIT;
		mfs_buf_addf(&sc, "%s/cgroup.subtree_control", parent);
		mfs_buf_addf(&word, "+%s", controller);
		(void)write_text(sc.data, word.data);
		ok = access(p.data, F_OK) == 0;
		mfs_buf_release(&sc);
		mfs_buf_release(&word);
		free(parent);
	}
	mfs_buf_release(&p);
	return ok;
}

static int cg_write(const char *dir, const char *file, const char *value)
{
	struct mfs_buf p = MFS_BUF_INIT;
	mfs_buf_addf(&p, "%s/%s", dir, file);
	int rc = write_text(p.data, value);
	mfs_buf_release(&p);
	return rc;
}

static bool cg_has(const char *dir, const char *file)
{
	struct mfs_buf p = MFS_BUF_INIT;
	mfs_buf_addf(&p, "%s/%s", dir, file);
	bool ok = access(p.data, F_OK) == 0;
	mfs_buf_release(&p);
	return ok;
}

/* SIGKILLs every process in the cgroup until it is empty (bounded). */
static void cg_kill_all(const char *dir)
{
	if (cg_has(dir, "cgroup.kill"))
		(void)cg_write(dir, "cgroup.kill", "1");
	struct mfs_buf p = MFS_BUF_INIT;
	mfs_buf_addf(&p, "%s/cgroup.procs", dir);
	for (int round = 0; round < 200; round++) {
		char *text = read_text(p.data);
		if (!text)
			break;
		bool any = false;
		for (char *s = text; *s; ) {
			long pid = strtol(s, &s, 10);
			if (pid > 0) {
				any = true;
				kill((pid_t)pid, SIGKILL);
			}
			while (*s == '\n')
				s++;
		}
		free(text);
		if (!any)
			break;
		mfs_sleep_ms(10);
	}
	mfs_buf_release(&p);
}

/* Empties and removes a cgroup; -1 if it is still there. */
static int cg_remove(const char *dir)
{
	if (!is_dir(dir))
		return 0;
	cg_kill_all(dir);
	for (int i = 0; i < 200; i++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -1;
		mfs_sleep_ms(10);
	}
	return -1;
}

/* How memory and CPU limits would be enforced here, for probe() notes.
 * It really tries: creates and removes a throw-away cgroup. */
static void cg_describe(struct mfs_buf *notes)
{
	enum cg_mode mode = cg_detect();
	struct mfs_buf mem_why = MFS_BUF_INIT, cpu_why = MFS_BUF_INIT;
	char name[64];
	snprintf(name, sizeof(name), "probe-%d", (int)getpid());
	bool mem = false, cpu = false;
	const char *v = mode == CG_V2 ? "cgroup v2" : "cgroup v1";

	if (mode == CG_NONE) {
		const char *off = getenv("MFSANDBOX_LOCAL_CGROUPS");
		const char *why = off && !strcmp(off, "0") ? "MFSANDBOX_LOCAL_CGROUPS=0"
							   : "no cgroup hierarchy under /sys/fs/cgroup";
		mfs_buf_adds(&mem_why, why);
		mfs_buf_adds(&cpu_why, why);
	} else if (mode == CG_V2) {
		char *dir = cg_make(mode, "", name, &mem_why);
		if (dir) {
			mem = cg_v2_enable(dir, "memory", "memory.max");
			cpu = cg_v2_enable(dir, "cpu", "cpu.max");
			rmdir(dir);
			*strrchr(dir, '/') = '\0';
			if (!mem)
				mfs_buf_addf(&mem_why, "memory controller not delegated to %s", dir);
			if (!cpu)
				mfs_buf_addf(&cpu_why, "cpu controller not delegated to %s", dir);
			free(dir);
		} else {
			mfs_buf_add(&cpu_why, mem_why.data, mem_why.len);
		}
	} else {
		char *dir = cg_make(mode, "memory", name, &mem_why);
		if (dir) {
			mem = cg_has(dir, "memory.limit_in_bytes");
			rmdir(dir);
			free(dir);
		}
		dir = cg_make(mode, "cpu", name, &cpu_why);
		if (dir) {
			cpu = cg_has(dir, "cpu.cfs_quota_us");
			rmdir(dir);
			free(dir);
		}
	}
	if (mem)
		mfs_buf_addf(notes, "memory: %s\n", v);
	else
		mfs_buf_addf(notes, "memory: RLIMIT_AS per process, not a cgroup (%s)\n",
			     mem_why.len ? mem_why.data : "no memory controller");
	if (cpu)
		mfs_buf_addf(notes, "cpu: %s %s\n", v, mode == CG_V2 ? "cpu.max" : "cpu.cfs_quota_us");
	else
		mfs_buf_addf(notes, "cpu: not enforced (%s)\n",
			     cpu_why.len ? cpu_why.data : "no cpu controller");
	mfs_buf_release(&mem_why);
	mfs_buf_release(&cpu_why);
}

/* Creates the sandbox's cgroups and applies limits; what cannot be
 * enforced by a cgroup falls back to RLIMIT_AS (memory) or nothing (cpu). */
static void cg_setup(struct local_sandbox *ls, const struct mfs_sandbox_spec *spec)
{
	struct mfs_buf why = MFS_BUF_INIT, val = MFS_BUF_INIT;
	bool mem_done = spec->memory_mb <= 0;
	long long bytes = (long long)spec->memory_mb * 1024 * 1024;
	long quota = spec->cpu > 0 ? (long)(spec->cpu * CPU_PERIOD_US) : 0;
	if (spec->cpu > 0 && quota < 1000)
		quota = 1000;  /* the kernel's minimum quota */

	/* The pid namespace already ends every process of a command; a cgroup
	 * only for limits keeps the common case free of the (slow, on v1)
	 * cgroup migration. */
	enum cg_mode mode = mem_done && !quota ? CG_NONE : cg_detect();
	if (mode == CG_V2) {
		char *dir = cg_make(mode, "", ls->base.id, &why);
		if (dir) {
			mfs_strv_push(&ls->cgroups, dir);
			if (!mem_done && cg_v2_enable(dir, "memory", "memory.max")) {
				mfs_buf_addf(&val, "%lld", bytes);
				mem_done = cg_write(dir, "memory.max", val.data) == 0;
				if (mem_done && cg_has(dir, "memory.swap.max"))
					(void)cg_write(dir, "memory.swap.max", "0");
			}
			if (quota && cg_v2_enable(dir, "cpu", "cpu.max")) {
				mfs_buf_reset(&val);
				mfs_buf_addf(&val, "%ld %ld", quota, CPU_PERIOD_US);
				(void)cg_write(dir, "cpu.max", val.data);
			}
			free(dir);
		}
	} else if (mode == CG_V1) {
		char *dir = mem_done ? NULL : cg_make(mode, "memory", ls->base.id, &why);
		if (dir) {
			mfs_strv_push(&ls->cgroups, dir);
			mfs_buf_addf(&val, "%lld", bytes);
			mem_done = cg_write(dir, "memory.limit_in_bytes", val.data) == 0;
			/* memory+swap capped at the same figure: no escape into swap */
			if (mem_done && cg_has(dir, "memory.memsw.limit_in_bytes"))
				(void)cg_write(dir, "memory.memsw.limit_in_bytes", val.data);
			free(dir);
		}
		if (quota) {
			dir = cg_make(mode, "cpu", ls->base.id, &why);
			if (dir) {
				mfs_strv_push(&ls->cgroups, dir);
				mfs_buf_reset(&val);
				mfs_buf_addf(&val, "%ld", CPU_PERIOD_US);
				(void)cg_write(dir, "cpu.cfs_period_us", val.data);
				mfs_buf_reset(&val);
				mfs_buf_addf(&val, "%ld", quota);
				(void)cg_write(dir, "cpu.cfs_quota_us", val.data);
				free(dir);
			}
		}
	}
	if (!mem_done)
		ls->mem_rlimit_mb = spec->memory_mb;
	mfs_buf_release(&why);
	mfs_buf_release(&val);
}

/* ---------------------------------------------------------- state file */

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
static void sandbox_path(const struct local_sandbox *ls, const char *suffix, struct mfs_buf *out)
{
	mfs_buf_addf(out, "%s/%s%s", ls->state_root, ls->base.id, suffix);
}

/* Writes the state file, once, when the sandbox is created: it never
 * changes afterwards (the running command's pid goes to ID.pid). */
static enum mfs_code state_save(const struct local_sandbox *ls, struct mfs_err *err)
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
	sandbox_path(ls, STATE_SUFFIX, &path);
	if (publish_file(path.data, b.data, b.len) != 0)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", path.data, strerror(errno));
	mfs_buf_release(&b);
	mfs_buf_release(&path);
	return rc;
}

/* While a command runs, ID.pid holds "PID STARTTIME" of its bwrap, for
 * `mfsandbox ls` (running/idle) and `kill` from another process. */
static void pid_publish(const struct local_sandbox *ls)
{
	char text[64];
	int n = snprintf(text, sizeof(text), "%d %llu\n", (int)ls->pid, ls->pid_start);
	struct mfs_buf path = MFS_BUF_INIT;
	sandbox_path(ls, PID_SUFFIX, &path);
	(void)publish_file(path.data, text, (size_t)n);  /* best effort */
	mfs_buf_release(&path);
}

static void pid_clear(const struct local_sandbox *ls)
{
	struct mfs_buf path = MFS_BUF_INIT;
	sandbox_path(ls, PID_SUFFIX, &path);
	unlink(path.data);
	mfs_buf_release(&path);
}

static void pid_load(struct local_sandbox *ls)
{
	struct mfs_buf path = MFS_BUF_INIT;
	sandbox_path(ls, PID_SUFFIX, &path);
	char *text = read_text(path.data);
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

static void sandbox_free(struct local_sandbox *ls)
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
	mfs_strv_release(&ls->cgroups);
	free(ls);
}

/* kill empties the cgroups a state file names with SIGKILL: never trust
 * it with one we did not make (a hand-edited file could name the root). */
static bool cg_is_ours(const char *dir)
{
	const char *base = strrchr(dir, '/');
	return !strncmp(dir, "/sys/fs/cgroup/", 15) && !strstr(dir, "/..") &&
	       base && !strncmp(base + 1, CGROUP_PREFIX, strlen(CGROUP_PREFIX));
}

/* The work dir and /tmp of sandbox ID in root: derived from the name, never
 * read from the state file, whose paths teardown would remove. */
static void sandbox_set_paths(struct local_sandbox *ls, const char *root, const char *id)
{
	struct mfs_buf w = MFS_BUF_INIT, t = MFS_BUF_INIT;
	ls->state_root = mfs_xstrdup(root);
	ls->base.id = mfs_xstrdup(id);
	sandbox_path(ls, "", &w);
	sandbox_path(ls, TMP_SUFFIX, &t);
	ls->base.workdir = mfs_buf_detach(&w, NULL);
	ls->tmpdir = mfs_buf_detach(&t, NULL);
}

/* Loads root/id.state into a new sandbox struct (for list and kill). */
static enum mfs_code state_load(const char *root, const char *id,
				struct local_sandbox **out, struct mfs_err *err)
{
	struct mfs_buf path = MFS_BUF_INIT;
	mfs_buf_addf(&path, "%s/%s" STATE_SUFFIX, root, id);
	char *text = read_text(path.data);
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
	sandbox_set_paths(ls, root, id);
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
		else if (!strcmp(line, "cgroup") && cg_is_ours(v))
			mfs_strv_push(&ls->cgroups, v);
		else if (!strncmp(line, "label.", 6))
			mfs_kvlist_set(&ls->labels, line + 6, v);
	}
	free(text);
	pid_load(ls);
	*out = ls;
	return MFS_OK;
}

/* An emptied directory (the common case) goes with one rmdir; a tree walk
 * only for what a command left.  0, or -1 with errno. */
static int rm_dir(const char *path)
{
	if (rmdir(path) == 0 || errno == ENOENT)
		return 0;
	return errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR ? rm_tree(path) : -1;
}

/* Stops whatever still runs and removes cgroups, directories and files.
 * The state file goes last: while anything is left, `kill` can retry. */
static enum mfs_code teardown(struct local_sandbox *ls, struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	if (same_process_alive(ls->pid, ls->pid_start)) {
		kill(-ls->pid, SIGKILL);  /* bwrap's group: outer bwrap and the pid-ns init */
		kill(ls->pid, SIGKILL);
	}
	for (size_t i = 0; i < ls->cgroups.n; i++)
		if (cg_remove(ls->cgroups.v[i]) != 0 && rc == MFS_OK)
			rc = mfs_fail(err, MFS_ERR_IO, "cannot remove cgroup %s: %s",
				      ls->cgroups.v[i], strerror(errno));
	if (!ls->base.id)
		return rc;  /* create() failed before it made anything */
	struct mfs_buf path = MFS_BUF_INIT;
	sandbox_path(ls, PID_SUFFIX, &path);
	(void)unlink(path.data);
	const char *dirs[] = { ls->base.workdir, ls->tmpdir };
	bool left = false;
	for (size_t i = 0; i < 2; i++) {
		if (!dirs[i] || rm_dir(dirs[i]) == 0)
			continue;
		left = true;
		if (rc == MFS_OK)
			rc = mfs_fail(err, MFS_ERR_IO, "cannot remove %s: %s", dirs[i], strerror(errno));
	}
	mfs_buf_reset(&path);
	sandbox_path(ls, STATE_SUFFIX, &path);
	if (!left && unlink(path.data) != 0 && errno != ENOENT && rc == MFS_OK)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot remove %s: %s", path.data, strerror(errno));
	mfs_buf_release(&path);
	return rc;
}

/* --------------------------------------------------------------- probe */

/* Runs argv with stdout to /dev/null and stderr captured; returns the wait
 * status or -1 if it could not start. */
static int run_capture(const char *const *argv, struct mfs_buf *errout)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		dup2(p[1], 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	char chunk[512];
	ssize_t n;
	while ((n = read(p[0], chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (errout->len < 4096)
			mfs_buf_add(errout, chunk, (size_t)n);
	}
	close(p[0]);
	int ws;
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return -1;
	return ws;
}

static void chomp(struct mfs_buf *b)
{
	while (b->len && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == '\r'))
		b->data[--b->len] = '\0';
}

static enum mfs_code local_probe(struct mfs_buf *notes, struct mfs_err *err)
{
	char *bwrap = NULL;
	enum mfs_code rc = find_bwrap(&bwrap, err);
	if (rc)
		return rc;

	/* A real, minimal sandbox: proves namespaces can be created here. */
	const char *argv[] = { bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
			       "--unshare-pid", "--unshare-ipc", "--unshare-uts",
			       "--die-with-parent", "--", "true", NULL };
	struct mfs_buf out = MFS_BUF_INIT;
	int ws = run_capture(argv, &out);
	chomp(&out);
	if (ws == -1 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
		rc = mfs_fail(err, MFS_ERR_CONFIG,
			      "bubblewrap cannot create a sandbox here (%s); as non-root it needs "
			      "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)",
			      out.len ? out.data : "it did not start");
		goto out;
	}
	if (notes) {
		cg_describe(notes);
		mfs_buf_adds(notes, "network: host by default; --network none enforced (only lo)\n");
		mfs_buf_adds(notes, "disk, gpu, image: not supported (host filesystem; --disk/--gpu/--image are refused)\n");
	}
out:
	mfs_buf_release(&out);
	free(bwrap);
	return rc;
}

/* -------------------------------------------------------------- create */

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

static enum mfs_code local_create(const struct mfs_sandbox_spec *spec,
				  struct mfs_sandbox **out, struct mfs_err *err)
{
	const char *what = spec->image ? "--image" : spec->gpu ? "--gpu"
			 : spec->disk_gb > 0 ? "--disk" : NULL;
	if (what)
		return mfs_fail(err, MFS_ERR_UNSUPPORTED,
				"the local backend runs on this machine's own filesystem and cannot honour %s; "
				"drop it or choose another --backend", what);
	bool net_none = false;
	if (spec->network && strcmp(spec->network, "host") != 0) {
		if (strcmp(spec->network, "none") != 0)
			return mfs_fail(err, MFS_ERR_USAGE,
					"unknown network '%s' for the local backend: use host or none",
					spec->network);
		net_none = true;
	}
	for (size_t i = 0; spec->rw_paths && i < spec->rw_paths->n; i++) {
		const char *p = spec->rw_paths->v[i];
		if (p[0] != '/' || !is_dir(p))
			return mfs_fail(err, MFS_ERR_CONFIG,
					"read-write path %s must be an existing absolute directory", p);
	}
	char *bwrap = NULL;
	enum mfs_code rc = find_bwrap(&bwrap, err);
	if (rc)
		return rc;

	struct local_sandbox *ls = mfs_xcalloc(1, sizeof(*ls));
	char *root = NULL;
	ls->base.ops = &mfs_local_ops;
	ls->bwrap = bwrap;
	rc = state_root_ready(&root, err);
	if (rc)
		goto fail;
	/* Both directories new, or neither: teardown must never remove a
	 * name some other sandbox already had. */
	for (int attempt = 0; ; attempt++) {
		struct mfs_buf id = MFS_BUF_INIT, work = MFS_BUF_INIT, tmp = MFS_BUF_INIT;
		make_id(spec->name, &id);
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
			sandbox_set_paths(ls, root, id.data);
		mfs_buf_release(&id);
		mfs_buf_release(&work);
		mfs_buf_release(&tmp);
		if (!e)
			break;
		if (e != EEXIST || attempt == 8) {
			rc = mfs_fail(err, MFS_ERR_IO, "cannot create a sandbox in %s: %s", root, strerror(e));
			goto fail;
		}
	}
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
	cg_setup(ls, spec);

	rc = state_save(ls, err);
	if (rc)
		goto fail;
	free(root);
	*out = &ls->base;
	return MFS_OK;

fail:
	teardown(ls, NULL);
	sandbox_free(ls);
	free(root);
	return rc;
}

/* ------------------------------------------------------ upload/download */

/* Host path for a path inside the sandbox: the work dir has the same path
 * on both sides, /tmp is the sandbox's private tmp dir.  Anything else is
 * the read-only host filesystem, so a copy there makes no sense. */
static enum mfs_code host_path(const struct local_sandbox *ls, const char *inside,
			       struct mfs_buf *out, struct mfs_err *err)
{
	const char *wd = ls->base.workdir;
	size_t wl = strlen(wd);
	if (!inside || !*inside)
		return mfs_fail(err, MFS_ERR_USAGE, "empty sandbox path");
	for (const char *s = inside; *s; ) {
		const char *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);
		if (n == 2 && !strncmp(s, "..", 2))
			return mfs_fail(err, MFS_ERR_USAGE, "sandbox path %s must not contain '..'", inside);
		s += n + (slash ? 1 : 0);
	}
	if (inside[0] != '/')
		mfs_buf_addf(out, "%s/%s", wd, inside);
	else if (!strncmp(inside, wd, wl) && (inside[wl] == '/' || inside[wl] == '\0'))
		mfs_buf_adds(out, inside);
	else if (!strncmp(inside, "/tmp/", 5))
		mfs_buf_addf(out, "%s%s", ls->tmpdir, inside + 4);
	else
		return mfs_fail(err, MFS_ERR_USAGE,
				"sandbox path %s is outside the work dir %s and /tmp; the rest of the "
				"local sandbox is the read-only host filesystem", inside, wd);
	return MFS_OK;
}

static enum mfs_code copy_file(const char *from, const char *to, struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	int in = -1, outfd = -1;
	struct stat st;
	char *parent = mfs_xstrdup(to);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (mkdir_p(parent, 0755) != 0) {
			rc = mfs_fail(err, MFS_ERR_IO, "cannot create %s: %s", parent, strerror(errno));
			goto out;
		}
	}
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) != 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", from, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = mfs_fail(err, MFS_ERR_USAGE, "%s is not a regular file", from);
		goto out;
	}
	outfd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777);
	if (outfd < 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", to, strerror(errno));
		goto out;
	}
	char *chunk = mfs_xmalloc(READ_CHUNK);
	for (;;) {
		ssize_t n = read(in, chunk, READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", from, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n; ) {
			ssize_t m = write(outfd, chunk + off, (size_t)(n - off));
			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0) {
				rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", to, strerror(errno));
				goto done;
			}
			off += m;
		}
	}
done:
	free(chunk);
	(void)fchmod(outfd, st.st_mode & 0777);  /* keep +x despite the umask */
out:
	if (in >= 0)
		close(in);
	if (outfd >= 0 && close(outfd) != 0 && rc == MFS_OK)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", to, strerror(errno));
	free(parent);
	return rc;
}

static enum mfs_code local_upload(struct mfs_sandbox *sb, const char *local_path,
				  const char *remote_path, struct mfs_err *err)
{
	struct local_sandbox *ls = (struct local_sandbox *)sb;
	struct mfs_buf to = MFS_BUF_INIT;
	enum mfs_code rc = host_path(ls, remote_path, &to, err);
	if (!rc)
		rc = copy_file(local_path, to.data, err);
	mfs_buf_release(&to);
	return rc;
}

static enum mfs_code local_download(struct mfs_sandbox *sb, const char *remote_path,
				    const char *local_path, struct mfs_err *err)
{
	struct local_sandbox *ls = (struct local_sandbox *)sb;
	struct mfs_buf from = MFS_BUF_INIT;
	enum mfs_code rc = host_path(ls, remote_path, &from, err);
	if (!rc && access(from.data, F_OK) != 0)
		rc = mfs_fail(err, MFS_ERR_NOTFOUND, "%s does not exist in sandbox %s",
			      remote_path, sb->id);
	if (!rc)
		rc = copy_file(from.data, local_path, err);
	mfs_buf_release(&from);
	return rc;
}

/* ---------------------------------------------------------------- exec */

/* The command's environment: a clean one, not the launcher's.  Kept from
 * the launcher: what finds programs and renders text (PATH, HOME, USER,
 * LOGNAME, LANG, LC_*, TZ, TERM); TMPDIR is the private /tmp.  Then
 * spec->env, then req->env, each overriding. */
static void build_env(const struct local_sandbox *ls, const struct mfs_kvlist *extra,
		      struct mfs_strv *envp)
{
	static const char *const keep[] = { "PATH", "HOME", "USER", "LOGNAME", "LANG",
					    "LANGUAGE", "TZ", "TERM", NULL };
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	extern char **environ;
	for (const char *const *k = keep; *k; k++) {
		const char *v = getenv(*k);
		if (v)
			mfs_kvlist_set(&env, *k, v);
	}
	for (char **e = environ; *e; e++) {
		char *eq = strchr(*e, '=');
		if (eq && !strncmp(*e, "LC_", 3)) {
			char *key = mfs_xstrndup(*e, (size_t)(eq - *e));
			mfs_kvlist_set(&env, key, eq + 1);
			free(key);
		}
	}
	if (!mfs_kvlist_get(&env, "PATH"))
		mfs_kvlist_set(&env, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	mfs_kvlist_set(&env, "TMPDIR", "/tmp");
	for (size_t i = 0; i < ls->env.n; i++)
		mfs_kvlist_set(&env, ls->env.items[i].key, ls->env.items[i].value);
	for (size_t i = 0; extra && i < extra->n; i++)
		mfs_kvlist_set(&env, extra->items[i].key, extra->items[i].value);
	for (size_t i = 0; i < env.n; i++)
		mfs_strv_pushf(envp, "%s=%s", env.items[i].key, env.items[i].value);
	mfs_kvlist_release(&env);
}

/* The private /tmp hides the host's.  Host entries under /tmp that the
 * command names in its argv or environment (a venv's interpreter, a flow
 * directory) or that hold the launcher's cwd stay visible read-only:
 * otherwise a project or venv living under /tmp cannot run its own tools.
 * Writes still land in the sandbox's own /tmp. */
static void tmp_names_in(const char *s, struct mfs_strv *out)
{
	for (const char *p = strstr(s, "/tmp/"); p; p = strstr(p + 1, "/tmp/")) {
		if (p != s && !strchr(" \t\n'\"=:;(", p[-1]))
			continue;
		const char *name = p + 5;
		size_t n = strcspn(name, "/ \t\n'\":;)");
		/* Only directories named as the parent of a path (/tmp/venv/bin/python):
		 * a bare /tmp/x may be a file the command means to create. */
		if (n == 0 || name[n] != '/' ||
		    (name[0] == '.' && (n == 1 || (n == 2 && name[1] == '.'))))
			continue;
		struct mfs_buf path = MFS_BUF_INIT;
		struct stat st;
		bool seen = false;
		mfs_buf_adds(&path, "/tmp/");
		mfs_buf_add(&path, name, n);
		for (size_t i = 0; i < out->n && !seen; i++)
			seen = !strcmp(out->v[i], path.data);
		if (!seen && lstat(path.data, &st) == 0 && S_ISDIR(st.st_mode))
			mfs_strv_push(out, path.data);
		mfs_buf_release(&path);
	}
}

static void add_host_tmp_binds(const char *const *cmd, const struct mfs_strv *envp,
			       struct mfs_strv *argv)
{
	struct mfs_strv names = MFS_STRV_INIT;
	char here[PATH_MAX + 1];
	for (size_t i = 0; cmd[i]; i++)
		tmp_names_in(cmd[i], &names);
	for (size_t i = 0; i < envp->n; i++)
		tmp_names_in(envp->v[i], &names);
	if (getcwd(here, sizeof(here) - 1))
		tmp_names_in(strcat(here, "/"), &names);
	for (size_t i = 0; i < names.n; i++) {
		mfs_strv_push(argv, "--ro-bind");
		mfs_strv_push(argv, names.v[i]);
		mfs_strv_push(argv, names.v[i]);
	}
	mfs_strv_release(&names);
}

static void build_argv(const struct local_sandbox *ls, const char *bwrap, const char *cwd,
		       const char *const *cmd, const struct mfs_strv *envp, struct mfs_strv *argv)
{
	mfs_strv_push(argv, bwrap);
	const char *const fixed[] = {
		"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
		"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--die-with-parent",
		/* setsid: no controlling terminal, so no TIOCSTI into the user's
		 * shell; signals reach the command through us instead. */
		"--new-session",
		"--json-status-fd", "3",
		NULL };
	mfs_strv_pushv(argv, fixed);
	if (geteuid() == 0) {
		/* root keeps its capabilities in bwrap unless told otherwise, and
		 * CAP_SYS_ADMIN could remount the host filesystem read-write */
		mfs_strv_push(argv, "--cap-drop");
		mfs_strv_push(argv, "ALL");
	}
	if (ls->net_none)
		mfs_strv_push(argv, "--unshare-net");
	/* /tmp first, then a tmpfs over the state root (other sandboxes and our
	 * state file stay invisible), then the work dir at its host path. */
	mfs_strv_push(argv, "--bind");
	mfs_strv_push(argv, ls->tmpdir);
	mfs_strv_push(argv, "/tmp");
	add_host_tmp_binds(cmd, envp, argv);
	const char *const binds[] = {
		"--tmpfs", ls->state_root,
		"--bind", ls->base.workdir, ls->base.workdir,
		NULL };
	mfs_strv_pushv(argv, binds);
	for (size_t i = 0; i < ls->rw_paths.n; i++) {
		mfs_strv_push(argv, "--bind");
		mfs_strv_push(argv, ls->rw_paths.v[i]);
		mfs_strv_push(argv, ls->rw_paths.v[i]);
	}
	mfs_strv_push(argv, "--chdir");
	mfs_strv_push(argv, cwd);
	mfs_strv_push(argv, "--");
	mfs_strv_pushv(argv, cmd);
}

/* What the child reports through its exec-error pipe when it fails. */
struct spawn_failure {
	int step;   /* 0: cgroup, 1: exec */
	int errnum;
};

_Noreturn static void child_fail(int fd, int step)
{
	struct spawn_failure f = { step, errno };
	ssize_t r = write(fd, &f, sizeof(f));
	(void)r;
	_exit(127);
}

/* Runs in the vfork()ed child, on the parent's memory: async-signal-safe
 * calls only, no allocation, and it never returns (execve or _exit). */
_Noreturn static void child_exec(const char *bwrap, char *const *argv, char *const *envp,
		       char *const *cg_procs, long mem_rlimit_mb,
		       int in, int out, int errfd, int json, int report)
{
	setpgid(0, 0);
	report = fcntl(report, F_DUPFD_CLOEXEC, 10);
	for (size_t i = 0; cg_procs && cg_procs[i]; i++) {
		int fd = open(cg_procs[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			child_fail(report, 0);
		close(fd);
	}
	if (mem_rlimit_mb > 0) {
		rlim_t bytes = (rlim_t)mem_rlimit_mb * 1024 * 1024;
		struct rlimit rl = { bytes, bytes };
		(void)setrlimit(RLIMIT_AS, &rl);
	}
	/* Move the fds out of 0..3 first so the dup2s below cannot clobber one. */
	int hi[4] = { fcntl(in, F_DUPFD_CLOEXEC, 10), fcntl(out, F_DUPFD_CLOEXEC, 10),
		      fcntl(errfd, F_DUPFD_CLOEXEC, 10), fcntl(json, F_DUPFD_CLOEXEC, 10) };
	for (int fd = 0; fd < 4; fd++)
		if (hi[fd] < 0 || dup2(hi[fd], fd) < 0)
			child_fail(report, 1);
	/* Nothing else of the launcher's (sockets, files) leaks into the sandbox. */
	if (syscall(SYS_close_range, 4U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) != 0)
		for (int fd = 4; fd < 4096; fd++)
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);

	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		(void)sigaction(s, &dfl, NULL);  /* ignored signals survive exec otherwise */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	execve(bwrap, argv, envp);
	child_fail(report, 1);
}

/* vfork, not fork: copying our page tables (and the copy-on-write faults
 * after it) was the largest part of the spawn; we stay suspended only until
 * bwrap is exec'd.  Every signal stays blocked until the child has reset
 * all handlers: ours must not run in it.  A function of its own so that no
 * variable of the caller lives across the vfork. */
static pid_t spawn_bwrap(const char *bwrap, char *const *argv, char *const *envp,
			 char *const *cg_procs, long mem_rlimit_mb,
			 int in, int out, int errfd, int json, int report)
{
	sigset_t block_all, old_mask;
	sigfillset(&block_all);
	sigprocmask(SIG_SETMASK, &block_all, &old_mask);
	pid_t pid = vfork();
	if (pid == 0)
		child_exec(bwrap, argv, envp, cg_procs, mem_rlimit_mb, in, out, errfd, json, report);
	int saved = errno;
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	errno = saved;
	return pid;
}

/* Signals the command (the pid-ns init's child) and its process group. */
static bool forward_signal(pid_t init, int sig)
{
	if (init <= 0)
		return false;
	struct mfs_strv kids = MFS_STRV_INIT;
	children_of(init, &kids);
	bool any = false;
	for (size_t i = 0; i < kids.n; i++) {
		pid_t c = (pid_t)atol(kids.v[i]);
		if (kill(-c, sig) == 0 || kill(c, sig) == 0)
			any = true;
	}
	mfs_strv_release(&kids);
	return any;
}

static void kill_tree(const struct local_sandbox *ls, pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	for (size_t i = 0; i < ls->cgroups.n; i++)
		cg_kill_all(ls->cgroups.v[i]);
}

/* Last complete value of "key": N in bwrap's JSON status lines, or -1. */
static long json_last_int(const struct mfs_buf *js, const char *key)
{
	long v = -1;
	const char *p = js->data;
	size_t kl = strlen(key);
	while (p && (p = strstr(p, key)) != NULL) {
		p += kl;
		while (*p == '"' || *p == ':' || *p == ' ')
			p++;
		char *end;
		long n = strtol(p, &end, 10);
		if (end != p)
			v = n;
		p = end;
	}
	return v;
}

/* Appends what the (non-blocking) status pipe holds to js: 0 at EOF, 1
 * when the writer is still there, -1 on error. */
static int drain_status(int fd, struct mfs_buf *js)
{
	char piece[512];
	for (;;) {
		ssize_t r = read(fd, piece, sizeof(piece));
		if (r > 0) {
			mfs_buf_add(js, piece, (size_t)r);
			continue;
		}
		if (r == 0)
			return 0;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 1 : -1;
	}
}

enum stop_reason { RUNNING, STOP_TIMEOUT, STOP_CANCEL };

static enum mfs_code local_exec(struct mfs_sandbox *sb, const struct mfs_exec_req *req,
				const struct mfs_io *io, int *status, struct mfs_err *err)
{
	struct local_sandbox *ls = (struct local_sandbox *)sb;
	struct mfs_strv argv = MFS_STRV_INIT, envp = MFS_STRV_INIT, cg_procs = MFS_STRV_INIT;
	struct mfs_buf cwd = MFS_BUF_INIT, js = MFS_BUF_INIT;
	char tail[STDERR_TAIL];
	size_t tail_len = 0;
	const char *bwrap;
	char *chunk = NULL;
	int p_out[2] = { -1, -1 }, p_err[2] = { -1, -1 }, p_js[2] = { -1, -1 };
	int p_rep[2] = { -1, -1 }, devnull = -1;
	pid_t pid = -1;
	int ws = 0;
	enum mfs_code rc = MFS_OK;

	*status = -1;
	if (!req->argv || !req->argv[0])
		return mfs_fail(err, MFS_ERR_USAGE, "no command to run");
	if (mfs_cancelled())
		return mfs_fail(err, MFS_ERR_CANCELLED, "cancelled by signal %d before the command started",
				mfs_cancel_signal());
	if (!ls->bwrap && (rc = find_bwrap(&ls->bwrap, err)) != MFS_OK)
		return rc;
	bwrap = ls->bwrap;

	if (!req->cwd)
		mfs_buf_adds(&cwd, sb->workdir);
	else if (req->cwd[0] == '/')
		mfs_buf_adds(&cwd, req->cwd);
	else
		mfs_buf_addf(&cwd, "%s/%s", sb->workdir, req->cwd);
	build_env(ls, req->env, &envp);
	build_argv(ls, bwrap, cwd.data, req->argv, &envp, &argv);
	for (size_t i = 0; i < ls->cgroups.n; i++)
		mfs_strv_pushf(&cg_procs, "%s/cgroup.procs", ls->cgroups.v[i]);

	if (pipe2(p_out, O_CLOEXEC) || pipe2(p_err, O_CLOEXEC) || pipe2(p_js, O_CLOEXEC) ||
	    pipe2(p_rep, O_CLOEXEC) || (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot create pipes: %s", strerror(errno));
		goto out;
	}
	(void)fcntl(p_out[1], F_SETPIPE_SZ, 1024 * 1024);  /* fewer wake-ups for bulk output */

	pid = spawn_bwrap(bwrap, argv.v, envp.v, cg_procs.v, ls->mem_rlimit_mb,
			  devnull, p_out[1], p_err[1], p_js[1], p_rep[1]);
	if (pid < 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot fork: %s", strerror(errno));
		goto out;
	}
	close(p_out[1]);
	close(p_err[1]);
	close(p_js[1]);
	close(p_rep[1]);
	p_out[1] = p_err[1] = p_js[1] = p_rep[1] = -1;

	/* vfork() has returned: bwrap runs, or the child failed before its
	 * execve (its pipe ends are closed, so the loop below ends at once and
	 * p_rep tells why afterwards). */
	ls->pid = pid;
	ls->pid_start = proc_start_time(pid);
	pid_publish(ls);

	long long start = mfs_now_ms(), deadline = -1, grace_end = -1, drain_end = -1;
	if (req->timeout_s > 0)
		deadline = start + req->timeout_s * 1000LL;
	if (ls->timeout_s > 0) {
		long long cap = ((long long)ls->created + ls->timeout_s - (long long)time(NULL)) * 1000LL + start;
		if (deadline < 0 || cap < deadline)
			deadline = cap;
	}
	enum stop_reason stop = RUNNING;
	bool cancelled = false;
	int fds[2] = { p_out[0], p_err[0] };
	chunk = mfs_xmalloc(READ_CHUNK);
	/* bwrap writes its JSON status in many small pieces while it sets up.
	 * Nothing needs them before it exits (or before a cancellation needs
	 * the command's pid), so that pipe is not polled at all: its buffer
	 * holds them, and it is read once bwrap has been reaped (or, without
	 * blocking, on a cancellation).  The loop wakes for output, for the
	 * end of output (the last process of the sandbox gone) and for
	 * signals only: not also for bwrap's exit, which comes just before. */
	(void)fcntl(p_js[0], F_SETFL, O_NONBLOCK);

	while (fds[0] >= 0 || fds[1] >= 0) {
		struct pollfd pfd[3];
		int map[3], np = 0;
		for (int i = 0; i < 2; i++)
			if (fds[i] >= 0) {
				pfd[np] = (struct pollfd){ fds[i], POLLIN, 0 };
				map[np++] = i;
			}
		if (!cancelled && mfs_cancel_fd() >= 0) {
			pfd[np] = (struct pollfd){ mfs_cancel_fd(), POLLIN, 0 };
			map[np++] = -1;
		}
		long long now = mfs_now_ms(), wake = -1;
		long long marks[3] = { stop == RUNNING ? deadline : -1,
				       stop == RUNNING && cancelled ? grace_end : -1, drain_end };
		for (int i = 0; i < 3; i++)
			if (marks[i] >= 0 && (wake < 0 || marks[i] < wake))
				wake = marks[i];
		int timeout = wake < 0 ? -1 : wake <= now ? 0 : (int)(wake - now);
		int n = poll(pfd, (nfds_t)np, timeout);
		if (n < 0 && errno != EINTR) {
			kill_tree(ls, pid);
			rc = mfs_fail(err, MFS_ERR_IO, "poll: %s", strerror(errno));
			break;
		}
		now = mfs_now_ms();

		if (!cancelled && mfs_cancelled()) {
			(void)drain_status(p_js[0], &js);
			cancelled = true;
			grace_end = now + GRACE_MS;
			/* No command yet (bwrap still setting up): nothing to be
			 * graceful with. */
			if (stop == RUNNING &&
			    !forward_signal((pid_t)json_last_int(&js, "child-pid"), mfs_cancel_signal()))
				grace_end = now;
		}
		if (stop == RUNNING && deadline >= 0 && now >= deadline) {
			stop = STOP_TIMEOUT;
			kill_tree(ls, pid);
			drain_end = now + DRAIN_MS;
		} else if (stop == RUNNING && cancelled && now >= grace_end) {
			stop = STOP_CANCEL;
			kill_tree(ls, pid);
			drain_end = now + DRAIN_MS;
		}
		if (drain_end >= 0 && now >= drain_end)
			break;  /* something survived SIGKILL holding a pipe: stop reading */

		for (int i = 0; n > 0 && i < np; i++) {
			int which = map[i];
			if (which < 0 || !pfd[i].revents)
				continue;
			ssize_t r = read(fds[which], chunk, READ_CHUNK);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0) {
				close(fds[which]);
				fds[which] = -1;
				continue;
			}
			if (which == 1) {
				size_t keep = (size_t)r < STDERR_TAIL ? (size_t)r : STDERR_TAIL;
				if (tail_len + keep > STDERR_TAIL) {
					size_t drop = tail_len + keep - STDERR_TAIL;
					memmove(tail, tail + drop, tail_len - drop);
					tail_len -= drop;
				}
				memcpy(tail + tail_len, chunk + r - keep, keep);
				tail_len += keep;
			}
			io->write(io->ctx, which == 0 ? MFS_STDOUT : MFS_STDERR, chunk, (size_t)r);
		}
	}
	p_out[0] = fds[0];
	p_err[0] = fds[1];

	if (rc || stop != RUNNING)
		kill_tree(ls, pid);
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	pid = -1;
	ls->pid = 0;
	ls->pid_start = 0;
	pid_clear(ls);
	(void)drain_status(p_js[0], &js);  /* complete: its writer has been reaped */
	/* The child is gone, so p_rep is at EOF (execve closed it: success)
	 * or holds the reason it never got there. */
	struct spawn_failure fail;
	ssize_t got;
	while ((got = read(p_rep[0], &fail, sizeof(fail))) < 0 && errno == EINTR)
		;
	if (got == (ssize_t)sizeof(fail) && !rc)
		rc = fail.step == 0
			? mfs_fail(err, MFS_ERR_BACKEND, "cannot put the command into cgroup %s: %s",
				   ls->cgroups.n ? ls->cgroups.v[0] : "?", strerror(fail.errnum))
			: mfs_fail(err, MFS_ERR_BACKEND, "cannot run %s: %s (set MFSANDBOX_BWRAP)",
				   bwrap, strerror(fail.errnum));
	/* Whatever a command started and left in its cgroups does not outlive it. */
	for (size_t i = 0; i < ls->cgroups.n; i++)
		cg_kill_all(ls->cgroups.v[i]);
	if (rc)
		goto out;

	long code = json_last_int(&js, "exit-code");
	if (code >= 0)
		*status = (int)code;
	else if (WIFSIGNALED(ws))
		*status = 128 + WTERMSIG(ws);
	else
		*status = WEXITSTATUS(ws);

	if (stop == STOP_TIMEOUT) {
		rc = mfs_fail(err, MFS_ERR_TIMEOUT, "the command ran longer than its timeout and was killed");
	} else if (cancelled) {
		rc = mfs_fail(err, MFS_ERR_CANCELLED, "cancelled by signal %d; the command was %s",
			      mfs_cancel_signal(), stop == STOP_CANCEL ? "killed after the grace period" : "stopped");
	} else if (code < 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 1) {
		/* bwrap itself failed: no exit-code record.  Not finding the
		 * program is the command's problem (126/127 like a shell). */
		struct mfs_buf t = MFS_BUF_INIT;
		mfs_buf_add(&t, tail, tail_len);
		chomp(&t);
		const char *last = strrchr(t.data ? t.data : "", '\n');
		last = last ? last + 1 : (t.data ? t.data : "");
		if (strstr(last, "bwrap: execvp ")) {
			/* A PATH search reports EACCES for an unreadable PATH dir
			 * too; only a named file is surely "not executable". */
			*status = strchr(req->argv[0], '/') && strstr(last, "Permission denied") ? 126 : 127;
		} else {
			*status = -1;
			rc = mfs_fail(err, MFS_ERR_BACKEND, "bubblewrap failed before the command ran: %s",
				      *last ? last : "no message");
		}
		mfs_buf_release(&t);
	}

out:
	if (pid > 0) {
		kill_tree(ls, pid);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	int all[] = { p_out[0], p_out[1], p_err[0], p_err[1], p_js[0], p_js[1],
		      p_rep[0], p_rep[1], devnull };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i] >= 0)
			close(all[i]);
	free(chunk);
	mfs_strv_release(&argv);
	mfs_strv_release(&envp);
	mfs_strv_release(&cg_procs);
	mfs_buf_release(&cwd);
	mfs_buf_release(&js);
	return rc;
}

/* ------------------------------------------------- destroy, list, kill */

static enum mfs_code local_destroy(struct mfs_sandbox *sb, struct mfs_err *err)
{
	if (!sb)
		return MFS_OK;
	struct local_sandbox *ls = (struct local_sandbox *)sb;
	enum mfs_code rc = teardown(ls, err);
	sandbox_free(ls);
	return rc;
}

static enum mfs_code local_list(mfs_list_fn fn, void *ctx, struct mfs_err *err)
{
	char *root = state_root_path();
	DIR *d = opendir(root);
	if (!d) {
		enum mfs_code rc = errno == ENOENT ? MFS_OK
			: mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", root, strerror(errno));
		free(root);
		return rc;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || !ends_with(e->d_name, STATE_SUFFIX))
			continue;
		char *id = mfs_xstrndup(e->d_name, strlen(e->d_name) - strlen(STATE_SUFFIX));
		struct local_sandbox *ls = NULL;
		enum mfs_code lrc = state_load(root, id, &ls, NULL);
		free(id);
		if (lrc != MFS_OK)
			continue;  /* gone meanwhile, or unreadable */
		struct mfs_sandbox_info info = {
			.id = ls->base.id,
			.state = same_process_alive(ls->pid, ls->pid_start) ? "running" : "idle",
			.labels = &ls->labels,
			.created = ls->created,
		};
		fn(ctx, &info);
		sandbox_free(ls);
	}
	closedir(d);
	free(root);
	return MFS_OK;
}

static enum mfs_code local_kill(const char *id, struct mfs_err *err)
{
	/* ID.tmp etc. name a part of sandbox ID, never a sandbox */
	if (!id || !*id || id[0] == '.' || strchr(id, '/') || ends_with(id, STATE_SUFFIX) ||
	    ends_with(id, PID_SUFFIX) || ends_with(id, TMP_SUFFIX))
		return mfs_fail(err, MFS_ERR_USAGE, "'%s' is not a local sandbox id (see `mfsandbox ls`)",
				id ? id : "");
	char *root = state_root_path();
	struct local_sandbox *ls = NULL;
	enum mfs_code rc = state_load(root, id, &ls, err);
	if (rc == MFS_ERR_NOTFOUND) {
		/* Its directories without a state file: the debris of a crashed create. */
		ls = mfs_xcalloc(1, sizeof(*ls));
		sandbox_set_paths(ls, root, id);
		if (is_dir(ls->base.workdir) || is_dir(ls->tmpdir))
			rc = teardown(ls, err);
		sandbox_free(ls);
	} else if (rc == MFS_OK) {
		rc = teardown(ls, err);
		sandbox_free(ls);
	}
	free(root);
	return rc;
}

static void local_describe(const struct mfs_sandbox *sb, struct mfs_buf *out)
{
	const struct local_sandbox *ls = (const struct local_sandbox *)sb;
	mfs_buf_addf(out, "local sandbox %s kept: work dir %s (same path on the host), private /tmp %s\n",
		     sb->id, sb->workdir, ls->tmpdir ? ls->tmpdir : "?");
	mfs_buf_addf(out, "remove it with: mfsandbox kill %s\n", sb->id);
}

const struct mfs_backend_ops mfs_local_ops = {
	.name = "local",
	.summary = "bubblewrap sandbox on this machine (no account needed)",
	.caps = MFS_CAP_CPU | MFS_CAP_MEMORY | MFS_CAP_NETWORK | MFS_CAP_STREAM |
		MFS_CAP_DOWNLOAD | MFS_CAP_LIST,
	.probe = local_probe,
	.create = local_create,
	.upload = local_upload,
	.download = local_download,
	.exec = local_exec,
	.destroy = local_destroy,
	.list = local_list,
	.kill = local_kill,
	.describe = local_describe,
};
