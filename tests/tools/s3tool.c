/*
 * s3tool - test-only driver for src/net/s3.c, so pytest can exercise the client
 * against moto and a capturing listener.  Not installed, not in the CLI.
 * The product only reads objects; the operations it does not need (put,
 * multipart, head, delete, list) are built here on mfs_s3_call.
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
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfs/net/http.h"
#include "mfs/net/s3.h"

#define DEFAULT_PART_SIZE (16u * 1024 * 1024)
#define DEFAULT_PAGE_SIZE 1000

/* --part-size (>= 5 MiB on real S3; larger files go up in parts) and
 * --page-size (ListObjectsV2 keys per page). */
static size_t part_size = DEFAULT_PART_SIZE;
static int page_size = DEFAULT_PAGE_SIZE;

struct mfs_s3_stat {
	uint64_t size;
	char etag[80];
};

static bool xml_get(const struct mfs_buf *doc, const char *tag, struct mfs_buf *out)
{
	size_t pos = 0;
	return doc->data && mfs_s3_xml_next(doc->data, &pos, tag, out);
}

static enum mfs_code s3_get_file(struct mfs_s3 *s3, const char *bucket, const char *key,
			      const char *path, struct mfs_err *err)
{
	struct mfs_buf tmp = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc;

	/* A failed download must not leave a half-written file under path. */
	mfs_buf_addf(&tmp, "%s.part-%ld", path, (long)getpid());
	struct mfs_s3_call c = { .method = "GET", .bucket = bucket, .key = key, .out_file = tmp.data };
	mfs_http_resp_init(&resp);
	rc = mfs_s3_call(s3, &c, &resp, err);
	if (rc == MFS_OK && rename(tmp.data, path) != 0)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot rename %s to %s: %s", tmp.data, path,
			      strerror(errno));
	if (rc != MFS_OK)
		unlink(tmp.data);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&tmp);
	return rc;
}

static enum mfs_code s3_put_buf(struct mfs_s3 *s3, const char *bucket, const char *key,
			     const void *data, size_t len, struct mfs_err *err)
{
	struct mfs_s3_call c = { .method = "PUT", .bucket = bucket, .key = key, .body = data,
			     .body_len = len };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	enum mfs_code rc = mfs_s3_call(s3, &c, &resp, err);
	mfs_http_resp_release(&resp);
	return rc;
}

static enum mfs_code s3_head(struct mfs_s3 *s3, const char *bucket, const char *key,
			  struct mfs_s3_stat *st, struct mfs_err *err)
{
	struct mfs_s3_call c = { .method = "HEAD", .bucket = bucket, .key = key };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	enum mfs_code rc = mfs_s3_call(s3, &c, &resp, err);
	if (rc == MFS_OK && st) {
		const char *len = mfs_http_header(&resp, "content-length");
		const char *etag = mfs_http_header(&resp, "etag");
		st->size = len ? strtoull(len, NULL, 10) : 0;
		snprintf(st->etag, sizeof(st->etag), "%s", etag ? etag : "");
	}
	mfs_http_resp_release(&resp);
	return rc;
}

static enum mfs_code s3_delete(struct mfs_s3 *s3, const char *bucket, const char *key,
			    struct mfs_err *err)
{
	struct mfs_s3_call c = { .method = "DELETE", .bucket = bucket, .key = key };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	enum mfs_code rc = mfs_s3_call(s3, &c, &resp, err);
	mfs_http_resp_release(&resp);
	return rc;
}


static void abort_upload(struct mfs_s3 *s3, const char *bucket, const char *key,
			 const char *upload_id)
{
	struct mfs_kvlist q = MFS_KVLIST_INIT;
	struct mfs_http_resp resp;
	struct mfs_err ignored;

	/* Best effort: an unaborted upload only costs storage until a lifecycle rule. */
	mfs_kvlist_set(&q, "uploadId", upload_id);
	struct mfs_s3_call c = { .method = "DELETE", .bucket = bucket, .key = key, .query = &q };
	mfs_http_resp_init(&resp);
	mfs_s3_send(s3, &c, &resp, &ignored);
	mfs_http_resp_release(&resp);
	mfs_kvlist_release(&q);
}

static void xml_escape(struct mfs_buf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': mfs_buf_adds(out, "&amp;"); break;
		case '<': mfs_buf_adds(out, "&lt;"); break;
		case '>': mfs_buf_adds(out, "&gt;"); break;
		case '"': mfs_buf_adds(out, "&quot;"); break;
		default: mfs_buf_addch(out, *s);
		}
	}
}

static enum mfs_code put_multipart(struct mfs_s3 *s3, const char *bucket, const char *key,
				   FILE *f, const char *path, uint64_t size, struct mfs_err *err)
{
	struct mfs_kvlist q = MFS_KVLIST_INIT;
	struct mfs_buf upload_id = MFS_BUF_INIT, done = MFS_BUF_INIT, num = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	char *part = mfs_xmalloc(part_size);
	enum mfs_code rc;

	mfs_http_resp_init(&resp);
	/* Rule 2: value-less ?uploads is sent as "uploads=". */
	mfs_kvlist_set(&q, "uploads", "");
	struct mfs_s3_call c = { .method = "POST", .bucket = bucket, .key = key, .query = &q,
			     .retry_safe = true };
	rc = mfs_s3_call(s3, &c, &resp, err);
	if (rc != MFS_OK)
		goto out;
	if (!xml_get(&resp.body, "UploadId", &upload_id) || !upload_id.len) {
		rc = mfs_fail(err, MFS_ERR_PROTOCOL,
			      "S3 POST s3://%s/%s?uploads: no UploadId in the response", bucket, key);
		goto out;
	}

	mfs_buf_adds(&done, "<CompleteMultipartUpload>");
	for (unsigned n = 1; (uint64_t)(n - 1) * part_size < size; n++) {
		size_t got = fread(part, 1, part_size, f);
		if (got == 0 && ferror(f)) {
			rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", path, strerror(errno));
			goto abort;
		}
		mfs_kvlist_release(&q);
		mfs_buf_reset(&num);
		mfs_buf_addf(&num, "%u", n);
		mfs_kvlist_set(&q, "partNumber", num.data);
		mfs_kvlist_set(&q, "uploadId", upload_id.data);
		struct mfs_s3_call pc = { .method = "PUT", .bucket = bucket, .key = key, .query = &q,
				      .body = part, .body_len = got };
		mfs_http_resp_release(&resp);
		rc = mfs_s3_call(s3, &pc, &resp, err);
		if (rc != MFS_OK)
			goto abort;
		const char *etag = mfs_http_header(&resp, "etag");
		if (!etag) {
			rc = mfs_fail(err, MFS_ERR_PROTOCOL,
				      "S3 PUT s3://%s/%s part %u: no ETag in the response", bucket,
				      key, n);
			goto abort;
		}
		mfs_buf_addf(&done, "<Part><PartNumber>%u</PartNumber><ETag>", n);
		xml_escape(&done, etag);
		mfs_buf_adds(&done, "</ETag></Part>");
	}
	mfs_buf_adds(&done, "</CompleteMultipartUpload>");

	mfs_kvlist_release(&q);
	mfs_kvlist_set(&q, "uploadId", upload_id.data);
	struct mfs_s3_call cc = { .method = "POST", .bucket = bucket, .key = key, .query = &q,
			      .body = done.data, .body_len = done.len, .retry_safe = true,
			      .content_type = "application/xml" };
	mfs_http_resp_release(&resp);
	rc = mfs_s3_call(s3, &cc, &resp, err);
	/* Complete can answer 200 and still fail, with an <Error> document. */
	if (rc == MFS_OK && resp.body.data && strstr(resp.body.data, "<Error>")) {
		struct mfs_buf code = MFS_BUF_INIT;
		xml_get(&resp.body, "Code", &code);
		rc = mfs_fail(err, MFS_ERR_BACKEND, "S3 POST s3://%s/%s?uploadId: %s", bucket, key,
			      code.len ? code.data : "completion failed");
		mfs_buf_release(&code);
	}
	if (rc == MFS_OK)
		goto out;
abort:
	abort_upload(s3, bucket, key, upload_id.data);
out:
	mfs_http_resp_release(&resp);
	mfs_kvlist_release(&q);
	mfs_buf_release(&upload_id);
	mfs_buf_release(&done);
	mfs_buf_release(&num);
	free(part);
	return rc;
}

static enum mfs_code s3_put_file(struct mfs_s3 *s3, const char *bucket, const char *key,
			      const char *path, struct mfs_err *err)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	enum mfs_code rc;

	if (!f)
		return mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) != 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size > part_size) {
		rc = put_multipart(s3, bucket, key, f, path, (uint64_t)st.st_size, err);
		goto out;
	}
	/* Small enough to hash in memory: one signed PUT. */
	char *data = mfs_xmalloc((size_t)st.st_size);
	if (fread(data, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		free(data);
		rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: short read", path);
		goto out;
	}
	rc = s3_put_buf(s3, bucket, key, data, (size_t)st.st_size, err);
	free(data);
out:
	fclose(f);
	return rc;
}

/* ---- listing ---- */

static enum mfs_code s3_list(struct mfs_s3 *s3, const char *bucket, const char *prefix,
			  bool (*on_key)(void *ctx, const char *key, uint64_t size), void *ctx,
			  struct mfs_err *err)
{
	struct mfs_kvlist q = MFS_KVLIST_INIT;
	struct mfs_buf token = MFS_BUF_INIT, item = MFS_BUF_INIT, k = MFS_BUF_INIT,
		       sz = MFS_BUF_INIT, trunc = MFS_BUF_INIT, pagesz = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc = MFS_OK;

	mfs_http_resp_init(&resp);
	mfs_buf_addf(&pagesz, "%d", page_size);
	for (;;) {
		mfs_kvlist_release(&q);
		mfs_kvlist_set(&q, "list-type", "2");
		mfs_kvlist_set(&q, "max-keys", pagesz.data);
		if (prefix && *prefix)
			mfs_kvlist_set(&q, "prefix", prefix);
		if (token.len)
			mfs_kvlist_set(&q, "continuation-token", token.data);
		struct mfs_s3_call c = { .method = "GET", .bucket = bucket, .query = &q };
		mfs_http_resp_release(&resp);
		rc = mfs_s3_call(s3, &c, &resp, err);
		if (rc != MFS_OK)
			goto out;
		size_t pos = 0;
		const char *start;
		size_t len;
		while (resp.body.data && mfs_s3_xml_slice(resp.body.data, &pos, "Contents", &start, &len)) {
			size_t ip = 0, sp = 0;
			mfs_buf_reset(&item);
			mfs_buf_add(&item, start, len);
			if (!mfs_s3_xml_next(item.data, &ip, "Key", &k))
				continue;
			mfs_s3_xml_next(item.data, &sp, "Size", &sz);
			if (!on_key(ctx, k.data, sz.len ? strtoull(sz.data, NULL, 10) : 0))
				goto out;
		}
		mfs_buf_reset(&token);
		bool more = xml_get(&resp.body, "IsTruncated", &trunc) && !strcmp(trunc.data, "true");
		if (!more || !xml_get(&resp.body, "NextContinuationToken", &token) || !token.len)
			break;
	}
out:
	mfs_http_resp_release(&resp);
	mfs_kvlist_release(&q);
	mfs_buf_release(&token);
	mfs_buf_release(&item);
	mfs_buf_release(&k);
	mfs_buf_release(&sz);
	mfs_buf_release(&trunc);
	mfs_buf_release(&pagesz);
	return rc;
}

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
	if (part)
		part_size = part;
	if (page > 0)
		page_size = page;
	if (!strcmp(op, "get") && file) {
		rc = s3_get_file(s3, bucket, key, file, &err);
	} else if (!strcmp(op, "cat")) {
		struct mfs_buf b = MFS_BUF_INIT;
		rc = mfs_s3_get_buf(s3, bucket, key, 0, &b, &err);
		if (rc == MFS_OK)
			fwrite(b.data, 1, b.len, stdout);
		mfs_buf_release(&b);
	} else if (!strcmp(op, "put") && file) {
		rc = s3_put_file(s3, bucket, key, file, &err);
	} else if (!strcmp(op, "head")) {
		struct mfs_s3_stat st;
		rc = s3_head(s3, bucket, key, &st, &err);
		if (rc == MFS_OK)
			printf("size %llu\netag %s\n", (unsigned long long)st.size, st.etag);
	} else if (!strcmp(op, "rm")) {
		rc = s3_delete(s3, bucket, key, &err);
	} else if (!strcmp(op, "ls")) {
		rc = s3_list(s3, bucket, key, print_key, NULL, &err);
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
