/*
 * cgroup.c - memory and cpu limits of a local sandbox through cgroups v1
 * or v2, nested below the launcher's own cgroup so limits imposed on it keep
 * applying.  What cannot be enforced falls back to RLIMIT_AS (memory) or is
 * reported by probe() (cpu).
 */
#include "local.h"
#include "mfs/util/clock.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CPU_PERIOD_US   100000L

enum cg_mode { CG_NONE, CG_V1, CG_V2 };


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
	char *text = local_read_text("/proc/self/cgroup");
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
		(void)local_write_text(sc.data, word.data);
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
	int rc = local_write_text(p.data, value);
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
void local_cg_kill_all(const char *dir)
{
	if (cg_has(dir, "cgroup.kill"))
		(void)cg_write(dir, "cgroup.kill", "1");
	struct mfs_buf p = MFS_BUF_INIT;
	mfs_buf_addf(&p, "%s/cgroup.procs", dir);
	for (int round = 0; round < 200; round++) {
		char *text = local_read_text(p.data);
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
int local_cg_remove(const char *dir)
{
	if (!local_is_dir(dir))
		return 0;
	local_cg_kill_all(dir);
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
void local_cg_describe(struct mfs_buf *notes)
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
void local_cg_setup(struct local_sandbox *ls, const struct mfs_sandbox_spec *spec)
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


/* kill empties the cgroups a state file names with SIGKILL: never trust
 * it with one we did not make (a hand-edited file could name the root). */
bool local_cg_is_ours(const char *dir)
{
	const char *base = strrchr(dir, '/');
	return !strncmp(dir, "/sys/fs/cgroup/", 15) && !strstr(dir, "/..") &&
	       base && !strncmp(base + 1, CGROUP_PREFIX, strlen(CGROUP_PREFIX));
}
