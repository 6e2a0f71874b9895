/*
 * s3tool - test-only driver for src/net/s3.c, so pytest can exercise the client
 * against moto and a capturing listener.  Not installed, not in the CLI.
 * Configuration comes from the environment exactly as in mfsandbox.
 *
 *   s3tool [--part-size N] [--page-size N] get  BUCKET KEY OUTFILE
 *                                           cat  BUCKET KEY
 *                                           put  BUCKET KEY INFILE
 *                                           head BUCKET KEY
 *                                           rm   BUCKET KEY
 *                                           ls   BUCKET PREFIX
 *
 * Errors: "s3tool: <code>: <message>" on stderr, exit 1.  Success prints
 * what the operation returned and "requests <n>" on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfs/net/http.h"
#include "mfs/net/s3.h"

static bool print_key(void *ctx, const char *key, uint64_t size)
{
	(void)ctx;
	printf("%llu\t%s\n", (unsigned long long)size, key);
	return true;
}

int main(int argc, char **argv)
{
	struct mfs_err err = { 0 };
	struct mfs_s3 *s3 = NULL;
	size_t part = 0;
	int page = 0, i = 1;
	enum mfs_code rc;

	for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (!strcmp(argv[i], "--part-size"))
			part = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--page-size"))
			page = atoi(argv[i + 1]);
	}
	if (argc - i < 3) {
		fprintf(stderr, "usage: s3tool [opts] get|cat|put|head|rm|ls BUCKET KEY [FILE]\n");
		return 2;
	}
	const char *op = argv[i], *bucket = argv[i + 1], *key = argv[i + 2];
	const char *file = argc - i > 3 ? argv[i + 3] : NULL;

	rc = mfs_s3_open(&s3, &err);
	if (rc != MFS_OK)
		goto out;
	mfs_s3_set_part_size(s3, part);
	mfs_s3_set_page_size(s3, page);
	if (!strcmp(op, "get") && file) {
		rc = mfs_s3_get_file(s3, bucket, key, file, &err);
	} else if (!strcmp(op, "cat")) {
		struct mfs_buf b = MFS_BUF_INIT;
		rc = mfs_s3_get_buf(s3, bucket, key, &b, &err);
		if (rc == MFS_OK)
			fwrite(b.data, 1, b.len, stdout);
		mfs_buf_release(&b);
	} else if (!strcmp(op, "put") && file) {
		rc = mfs_s3_put_file(s3, bucket, key, file, &err);
	} else if (!strcmp(op, "head")) {
		struct mfs_s3_stat st;
		rc = mfs_s3_head(s3, bucket, key, &st, &err);
		if (rc == MFS_OK)
			printf("size %llu\netag %s\n", (unsigned long long)st.size, st.etag);
	} else if (!strcmp(op, "rm")) {
		rc = mfs_s3_delete(s3, bucket, key, &err);
	} else if (!strcmp(op, "ls")) {
		rc = mfs_s3_list(s3, bucket, key, print_key, NULL, &err);
	} else {
		fprintf(stderr, "s3tool: unknown operation %s\n", op);
		rc = MFS_ERR_USAGE;
		mfs_s3_close(s3);
		return 2;
	}
	fprintf(stderr, "requests %lu\n", mfs_s3_request_count(s3));
out:
	if (rc != MFS_OK)
		fprintf(stderr, "s3tool: %s: %s\n", mfs_code_name(err.code), err.msg);
	mfs_s3_close(s3);
	mfs_http_cleanup();
	return rc == MFS_OK ? 0 : 1;
}
