/* The one redaction rule set (src/util/redact.c) and the terminal escaping of
 * other people's strings: what --dry-run, errors and `ls` may print. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "mfs/util/redact.h"

static char *red(const struct mfs_redactor *r, const char *text)
{
	struct mfs_buf b = MFS_BUF_INIT;
	mfs_redact(r, &b, text);
	return mfs_buf_detach(&b, NULL);
}

static void check(const struct mfs_redactor *r, const char *text, const char *want)
{
	char *got = red(r, text);
	assert_string_equal(got, want);
	free(got);
}

static void secret_names(void **state)
{
	(void)state;
	const char *secret[] = { "AWS_SECRET_ACCESS_KEY", "GITHUB_PAT", "gh_pat", "DB_PASSWORD",
				 "PGPASSWORD", "DB_PASS", "MYSQL_PW", "SENTRY_DSN", "API_TOKEN",
				 "METAFLOW_SERVICE_HEADERS", "SSH_PRIVATE_KEY", "GPG_PASSPHRASE",
				 "AUTHORIZATION", "SESSION_COOKIE", "x-pat", "db.pass", NULL };
	const char *plain[] = { "PATH", "PWD", "OLDPWD", "REGION", "HOME", "PATTERN", "PASSAGE",
				"USER", "LANG", NULL };
	for (const char **s = secret; *s; s++)
		assert_true(mfs_secret_name(*s));
	for (const char **s = plain; *s; s++)
		assert_false(mfs_secret_name(*s));
}

static void name_value_pairs(void **state)
{
	(void)state;
	check(NULL, "GITHUB_PAT=ghp_1 REGION=eu", "GITHUB_PAT=<redacted> REGION=eu");
	check(NULL, "--db-password='two words' x", "--db-password=<redacted> x");
	check(NULL, "PATH=/usr/bin", "PATH=/usr/bin");
	check(NULL, "a;API_KEY=\"q\\\"x\";b", "a;API_KEY=<redacted>;b");
}

static void urls_with_credentials(void **state)
{
	(void)state;
	check(NULL, "https://bob:hunter2@db.example/x", "https://bob:<redacted>@db.example/x");
	check(NULL, "git clone https://ghp_tok@github.com/o/r",
	      "git clone https://<redacted>@github.com/o/r");
	check(NULL, "postgres://u:p@h:5432/db?sslmode=require", "postgres://u:<redacted>@h:5432/db?sslmode=require");
	/* No userinfo, or an '@' only after the host: nothing to hide. */
	check(NULL, "https://example.com/a@b", "https://example.com/a@b");
	check(NULL, "mailto:ann@example.com", "mailto:ann@example.com");
}

static void known_values_under_any_name(void **state)
{
	(void)state;
	struct mfs_redactor r;
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	mfs_redactor_init(&r);
	mfs_kvlist_set(&env, "AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI");
	mfs_kvlist_set(&env, "REGION", "us-east-1");
	mfs_kvlist_set(&env, "SHORT_TOKEN", "abc"); /* too short to hunt for */
	mfs_redactor_add_env(&r, &env);
	mfs_redactor_add(&r, "wJalrXUtnFEMI/K7MDENG"); /* longest match wins */
	check(&r, "COPY=wJalrXUtnFEMI echo wJalrXUtnFEMI/K7MDENG us-east-1 abc",
	      "COPY=<redacted> echo <redacted> us-east-1 abc");
	mfs_redactor_release(&r);
	mfs_kvlist_release(&env);
}

static char *esc(const char *text, size_t max)
{
	struct mfs_buf b = MFS_BUF_INIT;
	mfs_escape_text(&b, text, max);
	return mfs_buf_detach(&b, NULL);
}

static void terminal_escapes(void **state)
{
	(void)state;
	struct { const char *in, *want; } cases[] = {
		{ "sb-1", "sb-1" },
		{ "", "" },
		{ "\x1b]0;owned\x07", "\\x1b]0;owned\\x07" },
		{ "a\nb\rc\td", "a\\x0ab\\x0dc\\x09d" },
		{ "del\x7f", "del\\x7f" },
		{ "\xc2\x9b" "31m", "\\xc2\\x9b31m" },   /* C1 CSI in UTF-8 */
		{ "\x9b" "31m", "\\x9b31m" },             /* raw C1 byte */
		{ "caf\xc3\xa9 \xe2\x9c\x93", "caf\xc3\xa9 \xe2\x9c\x93" },
		{ "\xe2\x9c", "\\xe2\\x9c" },             /* truncated sequence */
		{ "\xc0\xaf", "\\xc0\\xaf" },             /* overlong '/' */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = esc(cases[i].in, 0);
		assert_string_equal(got, cases[i].want);
		free(got);
	}
	char *cut = esc("abcdef", 3);
	assert_string_equal(cut, "abc...");
	free(cut);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(secret_names),
		cmocka_unit_test(name_value_pairs),
		cmocka_unit_test(urls_with_credentials),
		cmocka_unit_test(known_values_under_any_name),
		cmocka_unit_test(terminal_escapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
