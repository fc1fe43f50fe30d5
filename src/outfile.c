/* Output files named on a command line, written like the shell's `> FILE` (see sluice/outfile.h).
 *
 * The stream is a stdio cookie stream over the file descriptor, so that the first failing write(2) is recorded with
 * its own errno (ENOSPC, EIO, ...) at the moment it happens, whichever later call notices it; after it nothing more is
 * written. */
#include "fail.h"

#include "sluice/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_LINKS 40    /* symbolic links followed for one path, as the kernel's limit */
#define S_TMP_ATTEMPTS 64 /* temp names tried before giving up (each taken one means a clash) */

struct sl_outfile {
    FILE *f;
    int fd;
    int err;       /* errno of the first failed write, 0 while none */
    char *path;    /* as given, for messages */
    char *target;  /* SL_OUTFILE_REPLACE through a temp file: the resolved path it is renamed to; else NULL */
    char *tmp;     /* the temp file, or NULL when written in place */
    char what[64]; /* "the report", "--chart" */
};

static int s_fail(const sl_outfile *o, int err) {
    return sl__fail_errno(err, "cannot write %s %s", o->what, o->path);
}

static ssize_t s_cookie_write(void *cookie, const char *buf, size_t len) {
    sl_outfile *o = cookie;
    if (o->err)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(o->fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            o->err = n < 0 ? errno : EIO;
            return -1;
        }
        done += (size_t)n;
    }
    return (ssize_t)len;
}

/* Follows `path` while it is a symbolic link, into out[PATH_MAX]: the file a write through `path` reaches. Its last
 * component is then no link (or does not exist); the directories before it may be links, which is harmless since
 * the temp file and the rename go through the same directory. Returns 0 or an errno value. */
static int s_follow(const char *path, char *out) {
    if (strlen(path) >= PATH_MAX)
        return ENAMETOOLONG;
    snprintf(out, PATH_MAX, "%s", path);
    for (int hops = 0; hops < S_MAX_LINKS; hops++) {
        char link[PATH_MAX];
        ssize_t n = readlink(out, link, sizeof(link) - 1);
        if (n < 0)
            return errno == EINVAL || errno == ENOENT ? 0 : errno; /* not a link, or nothing there yet */
        link[n] = '\0';
        char next[PATH_MAX];
        const char *slash = strrchr(out, '/');
        int len = link[0] == '/' || !slash ? snprintf(next, sizeof(next), "%s", link)
                                           : snprintf(next, sizeof(next), "%.*s/%s", (int)(slash - out), out, link);
        if (len < 0 || len >= PATH_MAX)
            return ENAMETOOLONG;
        memcpy(out, next, (size_t)len + 1);
    }
    return ELOOP;
}

/* Splits `path` into its directory (dir[PATH_MAX]) and last component (a pointer into path). */
static const char *s_split(const char *path, char *dir) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, PATH_MAX, ".");
    else if (slash == path)
        snprintf(dir, PATH_MAX, "/");
    else
        snprintf(dir, PATH_MAX, "%.*s", (int)(slash - path), path);
    return slash ? slash + 1 : path;
}

/* The directory a new file (or the temp file that replaces a regular one) is created in must exist and let us. */
static int s_check_dir(const char *path, const char *what) {
    char target[PATH_MAX], dir[PATH_MAX];
    int e = s_follow(path, target);
    if (e)
        return sl__fail_errno(e, "cannot write %s %s", what, path);
    const char *base = s_split(target, dir);
    if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return sl__fail(SL_EISDIR, "cannot write %s %s: it names a directory (give a file name)", what, path);
    struct stat st;
    if (stat(dir, &st) != 0)
        return sl__fail_errno(errno, "cannot write %s %s: directory %s", what, path, dir);
    if (!S_ISDIR(st.st_mode))
        return sl__fail(SL_ENOTDIR, "cannot write %s %s: %s is not a directory", what, path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return sl__fail_errno(errno, "cannot write %s %s: cannot create files in %s", what, path, dir);
    return 0;
}

int sl_outfile_check(const char *path, sl_outfile_mode mode, const char *what) {
    what = what ? what : "the file";
    if (!path || !path[0])
        return sl__fail(SL_EINVAL, "%s: empty file name", what);
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return sl__fail(SL_EISDIR, "cannot write %s %s: it is a directory (give a file name)", what, path);
        if (S_ISSOCK(st.st_mode))
            return sl__fail(SL_EINVAL, "cannot write %s %s: it is a socket", what, path);
        if (access(path, W_OK) != 0)
            return sl__fail_errno(errno, "cannot write %s %s", what, path);
        if (!S_ISREG(st.st_mode) || mode == SL_OUTFILE_STREAM)
            return 0; /* written in place */
    } else if (errno != ENOENT) {
        return sl__fail_errno(errno, "cannot write %s %s", what, path);
    }
    return s_check_dir(path, what);
}

static unsigned long long s_random(void) {
    static atomic_ullong counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long x = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 30) ^
                           ((unsigned long long)getpid() << 40) ^ atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    return x ^ (x >> 29);
}

/* Creates the temp file for replacing o->target, in its directory, with the mode the result must have. */
static int s_open_temp(sl_outfile *o, const struct stat *existing) {
    char dir[PATH_MAX];
    const char *base = s_split(o->target, dir);
    if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return sl__fail(SL_EISDIR, "cannot write %s %s: it names a directory (give a file name)", o->what, o->path);
    size_t cap = strlen(dir) + NAME_MAX + 2;
    if (!(o->tmp = malloc(cap)))
        return sl__fail(SL_ENOMEM, "out of memory");
    bool short_name = strlen(base) + 19 > NAME_MAX; /* "." + base + ".tmp." + 12 hex digits */
    for (int i = 0; i < S_TMP_ATTEMPTS; i++) {
        unsigned long long r = s_random() & 0xFFFFFFFFFFFFull;
        if (short_name)
            snprintf(o->tmp, cap, "%s/.sluice-out.%012llx", dir, r);
        else
            snprintf(o->tmp, cap, "%s/.%s.tmp.%012llx", dir, base, r);
        /* 0666: a new file gets what the umask leaves, like any file the shell creates. */
        o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0666);
        if (o->fd >= 0)
            break;
        if (errno != EEXIST)
            return sl__fail_errno(errno, "cannot write %s %s: cannot create a file in %s", o->what, o->path, dir);
    }
    if (o->fd < 0)
        return sl__fail(SL_EEXIST, "cannot write %s %s: no free temp file name in %s", o->what, o->path, dir);
    if (existing && fchmod(o->fd, existing->st_mode & 07777) != 0) {
        int e = errno;
        close(o->fd);
        o->fd = -1;
        unlink(o->tmp);
        return sl__fail_errno(e, "cannot write %s %s", o->what, o->path);
    }
    return 0;
}

static void s_free(sl_outfile *o) {
    free(o->path);
    free(o->target);
    free(o->tmp);
    free(o);
}

int sl_outfile_open(const char *path, sl_outfile_mode mode, const char *what, sl_outfile **out) {
    if (!out)
        return sl__fail(SL_EINVAL, "sl_outfile_open: NULL argument");
    *out = NULL;
    int rc = sl_outfile_check(path, mode, what);
    if (rc < 0)
        return rc;
    sl_outfile *o = calloc(1, sizeof(*o));
    if (!o || !(o->path = strdup(path))) {
        free(o);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    o->fd = -1;
    snprintf(o->what, sizeof(o->what), "%s", what ? what : "the file");
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        rc = sl__fail(SL_EISDIR, "cannot write %s %s: it is a directory (give a file name)", o->what, path);
        goto on_error;
    }
    if (exists && !S_ISREG(st.st_mode)) {
        /* A device or a FIFO: written into, as `>` does (no O_TRUNC: it means nothing there). */
        o->fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    } else if (mode == SL_OUTFILE_STREAM) {
        o->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
    } else {
        char target[PATH_MAX];
        int e = s_follow(path, target);
        if (e) {
            rc = sl__fail_errno(e, "cannot write %s %s", o->what, path);
            goto on_error;
        }
        if (!(o->target = strdup(target))) {
            rc = sl__fail(SL_ENOMEM, "out of memory");
            goto on_error;
        }
        if ((rc = s_open_temp(o, exists ? &st : NULL)) < 0)
            goto on_error;
    }
    if (o->fd < 0) {
        rc = sl__fail_errno(errno, "cannot write %s %s", o->what, path);
        goto on_error;
    }
    cookie_io_functions_t io = {.write = s_cookie_write};
    if (!(o->f = fopencookie(o, "w", io))) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
        goto on_error;
    }
    *out = o;
    return 0;

on_error:
    if (o->fd >= 0)
        close(o->fd);
    if (o->tmp && o->fd >= 0)
        unlink(o->tmp);
    s_free(o);
    return rc;
}

FILE *sl_outfile_stream(sl_outfile *f) {
    return f->f;
}

int sl_outfile_flush(sl_outfile *f) {
    if (!f->err && fflush(f->f) != 0 && !f->err)
        f->err = EIO; /* the cookie records write errors; this is any other */
    return f->err ? s_fail(f, f->err) : 0;
}

int sl_outfile_close(sl_outfile *f) {
    if (!f)
        return 0;
    if (!f->err && fflush(f->f) != 0 && !f->err)
        f->err = EIO;
    if (!f->err && f->tmp && fsync(f->fd) != 0)
        f->err = errno;
    fclose(f->f); /* the cookie has no close: the descriptor is ours */
    if (close(f->fd) != 0 && !f->err && errno != EINTR)
        f->err = errno;
    if (!f->err && f->tmp && rename(f->tmp, f->target) != 0)
        f->err = errno;
    if (f->err && f->tmp)
        unlink(f->tmp);
    int rc = f->err ? s_fail(f, f->err) : 0;
    s_free(f);
    return rc;
}

void sl_outfile_discard(sl_outfile *f) {
    if (!f)
        return;
    f->err = f->err ? f->err : ECANCELED; /* nothing more reaches the file */
    fclose(f->f);
    close(f->fd);
    if (f->tmp)
        unlink(f->tmp);
    s_free(f);
}
