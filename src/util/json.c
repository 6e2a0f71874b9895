/* json.c - helpers over jansson for untrusted answers (include/mfs/util/json.h). */
#include "mfs/util/json.h"

void mfs_json_kvlist(const json_t *obj, struct mfs_kvlist *out)
{
	const char *k;
	json_t *v;

	/* json_object_foreach does not take a const object; it only reads it. */
	json_object_foreach((json_t *)obj, k, v)
		if (json_is_string(v))
			mfs_kvlist_set(out, k, json_string_value(v));
}
