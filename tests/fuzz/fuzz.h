/*
 * fuzz.h - shared by the libFuzzer harnesses in tests/fuzz/.
 *
 * Each fuzz_<name>.c defines LLVMFuzzerTestOneInput for one parser that
 * takes outside input.  Built with clang -fsanitize=fuzzer it is a fuzzer
 * (`make fuzz`); linked with replay.c by any compiler it replays the
 * checked-in corpus (`make fuzz-regress`).
 */
#ifndef MFS_FUZZ_H
#define MFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mfs/backend.h"
#include "mfs/util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as an owned NUL-terminated string (embedded NULs stay). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	return mfs_xstrndup((const char *)data, size);
}

/* Splits the input at NUL bytes into at most max words (an argv). */
static inline void fuzz_words(const uint8_t *data, size_t size, size_t max, struct mfs_strv *out)
{
	size_t start = 0;
	for (size_t i = 0; i <= size && out->n < max; i++) {
		if (i == size || data[i] == '\0') {
			char *w = mfs_xstrndup((const char *)data + start, i - start);
			mfs_strv_push(out, w);
			free(w);
			start = i + 1;
		}
	}
}

/* An mfs_list_fn for listing answers (ctx: a size_t): reads every field
 * of the row as `ls` and `kill` do, so a bad one shows under ASan. */
static inline void fuzz_read_row(void *ctx, const struct mfs_sandbox_info *info)
{
	size_t *n = ctx;
	*n += strlen(info->id) + (info->state ? strlen(info->state) : 0);
	for (size_t i = 0; i < info->labels->n; i++)
		*n += strlen(info->labels->items[i].key) + strlen(info->labels->items[i].value);
	*n += info->created > 0;
}

#endif
