/* rows.c - this attempt's rows for the metadata service, and only this
 * task's (include/mfs/relay/rows.h). */
#include "mfs/relay/rows.h"

#include <stdio.h>
#include <string.h>

static bool has_attempt_tag(json_t *row, int attempt, bool *tagged)
{
	char want[32];
	json_t *tags = json_object_get(row, "tags"), *t;
	size_t i;

	snprintf(want, sizeof(want), "attempt_id:%d", attempt);
	*tagged = false;
	json_array_foreach(tags, i, t) {
		const char *s = json_string_value(t);
		if (s && !strncmp(s, "attempt_id:", 11)) {
			*tagged = true;
			if (!strcmp(s, want))
				return true;
		}
	}
	return false;
}

/* A row naming another task would be posted under this task's URL; the
 * service must never see it. */
static bool row_is_this_task(const struct mfs_task_ids *ids, json_t *row)
{
	const char *keys[] = { "flow_id", "run_number", "step_name", "task_id" };
	const char *want[] = { ids->flow, ids->run_id, ids->step, ids->task_id };
	for (int i = 0; i < 4; i++) {
		json_t *v = json_object_get(row, keys[i]);
		char num[32];
		if (!v || json_is_null(v))
			continue;
		if (json_is_integer(v))
			snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		const char *s = json_is_integer(v) ? num : json_string_value(v);
		if (!s || strcmp(s, want[i]) != 0)
			return false;
	}
	return true;
}

/* rel is already known to be this task's (contain.h). */
enum mfs_code mfs_relay_collect_row(void *ctx, const char *rel, const struct mfs_buf *data,
				    time_t mtime, bool once, struct mfs_err *err)
{
	struct mfs_relay_rows *rows = ctx;
	int attempt = rows->tar->attempt;
	char prefix[32];
	const char *file = strrchr(rel, '/') + 1;

	(void)mtime;
	(void)once;
	snprintf(prefix, sizeof(prefix), "%d_artifact_", attempt);
	bool sysmeta = !strncmp(file, "sysmeta_", 8);
	bool artifact = !strncmp(file, prefix, strlen(prefix));
	if (!sysmeta && !artifact)
		return MFS_OK;
	json_t *row = json_loadb(data->data ? data->data : "", data->len, 0, NULL);
	bool tagged;
	if (!json_is_object(row) ||
	    (sysmeta && !has_attempt_tag(row, attempt, &tagged) && (tagged || attempt))) {
		json_decref(row);
		return MFS_OK;
	}
	if (!row_is_this_task(&rows->tar->ids, row)) {
		json_decref(row);
		return mfs_relay_refuse(rows->tar, rel, "holds a row of another task", err);
	}
	json_array_append_new(sysmeta ? rows->metadata : rows->artifact, row);
	return MFS_OK;
}
