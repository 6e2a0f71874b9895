/*
 * admin.c - delete, and the label queries behind `mfsandbox ls` and `kill`.
 */
#include "daytona.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/util/text.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- delete / kill / list ---- */

/* DELETE with 409 (a transition is pending) retried; *gone when 404. */
enum mfs_code dt_delete_sandbox(const struct dt_conf *c, const char *id, bool *gone,
				    struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, path = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	struct mfs_http_req req;
	double until = mfs_now_s() + DELETE_WAIT_S;
	enum mfs_code rc;
	long wait = 200;

	mfs_http_resp_init(&resp);
	mfs_buf_adds(&path, "/sandbox/");
	mfs_http_urlencode(&path, id, false);
	if (gone)
		*gone = false;
	for (;;) {
		mfs_strv_release(&hdrs);
		/* Not cancellable: this runs on the way out of a cancelled run. */
		rc = dt_api_call(c, "DELETE", path.data, NULL, API_RETRIES, API_TIMEOUT_MS, false,
			      &req, &resp, &url, &hdrs, err);
		if (rc != MFS_OK)
			break;
		if (resp.status == 404) {
			if (gone)
				*gone = true;
			break;
		}
		if (resp.status == 409 && dt_passed(c->deadline)) {
			rc = mfs_fail(err, MFS_ERR_TIMEOUT, "still changing state (409) at the bound");
			break;
		}
		if (resp.status == 409 && mfs_now_s() < until) {
			/* A second signal ends the wait (the next call refuses). */
			mfs_cancel_sleep_until_count(dt_ms_until(c->deadline, wait), 2);
			wait = wait * 2 > 2000 ? 2000 : wait * 2;
			continue;
		}
		if (resp.status != 200 && resp.status != 204)
			rc = dt_status_fail(err, &req, &resp);
		break;
	}
	if (rc != MFS_OK)
		mfs_err_prefix(err, "deleting Daytona sandbox %s", id);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&path);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

/* Every sandbox whose labels include key=value, page by page.  Not
 * cancellable when it looks for a sandbox to clean up after a signal. */
enum mfs_code dt_list_by_label(const struct dt_conf *c, const char *key, const char *value,
				   bool cancellable, mfs_list_fn fn, void *ctx,
				   struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, path = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	struct mfs_http_req req;
	char *cursor = NULL;
	int pages = 0;
	enum mfs_code rc = MFS_OK;
	json_t *want = json_pack("{s:s}", key, value);
	char *want_s = json_dumps(want, JSON_COMPACT);
	json_decref(want);
	if (!want_s)
		abort(); /* jansson fails here only on allocation */

	mfs_http_resp_init(&resp);
	do {
		mfs_buf_reset(&path);
		mfs_buf_adds(&path, "/sandbox?limit=100&labels=");
		mfs_http_urlencode(&path, want_s, false);
		if (cursor) {
			mfs_buf_adds(&path, "&cursor=");
			mfs_http_urlencode(&path, cursor, false);
		}
		mfs_strv_release(&hdrs);
		rc = dt_api_call(c, "GET", path.data, NULL, API_RETRIES, API_TIMEOUT_MS, cancellable,
			      &req, &resp, &url, &hdrs, err);
		if (rc != MFS_OK)
			break;
		if (resp.status != 200) {
			rc = dt_status_fail(err, &req, &resp);
			break;
		}
		char *prev = cursor;
		rc = dt_answer_list_page(&resp, key, value, fn, ctx, &cursor, err);
		if (rc == MFS_OK)
			rc = mfs_http_page_check(prev, cursor, &pages, "GET /sandbox", err);
		free(prev);
		if (rc != MFS_OK)
			break;
	} while (cursor);
	free(cursor);
	free(want_s);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&path);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

enum mfs_code dt_list(mfs_list_fn fn, void *ctx, struct mfs_err *err)
{
	struct dt_conf c;
	enum mfs_code rc = dt_conf_load(&c, err);
	if (rc == MFS_OK)
		rc = dt_list_by_label(&c, MFS_LABEL_OWNER, "1", true, fn, ctx, err);
	dt_conf_release(&c);
	return rc;
}

enum mfs_code dt_kill(const char *id, struct mfs_err *err)
{
	struct dt_conf c;
	bool gone = false;
	enum mfs_code rc = dt_conf_load(&c, err);
	if (rc == MFS_OK)
		rc = dt_delete_sandbox(&c, id, &gone, err);
	if (rc == MFS_OK && gone)
		rc = mfs_fail(err, MFS_ERR_NOTFOUND, "Daytona sandbox %s does not exist (already gone)",
			      id);
	dt_conf_release(&c);
	return rc;
}
