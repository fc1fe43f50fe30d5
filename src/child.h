/* What the operations that run other programs share (op_exec.c: a process per object; op_worker.c: a process per
 * worker thread): pipes the children get, signalling a child's process group, and the bounded tail of a child's stderr
 * quoted in failure messages. Everything here is per call or per caller-owned struct: no global state. */
#ifndef SLUICE_CHILD_H
#define SLUICE_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How much of a child's stderr a failure message quotes. */
#define SL__STDERR_KEEP 1536

/* Closes *fd if it is open and sets it to -1. */
void sl__fd_close(int *fd);
/* pipe2 with O_CLOEXEC, both ends moved above 2 (a process started with 0-2 closed would otherwise get a pipe end
 * there, clobbered by the dup2 onto 0/1/2 in the child). Returns 0 or -1 with errno. */
int sl__pipe_cloexec(int fds[2]);
/* Returns 0 or -1 with errno. */
int sl__fd_nonblocking(int fd);
/* strerror's text without the thread-unsafe buffer. */
const char *sl__errno_text(int errnum);
/* A write to a closed pipe with SIGPIPE blocked leaves the signal pending on the thread: consumes it so that it is
 * never delivered later. */
void sl__sigpipe_clear(void);
/* Sends sig to the process group the child leads (what it started goes too), or to the child alone if that fails.
 * Only before the child is reaped: until then its pid, and so its group id, cannot be reused. */
void sl__child_signal_group(pid_t pid, int sig);
/* "<who> exited with status N" or "<who> killed by signal SIGSEGV" for a wait status. */
void sl__child_describe_status(int status, const char *who, char *buf, size_t cap);

/* The first SL__STDERR_KEEP bytes a child wrote on stderr since the last reset, and how many more there were. */
typedef struct sl__stderr_tail {
    size_t len;
    uint64_t dropped;
    char keep[SL__STDERR_KEEP];
    char excerpt[4 * SL__STDERR_KEEP + 64];
} sl__stderr_tail;

void sl__stderr_tail_reset(sl__stderr_tail *t);
void sl__stderr_tail_add(sl__stderr_tail *t, const void *p, size_t n);
/* What was kept, trimmed and escaped on one line, at most `avail` bytes with the NUL, ending with a note of how much
 * was not shown. Points into t->excerpt; valid until the next call. */
const char *sl__stderr_tail_excerpt(sl__stderr_tail *t, size_t avail);

#endif
