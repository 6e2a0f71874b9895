/* Which credentials reach a step's sandbox: what the datastore needs, never
 * the providers' keys unless asked, no STS token for R2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "mfs/core/forward_env.h"

static int clean(void **state)
{
	(void)state;
	const char *names[] = { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
				"AWS_DEFAULT_REGION", "AWS_REGION", "METAFLOW_S3_ENDPOINT_URL",
				"METAFLOW_SANDBOX_FORWARD_AWS_SESSION_TOKEN", "DAYTONA_API_KEY",
				"E2B_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG",
				"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unsetenv(names[i]);
	return 0;
}

static void aws_keys_forwarded_provider_keys_not(void **state)
{
	(void)state;
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "sec", 1);
	setenv("AWS_SESSION_TOKEN", "tok", 1);
	setenv("AWS_DEFAULT_REGION", "", 1); /* empty: not forwarded */
	setenv("DAYTONA_API_KEY", "dk", 1);
	setenv("E2B_API_KEY", "ek", 1);
	assert_int_equal(mfs_forward_credentials(&env, NULL), 3);
	assert_string_equal(mfs_kvlist_get(&env, "AWS_SESSION_TOKEN"), "tok");
	assert_null(mfs_kvlist_get(&env, "AWS_DEFAULT_REGION"));
	assert_null(mfs_kvlist_get(&env, "DAYTONA_API_KEY"));
	assert_null(mfs_kvlist_get(&env, "E2B_API_KEY"));
	mfs_kvlist_release(&env);
}

static void user_values_win_and_extra_names_are_forwarded(void **state)
{
	(void)state;
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	struct mfs_strv extra = MFS_STRV_INIT;
	setenv("AWS_ACCESS_KEY_ID", "launcher", 1);
	setenv("E2B_API_KEY", "ek", 1);
	mfs_kvlist_set(&env, "AWS_ACCESS_KEY_ID", "user");
	mfs_strv_push(&extra, "E2B_API_KEY");
	mfs_strv_push(&extra, "NOT_SET_ANYWHERE");
	assert_int_equal(mfs_forward_credentials(&env, &extra), 1);
	assert_string_equal(mfs_kvlist_get(&env, "AWS_ACCESS_KEY_ID"), "user");
	assert_string_equal(mfs_kvlist_get(&env, "E2B_API_KEY"), "ek");
	mfs_strv_release(&extra);
	mfs_kvlist_release(&env);
}

static void r2_drops_the_session_token_unless_asked(void **state)
{
	(void)state;
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
	setenv("AWS_SESSION_TOKEN", "tok", 1);
	setenv("METAFLOW_S3_ENDPOINT_URL", "https://acct.r2.cloudflarestorage.com", 1);
	mfs_forward_credentials(&env, NULL);
	assert_null(mfs_kvlist_get(&env, "AWS_SESSION_TOKEN"));
	assert_string_equal(mfs_kvlist_get(&env, "AWS_ACCESS_KEY_ID"), "AKID");
	mfs_kvlist_release(&env);
	setenv("METAFLOW_SANDBOX_FORWARD_AWS_SESSION_TOKEN", "true", 1);
	mfs_forward_credentials(&env, NULL);
	assert_string_equal(mfs_kvlist_get(&env, "AWS_SESSION_TOKEN"), "tok");
	mfs_kvlist_release(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(aws_keys_forwarded_provider_keys_not, clean),
		cmocka_unit_test_setup(user_values_win_and_extra_names_are_forwarded, clean),
		cmocka_unit_test_setup(r2_drops_the_session_token_unless_asked, clean),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
