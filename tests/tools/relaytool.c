/*
 * relaytool - test-only driver for src/relay/relay.c (the real entry points are
 * the executor's finish hook and `mfsandbox relay replay`).
 *
 *   relaytool run --flow F --run R --step S --task T [--attempt N]
 *                 --ds-type s3|local --ds-root ROOT --metadata local|service
 *                 [--service-url URL] [--local-root DIR] [--spool DIR]
 *   relaytool replay PATHSPEC [--spool DIR]
 *
 * Prints the report as "key value" lines; the warning, if any, on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfs/net/http.h"
#include "mfs/relay/relay.h"

int main(int argc, char **argv)
{
	struct mfs_relay_spec sp = { .attempt = 0 };
	struct mfs_err err = { 0 };
	enum mfs_code rc;
	const char *pathspec = NULL;

	if (argc < 2)
		return 2;
	if (mfs_relay_timeout_from_env(&sp.timeout_s, &err) != MFS_OK) {
		fprintf(stderr, "relaytool: %s\n", err.msg);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (a[0] != '-') {
			pathspec = a;
			continue;
		}
		if (!v)
			return 2;
		i++;
		if (!strcmp(a, "--flow")) sp.flow = v;
		else if (!strcmp(a, "--run")) sp.run_id = v;
		else if (!strcmp(a, "--step")) sp.step = v;
		else if (!strcmp(a, "--task")) sp.task_id = v;
		else if (!strcmp(a, "--attempt")) sp.attempt = atoi(v);
		else if (!strcmp(a, "--ds-type")) sp.ds_type = v;
		else if (!strcmp(a, "--ds-root")) sp.ds_root = v;
		else if (!strcmp(a, "--metadata")) sp.metadata = v;
		else if (!strcmp(a, "--service-url")) sp.service_url = v;
		else if (!strcmp(a, "--local-root")) sp.local_root = v;
		else if (!strcmp(a, "--spool")) sp.spool_dir = v;
		else return 2;
	}
	if (!strcmp(argv[1], "run")) {
		struct mfs_relay_report rep;
		rc = mfs_relay_run(&sp, &rep, &err);
		if (rc == MFS_OK) {
			printf("found %d\nalready_done %d\nspooled %d\nfiles_merged %u\n"
			       "metadata_rows %u\nartifact_rows %u\ns3_requests %lu\n",
			       rep.found, rep.already_done, rep.spooled, rep.files_merged,
			       rep.metadata_rows, rep.artifact_rows, rep.s3_requests);
			if (rep.warning[0])
				fprintf(stderr, "%s\n", rep.warning);
		}
	} else if (!strcmp(argv[1], "replay")) {
		unsigned done, failed;
		rc = mfs_relay_replay(pathspec, sp.spool_dir, sp.timeout_s, &done, &failed, &err);
		printf("done %u\nfailed %u\n", done, failed);
	} else {
		return 2;
	}
	if (rc != MFS_OK)
		fprintf(stderr, "relaytool: %s: %s\n", mfs_code_name(err.code), err.msg);
	mfs_http_cleanup();
	return rc == MFS_OK ? 0 : 1;
}
