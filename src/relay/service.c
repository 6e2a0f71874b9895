/* service.c - posting an attempt's rows to the Metaflow metadata service,
 * once: the spool entry's state says what was sent already. */
#include "relay_int.h"

#include <stdlib.h>
#include <string.h>

#include "mfs/net/http.h"

static void add_service_headers(struct mfs_strv *h)
{
	const char *v = getenv("METAFLOW_SERVICE_HEADERS");
	json_t *j = v && *v ? json_loads(v, 0, NULL) : NULL;
	const char *k;
	json_t *val;

	mfs_strv_push(h, "Content-Type: application/json");
	json_object_foreach(j, k, val) {
		if (json_is_string(val))
			mfs_strv_pushf(h, "%s: %s", k, json_string_value(val));
	}
	json_decref(j);
}

/* <service>/flows/F/runs/R/steps/S/tasks/T/<what> */
static void task_url(const struct mfs_relay_spec *sp, const char *what, struct mfs_buf *url)
{
	size_t ul = strlen(sp->service_url);
	const char *parts[] = { sp->flow, sp->run_id, sp->step, sp->task_id };
	const char *names[] = { "/flows/", "/runs/", "/steps/", "/tasks/" };

	while (ul && sp->service_url[ul - 1] == '/')
		ul--;
	mfs_buf_add(url, sp->service_url, ul);
	for (int i = 0; i < 4; i++) {
		mfs_buf_adds(url, names[i]);
		mfs_http_urlencode(url, parts[i], false);
	}
	mfs_buf_addf(url, "/%s", what);
}

static enum mfs_code post_rows(struct relay *r, const char *what, json_t *rows,
			       struct mfs_err *err)
{
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_strv headers = MFS_STRV_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc;

	task_url(r->spec, what, &url);
	add_service_headers(&headers);
	char *body = json_dumps(rows, JSON_COMPACT);
	/* No automatic retry: a POST whose answer was lost would add rows twice.
	 * A failure stays spooled instead. */
	struct mfs_http_req req = { .method = "POST", .url = url.data, .headers = &headers,
				    .body = body, .body_len = strlen(body),
				    .timeout_ms = 60000, .deadline = r->deadline,
				    .cancellable = true };
	mfs_http_resp_init(&resp);
	rc = mfs_http_do(&req, &resp, err);
	if (rc == MFS_OK && (resp.status < 200 || resp.status >= 300))
		rc = mfs_http_status_fail(err, &req, &resp);
	mfs_http_resp_release(&resp);
	free(body);
	mfs_strv_release(&headers);
	mfs_buf_release(&url);
	return rc;
}

/* Metadata rows first, then artifacts; the state file records each step so
 * a replay after a failure between them does not send metadata twice. */
enum mfs_code relay_send_payload(struct relay *r, struct mfs_err *err)
{
	struct mfs_buf state = MFS_BUF_INIT;
	json_t *meta = r->rows.metadata, *art = r->rows.artifact;
	enum mfs_code rc = MFS_OK;

	relay_spool_read_state(r, &state);
	if (strcmp(state.data ? state.data : "", RELAY_STATE_META_SENT) != 0 &&
	    json_array_size(meta)) {
		rc = post_rows(r, "metadata", meta, err);
		if (rc != MFS_OK)
			goto out;
		r->rep->metadata_rows = (unsigned)json_array_size(meta);
		rc = relay_spool_write(r, "state", RELAY_STATE_META_SENT "\n", err);
		if (rc != MFS_OK)
			goto out;
	}
	if (json_array_size(art)) {
		rc = post_rows(r, "artifact", art, err);
		if (rc != MFS_OK)
			goto out;
		r->rep->artifact_rows = (unsigned)json_array_size(art);
	}
	rc = relay_spool_write(r, "state", RELAY_STATE_DONE "\n", err);
out:
	mfs_buf_release(&state);
	return rc;
}
