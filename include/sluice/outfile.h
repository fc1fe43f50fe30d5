/* Output files named on a command line (--report, --chart, --timeline, --failures): written where and how the
 * shell's `> FILE` would write them, never left half-written when they are replaced whole, and never failing in
 * silence.
 *
 *   - A file that exists and is not a regular file (a character device such as /dev/null, a FIFO) is opened and
 *     written into: it is never replaced. Opening a FIFO waits for its reader, as the shell does.
 *   - A symbolic link is followed: the link stays, its target gets the bytes (a dangling link's target is created).
 *   - SL_OUTFILE_REPLACE: a regular file, or a new one, is written to a hidden temp file in the directory of the
 *     resolved path and renamed over it by sl_outfile_close, once complete and flushed to disk: readers see the old
 *     file or the whole new one. The result keeps the permission bits of the file it replaces; a new file gets
 *     0666 minus the umask.
 *   - SL_OUTFILE_STREAM: written in place as it goes (truncated when opened), for logs read while a job runs.
 *
 * Every write error is kept: the first one is what sl_outfile_flush and sl_outfile_close return, with a one-line
 * message "cannot write <what> <path>: <reason>" in sl_last_error(). An sl_outfile belongs to one thread at a time. */
#ifndef SLUICE_OUTFILE_H
#define SLUICE_OUTFILE_H

#include "sluice/error.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_outfile_mode {
    SL_OUTFILE_REPLACE = 0, /* written whole, then renamed into place (regular and new files) */
    SL_OUTFILE_STREAM = 1,  /* written in place as it goes */
} sl_outfile_mode;

typedef struct sl_outfile sl_outfile;

/* Checks, without creating anything, that `path` can be opened for writing in `mode`: not a directory, its
 * directory exists, and the file (or, for a new file or SL_OUTFILE_REPLACE, its directory) is writable. `what`
 * names the file in messages ("the report", "--chart"). SL_EINVAL for an empty path; otherwise the SL_E* code of
 * the reason (SL_ENOENT, SL_EACCES, SL_EROFS, SL_EISDIR, SL_ENOTDIR, ...) with a message naming the path. */
SL_API int sl_outfile_check(const char *path, sl_outfile_mode mode, const char *what);
/* Opens `path` for writing as described above. `what` is copied. Caller ends it with sl_outfile_close or
 * sl_outfile_discard. */
SL_API int sl_outfile_open(const char *path, sl_outfile_mode mode, const char *what, sl_outfile **out);
/* The stdio stream to write to. Owned by the outfile. */
SL_API FILE *sl_outfile_stream(sl_outfile *f);
/* Pushes what was written so far to the file (SL_OUTFILE_STREAM: call after each record). Returns 0, or the first
 * write error of this outfile (the same one every time once there was one). */
SL_API int sl_outfile_flush(sl_outfile *f);
/* Finishes the file: flushes, and for SL_OUTFILE_REPLACE fsyncs and renames the temp file into place. Returns 0 or
 * the first write error (then a temp file is removed and whatever was at the path before is left as it was).
 * Frees f in every case; NULL ok (returns 0). */
SL_API int sl_outfile_close(sl_outfile *f);
/* Abandons the file: a temp file is removed, a file written in place keeps what it got. Frees f; NULL ok. */
SL_API void sl_outfile_discard(sl_outfile *f);

#ifdef __cplusplus
}
#endif

#endif
