/* fuzz_daytona_json.c - every reader of a Daytona API or toolbox answer
 * (backends/daytona/answers.c, and the error-body path of api.c's
 * dt_status_fail), through the backend's private daytona.h.
 *
 * Input: a byte choosing the answer kind (and, for error bodies, the
 * status), then the body as the server sent it. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "../../backends/daytona/daytona.h"

static void state_kinds(unsigned kind, const struct mfs_http_resp *resp, struct mfs_err *err)
{
	struct dt_state s = { 0 };
	char *id = NULL;
	if (kind == 0)
		dt_answer_state(resp, "sb-1", &s, err);
	else
		dt_answer_created(resp, &id, &s, err);
	free(id);
	dt_state_release(&s);
}

static void list_kind(const struct mfs_http_resp *resp, struct mfs_err *err)
{
	size_t seen = 0;
	char *cursor = NULL;
	dt_answer_list_page(resp, MFS_LABEL_OWNER, "1", fuzz_read_row, &seen, &cursor, err);
	free(cursor);
}

static void error_kind(unsigned sel, const struct mfs_http_resp *resp, struct mfs_err *err)
{
	static const long statuses[] = { 400, 401, 403, 404, 409, 429, 500, 502 };
	struct mfs_http_resp r = *resp;
	r.status = statuses[sel % 8];
	struct mfs_http_req req = { .method = "GET",
				    .url = "https://toolbox.example/sb-1/process/session/s" };
	dt_status_fail(err, &req, &r);
	dt_answer_exit_code_race(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct mfs_http_resp resp;
	struct mfs_err err;
	char *s = NULL;
	int code = 0;
	mfs_http_resp_init(&resp);
	mfs_err_clear(&err);
	resp.status = 200;
	mfs_buf_add(&resp.body, data + 1, size - 1);
	switch (data[0] % 8) {
	case 0: case 1: state_kinds(data[0] % 8, &resp, &err); break;
	case 2: s = dt_answer_toolbox_url(&resp); break;
	case 3: list_kind(&resp, &err); break;
	case 4: dt_answer_dir(&resp, "/work-dir", &s, &err); break;
	case 5: s = dt_answer_session_command(&resp, "sh /tmp/.mfs-0a1b/mfs-1-0.sh"); break;
	case 6: free(dt_answer_cmd_id(&resp)); dt_answer_exit_code(&resp, &code); break;
	default: error_kind(data[0] / 8, &resp, &err); break;
	}
	free(s);
	mfs_http_resp_release(&resp);
	return 0;
}
