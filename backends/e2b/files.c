/*
 * files.c - envd's /files: upload (raw from envd 0.5.7, multipart before)
 * and download.  Paths relative to the work dir are made absolute here, and
 * the user is always named: envd < 0.4.0 has no default user.
 */
#include "internal.h"
#include "mfs/util/buf.h"
#include "mfs/util/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---- files ---- */

static void files_url(struct mfs_buf *url, const struct e2b_sandbox *sb, const char *remote)
{
	mfs_buf_addf(url, "%s/files?path=", sb->envd_url);
	if (remote[0] == '/') {
		mfs_http_urlencode(url, remote, true);
	} else {
		struct mfs_buf p = MFS_BUF_INIT;
		mfs_buf_addf(&p, "%s/%s", sb->base.workdir, remote);
		mfs_http_urlencode(url, p.data, true);
		mfs_buf_release(&p);
	}
	mfs_buf_adds(url, "&username=user");
}

enum mfs_code e2b_upload(struct mfs_sandbox *base, const char *local_path,
				const char *remote_path, struct mfs_err *err)
{
	struct e2b_sandbox *sb = (struct e2b_sandbox *)base;
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	/* multipart/form-data with one part named "file": what envd < 0.5.7 takes. */
	struct mfs_http_part part = { .name = "file", .file = local_path, .filename = "upload",
				      .type = "application/octet-stream" };
	enum mfs_code rc = MFS_OK;

	mfs_http_resp_init(&resp);
	e2b_envd_headers(&hdrs, sb);
	files_url(&url, sb, remote_path);
	/* Overwriting a file is idempotent, so the POST may be retried. */
	struct mfs_http_req req = {
		.method = "POST", .url = url.data, .headers = &hdrs,
		.timeout_ms = 0, .retries = API_RETRIES, .retry_safe = true, .cancellable = true,
		.deadline = sb->deadline,
	};
	if (e2b_version_at_least(sb->envd_ver, 0, 5, 7)) {
		mfs_strv_push(&hdrs, "Content-Type: application/octet-stream");
		req.body_file = local_path;
	} else {
		req.form = &part;
		req.form_n = 1;
	}
	rc = mfs_http_do(&req, &resp, err);
	if (rc == MFS_OK && resp.status != 200)
		rc = e2b_envd_status_fail(err, sb, &req, &resp);
	if (rc == MFS_ERR_TIMEOUT)
		mfs_fail(err, rc, "--timeout reached while uploading %s to %s", local_path,
			 remote_path);
	else if (rc != MFS_OK)
		mfs_err_prefix(err, "uploading %s to %s", local_path, remote_path);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

enum mfs_code e2b_download(struct mfs_sandbox *base, const char *remote_path,
				  const char *local_path, struct mfs_err *err)
{
	struct e2b_sandbox *sb = (struct e2b_sandbox *)base;
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc;

	mfs_http_resp_init(&resp);
	e2b_envd_headers(&hdrs, sb);
	files_url(&url, sb, remote_path);
	struct mfs_http_req req = {
		.method = "GET", .url = url.data, .headers = &hdrs, .out_file = local_path,
		.retries = API_RETRIES, .cancellable = true,
	};
	rc = mfs_http_do(&req, &resp, err);
	if (rc == MFS_OK && resp.status != 200)
		rc = e2b_envd_status_fail(err, sb, &req, &resp);
	if (rc != MFS_OK)
		mfs_err_prefix(err, "downloading %s", remote_path);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}
