/*
 * forward_env.h - which launcher credentials a Metaflow step needs inside
 * its sandbox.
 *
 * Third-party sandboxes have no cloud identity of their own, so the step's
 * datastore credentials are copied from the launcher's environment into the
 * sandbox environment (never onto a command line).  The list follows the
 * original metaflow-sandbox: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN, AWS_DEFAULT_REGION (and AWS_REGION),
 * GOOGLE_APPLICATION_CREDENTIALS, CLOUDSDK_CONFIG,
 * AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY, when set and not empty.
 * AWS_SESSION_TOKEN is left out when METAFLOW_S3_ENDPOINT_URL is an R2
 * endpoint (R2 rejects STS tokens) unless
 * METAFLOW_SANDBOX_FORWARD_AWS_SESSION_TOKEN is 1/true/yes.  The sandbox
 * providers' own keys (DAYTONA_API_KEY, E2B_API_KEY, ...) are never
 * forwarded unless named in `extra` (`mfsandbox run --forward-env NAME`).
 * A variable the job already sets (--env) is left as the user set it.
 */
#ifndef MFS_FORWARD_ENV_H
#define MFS_FORWARD_ENV_H

#include "mfs/util/buf.h"
#include "mfs/util/err.h"

/* Adds the variables above (and each name in extra, if set) from getenv()
 * to env.  Returns how many were added. */
unsigned mfs_forward_credentials(struct mfs_kvlist *env, const struct mfs_strv *extra);

/* For a step on S3 when env has no AWS_ACCESS_KEY_ID (after the call
 * above): the keys of the launcher's AWS profile (mfs_aws_creds_load in
 * mfs/net/aws_creds.h), its session token (same R2 rule) and its region if env has
 * none, since a sandbox has no ~/.aws.  AWS_PROFILE itself is not
 * forwarded.  MFS_ERR_CONFIG when AWS_PROFILE names a profile that does not
 * exist or has no static keys; no keys anywhere is not an error. */
enum mfs_code mfs_forward_aws_profile(struct mfs_kvlist *env, struct mfs_err *err);

#endif
