/*
 * answers.c - what the Daytona API's and the toolbox's answers say.
 *
 * Every body here is a peer's input, so reading one is kept apart from the
 * requests that fetch it: the ops files ask, these functions read, and
 * tests/fuzz/fuzz_daytona_json.c feeds them arbitrary bytes.  None of them
 * does I/O; a missing or mistyped field is treated as absent.
 */
#include "daytona.h"
#include "mfs/util/json.h"
#include "mfs/util/text.h"

#include <stdlib.h>
#include <string.h>

#define EXIT_CODE_RACE "failed to convert exit code to int"

json_t *dt_body_json(const struct mfs_http_resp *resp)
{
	return json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
}

void dt_state_release(struct dt_state *s)
{
	free(s->state);
	free(s->reason);
	free(s->toolbox);
	memset(s, 0, sizeof(*s));
}

void dt_state_from(struct dt_state *s, json_t *j)
{
	const char *v;
	dt_state_release(s);
	v = json_string_value(json_object_get(j, "state"));
	s->state = mfs_xstrdup(v ? v : "unknown");
	v = json_string_value(json_object_get(j, "errorReason"));
	s->reason = v ? mfs_xstrdup(v) : NULL;
	v = json_string_value(json_object_get(j, "toolboxProxyUrl"));
	s->toolbox = v && *v ? mfs_xstrdup(v) : NULL;
}

enum mfs_code dt_answer_state(const struct mfs_http_resp *resp, const char *id,
			      struct dt_state *s, struct mfs_err *err)
{
	json_t *j = dt_body_json(resp);
	enum mfs_code rc = MFS_OK;
	if (!json_is_object(j))
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "GET /sandbox/%s: not JSON", id);
	else
		dt_state_from(s, j);
	json_decref(j);
	return rc;
}

enum mfs_code dt_answer_created(const struct mfs_http_resp *resp, char **id,
				struct dt_state *s, struct mfs_err *err)
{
	json_t *j = dt_body_json(resp);
	const char *v = json_string_value(json_object_get(j, "id"));
	enum mfs_code rc = MFS_OK;
	if (!v || !*v) {
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "POST /sandbox answered 200 without an id");
	} else {
		*id = mfs_xstrdup(v);
		dt_state_from(s, j);
	}
	json_decref(j);
	return rc;
}

/* A JSON string field of the body, owned; NULL when absent or empty. */
static char *string_field(const struct mfs_http_resp *resp, const char *name)
{
	json_t *j = dt_body_json(resp);
	const char *v = json_string_value(json_object_get(j, name));
	char *out = v && *v ? mfs_xstrdup(v) : NULL;
	json_decref(j);
	return out;
}

char *dt_answer_toolbox_url(const struct mfs_http_resp *resp)
{
	return string_field(resp, "url");
}

char *dt_answer_cmd_id(const struct mfs_http_resp *resp)
{
	return string_field(resp, "cmdId");
}

void dt_answer_message(const struct mfs_http_resp *resp, struct mfs_buf *msg)
{
	json_t *j = dt_body_json(resp), *m = json_object_get(j, "message");
	if (json_is_string(m)) {
		mfs_buf_adds(msg, json_string_value(m));
	} else if (json_is_array(m)) {
		size_t i;
		json_t *x;
		json_array_foreach(m, i, x)
			if (json_is_string(x))
				mfs_buf_addf(msg, "%s%s", i ? ", " : "", json_string_value(x));
	}
	json_decref(j);
}

/* Hands one row of GET /sandbox to fn if it carries key=value and is not
 * on its way out.  Filtered here too: an API that ignored the filter must
 * not make us touch sandboxes that are not ours. */
static void list_row(json_t *row, const char *key, const char *value, mfs_list_fn fn,
		     void *ctx)
{
	struct mfs_kvlist labels = MFS_KVLIST_INIT;
	mfs_json_kvlist(json_object_get(row, "labels"), &labels);
	struct mfs_sandbox_info info = {
		.id = json_string_value(json_object_get(row, "id")),
		.state = json_string_value(json_object_get(row, "state")),
		.labels = &labels,
		.created = mfs_parse_iso8601(json_string_value(json_object_get(row, "createdAt"))),
	};
	const char *have = mfs_kvlist_get(&labels, key);
	if (info.id && have && !strcmp(have, value) &&
	    (!info.state || (strcmp(info.state, "destroyed") && strcmp(info.state, "destroying"))))
		fn(ctx, &info);
	mfs_kvlist_release(&labels);
}

enum mfs_code dt_answer_list_page(const struct mfs_http_resp *resp, const char *key,
				  const char *value, mfs_list_fn fn, void *ctx, char **cursor,
				  struct mfs_err *err)
{
	json_t *j = dt_body_json(resp), *items = json_object_get(j, "items"), *row;
	size_t i;
	*cursor = NULL;
	if (!json_is_array(items)) {
		json_decref(j);
		return mfs_fail(err, MFS_ERR_PROTOCOL, "GET /sandbox: no \"items\" array");
	}
	json_array_foreach(items, i, row)
		list_row(row, key, value, fn, ctx);
	const char *nc = json_string_value(json_object_get(j, "nextCursor"));
	if (nc && *nc)
		*cursor = mfs_xstrdup(nc);
	json_decref(j);
	return MFS_OK;
}

enum mfs_code dt_answer_dir(const struct mfs_http_resp *resp, const char *path, char **dir,
			    struct mfs_err *err)
{
	json_t *j = dt_body_json(resp);
	const char *d = json_string_value(json_object_get(j, "dir"));
	enum mfs_code rc = MFS_OK;
	if (d && d[0] == '/' && strlen(d) < 4096)
		*dir = mfs_xstrdup(d);
	else
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "GET %s: no absolute \"dir\"", path);
	json_decref(j);
	return rc;
}

char *dt_answer_session_command(const struct mfs_http_resp *resp, const char *command)
{
	json_t *j = dt_body_json(resp), *c;
	char *id = NULL;
	size_t i;
	json_array_foreach(json_object_get(j, "commands"), i, c) {
		const char *text = json_string_value(json_object_get(c, "command"));
		const char *v = json_string_value(json_object_get(c, "id"));
		if (text && !strcmp(text, command) && v && *v) {
			free(id);
			id = mfs_xstrdup(v);
		}
	}
	json_decref(j);
	return id;
}

/* The daemon reports the shell's $?, 0-255.  Anything else is no status
 * at all, and must not wrap into one: 256 taken as an int and masked to 8
 * bits would report a failed step as 0.  It is -1 (exec.c: 255). */
bool dt_answer_exit_code(const struct mfs_http_resp *resp, int *code)
{
	json_t *j = dt_body_json(resp), *ec = json_object_get(j, "exitCode");
	bool exited = json_is_integer(ec);
	if (exited) {
		json_int_t v = json_integer_value(ec);
		*code = v >= 0 && v <= 255 ? (int)v : -1;
	}
	json_decref(j);
	return exited;
}

/* The daemon appends the exit code to its file (`echo >> exit_code`), so
 * the file exists empty for a moment and a status read then fails with
 * this 500; the next read has the code.  Only this 500 is retried. */
bool dt_answer_exit_code_race(const struct mfs_http_resp *resp)
{
	return resp->status == 500 && resp->body.data &&
	       memmem(resp->body.data, resp->body.len, EXIT_CODE_RACE,
		      strlen(EXIT_CODE_RACE)) != NULL;
}
