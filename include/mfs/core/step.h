/*
 * step.h - recognising a Metaflow step command in an argv.
 *
 * Metaflow launches a task as
 *   PYTHON [-u ...] FLOW.py [top-level options] step NAME --run-id R --task-id T
 *          [--retry-count N] [--input-paths ...] ...
 * The executor uses the parsed fields for the sandbox name, its labels and a
 * one-line header; the argv itself is never changed by parsing.  Later code
 * (Metaflow support) may rewrite a top-level option, e.g. --metadata service
 * -> --metadata local, with mfs_step_set_option().
 */
#ifndef MFS_STEP_H
#define MFS_STEP_H

#include <stdbool.h>
#include <stddef.h>

#include "mfs/util/buf.h"
#include "mfs/util/err.h"

struct mfs_step {
	char *flow_file;      /* as given on the command line */
	char *flow_name;      /* basename of flow_file without .py, or set later */
	char *step;
	char *run_id;
	char *task_id;
	int attempt;          /* --retry-count, 0 when absent */
	char *datastore;      /* top-level --datastore, NULL when absent */
	char *datastore_root; /* top-level --datastore-root */
	char *metadata;       /* top-level --metadata */
	size_t file_index;    /* argv index of FLOW.py */
	size_t step_index;    /* argv index of the word "step" */
};
#define MFS_STEP_INIT { 0 }

/* True and fills *st (release it) when argv is a Metaflow step command;
 * false and leaves *st empty otherwise.  Never fails on odd input. */
bool mfs_step_parse(const char *const *argv, struct mfs_step *st);
void mfs_step_release(struct mfs_step *st);

/* Replaces the flow name guessed from the file name (e.g. by the class
 * name Metaflow reports). */
void mfs_step_set_flow_name(struct mfs_step *st, const char *name);

/* Sets top-level option --NAME (NAME without dashes) to value in argv:
 * every `--NAME V` and `--NAME=V` before the step word is rewritten in
 * place (same form), or `--NAME V` is inserted before the step word when
 * absent.  Re-parses *st.  MFS_ERR_USAGE if argv is not a step command. */
enum mfs_code mfs_step_set_option(struct mfs_strv *argv, struct mfs_step *st,
				  const char *name, const char *value, struct mfs_err *err);

/* Called for every option of a step command that has a value: top-level
 * ones (top: before the word "step") and the step's own.  idx is the
 * option's argv index, vidx the index of the word holding the value
 * (== idx for `--name=value`; idx + 2 for the file of `--config NAME
 * FILE`); value points into argv[vidx]. */
typedef void (*mfs_step_opt_fn)(void *ctx, bool top, const char *name, size_t nlen, size_t idx,
				size_t vidx, const char *value);
/* Visits the options of the step command argv, parsed into *st; nothing
 * when *st is not a step. */
void mfs_step_each_option(const char *const *argv, const struct mfs_step *st, mfs_step_opt_fn fn,
			  void *ctx);

/* "Flow/run/step/task" into out (appends). */
void mfs_step_pathspec(const struct mfs_step *st, struct mfs_buf *out);

#endif
