/*
 * env.h - reading our own environment the same way everywhere.
 */
#ifndef MFS_ENV_H
#define MFS_ENV_H

#include <stdbool.h>
#include <stddef.h>

/* getenv(name), or NULL when unset or empty. */
const char *mfs_env_nonempty(const char *name);
/* "1", "true" or "yes" (any case): the yes of a boolean variable. */
bool mfs_truthy(const char *value);
/* The first n bytes of s are a shell variable name, [A-Za-z_][A-Za-z0-9_]*:
 * what may go into `export NAME=...` and an --env KEY. */
bool mfs_env_name_ok(const char *s, size_t n);

#endif
