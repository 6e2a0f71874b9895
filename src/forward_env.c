/* forward_env.c - launcher credentials a step needs in its sandbox (include/mfs/forward_env.h). */
#include "mfs/forward_env.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const forwarded[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
	"AWS_REGION", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG",
	"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY",
};

static bool truthy(const char *v)
{
	return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"));
}

static bool copy(struct mfs_kvlist *env, const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v || mfs_kvlist_get(env, name))
		return false;
	mfs_kvlist_set(env, name, v);
	return true;
}

unsigned mfs_forward_credentials(struct mfs_kvlist *env, const struct mfs_strv *extra)
{
	const char *endpoint = getenv("METAFLOW_S3_ENDPOINT_URL");
	bool r2 = endpoint && strstr(endpoint, "r2.cloudflarestorage.com");
	bool keep_token = truthy(getenv("METAFLOW_SANDBOX_FORWARD_AWS_SESSION_TOKEN"));
	unsigned n = 0;

	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++) {
		if (r2 && !keep_token && !strcmp(forwarded[i], "AWS_SESSION_TOKEN"))
			continue;
		n += copy(env, forwarded[i]);
	}
	for (size_t i = 0; extra && i < extra->n; i++)
		n += copy(env, extra->v[i]);
	return n;
}
