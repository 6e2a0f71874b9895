/*
 * replay.c - main() for the harnesses when they are not built with
 * libFuzzer: runs every file named on the command line (or found in a
 * directory named there) through LLVMFuzzerTestOneInput once.  Built with
 * ASan+UBSan this is the regression pass of `make fuzz-regress`: a crash or
 * leak of a corpus input fails it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
	struct mfs_buf b = MFS_BUF_INIT;
	char chunk[65536];
	size_t n;
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return 1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		mfs_buf_add(&b, chunk, n);
	fclose(f);
	LLVMFuzzerTestOneInput((const uint8_t *)(b.data ? b.data : ""), b.len);
	mfs_buf_release(&b);
	return 0;
}

static int run_path(const char *path, unsigned *count)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return run_file(path);
	}
	/* One level: a corpus directory holds files only. */
	struct dirent **names;
	int n = scandir(path, &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return 1;
	}
	int bad = 0;
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			struct mfs_buf p = MFS_BUF_INIT;
			mfs_buf_addf(&p, "%s/%s", path, names[i]->d_name);
			if (stat(p.data, &st) == 0 && S_ISREG(st.st_mode)) {
				(*count)++;
				bad |= run_file(p.data);
			}
			mfs_buf_release(&p);
		}
		free(names[i]);
	}
	free(names);
	return bad;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int bad = 0;
	for (int i = 1; i < argc; i++)
		bad |= run_path(argv[i], &count);
	fprintf(stderr, "replay: %u inputs\n", count);
	return bad;
}
