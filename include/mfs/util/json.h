/*
 * json.h - small helpers over jansson for answers read from a peer.
 *
 * A peer's JSON is untrusted: each helper takes whatever it is given
 * (NULL, the wrong type) and keeps only what has the expected shape.
 */
#ifndef MFS_JSON_H
#define MFS_JSON_H

#include <jansson.h>

#include "mfs/util/buf.h"

/* Adds every string member of obj to out (key -> value); members of
 * another type, and obj that is not an object, add nothing.  How both
 * remote backends read a sandbox's labels from a listing. */
void mfs_json_kvlist(const json_t *obj, struct mfs_kvlist *out);

#endif
