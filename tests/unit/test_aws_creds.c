/* AWS credentials as the SDKs find them (mfs_aws_creds_load in src/net/aws_creds.c) and
 * what a step's sandbox gets from a profile (mfs_forward_aws_profile): the
 * launcher may have keys only in ~/.aws, the sandbox never has that file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfs/core/forward_env.h"
#include "mfs/net/aws_creds.h"

static char home[64];

static const char *const vars[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
	"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_REGION", "AWS_DEFAULT_REGION",
	"METAFLOW_S3_ENDPOINT_URL", "METAFLOW_SANDBOX_FORWARD_AWS_SESSION_TOKEN",
};

static void put(const char *rel, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/.aws", home);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/%s", home, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(home, sizeof(home), "/tmp/mfs-aws-test-XXXXXX");
	if (!mkdtemp(home))
		return -1;
	setenv("HOME", home, 1);
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	const char *files[] = { ".aws/credentials", ".aws/config", "other-creds", "other-config" };
	char path[256];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", home, files[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/.aws", home);
	rmdir(path);
	return rmdir(home);
}

static const char creds_file[] =
	"# comment\n"
	"[default]\n"
	"aws_access_key_id=DEFAULTID\n"
	"aws_secret_access_key=defaultsecret\n"
	"\n"
	"[ci]\n"
	"  ; indented comment\n"
	"  aws_access_key_id   =  CIID  \n"
	"aws_secret_access_key = ci/secret+with=equals\n"
	"aws_session_token = ci-token\n"
	"[sso]\n"
	"sso_start_url = https://example.awsapps.com/start\n";

static const char config_file[] =
	"[default]\n"
	"region = eu-west-1\n"
	"[profile ci]\n"
	"region = ap-south-1\n"
	"[profile cfgonly]\n"
	"region = us-west-2\n"
	"aws_access_key_id = CFGID\n"
	"aws_secret_access_key = cfgsecret\n"
	"[ci]\n"
	"region = wrong-section-name\n";

/* libcurl puts the key id in the Authorization line and splits "id:secret"
 * at the first ':': a key with a file's newline once became a header line
 * of its own. */
static void key_with_a_line_break_is_one_line_without_it(void **state)
{
	(void)state;
	const char *bad[][3] = {
		{ "AKIDEXAMPLE\n", "s3cr3t", NULL }, { "AKIDEXAMPLE", "s3cr3t\r\n", NULL },
		{ "AKIDEXAMPLE", "s3cr3t", "t0k3n\n" }, { "AKID:EXAMPLE", "s3cr3t", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mfs_aws_creds c;
		struct mfs_err err = { 0 };
		setenv("AWS_ACCESS_KEY_ID", bad[i][0], 1);
		setenv("AWS_SECRET_ACCESS_KEY", bad[i][1], 1);
		if (bad[i][2])
			setenv("AWS_SESSION_TOKEN", bad[i][2], 1);
		else
			unsetenv("AWS_SESSION_TOKEN");
		assert_int_equal(mfs_aws_creds_load(&c, &err), MFS_ERR_CONFIG);
		assert_non_null(strstr(err.msg, "AWS_SECRET_ACCESS_KEY"));
		assert_null(strstr(err.msg, "s3cr3t"));
		assert_null(strstr(err.msg, "t0k3n"));
	}
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	put(".aws/credentials", "[default]\naws_access_key_id = AKID\x01X\n"
	    "aws_secret_access_key = s3cr3t\n");
	struct mfs_aws_creds c;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_aws_creds_load(&c, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "profile default"));
	assert_null(strstr(err.msg, "s3cr3t"));
}

static void default_profile_from_home(void **state)
{
	(void)state;
	struct mfs_aws_creds c;
	struct mfs_err err = { 0 };
	put(".aws/credentials", creds_file);
	put(".aws/config", config_file);
	assert_int_equal(mfs_aws_creds_load(&c, &err), MFS_OK);
	assert_string_equal(c.key_id, "DEFAULTID");
	assert_string_equal(c.secret, "defaultsecret");
	assert_null(c.token);
	assert_string_equal(c.region, "eu-west-1");
	assert_string_equal(c.profile, "default");
	assert_true(c.from_profile);
	mfs_aws_creds_release(&c);
}

static void named_profile_trims_and_keeps_equals_in_values(void **state)
{
	(void)state;
	struct mfs_aws_creds c;
	struct mfs_err err = { 0 };
	put(".aws/credentials", creds_file);
	put(".aws/config", config_file);
	setenv("AWS_PROFILE", "ci", 1);
	assert_int_equal(mfs_aws_creds_load(&c, &err), MFS_OK);
	assert_string_equal(c.key_id, "CIID");
	assert_string_equal(c.secret, "ci/secret+with=equals");
	assert_string_equal(c.token, "ci-token");
	/* The config file's section is "[profile ci]", not "[ci]". */
	assert_string_equal(c.region, "ap-south-1");
	mfs_aws_creds_release(&c);
}

static void keys_only_in_the_config_file(void **state)
{
	(void)state;
	struct mfs_aws_creds c;
	struct mfs_err err = { 0 };
	put(".aws/config", config_file);
	setenv("AWS_PROFILE", "cfgonly", 1);
	assert_int_equal(mfs_aws_creds_load(&c, &err), MFS_OK);
	assert_string_equal(c.key_id, "CFGID");
	assert_string_equal(c.region, "us-west-2");
	mfs_aws_creds_release(&c);
}

static void file_locations_from_the_environment(void **state)
{
	(void)state;
	struct mfs_aws_creds c;
	struct mfs_err err = { 0 };
	char a[128], b[128];
	put("other-creds", "[x]\naws_access_key_id=XID\naws_secret_access_key=xs\n");
	put("other-config", "[profile x]\nregion=sa-east-1\n");
	put(".aws/credentials", "[x]\naws_access_key_id=NOT_THIS\naws_secret_access_key=no\n");
	snprintf(a, sizeof(a), "%s/other-creds", home);
	snprintf(b, sizeof(b), "%s/other-config", home);
	setenv("AWS_SHARED_CREDENTIALS_FILE", a, 1);
	setenv("AWS_CONFIG_FILE", b, 1);
	setenv("AWS_PROFILE", "x", 1);
	assert_int_equal(mfs_aws_creds_load(&c, &err), MFS_OK);
	assert_string_equal(c.key_id, "XID");
	assert_string_equal(c.region, "sa-east-1");
	mfs_aws_creds_release(&c);
}

static void environment_keys_win_over_the_profile(void **state)
{
	(void)state;
	struct mfs_aws_creds c;
	struct mfs_err err = { 0 };
	put(".aws/credentials", creds_file);
	put(".aws/config", config_file);
	setenv("AWS_PROFILE", "ci", 1);
	setenv("AWS_ACCESS_KEY_ID", "ENVID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	assert_int_equal(mfs_aws_creds_load(&c, &err), MFS_OK);
	assert_string_equal(c.key_id, "ENVID");
	assert_null(c.token); /* not the profile's token with the environment's keys */
	assert_false(c.from_profile);
	assert_string_equal(c.region, "ap-south-1");
	mfs_aws_creds_release(&c);
}

static void missing_profile_is_one_line_naming_it(void **state)
{
	(void)state;
	struct mfs_aws_creds c;
	struct mfs_err err = { 0 };
	put(".aws/credentials", creds_file);
	setenv("AWS_PROFILE", "nope", 1);
	assert_int_equal(mfs_aws_creds_load(&c, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "AWS_PROFILE=nope: no such profile in "));
	assert_non_null(strstr(err.msg, "/.aws/credentials or "));
	assert_null(strchr(err.msg, '\n'));
	assert_null(strstr(err.msg, "secret"));
	assert_null(c.key_id);
	/* A profile without static keys (SSO) is named as such. */
	setenv("AWS_PROFILE", "sso", 1);
	assert_int_equal(mfs_aws_creds_load(&c, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "AWS_PROFILE=sso has no aws_access_key_id"));
}

static void nothing_at_all_is_not_found(void **state)
{
	(void)state;
	struct mfs_aws_creds c;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_aws_creds_load(&c, &err), MFS_ERR_NOTFOUND);
	assert_non_null(strstr(err.msg, "no S3 credentials"));
}

static void sandbox_gets_the_profile_keys_and_region(void **state)
{
	(void)state;
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	struct mfs_err err = { 0 };
	put(".aws/credentials", creds_file);
	put(".aws/config", config_file);
	setenv("AWS_PROFILE", "ci", 1);
	assert_int_equal(mfs_forward_aws_profile(&env, &err), MFS_OK);
	assert_string_equal(mfs_kvlist_get(&env, "AWS_ACCESS_KEY_ID"), "CIID");
	assert_string_equal(mfs_kvlist_get(&env, "AWS_SECRET_ACCESS_KEY"), "ci/secret+with=equals");
	assert_string_equal(mfs_kvlist_get(&env, "AWS_SESSION_TOKEN"), "ci-token");
	assert_string_equal(mfs_kvlist_get(&env, "AWS_DEFAULT_REGION"), "ap-south-1");
	/* The sandbox has no such file: naming the profile there would break boto3. */
	assert_null(mfs_kvlist_get(&env, "AWS_PROFILE"));
	mfs_kvlist_release(&env);
}

static void sandbox_keeps_keys_it_already_has(void **state)
{
	(void)state;
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	struct mfs_err err = { 0 };
	put(".aws/credentials", creds_file);
	setenv("AWS_PROFILE", "ci", 1);
	mfs_kvlist_set(&env, "AWS_ACCESS_KEY_ID", "USERID");
	mfs_kvlist_set(&env, "AWS_REGION", "us-east-2");
	assert_int_equal(mfs_forward_aws_profile(&env, &err), MFS_OK);
	assert_string_equal(mfs_kvlist_get(&env, "AWS_ACCESS_KEY_ID"), "USERID");
	assert_null(mfs_kvlist_get(&env, "AWS_SECRET_ACCESS_KEY"));
	mfs_kvlist_release(&env);
	/* With the environment's own keys nothing comes from the file. */
	setenv("AWS_ACCESS_KEY_ID", "ENVID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	assert_int_equal(mfs_forward_aws_profile(&env, &err), MFS_OK);
	assert_null(mfs_kvlist_get(&env, "AWS_ACCESS_KEY_ID"));
	mfs_kvlist_release(&env);
}

static void r2_sandbox_gets_no_profile_token(void **state)
{
	(void)state;
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	struct mfs_err err = { 0 };
	put(".aws/credentials", creds_file);
	setenv("AWS_PROFILE", "ci", 1);
	setenv("METAFLOW_S3_ENDPOINT_URL", "https://acct.r2.cloudflarestorage.com", 1);
	assert_int_equal(mfs_forward_aws_profile(&env, &err), MFS_OK);
	assert_string_equal(mfs_kvlist_get(&env, "AWS_ACCESS_KEY_ID"), "CIID");
	assert_null(mfs_kvlist_get(&env, "AWS_SESSION_TOKEN"));
	mfs_kvlist_release(&env);
}

static void sandbox_setup_fails_on_a_missing_profile_only(void **state)
{
	(void)state;
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_forward_aws_profile(&env, &err), MFS_OK);
	assert_int_equal(env.n, 0);
	setenv("AWS_PROFILE", "nope", 1);
	assert_int_equal(mfs_forward_aws_profile(&env, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "AWS_PROFILE=nope"));
	assert_int_equal(env.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(default_profile_from_home, setup, teardown),
		cmocka_unit_test_setup_teardown(key_with_a_line_break_is_one_line_without_it, setup,
						teardown),
		cmocka_unit_test_setup_teardown(named_profile_trims_and_keeps_equals_in_values, setup,
						teardown),
		cmocka_unit_test_setup_teardown(keys_only_in_the_config_file, setup, teardown),
		cmocka_unit_test_setup_teardown(file_locations_from_the_environment, setup, teardown),
		cmocka_unit_test_setup_teardown(environment_keys_win_over_the_profile, setup, teardown),
		cmocka_unit_test_setup_teardown(missing_profile_is_one_line_naming_it, setup, teardown),
		cmocka_unit_test_setup_teardown(nothing_at_all_is_not_found, setup, teardown),
		cmocka_unit_test_setup_teardown(sandbox_gets_the_profile_keys_and_region, setup,
						teardown),
		cmocka_unit_test_setup_teardown(sandbox_keeps_keys_it_already_has, setup, teardown),
		cmocka_unit_test_setup_teardown(r2_sandbox_gets_no_profile_token, setup, teardown),
		cmocka_unit_test_setup_teardown(sandbox_setup_fails_on_a_missing_profile_only, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
