/*
 * backend.h - the contract every sandbox provider implements.
 *
 * A backend is one file under backends/ that fills one
 * `const struct mfs_backend_ops` and nothing else is exported.  The registry
 * (registry.h) maps names to these tables.  Backends may include headers of
 * the lower layers only (err, buf, cancel, http, json, log); never the
 * executor or CLI headers: tests/structure enforces it.  A backend never
 * writes to stderr and never exits: a line for the person goes through the
 * `say` channel (util/say.h) the executor hands it, an error is returned.
 *
 * Lifetime: create() returns a struct mfs_sandbox that the executor owns;
 * destroy() removes the remote/local sandbox AND frees the struct, on every
 * path, even when it returns an error.  Every sandbox carries the labels the
 * executor puts in spec->labels (MFS_LABEL_* below) so `mfsandbox ls/kill`
 * can find it again from another process.
 */
#ifndef MFS_BACKEND_H
#define MFS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "mfs/util/buf.h"
#include "mfs/util/err.h"
#include "mfs/util/say.h"

/* How long a clean-up may take by default (removing a sandbox, stopping a
 * command that must stop: each normally answers within seconds), and the
 * variable that changes it.  The executor passes it on as
 * mfs_sandbox_spec.cleanup_timeout_s and mfs_sandbox.destroy_by. */
#define MFS_DELETE_TIMEOUT_S 30L
#define MFS_DELETE_TIMEOUT_ENV "MFSANDBOX_DELETE_TIMEOUT_S"

/* Label keys set on every sandbox mfsandbox creates. */
#define MFS_LABEL_OWNER    "mfsandbox"          /* value: "1"; marks the sandbox as ours */
#define MFS_LABEL_FLOW     "mfsandbox.flow"
#define MFS_LABEL_RUN      "mfsandbox.run"
#define MFS_LABEL_STEP     "mfsandbox.step"
#define MFS_LABEL_TASK     "mfsandbox.task"
#define MFS_LABEL_ATTEMPT  "mfsandbox.attempt"
#define MFS_LABEL_TIMEOUT  "mfsandbox.timeout"  /* seconds, for `kill --stale` */
#define MFS_LABEL_CREATED  "mfsandbox.created"  /* unix seconds */
#define MFS_LABEL_HOST     "mfsandbox.host"     /* launcher hostname, shown only */
#define MFS_LABEL_PID      "mfsandbox.pid"      /* launcher pid, for `kill --stale` */
/* The launcher's identity (include/mfs/util/launcher_id.h), for `kill --stale`. */
#define MFS_LABEL_MACHINE  "mfsandbox.machine"
#define MFS_LABEL_BOOT     "mfsandbox.boot"
#define MFS_LABEL_PIDSTART "mfsandbox.pidstart"

/* Capability flags: what a backend can honour.  The executor, and only it,
 * turns a flag asked of a backend without the cap into a refusal (exit 202)
 * for what would change the command's world (image, gpu, disk), or into one
 * warning line for a limit that only confines less (cpu, memory, network
 * none).  Backends neither warn nor refuse these themselves. */
enum {
	MFS_CAP_CPU      = 1u << 0, /* --cpu is enforced */
	MFS_CAP_MEMORY   = 1u << 1, /* --memory is enforced */
	MFS_CAP_DISK     = 1u << 2, /* --disk is provided; else refused */
	MFS_CAP_GPU      = 1u << 3, /* --gpu is provided; else refused */
	MFS_CAP_IMAGE    = 1u << 4, /* --image selects the environment; else refused */
	MFS_CAP_NETWORK  = 1u << 5, /* --network none is enforced */
	MFS_CAP_STREAM   = 1u << 6, /* output arrives while the command runs */
	MFS_CAP_DOWNLOAD = 1u << 7,
	MFS_CAP_LIST     = 1u << 8, /* ls / kill work */
	MFS_CAP_HOST_BINDS = 1u << 9, /* --ro-bind/--bind: host paths shown inside */
};

struct mfs_sandbox_spec {
	const char *name;                 /* e.g. "mfs-HelloFlow-123-start-2-0"; backends may shorten */
	const struct mfs_kvlist *labels;  /* MFS_LABEL_* and user labels */
	const char *image;                /* NULL: backend default */
	double cpu;                       /* 0: backend default */
	long memory_mb;                   /* 0: backend default */
	long disk_gb;                     /* 0: backend default */
	const char *gpu;                  /* NULL: none */
	long timeout_s;                   /* whole sandbox lifetime cap; 0: none */
	/* What is left of --timeout when create() starts (0: no bound).  A
	 * create still waiting for its sandbox then gives up with
	 * MFS_ERR_TIMEOUT, leaving nothing behind; a backend may hold the
	 * sandbox's uploads to the same deadline. */
	long create_timeout_s;
	/* How long each clean-up may take once it starts, in seconds (0: no
	 * bound), and a second signal gives up on it at once: removing what a
	 * failed create made (then mfs_say_not_removed() names what may be
	 * left), and stopping a command past its timeout or after a signal
	 * (the sandbox's delete ends it anyway).  destroy() has destroy_by. */
	long cleanup_timeout_s;
	const struct mfs_kvlist *env;     /* environment for every command (may hold secrets) */
	const char *network;              /* "host", "none" or NULL for the backend default */
	const struct mfs_strv *rw_paths;  /* host dirs bound read-write (local backend only) */
	/* --ro-bind / --bind HOST[:DEST]: key DEST (absolute, inside), value
	 * HOST (absolute, existing); only for MFS_CAP_HOST_BINDS backends */
	const struct mfs_kvlist *ro_binds;
	const struct mfs_kvlist *rw_binds;
	/* Where create() speaks (progress, notes); owned by the executor,
	 * which also stores it in the sandbox's `say` for later ops. */
	const struct mfs_say *say;
};

/* Base of every backend's private sandbox struct (embed it first). */
struct mfs_sandbox {
	const struct mfs_backend_ops *ops;
	char *id;       /* provider's id; owned */
	char *workdir;  /* absolute path of the writable work dir inside; owned */
	/* Message channel, set by the executor after create(); may be NULL. */
	const struct mfs_say *say;
	/* Set by the executor before destroy(): the mfs_now_s() second at
	 * which removing the sandbox gives up (MFS_ERR_TIMEOUT), and a second
	 * signal gives up at once (MFS_ERR_CANCELLED), so that a delete that
	 * hangs cannot hold the launcher.  0: no bound. */
	double destroy_by;
};

/* The one line (MFS_SAY_WARN) for a sandbox that may outlive the run
 * because removing it failed: given up after bound_s (MFS_ERR_TIMEOUT) or
 * on a second signal (MFS_ERR_CANCELLED), else `detail` says why.  `what`
 * names it: its id, or the label that finds it (then `kill --stale`, which
 * finds it once this launcher is gone, is the remedy in every case).  The
 * executor says it after destroy(), a backend after a failed create. */
static inline void mfs_say_not_removed(const struct mfs_say *say, const char *backend,
				       const char *what, bool is_id, enum mfs_code why,
				       long bound_s, const char *detail)
{
	if (why == MFS_ERR_TIMEOUT)
		mfs_sayf(say, MFS_SAY_WARN, "gave up removing %s sandbox %s after %ld s (%s); it "
			 "may still exist: remove it with: mfsandbox kill --backend %s --stale",
			 backend, what, bound_s, MFS_DELETE_TIMEOUT_ENV, backend);
	else if (why == MFS_ERR_CANCELLED)
		mfs_sayf(say, MFS_SAY_WARN, "gave up removing %s sandbox %s on a second signal; "
			 "it may still exist: remove it with: mfsandbox kill --backend %s --stale",
			 backend, what, backend);
	else
		mfs_sayf(say, MFS_SAY_WARN, "could not remove %s sandbox %s: %s (retry with: "
			 "mfsandbox kill --backend %s %s)", backend, what, detail, backend,
			 is_id ? what : "--stale");
}

enum mfs_stream { MFS_STDOUT = 1, MFS_STDERR = 2 };

/* Output sink: called with raw bytes as they arrive, in order per stream. */
struct mfs_io {
	void (*write)(void *ctx, enum mfs_stream stream, const char *data, size_t len);
	void *ctx;
};

struct mfs_exec_req {
	const char *const *argv;         /* NULL-terminated; run exactly, no shell added by us */
	const char *cwd;                 /* NULL: sandbox workdir */
	const struct mfs_kvlist *env;    /* extra env for this command only (may hold secrets) */
	long timeout_s;                  /* 0: none; on expiry kill the tree, return MFS_ERR_TIMEOUT */
};

/* One sandbox as seen by `mfsandbox ls`. Strings are borrowed for the callback. */
struct mfs_sandbox_info {
	const char *id;
	const char *state;               /* provider's word, e.g. "started", "running" */
	const struct mfs_kvlist *labels;
	time_t created;                  /* 0 if unknown */
};

typedef void (*mfs_list_fn)(void *ctx, const struct mfs_sandbox_info *info);

struct mfs_backend_ops {
	const char *name;
	const char *summary;   /* one line for `mfsandbox backends` */
	unsigned caps;         /* MFS_CAP_* it can honour in some configuration */

	/* Optional, when what holds depends on the spec (Daytona sizes a
	 * sandbox only with --image; a size within the default snapshot's is
	 * met anyway): the MFS_CAP_* honoured for this spec.  For a flag asked
	 * but not covered it appends to `why` one clause saying why and what to
	 * do instead, which the executor quotes.  NULL: `caps`, always.  Pure:
	 * no I/O. */
	unsigned (*caps_for)(const struct mfs_sandbox_spec *spec, struct mfs_buf *why);

	/* Usable here?  MFS_OK, or an error whose message says what is missing
	 * (env var, package).  `notes` gets limits it cannot enforce. No network. */
	enum mfs_code (*probe)(struct mfs_buf *notes, struct mfs_err *err);

	enum mfs_code (*create)(const struct mfs_sandbox_spec *spec,
				struct mfs_sandbox **out, struct mfs_err *err);

	/* Copies a local file into the sandbox; remote_path absolute or relative
	 * to workdir; parent dirs are created. */
	enum mfs_code (*upload)(struct mfs_sandbox *sb, const char *local_path,
				const char *remote_path, struct mfs_err *err);

	enum mfs_code (*download)(struct mfs_sandbox *sb, const char *remote_path,
				  const char *local_path, struct mfs_err *err);

	/* Runs req->argv, streaming output to io, and stores the shell-style
	 * status (0..255; 128+N when killed by signal N) in *status.  Polls
	 * cancel.h: on cancellation forwards the signal, waits a short grace
	 * period, kills, and returns MFS_ERR_CANCELLED. */
	enum mfs_code (*exec)(struct mfs_sandbox *sb, const struct mfs_exec_req *req,
			      const struct mfs_io *io, int *status, struct mfs_err *err);

	/* Removes the sandbox and frees sb, whatever happens; gives up as
	 * sb->destroy_by says, and the sandbox may then still exist. */
	enum mfs_code (*destroy)(struct mfs_sandbox *sb, struct mfs_err *err);

	/* --keep: frees sb and leaves the sandbox running, for a person to
	 * reach (describe) and `mfsandbox kill` to remove.  No I/O. */
	void (*release)(struct mfs_sandbox *sb);

	/* Sandboxes carrying MFS_LABEL_OWNER that still exist. */
	enum mfs_code (*list)(mfs_list_fn fn, void *ctx, struct mfs_err *err);

	/* Destroys a sandbox by id (from list); MFS_ERR_NOTFOUND if gone. */
	enum mfs_code (*kill)(const char *id, struct mfs_err *err);

	/* For --keep: how a person reaches the sandbox (one or two lines). */
	void (*describe)(const struct mfs_sandbox *sb, struct mfs_buf *out);
};

#endif
