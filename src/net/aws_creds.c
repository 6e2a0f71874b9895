/*
 * aws_creds.c - AWS keys as the SDKs find them (include/mfs/net/aws_creds.h):
 * the environment first, then a profile in the shared credentials and config
 * files.  Used by the S3 client and by a step's credential forwarding.
 */
#include "mfs/net/aws_creds.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfs/util/buf.h"
#include "mfs/util/env.h"
#include "mfs/util/text.h"

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Reads the keys of one [section] (or [alt]) of an AWS INI file into kv;
 * true when the file has that section. */
static bool read_ini_section(const char *path, const char *section, const char *alt,
			     struct mfs_kvlist *kv)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	bool in = false, found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *l = trim(line);
		if (*l == '#' || *l == ';' || !*l)
			continue;
		if (*l == '[') {
			char *end = strchr(l, ']');
			if (end)
				*end = '\0';
			char *name = trim(l + 1);
			in = !strcmp(name, section) || (alt && !strcmp(name, alt));
			found |= in;
			continue;
		}
		char *eq = strchr(l, '=');
		if (in && eq) {
			*eq = '\0';
			mfs_kvlist_set(kv, trim(l), trim(eq + 1));
		}
	}
	fclose(f);
	return found;
}

static char *home_file(const char *env, const char *rel)
{
	const char *v = mfs_env_nonempty(env), *home = mfs_env_nonempty("HOME");
	struct mfs_buf b = MFS_BUF_INIT;
	if (v)
		return mfs_xstrdup(v);
	if (!home)
		return NULL;
	mfs_buf_addf(&b, "%s/%s", home, rel);
	return mfs_buf_detach(&b, NULL);
}

static char *dup_or_null(const char *s)
{
	return s && *s ? mfs_xstrdup(s) : NULL;
}

void mfs_aws_creds_release(struct mfs_aws_creds *c)
{
	free(c->key_id);
	mfs_wipe_free(c->secret);
	mfs_wipe_free(c->token);
	free(c->region);
	free(c->profile);
	memset(c, 0, sizeof(*c));
}

/* libcurl signs with "id:secret" (split at the first ':') and puts the id
 * in its Authorization line, where a line break would add a line. */
static enum mfs_code check_keys(const char *id, const char *secret, const char *token,
				const char *profile, const char *file, struct mfs_err *err)
{
	if (mfs_one_line(id) && mfs_one_line(secret) && (!token || mfs_one_line(token)) &&
	    !strchr(id, ':'))
		return MFS_OK;
	if (profile)
		return mfs_fail(err, MFS_ERR_CONFIG, "AWS profile %s: a key or token holds a line "
				"break, control character or ':' in the id: fix %s", profile,
				file ? file : "~/.aws/credentials");
	return mfs_fail(err, MFS_ERR_CONFIG, "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or "
			"AWS_SESSION_TOKEN holds a line break, control character or ':' in the "
			"id (a trailing newline from a file?): set each to the key alone");
}

enum mfs_code mfs_aws_creds_load(struct mfs_aws_creds *c, struct mfs_err *err)
{
	const char *id = mfs_env_nonempty("AWS_ACCESS_KEY_ID");
	const char *secret = mfs_env_nonempty("AWS_SECRET_ACCESS_KEY");
	const char *token = mfs_env_nonempty("AWS_SESSION_TOKEN");
	const char *named = mfs_env_nonempty("AWS_PROFILE");
	const char *profile = named ? named : "default";
	struct mfs_kvlist creds = MFS_KVLIST_INIT, conf = MFS_KVLIST_INIT;
	struct mfs_buf sect = MFS_BUF_INIT;
	char *cred_path = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
	char *conf_path = home_file("AWS_CONFIG_FILE", ".aws/config");
	bool in_conf = false, in_creds = false;
	enum mfs_code rc = MFS_OK;

	memset(c, 0, sizeof(*c));
	c->profile = mfs_xstrdup(profile);
	if (conf_path) {
		/* The config file names profiles "[profile x]", except [default]. */
		mfs_buf_addf(&sect, "profile %s", profile);
		in_conf = read_ini_section(conf_path, sect.data,
					   !strcmp(profile, "default") ? "default" : NULL, &conf);
		c->region = dup_or_null(mfs_kvlist_get(&conf, "region"));
	}
	/* Explicit keys in the environment win over any profile, as in the SDKs. */
	if (!(id && secret)) {
		if (cred_path)
			in_creds = read_ini_section(cred_path, profile, NULL, &creds);
		id = mfs_kvlist_get(&creds, "aws_access_key_id");
		secret = mfs_kvlist_get(&creds, "aws_secret_access_key");
		token = mfs_kvlist_get(&creds, "aws_session_token");
		if (!id || !secret) {
			id = mfs_kvlist_get(&conf, "aws_access_key_id");
			secret = mfs_kvlist_get(&conf, "aws_secret_access_key");
			token = mfs_kvlist_get(&conf, "aws_session_token");
		}
		c->from_profile = id && secret;
	}
	if (!id || !secret || !*id || !*secret) {
		if (named && !in_creds && !in_conf)
			rc = mfs_fail(err, MFS_ERR_CONFIG,
				      "AWS_PROFILE=%s: no such profile in %s or %s: fix AWS_PROFILE, "
				      "AWS_SHARED_CREDENTIALS_FILE or AWS_CONFIG_FILE (see "
				      "docs/configuration.md)", profile,
				      cred_path ? cred_path : "~/.aws/credentials",
				      conf_path ? conf_path : "~/.aws/config");
		else if (named)
			rc = mfs_fail(err, MFS_ERR_CONFIG,
				      "AWS_PROFILE=%s has no aws_access_key_id and "
				      "aws_secret_access_key (SSO and role profiles are not supported): "
				      "export the keys as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (see "
				      "docs/configuration.md)", profile);
		else
			rc = mfs_fail(err, MFS_ERR_NOTFOUND,
				      "no S3 credentials: set AWS_ACCESS_KEY_ID and "
				      "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with %s (see "
				      "docs/configuration.md)",
				      cred_path ? cred_path : "~/.aws/credentials");
		goto out;
	}
	if ((rc = check_keys(id, secret, token, c->from_profile ? profile : NULL,
			     in_creds ? cred_path : conf_path, err)) != MFS_OK)
		goto out;
	c->key_id = mfs_xstrdup(id);
	c->secret = mfs_xstrdup(secret);
	c->token = dup_or_null(token);
out:
	if (rc != MFS_OK)
		mfs_aws_creds_release(c);
	mfs_kvlist_release(&creds);
	mfs_kvlist_release(&conf);
	mfs_buf_release(&sect);
	free(cred_path);
	free(conf_path);
	return rc;
}

