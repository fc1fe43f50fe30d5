/* sluice base definitions: version, export macro, error codes. Every public function returns 0 or a positive count on
 * success and a negative SL_E* code on failure; the failing call leaves a one-line, human-readable explanation in
 * sl_last_error() (thread-local, valid until the next failing sluice call on the same thread). */
#ifndef SLUICE_ERROR_H
#define SLUICE_ERROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(SL_BUILDING_LIBRARY)
#define SL_API __attribute__((visibility("default")))
#else
#define SL_API
#endif

#define SL_VERSION_MAJOR 0
#define SL_VERSION_MINOR 1
#define SL_VERSION_PATCH 0
#define SL_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, number, message): the single table of error codes. SL_E<name> == -number. */
#define SL_ERRNO_MAP(X)                                                                                                \
    X(INVAL, 1, "invalid argument")                                                                                    \
    X(NOMEM, 2, "out of memory")                                                                                       \
    X(NOENT, 3, "no such object or directory")                                                                         \
    X(EXIST, 4, "already exists")                                                                                      \
    X(ACCES, 5, "permission denied")                                                                                   \
    X(IO, 6, "input/output error")                                                                                     \
    X(NOSPC, 7, "no space left on device")                                                                             \
    X(ROFS, 8, "read-only file system")                                                                                \
    X(NOTSUP, 9, "not supported yet")                                                                                  \
    X(BADURL, 10, "malformed URL")                                                                                     \
    X(NAMETOOLONG, 11, "name too long")                                                                                \
    X(UNSAFEKEY, 12, "object key cannot be stored safely")                                                             \
    X(CHILD, 13, "command failed")                                                                                     \
    X(CANCELED, 14, "interrupted")                                                                                     \
    X(CORRUPT, 15, "data corrupt")                                                                                     \
    X(ISDIR, 16, "is a directory")                                                                                     \
    X(NOTDIR, 17, "not a directory")                                                                                   \
    X(PARTIAL, 18, "some objects failed")                                                                              \
    X(RANGE, 19, "range not satisfiable")                                                                              \
    X(TOOBIG, 20, "output too large")                                                                                  \
    X(INTERNAL, 21, "internal error")

typedef enum sl_errno {
    SL_OK = 0,
#define SL__ERRNO_ENUM(name, num, msg) SL_E##name = -(num),
    SL_ERRNO_MAP(SL__ERRNO_ENUM)
#undef SL__ERRNO_ENUM
} sl_errno;

/* Static string for an SL_E* code ("unknown error" for anything else). Never NULL. */
SL_API const char *sl_strerror(int err);
/* Name of an SL_E* code, e.g. "SL_ENOENT". Never NULL. */
SL_API const char *sl_err_name(int err);
/* Explanation of the last failure on the calling thread ("" if none). Thread-local; do not free. */
SL_API const char *sl_last_error(void);
/* Library version, SL_VERSION_STRING of the built library. */
SL_API const char *sl_version(void);

#ifdef __cplusplus
}
#endif

#endif
