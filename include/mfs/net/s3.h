/*
 * s3.h - a small S3 client on libcurl's built-in SigV4 signing.
 *
 * libcurl 7.88 signs correctly only under three rules (see
 * docs/architecture.md "S3 client"): we always send x-amz-content-sha256,
 * build every query sorted and encoded with "name=" for value-less
 * parameters, add x-amz-security-token ourselves (never for R2), and leave
 * Host alone.  Everything here follows them.
 *
 * Configuration comes from the environment (mfs_s3_open):
 *   endpoint  METAFLOW_S3_ENDPOINT_URL, else AWS_ENDPOINT_URL_S3, else
 *             AWS_ENDPOINT_URL, else https://s3.<region>.amazonaws.com
 *   region    AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region
 *             in AWS_CONFIG_FILE/~/.aws/config, else us-east-1; "auto" for R2
 *   keys      AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN],
 *             else profile AWS_PROFILE (default "default") in
 *             AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials
 *   style     MFSANDBOX_S3_ADDRESSING=path|virtual; default virtual-hosted
 *             on AWS, path-style on custom endpoints
 * Error messages name the key id and the bucket, never the secret or token.
 */
#ifndef MFS_S3_H
#define MFS_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mfs/util/buf.h"
#include "mfs/util/err.h"
#include "mfs/net/http.h"

struct mfs_s3;

/* Reads the configuration above; MFS_ERR_CONFIG names the missing variable. */
enum mfs_code mfs_s3_open(struct mfs_s3 **out, struct mfs_err *err);
void mfs_s3_close(struct mfs_s3 *s3);

/* Bounds every later request: each attempt is cut at `deadline`
 * (CLOCK_MONOTONIC seconds, as mfs_now_s; 0: none) and at
 * MFS_S3_REQUEST_TIMEOUT_MS, connecting included, and no retry starts past
 * the deadline, which ends the call with MFS_ERR_TIMEOUT.  Without it a
 * peer that accepts and never answers (or trickles) holds the caller. */
#define MFS_S3_REQUEST_TIMEOUT_MS 60000L
void mfs_s3_set_deadline(struct mfs_s3 *s3, double deadline);

/* HTTP requests sent so far (retries included), for the relay bench. */
unsigned long mfs_s3_request_count(const struct mfs_s3 *s3);

/* Splits "s3://bucket/some/key" into owned bucket and key ("" if none). */
enum mfs_code mfs_s3_parse_url(const char *url, char **bucket, char **key, struct mfs_err *err);

/* One request, signed by the three rules above: what every operation is
 * made of.  Tests build the operations the product does not need from it
 * (tests/tools/s3tool.c). */
struct mfs_s3_call {
	const char *method;
	const char *bucket;
	const char *key;                  /* NULL or "" for bucket-level calls */
	const struct mfs_kvlist *query;
	const void *body;
	size_t body_len;
	const char *content_type;         /* NULL: application/octet-stream */
	const char *out_file;
	size_t max_body;                  /* see mfs_http_req; 0: none */
	bool retry_safe;
};
/* Sends it (transport retries, S3's 500 retried); any HTTP status is MFS_OK. */
enum mfs_code mfs_s3_send(struct mfs_s3 *s3, const struct mfs_s3_call *c,
			  struct mfs_http_resp *resp, struct mfs_err *err);
/* Sends it; a non-2xx status is the error that names the fix (region,
 * credentials, bucket), MFS_ERR_NOTFOUND for a missing key or bucket. */
enum mfs_code mfs_s3_call(struct mfs_s3 *s3, const struct mfs_s3_call *c,
			  struct mfs_http_resp *resp, struct mfs_err *err);

/* GET into memory, at most max bytes (0: no bound; more is
 * MFS_ERR_PROTOCOL).  MFS_ERR_NOTFOUND when the object does not exist. */
enum mfs_code mfs_s3_get_buf(struct mfs_s3 *s3, const char *bucket, const char *key,
			     size_t max, struct mfs_buf *out, struct mfs_err *err);

/* Pure helpers, exposed for unit tests. */
/* Appends "k1=v1&k2=v2" sorted by name, each part URI-encoded; a value-less
 * parameter ("" value) is written "name=", as libcurl 7.88 signs it. */
void mfs_s3_query(struct mfs_buf *out, const struct mfs_kvlist *params);
/* Text of the first <tag>...</tag> in xml after *pos, entities decoded;
 * advances *pos past it.  false if absent. */
bool mfs_s3_xml_next(const char *xml, size_t *pos, const char *tag, struct mfs_buf *out);
/* The same, raw: where the text starts and how long it is. */
bool mfs_s3_xml_slice(const char *xml, size_t *pos, const char *tag, const char **start,
		      size_t *len);

#endif
