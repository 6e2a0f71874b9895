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

struct mfs_s3;

/* AWS keys as the SDKs find them: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
 * (+AWS_SESSION_TOKEN) from the environment, else profile AWS_PROFILE
 * ("default" if unset) in AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials),
 * then in AWS_CONFIG_FILE (~/.aws/config, section "[profile NAME]").  The
 * profile's region comes from the config file either way.  Only static keys:
 * SSO, role and process profiles are refused by name. */
struct mfs_aws_creds {
	char *key_id;
	char *secret;        /* secret */
	char *token;         /* secret; NULL if none */
	char *region;        /* the profile's region, or NULL */
	char *profile;       /* the profile looked at */
	bool from_profile;   /* the keys came from a file, not the environment */
};
/* MFS_ERR_CONFIG when AWS_PROFILE names a profile that is missing or has no
 * static keys; MFS_ERR_NOTFOUND when there are no keys and no AWS_PROFILE.
 * The message names the profile and files, never a key. */
enum mfs_code mfs_aws_creds_load(struct mfs_aws_creds *c, struct mfs_err *err);
/* Frees and wipes the secrets. */
void mfs_aws_creds_release(struct mfs_aws_creds *c);

/* Reads the configuration above; MFS_ERR_CONFIG names the missing variable. */
enum mfs_code mfs_s3_open(struct mfs_s3 **out, struct mfs_err *err);
void mfs_s3_close(struct mfs_s3 *s3);

/* Tuning (tests and bench): part size for multipart uploads (>= 5 MiB on
 * real S3; files larger than it are uploaded in parts) and ListObjectsV2
 * page size.  0 keeps the default (16 MiB, 1000). */
void mfs_s3_set_part_size(struct mfs_s3 *s3, size_t bytes);
void mfs_s3_set_page_size(struct mfs_s3 *s3, int keys);
/* HTTP requests sent so far (retries included), for the relay bench. */
unsigned long mfs_s3_request_count(const struct mfs_s3 *s3);
const char *mfs_s3_region(const struct mfs_s3 *s3);

/* Splits "s3://bucket/some/key" into owned bucket and key ("" if none). */
enum mfs_code mfs_s3_parse_url(const char *url, char **bucket, char **key, struct mfs_err *err);

/* GET into memory / into a file (written only on success) / to a callback.
 * MFS_ERR_NOTFOUND when the object does not exist. */
enum mfs_code mfs_s3_get_buf(struct mfs_s3 *s3, const char *bucket, const char *key,
			     struct mfs_buf *out, struct mfs_err *err);
enum mfs_code mfs_s3_get_file(struct mfs_s3 *s3, const char *bucket, const char *key,
			      const char *path, struct mfs_err *err);

enum mfs_code mfs_s3_put_buf(struct mfs_s3 *s3, const char *bucket, const char *key,
			     const void *data, size_t len, struct mfs_err *err);
/* Streams the file; multipart (parts read one at a time) above part size. */
enum mfs_code mfs_s3_put_file(struct mfs_s3 *s3, const char *bucket, const char *key,
			      const char *path, struct mfs_err *err);

struct mfs_s3_stat {
	uint64_t size;
	char etag[80];
};
enum mfs_code mfs_s3_head(struct mfs_s3 *s3, const char *bucket, const char *key,
			  struct mfs_s3_stat *st, struct mfs_err *err);
/* Deleting a missing key succeeds, as on S3. */
enum mfs_code mfs_s3_delete(struct mfs_s3 *s3, const char *bucket, const char *key,
			    struct mfs_err *err);

/* ListObjectsV2 under prefix, following continuation tokens; on_key returns
 * false to stop early. */
enum mfs_code mfs_s3_list(struct mfs_s3 *s3, const char *bucket, const char *prefix,
			  bool (*on_key)(void *ctx, const char *key, uint64_t size), void *ctx,
			  struct mfs_err *err);

/* Pure helpers, exposed for unit tests. */
/* Appends "k1=v1&k2=v2" sorted by name, each part URI-encoded; a value-less
 * parameter ("" value) is written "name=", as libcurl 7.88 signs it. */
void mfs_s3_query(struct mfs_buf *out, const struct mfs_kvlist *params);
/* Text of the first <tag>...</tag> in xml after *pos, entities decoded;
 * advances *pos past it.  false if absent. */
bool mfs_s3_xml_next(const char *xml, size_t *pos, const char *tag, struct mfs_buf *out);

#endif
