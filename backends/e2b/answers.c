/*
 * answers.c - what the E2B control plane's and envd's JSON answers say
 * (the Connect stream has its own parser, stream.c).
 *
 * Every body here is a peer's input, so reading one is kept apart from the
 * requests that fetch it: the other files ask, these functions read, and
 * tests/fuzz/fuzz_e2b_json.c feeds them arbitrary bytes.  None does I/O; a
 * missing or mistyped field is treated as absent.
 */
#include "internal.h"
#include "mfs/util/json.h"
#include "mfs/util/text.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static json_t *body_json(const struct mfs_http_resp *resp)
{
	return json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
}

void e2b_parse_version(const char *s, int v[3])
{
	v[0] = v[1] = v[2] = 0;
	for (int i = 0; i < 3 && s && *s; i++) {
		while (*s && !isdigit((unsigned char)*s))
			s++;
		v[i] = (int)strtol(s, (char **)&s, 10);
	}
}

bool e2b_version_at_least(const int v[3], int a, int b, int c)
{
	if (v[0] != a)
		return v[0] > a;
	if (v[1] != b)
		return v[1] > b;
	return v[2] >= c;
}

bool e2b_answer_message(const struct mfs_http_resp *resp, struct mfs_buf *msg)
{
	json_t *j = body_json(resp);
	const char *m = json_string_value(json_object_get(j, "message"));
	if (m)
		mfs_buf_adds(msg, m);
	json_decref(j);
	return m != NULL;
}

/* Bytes of a host name: the id and domain become envd's host
 * (https://49983-<id>.<domain>), where a '/', '@' or '?' would send the
 * step's command, environment and files to another host. */
static bool host_part(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
			return false;
	return true;
}

enum mfs_code e2b_answer_sandbox(const struct e2b_conf *c, const struct mfs_http_resp *resp,
				 struct e2b_sandbox *sb, struct mfs_err *err)
{
	json_t *j = body_json(resp);
	const char *id = json_string_value(json_object_get(j, "sandboxID"));
	const char *ver = json_string_value(json_object_get(j, "envdVersion"));
	const char *tok = json_string_value(json_object_get(j, "envdAccessToken"));
	const char *dom = json_string_value(json_object_get(j, "domain"));
	enum mfs_code rc = MFS_OK;

	if (!id || !*id || !ver) {
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "E2B answered HTTP %ld without "
			      "sandboxID/envdVersion", resp->status);
		goto out;
	}
	if (!host_part(id, 63) || strchr(id, '.') || (dom && !host_part(dom, 253)) ||
	    (tok && !mfs_one_line(tok))) {
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "E2B answered HTTP %ld with a sandboxID, "
			      "domain or envdAccessToken that cannot be used (not a host name, "
			      "or a line break in the token)", resp->status);
		goto out;
	}
	sb->base.id = mfs_xstrdup(id);
	e2b_parse_version(ver, sb->envd_ver);
	sb->token = tok ? mfs_xstrdup(tok) : NULL;
	sb->envd_url = e2b_envd_base(c, id, dom);
out:
	json_decref(j);
	return rc;
}

/* One row of GET /v2/sandboxes to fn (the server filtered by metadata). */
static void list_row(json_t *row, mfs_list_fn fn, void *ctx)
{
	struct mfs_kvlist labels = MFS_KVLIST_INIT;
	mfs_json_kvlist(json_object_get(row, "metadata"), &labels);
	struct mfs_sandbox_info info = {
		.id = json_string_value(json_object_get(row, "sandboxID")),
		.state = json_string_value(json_object_get(row, "state")),
		.labels = &labels,
		.created = mfs_parse_iso8601(json_string_value(json_object_get(row, "startedAt"))),
	};
	if (info.id)
		fn(ctx, &info);
	mfs_kvlist_release(&labels);
}

enum mfs_code e2b_answer_list_page(const struct mfs_http_resp *resp, mfs_list_fn fn,
				   void *ctx, char **next, struct mfs_err *err)
{
	json_t *arr = body_json(resp), *row;
	size_t i;
	*next = NULL;
	if (!json_is_array(arr)) {
		json_decref(arr);
		return mfs_fail(err, MFS_ERR_PROTOCOL, "GET /v2/sandboxes: not a JSON array");
	}
	json_array_foreach(arr, i, row)
		list_row(row, fn, ctx);
	json_decref(arr);
	const char *nt = mfs_http_header(resp, "x-next-token");
	if (nt && *nt)
		*next = mfs_xstrdup(nt);
	return MFS_OK;
}
