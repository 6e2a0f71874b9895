/* lazy_curl.h - private to src/net: libcurl usable? (see lazy_curl.c) */
#ifndef MFS_LAZY_CURL_H
#define MFS_LAZY_CURL_H

#include "mfs/util/err.h"

/* Loads libcurl on first call in a lazy build (always MFS_OK otherwise);
 * MFS_ERR_IO naming the library when it cannot.  Every path into curl_*
 * calls it first: a shim called without a load aborts (a bug, not a
 * runtime condition). */
enum mfs_code mfs_need_curl(struct mfs_err *err);

#endif
