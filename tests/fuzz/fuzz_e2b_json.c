/* fuzz_e2b_json.c - every reader of an E2B control-plane or envd JSON
 * answer other than the Connect stream (backends/e2b/answers.c, and the
 * error-body path of api.c), through the backend's private internal.h.
 *
 * Input: a byte choosing the answer kind (and, for error bodies, the
 * status, or whether a list page carries an X-Next-Token), then the body
 * as the server sent it. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "../../backends/e2b/internal.h"

static void sandbox_kind(const struct mfs_http_resp *resp, struct mfs_err *err)
{
	struct e2b_conf c = { .domain = "e2b.app", .api_url = "https://api.e2b.app" };
	struct e2b_sandbox *sb = mfs_xcalloc(1, sizeof(*sb));
	if (e2b_answer_sandbox(&c, resp, sb, err) == MFS_OK)
		e2b_version_at_least(sb->envd_ver, 0, 5, 7);
	e2b_sandbox_free(sb);
}

static void list_kind(unsigned sel, struct mfs_http_resp *resp, struct mfs_err *err)
{
	size_t seen = 0;
	char *next = NULL;
	if (sel & 1)
		mfs_kvlist_set(&resp->headers, "x-next-token", "100");
	e2b_answer_list_page(resp, fuzz_read_row, &seen, &next, err);
	free(next);
}

static void error_kind(unsigned sel, struct mfs_http_resp *resp, struct mfs_err *err)
{
	static const long statuses[] = { 400, 401, 403, 404, 409, 429, 500, 502 };
	struct e2b_sandbox sb = { .base = { .id = "i1abc" } };
	struct mfs_http_req req = { .method = "POST",
				    .url = "https://49983-i1abc.e2b.app/process.Process/Start" };
	resp->status = statuses[sel % 8];
	if (sel & 8)
		e2b_envd_status_fail(err, &sb, &req, resp);
	else
		e2b_status_fail(err, &req, resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct mfs_http_resp resp;
	struct mfs_err err;
	mfs_http_resp_init(&resp);
	mfs_err_clear(&err);
	resp.status = 201;
	mfs_buf_add(&resp.body, data + 1, size - 1);
	switch (data[0] % 4) {
	case 0: sandbox_kind(&resp, &err); break;
	case 1: list_kind(data[0] / 4, &resp, &err); break;
	case 2: error_kind(data[0] / 4, &resp, &err); break;
	default: {
		int v[3];
		e2b_parse_version(resp.body.data, v);
		break;
	}
	}
	mfs_http_resp_release(&resp);
	return 0;
}
