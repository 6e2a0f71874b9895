/* fuzz_aws_ini.c - AWS credentials and config files (src/net/s3.c).  The
 * input is "<credentials>\0<config>\0<profile>"; the parts are written to
 * files in a private temp dir and found through the variables the SDKs
 * read, as a user's own files would be. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "mfs/net/aws_creds.h"

static char dir[64];
static char creds_path[96], config_path[96];

static void write_part(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	if (n && fwrite(p, 1, n, f) != n)
		abort();
	fclose(f);
}

static void cleanup(void)
{
	unlink(creds_path);
	unlink(config_path);
	rmdir(dir);
}

static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof(dir), "%s/mfs-fuzz-XXXXXX", base);
	if (!mkdtemp(dir))
		abort();
	snprintf(creds_path, sizeof(creds_path), "%s/credentials", dir);
	snprintf(config_path, sizeof(config_path), "%s/config", dir);
	setenv("AWS_SHARED_CREDENTIALS_FILE", creds_path, 1);
	setenv("AWS_CONFIG_FILE", config_path, 1);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0])
		setup();
	const uint8_t *end = data + size;
	const uint8_t *a = memchr(data, 0, size);
	const uint8_t *b = a ? memchr(a + 1, 0, (size_t)(end - a - 1)) : NULL;
	write_part(creds_path, data, a ? (size_t)(a - data) : size);
	write_part(config_path, a ? a + 1 : end, a ? (size_t)((b ? b : end) - a - 1) : 0);
	if (b && b + 1 < end) {
		char *profile = mfs_xstrndup((const char *)b + 1, (size_t)(end - b - 1));
		setenv("AWS_PROFILE", profile, 1);
		free(profile);
	} else {
		unsetenv("AWS_PROFILE");
	}
	struct mfs_aws_creds c;
	struct mfs_err err = { MFS_OK, "" };
	memset(&c, 0, sizeof(c));
	mfs_aws_creds_load(&c, &err);
	mfs_aws_creds_release(&c);
	return 0;
}
