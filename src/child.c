/* Helpers for operations that run other programs (child.h). */
#include "child.h"

#include "sluice/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
#define S_HAVE_SIGABBREV 1
#endif

void sl__fd_close(int *fd) {
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

int sl__pipe_cloexec(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        if (fds[i] > 2)
            continue;
        int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        int e = errno;
        close(fds[i]);
        fds[i] = moved;
        if (moved < 0) {
            sl__fd_close(&fds[1 - i]);
            errno = e;
            return -1;
        }
    }
    return 0;
}

int sl__fd_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

const char *sl__errno_text(int errnum) {
    const char *s = strerrordesc_np(errnum);
    return s ? s : "unknown error";
}

void sl__sigpipe_clear(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) == SIGPIPE) {
    }
}

void sl__child_signal_group(pid_t pid, int sig) {
    if (kill(-pid, sig) < 0)
        kill(pid, sig);
}

void sl__child_describe_status(int status, const char *who, char *buf, size_t cap) {
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbrev = NULL;
#ifdef S_HAVE_SIGABBREV
        abbrev = sigabbrev_np(sig);
#endif
        if (abbrev)
            snprintf(buf, cap, "%s killed by signal SIG%s", who, abbrev);
        else
            snprintf(buf, cap, "%s killed by signal %d", who, sig);
    } else {
        snprintf(buf, cap, "%s exited with status %d", who, WEXITSTATUS(status));
    }
}

void sl__stderr_tail_reset(sl__stderr_tail *t) {
    t->len = 0;
    t->dropped = 0;
}

void sl__stderr_tail_add(sl__stderr_tail *t, const void *p, size_t n) {
    size_t room = sizeof(t->keep) - t->len;
    size_t keep = n < room ? n : room;
    memcpy(t->keep + t->len, p, keep);
    t->len += keep;
    t->dropped += n - keep;
}

const char *sl__stderr_tail_excerpt(sl__stderr_tail *t, size_t avail) {
    const char *s = t->keep;
    size_t n = t->len;
    while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    if (avail > sizeof(t->excerpt))
        avail = sizeof(t->excerpt);
    if (avail == 0)
        return "";
    enum { note_room = 48 }; /* " ... (<20 digits> more bytes)" and the NUL */
    char probe[8];
    size_t shown = n;
    size_t width = n ? sl_text_escape(probe, 1, s, n) : 0;
    if (width + (t->dropped ? note_room : 0) >= avail) {
        /* Cut so that the note still fits in the caller's buffer: it says the message is incomplete. */
        size_t max = avail > note_room ? avail - note_room : 0;
        width = 0;
        for (shown = 0; shown < n; shown++) {
            size_t w = sl_text_escape(probe, sizeof(probe), s + shown, 1);
            if (width + w > max)
                break;
            width += w;
        }
    }
    uint64_t dropped = t->dropped + (n - shown);
    size_t len = shown ? sl_text_escape(t->excerpt, avail, s, shown) : 0;
    if (len >= avail)
        len = avail - 1;
    t->excerpt[len] = '\0';
    if (dropped)
        snprintf(t->excerpt + len, avail - len, "%s... (%" PRIu64 " more bytes)", len ? " " : "", dropped);
    return t->excerpt;
}
