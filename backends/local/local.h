/*
 * local.h - private to backends/local/: the sandbox struct and what the
 * files of this backend share.  Nothing here is part of the contract; the
 * only symbol other layers see is mfs_local_ops (local.c).
 *
 * The files, one job each:
 *   local.c   probe, create, destroy, describe and the ops table
 *   config.c  where state lives and which bubblewrap runs
 *   state.c   the on-disk state of a sandbox (ID.state, ID.pid), load, teardown
 *   cgroup.c  memory and cpu limits through cgroups v1/v2
 *   mounts.c  the command's environment and bubblewrap's argv (what is visible)
 *   view.c    the default read-only host paths: system, /etc minus secrets, Python
 *   spawn.c   starting bwrap (vfork child), signalling and killing its tree
 *   exec.c    one command: start, output loop, deadline/cancel, exit status
 *   files.c   upload/download between the host and the sandbox
 *   admin.c   list and kill from another process
 *   fs.c      small host file helpers; proc.c  /proc readers and run_capture
 */
#ifndef MFS_LOCAL_PRIVATE_H
#define MFS_LOCAL_PRIVATE_H

#include "mfs/backend.h"
#include "mfs/util/buf.h"
#include "mfs/util/err.h"

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

/* Next to a sandbox's work dir ROOT/ID: ROOT/ID<suffix>. */
#define STATE_SUFFIX    ".state"
#define PID_SUFFIX      ".pid"   /* only while a command runs */
#define TMP_SUFFIX      ".tmp"   /* its /tmp */
#define CGROUP_PREFIX   "mfsandbox-"
#define READ_CHUNK      (128 * 1024)

extern const struct mfs_backend_ops mfs_local_ops;

struct local_sandbox {
	struct mfs_sandbox base;      /* first: the executor sees only this */
	char *bwrap;                  /* bubblewrap found by create() */
	char *tmpdir;                 /* host dir bound at /tmp */
	char *state_root;             /* parent of everything; hidden inside the sandbox */
	struct mfs_kvlist labels;
	struct mfs_kvlist env;        /* spec->env */
	struct mfs_strv rw_paths;
	struct mfs_kvlist ro_binds, rw_binds; /* --ro-bind/--bind: key DEST, value HOST */
	struct mfs_strv etc_hidden;   /* 'f' or 'd' + path: private entries of /etc */
	struct mfs_strv etc_links;    /* files top-level /etc symlinks point to */
	struct mfs_strv cgroups;      /* cgroup dirs we created; commands join all */
	bool net_none;
	long mem_rlimit_mb;           /* memory limit when no cgroup enforces it */
	long timeout_s;               /* lifetime cap from spec, 0 none */
	time_t created;
	pid_t pid;                    /* bwrap of a running exec, read from state by kill */
	unsigned long long pid_start; /* its start time in clock ticks */
};

/* fs.c: -1 with errno on failure unless said otherwise */
bool local_is_dir(const char *path);
int local_mkdir_p(const char *path, mode_t mode);
int local_rm_dir(const char *path);              /* the tree too, symlinks not followed */
char *local_read_text(const char *path);         /* whole small file; NULL on failure */
int local_write_text(const char *path, const char *text);
int local_publish_file(const char *path, const char *text, size_t len);

/* proc.c */
unsigned long long local_proc_start_time(pid_t pid);
bool local_process_alive(pid_t pid, unsigned long long start);
void local_children_of(pid_t ppid, struct mfs_strv *out);
int local_run_capture(const char *const *argv, struct mfs_buf *errout);
void local_chomp(struct mfs_buf *b);

/* config.c */
char *local_state_root_path(void);
enum mfs_code local_state_root_ready(char **out, struct mfs_err *err);
enum mfs_code local_find_bwrap(char **out, struct mfs_err *err);

/* cgroup.c */
void local_cg_describe(struct mfs_buf *notes);
void local_cg_setup(struct local_sandbox *ls, const struct mfs_sandbox_spec *spec);
void local_cg_kill_all(const char *dir);
int local_cg_remove(const char *dir);
bool local_cg_is_ours(const char *dir);

/* state.c */
void local_sandbox_path(const struct local_sandbox *ls, const char *suffix, struct mfs_buf *out);
void local_sandbox_set_paths(struct local_sandbox *ls, const char *root, const char *id);
void local_sandbox_free(struct local_sandbox *ls);
enum mfs_code local_state_save(const struct local_sandbox *ls, struct mfs_err *err);
enum mfs_code local_state_load(const char *root, const char *id,
			       struct local_sandbox **out, struct mfs_err *err);
void local_pid_publish(const struct local_sandbox *ls);
void local_pid_clear(const struct local_sandbox *ls);
enum mfs_code local_teardown(struct local_sandbox *ls, struct mfs_err *err);

/* mounts.c */
void local_build_env(const struct local_sandbox *ls, const struct mfs_kvlist *extra,
		     struct mfs_strv *envp);
void local_build_argv(const struct local_sandbox *ls, const char *bwrap, const char *cwd,
		      const char *const *cmd, const struct mfs_strv *envp, struct mfs_strv *argv);

/* view.c: the default read-only view of the host */
enum mfs_code local_view_scan_etc(struct local_sandbox *ls, struct mfs_err *err);
void local_view_system(const struct local_sandbox *ls, struct mfs_strv *argv);
void local_view_python(const struct local_sandbox *ls, const char *const *cmd,
		       const struct mfs_strv *envp, struct mfs_strv *argv);

/* scope.c: the Landlock domain that keeps the host's abstract sockets out */
int local_scope_open(const char *bwrap);   /* ruleset fd; -1: not available here */
int local_scope_enter(int ruleset);        /* in the child; -1 with errno */
void local_scope_describe(const char *bwrap, struct mfs_buf *notes);

/* spawn.c */
struct spawn_failure {        /* what the child reports through its exec-error pipe */
	int step;             /* 0: cgroup, 1: exec, 2: Landlock scope */
	int errnum;
};
struct spawn_fds {            /* the child's stdin, stdout, stderr, fd 3 (status JSON) */
	int in, out, err, json;
	int report;           /* write end of the exec-error pipe */
	int scope;            /* Landlock ruleset to enter, -1: none */
};
pid_t local_spawn_bwrap(const char *bwrap, char *const *argv, char *const *envp,
			char *const *cg_procs, long mem_rlimit_mb, const struct spawn_fds *fds);
bool local_forward_signal(pid_t init, int sig);
void local_kill_tree(const struct local_sandbox *ls, pid_t pid);

/* the ops, in their files */
enum mfs_code local_upload(struct mfs_sandbox *sb, const char *local_path,
			   const char *remote_path, struct mfs_err *err);
enum mfs_code local_download(struct mfs_sandbox *sb, const char *remote_path,
			     const char *local_path, struct mfs_err *err);
enum mfs_code local_exec(struct mfs_sandbox *sb, const struct mfs_exec_req *req,
			 const struct mfs_io *io, int *status, struct mfs_err *err);
enum mfs_code local_list(mfs_list_fn fn, void *ctx, struct mfs_err *err);
enum mfs_code local_kill(const char *id, struct mfs_err *err);

#endif
