/*
 * aws_creds.h - AWS keys as the SDKs find them (src/net/aws_creds.c).
 */
#ifndef MFS_AWS_CREDS_H
#define MFS_AWS_CREDS_H

#include <stdbool.h>

#include "mfs/util/err.h"

/* AWS keys as the SDKs find them: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
 * (+AWS_SESSION_TOKEN) from the environment, else profile AWS_PROFILE
 * ("default" if unset) in AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials),
 * then in AWS_CONFIG_FILE (~/.aws/config, section "[profile NAME]").  The
 * profile's region comes from the config file either way.  Only static keys:
 * SSO, role and process profiles are refused by name. */
struct mfs_aws_creds {
	char *key_id;
	char *secret;        /* secret */
	char *token;         /* secret; NULL if none */
	char *region;        /* the profile's region, or NULL */
	char *profile;       /* the profile looked at */
	bool from_profile;   /* the keys came from a file, not the environment */
};
/* MFS_ERR_CONFIG when AWS_PROFILE names a profile that is missing or has no
 * static keys; MFS_ERR_NOTFOUND when there are no keys and no AWS_PROFILE.
 * The message names the profile and files, never a key. */
enum mfs_code mfs_aws_creds_load(struct mfs_aws_creds *c, struct mfs_err *err);
/* Frees and wipes the secrets. */
void mfs_aws_creds_release(struct mfs_aws_creds *c);

#endif
