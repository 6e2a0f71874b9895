/*
 * daytonatool - drives backends/daytona/ through its ops table alone, for
 * what the CLI cannot do in one run: many commands in one sandbox.
 *
 *   daytonatool loop N
 *
 * Creates one sandbox (DAYTONA_* from the environment), runs N commands
 * `exit K` (K = i % 256, so every status is used), checks each status and
 * deletes the sandbox.  Prints "ok N" or the first mismatch.
 * Exit: 0 when all N statuses came back right; 1 on a mismatch; 200 +
 * mfs_code on a backend error (message on stderr).
 */
#include "mfs/backend.h"
#include "mfs/net/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct mfs_backend_ops mfs_daytona_ops;

static int fail(const struct mfs_err *err)
{
	fprintf(stderr, "daytonatool: %s: %s\n", mfs_code_name(err->code), err->msg);
	return 200 + (int)err->code;
}

/* Runs n commands in sb; 0 when every status matched. */
static int loop(struct mfs_sandbox *sb, long n, struct mfs_err *err)
{
	for (long i = 0; i < n; i++) {
		char cmd[32];
		int status = -1;
		snprintf(cmd, sizeof(cmd), "exit %ld", i % 256);
		const char *argv[] = { "sh", "-c", cmd, NULL };
		struct mfs_exec_req req = { .argv = argv, .timeout_s = 120 };
		enum mfs_code rc = mfs_daytona_ops.exec(sb, &req, NULL, &status, err);
		if (rc != MFS_OK) {
			fprintf(stderr, "daytonatool: command %ld of %ld failed\n", i + 1, n);
			return fail(err);
		}
		if (status != (int)(i % 256)) {
			printf("command %ld: status %d, want %ld\n", i + 1, status, i % 256);
			return 1;
		}
	}
	printf("ok %ld\n", n);
	return 0;
}

int main(int argc, char **argv)
{
	struct mfs_err err = { 0 };
	struct mfs_sandbox *sb = NULL;
	struct mfs_kvlist labels = MFS_KVLIST_INIT;
	int status;

	if (argc != 3 || strcmp(argv[1], "loop") != 0 || atol(argv[2]) <= 0) {
		fprintf(stderr, "usage: daytonatool loop N\n");
		return 2;
	}
	mfs_kvlist_set(&labels, MFS_LABEL_OWNER, "1");
	struct mfs_sandbox_spec spec = { .name = "daytonatool", .labels = &labels };
	if (mfs_daytona_ops.create(&spec, &sb, &err) != MFS_OK) {
		status = fail(&err);
	} else {
		status = loop(sb, atol(argv[2]), &err);
		if (mfs_daytona_ops.destroy(sb, &err) != MFS_OK && status == 0)
			status = fail(&err);
	}
	mfs_kvlist_release(&labels);
	mfs_http_cleanup();
	return status;
}
