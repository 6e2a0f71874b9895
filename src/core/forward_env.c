/* forward_env.c - launcher credentials a step needs in its sandbox (include/mfs/core/forward_env.h). */
#include "mfs/core/forward_env.h"

#include "mfs/net/aws_creds.h"
#include "mfs/util/env.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const forwarded[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
	"AWS_REGION", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG",
	"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY",
};

static bool copy(struct mfs_kvlist *env, const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v || mfs_kvlist_get(env, name))
		return false;
	mfs_kvlist_set(env, name, v);
	return true;
}

/* R2 rejects STS session tokens: leave them out unless the user insists. */
static bool drop_session_token(void)
{
	const char *endpoint = getenv("METAFLOW_S3_ENDPOINT_URL");
	return endpoint && strstr(endpoint, "r2.cloudflarestorage.com") &&
	       !mfs_truthy(getenv("METAFLOW_SANDBOX_FORWARD_AWS_SESSION_TOKEN"));
}

unsigned mfs_forward_credentials(struct mfs_kvlist *env, const struct mfs_strv *extra)
{
	bool no_token = drop_session_token();
	unsigned n = 0;

	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++) {
		if (no_token && !strcmp(forwarded[i], "AWS_SESSION_TOKEN"))
			continue;
		n += copy(env, forwarded[i]);
	}
	for (size_t i = 0; extra && i < extra->n; i++)
		n += copy(env, extra->v[i]);
	return n;
}

enum mfs_code mfs_forward_aws_profile(struct mfs_kvlist *env, struct mfs_err *err)
{
	struct mfs_aws_creds c;

	if (mfs_kvlist_get(env, "AWS_ACCESS_KEY_ID"))
		return MFS_OK;
	enum mfs_code rc = mfs_aws_creds_load(&c, err);
	if (rc == MFS_ERR_NOTFOUND)
		return MFS_OK; /* no keys anywhere: the sandbox may have its own identity */
	if (rc != MFS_OK)
		return rc;
	if (c.from_profile) {
		mfs_kvlist_set(env, "AWS_ACCESS_KEY_ID", c.key_id);
		mfs_kvlist_set(env, "AWS_SECRET_ACCESS_KEY", c.secret);
		if (c.token && !drop_session_token())
			mfs_kvlist_set(env, "AWS_SESSION_TOKEN", c.token);
		if (c.region && !mfs_kvlist_get(env, "AWS_REGION") &&
		    !mfs_kvlist_get(env, "AWS_DEFAULT_REGION"))
			mfs_kvlist_set(env, "AWS_DEFAULT_REGION", c.region);
	}
	mfs_aws_creds_release(&c);
	return MFS_OK;
}
