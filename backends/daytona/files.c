/*
 * files.c - files in and out through the toolbox.
 */
#include "daytona.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void dt_abs_path(struct mfs_buf *out, const struct dt_sandbox *sb, const char *remote)
{
	if (remote[0] == '/')
		mfs_buf_adds(out, remote);
	else
		mfs_buf_addf(out, "%s/%s", sb->base.workdir, remote);
}

/* POST /files/bulk-upload with one file: "files[0].path" before
 * "files[0].file", whose bytes libcurl streams (from memory or a file). */
static enum mfs_code upload_part(struct dt_sandbox *sb, const char *remote,
				 struct mfs_http_part *file_part, const char *local_name,
				 struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, dest = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc;

	mfs_http_resp_init(&resp);
	dt_abs_path(&dest, sb, remote);
	file_part->name = "files[0].file";
	file_part->filename = "upload";
	file_part->type = "application/octet-stream";
	struct mfs_http_part form[2] = {
		{ .name = "files[0].path", .data = dest.data, .len = dest.len },
		*file_part,
	};
	/* Overwriting a file is idempotent, so the POST may be retried. */
	struct mfs_http_req req = {
		.form = form, .form_n = 2, .retries = API_RETRIES,
		.retry_safe = true, .cancellable = true, .deadline = sb->deadline,
	};
	rc = dt_toolbox_call(sb, "POST", "/files/bulk-upload", &req, &resp, &url, &hdrs, err);
	if (rc == MFS_OK && resp.status != 200)
		rc = dt_status_fail(err, &req, &resp);
	if (rc != MFS_OK && rc != MFS_ERR_CANCELLED && dt_passed(sb->deadline)) {
		rc = mfs_fail(err, MFS_ERR_TIMEOUT, "--timeout reached while uploading %s to %s",
			      local_name, dest.data);
	} else if (rc != MFS_OK) {
		rc = dt_explain_failure(sb, rc, err);
		mfs_err_prefix(err, "uploading %s to %s", local_name, dest.data);
	}
	mfs_http_resp_release(&resp);
	mfs_buf_release(&dest);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

enum mfs_code dt_upload_bytes(struct dt_sandbox *sb, const char *remote, const char *data,
			      size_t len, const char *local_name, struct mfs_err *err)
{
	struct mfs_http_part part = { .data = data, .len = len };
	return upload_part(sb, remote, &part, local_name, err);
}

/* POST /files/folder with mode 0700: mkdir -p, so sending it twice is
 * harmless. */
enum mfs_code dt_private_dir(struct dt_sandbox *sb, const char *dir, struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, path = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	struct mfs_http_req req = { .retries = API_RETRIES, .retry_safe = true, .cancellable = true,
				    .deadline = sb->deadline, .timeout_ms = API_TIMEOUT_MS };
	enum mfs_code rc;

	mfs_http_resp_init(&resp);
	mfs_buf_adds(&path, "/files/folder?path=");
	mfs_http_urlencode(&path, dir, true);
	mfs_buf_adds(&path, "&mode=" SCRIPT_DIR_MODE);
	rc = dt_toolbox_call(sb, "POST", path.data, &req, &resp, &url, &hdrs, err);
	if (rc == MFS_OK && resp.status != 201 && resp.status != 200)
		rc = dt_status_fail(err, &req, &resp);
	if (rc != MFS_OK) {
		rc = dt_explain_failure(sb, rc, err);
		mfs_err_prefix(err, "making %s", dir);
	}
	mfs_http_resp_release(&resp);
	mfs_buf_release(&path);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

/* GET one of the toolbox's directory answers ({"dir": "/abs"}): MFS_OK
 * with *dir set, MFS_ERR_NOTFOUND when this daemon has no such route. */
static enum mfs_code ask_dir(struct dt_sandbox *sb, const char *path, char **dir,
			     struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	struct mfs_http_req req = { .retries = API_RETRIES, .cancellable = true,
				    .deadline = sb->deadline, .timeout_ms = API_TIMEOUT_MS };
	enum mfs_code rc;

	mfs_http_resp_init(&resp);
	rc = dt_toolbox_call(sb, "GET", path, &req, &resp, &url, &hdrs, err);
	if (rc == MFS_OK && resp.status != 200) {
		rc = dt_status_fail(err, &req, &resp);
	} else if (rc == MFS_OK) {
		rc = dt_answer_dir(&resp, path, dir, err);
	}
	mfs_http_resp_release(&resp);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

/* The work dir as the toolbox reports it (an image's WORKDIR, else the
 * user's home; with --image the user and home may not be daytona's):
 * /work-dir, or on daemons without it /project-dir, then /user-home-dir. */
enum mfs_code dt_work_dir(struct dt_sandbox *sb, struct mfs_err *err)
{
	static const char *const routes[] = { "/work-dir", "/project-dir", "/user-home-dir" };
	enum mfs_code rc = MFS_ERR_NOTFOUND;
	for (size_t i = 0; i < sizeof(routes) / sizeof(*routes) && rc == MFS_ERR_NOTFOUND; i++)
		rc = ask_dir(sb, routes[i], &sb->base.workdir, err);
	if (rc == MFS_ERR_NOTFOUND) {
		sb->base.workdir = mfs_xstrdup(DEFAULT_WORKDIR);
		rc = MFS_OK;
	}
	if (rc != MFS_OK)
		mfs_err_prefix(err, "asking the toolbox for the work dir");
	return rc;
}

enum mfs_code dt_upload(struct mfs_sandbox *base, const char *local_path,
				    const char *remote_path, struct mfs_err *err)
{
	struct mfs_http_part part = { .file = local_path };
	return upload_part((struct dt_sandbox *)base, remote_path, &part, local_path, err);
}

enum mfs_code dt_download(struct mfs_sandbox *base, const char *remote_path,
				      const char *local_path, struct mfs_err *err)
{
	struct dt_sandbox *sb = (struct dt_sandbox *)base;
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, path = MFS_BUF_INIT, dest = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc;

	mfs_http_resp_init(&resp);
	dt_abs_path(&dest, sb, remote_path);
	mfs_buf_adds(&path, "/files/download?path=");
	mfs_http_urlencode(&path, dest.data, true);
	struct mfs_http_req req = { .out_file = local_path, .retries = API_RETRIES,
				    .cancellable = true };
	rc = dt_toolbox_call(sb, "GET", path.data, &req, &resp, &url, &hdrs, err);
	if (rc == MFS_OK && resp.status != 200) {
		rc = dt_status_fail(err, &req, &resp);
		if (resp.status != 404)
			rc = dt_explain_failure(sb, rc, err);
	} else if (rc != MFS_OK) {
		rc = dt_explain_failure(sb, rc, err);
	}
	if (rc != MFS_OK) {
		unlink(local_path);
		mfs_err_prefix(err, "downloading %s", dest.data);
	}
	mfs_http_resp_release(&resp);
	mfs_buf_release(&dest);
	mfs_buf_release(&path);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}
