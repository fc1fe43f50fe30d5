/* The local-directory store: keys are paths under a root directory.
 *
 * Listing streams keys in memcmp order of the full key, like GCS and S3. Sorting each directory by its entries'
 * "sort names" (a file's name; a directory's name + "/") and recursing depth-first yields exactly that order,
 * because every key under directory d starts with "d/" and no file name contains '/'. Memory stays flat even in a
 * huge flat directory: a level holds at most one batch of B names (the B smallest sort names above a cursor,
 * selected with a bounded max-heap during one readdir pass); when the batch is used up the directory is rewound and
 * scanned again for the next B. Memory is O(depth * B), whatever the number of entries.
 *
 * Writes go to ".sluice-tmp-XXXXXX" (exactly six ASCII letters or digits after the prefix) in the target directory
 * and are renamed into place on commit, so a half-written file never appears under its final name; listings never
 * show a file named exactly so. The writer holds an exclusive flock on its temp file from creation to rename, so such
 * a file nobody holds a lock on belongs to a writer that is gone (killed): a listing with clean_stale removes it. Any
 * other name, ".sluice-tmp-notes" or a directory named like a temp file included, is an ordinary object.
 *
 * Depth is no limit: listing opens each directory relative to its parent's fd, a key whose full path would be longer
 * than PATH_MAX is reached relative to an fd of the root, and a write walks to its directory one component at a time.
 * An entry whose key would be longer than S_KEY_MAX fails alone (on_skipped) and the listing goes on.
 *
 * A write given a source fingerprint records it in the xattr user.sluice.source as
 * "<size> <mtime_ns> <fingerprint> out_crc32c=<8 hex>" (in the compact binary form of resume.h, which fits in the
 * inode; the text itself when it does not, and as older versions wrote it), the size, mtime and CRC32C being the
 * finished file's own (the CRC32C computed while writing): a file changed in place since its commit keeps the xattr
 * but not its size and mtime, so its fingerprint is no longer reported; one whose bytes were lost under it (a power
 * loss after a commit that was not synced) keeps all three, and only a reading of its bytes against out_crc32c shows
 * it (sl_object.committed_crc32c). Records made before out_crc32c existed have none and are still reported.
 *
 * Without fsync a new file is written unnamed where the file system allows it (O_TMPFILE: no temp name, nothing left
 * behind by a killed writer, no lock) and linked under its final name on commit, or, when that name is taken (a file
 * replaced), linked under a locked temp name and renamed over it: half the directory updates of temp file + rename,
 * which is where the kernel spends most of a small file's commit.
 *
 * Commits are atomic (temp file, then rename) but not synced, unless the write asked for fsync: then its commit joins
 * the store's group commit (s_group), which makes a whole batch of finished temp files durable with one syncfs, renames
 * them, and fsyncs each directory they went into once; each writer's sl_write_commit returns once its batch is done. */
#include "crc32c.h"
#include "fail.h"
#include "resume.h"
#include "store_vtable.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define S_TMP_PREFIX ".sluice-tmp-"
#define S_TMP_PREFIX_LEN (sizeof(S_TMP_PREFIX) - 1)
#define S_TMP_RANDOM 6 /* ASCII letters or digits after the prefix, as mkostemp makes them */
#define S_TMP_NAME_LEN (S_TMP_PREFIX_LEN + S_TMP_RANDOM)
#define S_DEFAULT_BATCH 4096
/* The slot index of a batch entry is 32-bit; far beyond any sensible page size anyway. */
#define S_MAX_BATCH (1u << 20)
/* A sort name: up to NAME_MAX bytes, '/' for a directory, NUL. */
#define S_SLOT (NAME_MAX + 2)
/* A key must fit a PATH_MAX buffer with its NUL; a full path may be longer (s_loc, s_open_dir). */
#define S_KEY_MAX (PATH_MAX - 1)
#define S_XATTR "user.sluice.source"
#define S_FP_MAX 255 /* a recorded fingerprint */
#define S_XATTR_CAP (S_FP_MAX + 96)
#define S_OUT_CRC " out_crc32c="
#define S_OUT_CRC_LEN (sizeof(S_OUT_CRC) - 1)
/* Commits one batch makes durable at most, and commits waiting at once (each holds its file's and its directory's fd:
 * 256 fds). */
#define S_GROUP_MAX 128
/* The committer waits for a batch to fill up to S_GROUP_FULL commits, at most S_GROUP_WAIT_NS after the first came. */
#define S_GROUP_FULL 64
#define S_GROUP_WAIT_NS 2000000LL

typedef struct s_writer s_writer;

/* A commit handed to the committer (sl__write_commit_deferred): the writer, no longer its client's. */
typedef struct s_pending {
    struct s_pending *next;
    s_writer *w;
    sl__commit_fn fn;
    void *ctx;
    int rc;
    char *message; /* the failure's message (rc < 0), malloc'd; NULL when out of memory */
} s_pending;

/* The store's committer: a thread, started with the first commit with fsync, that takes the commits queued (up to
 * S_GROUP_MAX) as one batch and makes it durable, while the writers that queued them go on with other work. */
typedef struct s_group {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* for the committer: a commit queued, a drain asked, or stop */
    pthread_cond_t idle; /* for producers: room in the queue, a batch done */
    s_pending *head, **tail;
    size_t queued;
    int64_t first_ns; /* when the oldest commit queued came */
    bool busy;        /* the committer is running a batch */
    bool started, stop;
    unsigned drains; /* threads waiting for the queue to empty: no more waiting for a fuller batch */
    pthread_t thread;
} s_group;

typedef struct s_store {
    sl_store base;
    char *root;       /* absolute, no trailing '/'; "" for the file-system root */
    mode_t file_mode; /* 0666 & ~umask, applied to new files (temp files are created 0600) */
    /* New files may be written unnamed (O_TMPFILE) and linked into place through /proc/self/fd: false once the file
     * system refused O_TMPFILE, or when /proc is not there to link through. */
    atomic_bool unnamed_ok;
    s_group group;
} s_store;

/* Handles still open on a client, so client_destroy can close them. */
typedef enum s_kind { S_LISTER, S_READER, S_WRITER } s_kind;
typedef struct s_link {
    struct s_link *prev, *next;
    s_kind kind;
} s_link;

typedef struct s_client {
    sl_client base;
    s_link open; /* sentinel of the circular list of open handles */
    /* The directory the last write went into, kept open, so writing many files into one directory costs no mkdir and
     * no walk: dir_fd (-1 = none, or lent to a writer) is key[0, dir_key_len) of that write. */
    int dir_fd;
    size_t dir_key_len;
    char dir_key[PATH_MAX];
    char fp[S_XATTR_CAP]; /* the source fingerprint of the last sl_stat */
} s_client;

typedef struct s_entry {
    uint32_t slot; /* index of the sort name in the level's arena */
    uint16_t len;  /* sort-name length, including the '/' of a directory */
    bool is_dir;
} s_entry;

typedef struct s_level {
    DIR *dir;
    int fd;
    size_t prefix_len; /* key bytes of the directory itself ("a/b/"), before its entries' names */
    s_entry *batch;    /* a max-heap while scanning, then sorted ascending */
    size_t batch_cap, n, pos;
    char *arena; /* batch_cap slots of S_SLOT bytes; kept across rescans and across reuse of this depth */
    bool more;   /* the last scan filled the batch: a rescan after the cursor may find more */
    bool has_cursor;
    uint16_t cursor_len;
    char cursor[S_SLOT]; /* the greatest sort name handed out so far by this level */
    const char *start;   /* before the first scan: the part of start_after below this directory, or NULL */
    size_t start_len;
} s_level;

typedef struct s_lister {
    sl_lister base;
    s_link link;
    bool recursive;
    bool fingerprints, clean_stale;
    void (*on_skipped)(void *user_data, const char *key, size_t key_len, int err, const char *message);
    void *on_skipped_data;
    size_t batch_max;
    char *start_after; /* owned copy; levels point into it */
    s_level *levels;
    size_t depth, levels_cap;
    char key[PATH_MAX + S_SLOT];
    char fp[S_XATTR_CAP]; /* the source fingerprint of the last object returned */
} s_lister;

typedef struct s_reader {
    sl_reader base;
    s_link link;
    int fd;
    uint64_t pos, end;
    uint64_t offset;  /* where the range starts */
    bool to_eof;      /* the file system reports a size of 0 (/proc and the like): read until end of file */
    uint64_t size;    /* the file's size when opened */
    int64_t mtime_ns; /* and its mtime: both must be the same once the range has been read */
    bool changed;     /* it was not: every read fails */
    char path[];
} s_reader;

struct s_writer {
    sl_writer base;
    s_link link;
    int fd;
    int dir_fd;       /* the directory the file goes into; every call is relative to it, so depth does not matter */
    size_t dir_len;   /* that directory's key length */
    const char *name; /* the file's name there (points into path) */
    char tmp_name[S_TMP_NAME_LEN + 1]; /* "" while the file has no name (O_TMPFILE) */
    char *fingerprint;                 /* NULL: none to record */
    bool fsync;                        /* sl_write_options.fsync */
    uint32_t crc32c;                   /* of the bytes written so far */
    char path[];                       /* "<root>/<key>", for messages */
};

static const sl_store_vtable s_vtable;

static void s_link_add(s_client *c, s_link *l, s_kind kind) {
    l->kind = kind;
    l->next = c->open.next;
    l->prev = &c->open;
    c->open.next->prev = l;
    c->open.next = l;
}

static void s_link_remove(s_link *l) {
    l->prev->next = l->next;
    l->next->prev = l->prev;
}

static const char *s_hint(int errnum) {
    switch (errnum) {
    case ENOSPC:
    case EDQUOT:
        return " (the file system is full: free some space or choose another destination)";
    case EROFS:
        return " (the file system is mounted read-only)";
    case EACCES:
    case EPERM:
        return " (check the permissions of the file and its directories)";
    case EMFILE:
    case ENFILE:
        return " (too many open files: raise the open-file limit, ulimit -n)";
    default:
        return "";
    }
}

/* "<path>: <what>: <strerror>[ (hint)]", with the SL_E* code of errnum. */
static int s_fail_path(int errnum, const char *path, const char *what) {
    char buf[128];
    const char *reason = strerror_r(errnum, buf, sizeof(buf));
    return sl__fail(sl__errno_to_sl(errnum), "%s: %s: %s%s", path, what, reason, s_hint(errnum));
}

/* s_fail_path for the path "<root>/<key>", however long (the message is shortened in its middle). */
static int s_fail_key(int errnum, const char *root, const char *key, const char *what) {
    char buf[128];
    const char *reason = strerror_r(errnum, buf, sizeof(buf));
    return sl__fail(sl__errno_to_sl(errnum), "%s/%s: %s: %s%s", root, key, what, reason, s_hint(errnum));
}

/* Whether name[0, len) has exactly the form of the temp files writers make: the prefix, then S_TMP_RANDOM ASCII
 * letters or digits. Only a file of such a name is ever taken for a write in progress or a leftover. */
static bool s_is_temp_name(const char *name, size_t len) {
    if (len != S_TMP_NAME_LEN || memcmp(name, S_TMP_PREFIX, S_TMP_PREFIX_LEN) != 0)
        return false;
    for (size_t i = S_TMP_PREFIX_LEN; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

static int s_cmp(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* Rejects keys that could name something outside the root, or that a directory tree cannot hold. */
static int s_key_check(const s_store *st, const char *key) {
    const char *why = NULL;
    size_t len = strlen(key);
    if (!len)
        return sl__fail(SL_EUNSAFEKEY, "%s/: an empty object key cannot name a file", st->root);
    if (key[0] == '/')
        why = "it starts with '/'";
    else if (key[len - 1] == '/')
        why = "it ends with '/' (a directory, not a file)";
    for (const char *p = key; !why;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0)
            why = "it has an empty path component (\"//\")";
        else if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            why = "it has a '.' or '..' path component";
        else if (!slash && s_is_temp_name(p, n))
            why = "a file named \"" S_TMP_PREFIX "\" and six letters or digits is reserved for writes in progress";
        else if (n > NAME_MAX)
            return sl__fail(SL_ENAMETOOLONG, "%s/%s: a path component of %zu bytes is too long (limit %d)", st->root,
                            key, n, NAME_MAX);
        if (!slash)
            break;
        p = slash + 1;
    }
    if (why)
        return sl__fail(SL_EUNSAFEKEY, "%s/%s: object key is unsafe for a local directory: %s", st->root, key, why);
    if (len > S_KEY_MAX)
        return sl__fail(SL_ENAMETOOLONG, "%s/%s: the key is %zu bytes long, over the limit of %d bytes", st->root, key,
                        len, S_KEY_MAX);
    return 0;
}

/* Where the file of a key is, for the *at() calls: its full path relative to the current directory, or, when that
 * would be longer than PATH_MAX, the key itself relative to an fd of the root (the kernel limits each path it is
 * given, not the depth of a file), so every key of up to S_KEY_MAX bytes can be reached whatever the root. */
typedef struct s_loc {
    int dirfd;        /* AT_FDCWD, or an fd of the root that s_loc_close closes */
    const char *name; /* relative to dirfd */
    char path[PATH_MAX];
} s_loc;

/* Checks `key` and fills *loc. */
static int s_loc_open(const s_store *st, const char *key, s_loc *loc) {
    loc->dirfd = AT_FDCWD;
    loc->name = loc->path;
    int rc = s_key_check(st, key);
    if (rc < 0)
        return rc;
    int n = snprintf(loc->path, sizeof(loc->path), "%s/%s", st->root, key);
    if (n >= 0 && (size_t)n < sizeof(loc->path))
        return 0;
    loc->dirfd = open(st->root[0] ? st->root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (loc->dirfd < 0) {
        int err = errno;
        if (err == ENOENT || err == ENOTDIR)
            return sl__fail(SL_ENOENT, "%s/%s: no such object (no such file)", st->root, key);
        return s_fail_key(err, st->root, key, "cannot open the root directory");
    }
    loc->name = key;
    return 0;
}

static void s_loc_close(s_loc *loc) {
    if (loc->dirfd >= 0)
        close(loc->dirfd);
    loc->dirfd = AT_FDCWD;
}

static int64_t s_mtime_ns(const struct stat *st) {
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* Whether the open file `fd` has at least one byte to read. */
static bool s_has_content(int fd) {
    char c;
    ssize_t n;
    while ((n = pread(fd, &c, 1, 0)) < 0 && errno == EINTR)
        ;
    return n > 0;
}

/* Whether `fd` is on a file system whose file sizes say nothing of their content (proc, sysfs, debugfs, ...). */
static bool s_is_pseudo_fs(int fd) {
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        return false;
    switch ((unsigned long)sf.f_type) {
    case PROC_SUPER_MAGIC:
    case SYSFS_MAGIC:
    case DEBUGFS_MAGIC:
    case TRACEFS_MAGIC:
    case SECURITYFS_MAGIC:
    case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC:
        return true;
    default:
        return false;
    }
}

static void s_fill_object(sl_object *out, const char *key, size_t key_len, const struct stat *st) {
    memset(out, 0, sizeof(*out));
    out->key = key;
    out->key_len = key_len;
    if (st) {
        out->size = (uint64_t)st->st_size;
        out->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    }
}

/* The fingerprint in buf[0, n) (n: what getxattr answered), NUL-terminated in place, into out->source_fingerprint,
 * and the CRC32C recorded after it into out->committed_crc32c; nothing when there is none, or when the file (whose stat
 * is `st`) no longer has the size or mtime recorded with it: it changed since. */
static void s_parse_fingerprint(char *buf, ssize_t n, const struct stat *st, sl_object *out) {
    if (n <= 0)
        return;
    if ((unsigned char)buf[0] == SL__FP_RECORD_TAG) {
        /* The compact record: made into its text form, which is then read as the text form always was. */
        unsigned char rec[S_XATTR_CAP];
        memcpy(rec, buf, (size_t)n);
        if (!sl__fp_record_decode(rec, (size_t)n, buf, S_XATTR_CAP))
            return;
        n = (ssize_t)strlen(buf);
    }
    buf[n] = '\0';
    unsigned long long size;
    long long mtime_ns;
    int used = 0;
    if (sscanf(buf, "%llu %lld %n", &size, &mtime_ns, &used) != 2 || !used || !buf[used])
        return;
    if (size != (unsigned long long)st->st_size || mtime_ns != (long long)s_mtime_ns(st))
        return;
    char *fp = buf + used, *crc = NULL;
    for (char *p = strstr(fp, S_OUT_CRC); p; p = strstr(p + 1, S_OUT_CRC))
        crc = p;
    if (crc && crc > fp && strlen(crc + S_OUT_CRC_LEN) == 8) {
        uint32_t v = 0;
        bool hex = true;
        for (const char *q = crc + S_OUT_CRC_LEN; *q && hex; q++) {
            int d = *q >= '0' && *q <= '9' ? *q - '0' : *q >= 'a' && *q <= 'f' ? *q - 'a' + 10 : -1;
            hex = d >= 0;
            v = v << 4 | (uint32_t)(d & 0xf);
        }
        if (hex) {
            *crc = '\0';
            out->has_committed_crc32c = true;
            out->committed_crc32c = v;
        }
    }
    out->source_fingerprint = fp;
}

/* The fingerprint recorded in the xattr of the file at `path` whose stat is `st`, copied into buf[S_XATTR_CAP], as
 * s_parse_fingerprint fills `out`: nothing when there is none, or when the file's size or mtime is no longer the one
 * recorded: it changed since. */
static void s_read_fingerprint(const char *path, const struct stat *st, char *buf, sl_object *out) {
    s_parse_fingerprint(buf, getxattr(path, S_XATTR, buf, S_XATTR_CAP - 1), st, out);
}

/* s_read_fingerprint for `name` relative to `dirfd` (AT_FDCWD: a path). */
static void s_read_fingerprint_at(int dirfd, const char *name, const struct stat *st, char *buf, sl_object *out) {
    if (dirfd == AT_FDCWD) {
        s_read_fingerprint(name, st, buf, out);
        return;
    }
    /* There is no getxattrat: through the file itself (reading a user xattr needs read permission anyway). */
    int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat now;
    if (fstat(fd, &now) == 0 && now.st_ino == st->st_ino && now.st_dev == st->st_dev)
        s_parse_fingerprint(buf, fgetxattr(fd, S_XATTR, buf, S_XATTR_CAP - 1), st, out);
    close(fd);
}

/* Removes `name` in `dirfd` if it is a temp file no writer holds a lock on: the leftover of a killed process. The
 * name is checked to still be the file locked, so a temp file created under the same name meanwhile is left alone. */
static void s_remove_stale(int dirfd, const char *name) {
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return;
    struct stat a, b;
    if (fstat(fd, &a) == 0 && S_ISREG(a.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
        unlinkat(dirfd, name, 0);
    close(fd);
}

/* The process umask, read without changing it where possible: umask() is process-wide, and setting it even
 * briefly races with other threads creating files. */
static mode_t s_read_umask(void) {
    FILE *f = fopen("/proc/self/status", "re");
    if (f) {
        char line[256];
        unsigned int mask;
        while (fgets(line, sizeof(line), f)) {
            if (sscanf(line, "Umask: %o", &mask) == 1) {
                fclose(f);
                return (mode_t)(mask & 0777);
            }
        }
        fclose(f);
    }
    mode_t mask = umask(022);
    umask(mask);
    return mask;
}

int sl__store_local_open(const sl_url *url, const sl_store_options *opts, sl_store **out) {
    (void)opts;
    *out = NULL;
    size_t len = strlen(url->path);
    while (len && url->path[len - 1] == '/')
        len--;
    if (len + 2 > PATH_MAX)
        return sl__fail(SL_ENAMETOOLONG, "%s: path too long (limit %d bytes)", url->path, S_KEY_MAX);
    s_store *st = calloc(1, sizeof(*st));
    if (!st)
        goto on_error;
    st->root = strndup(url->path, len);
    if (!st->root)
        goto on_error;
    st->base.vt = &s_vtable;
    st->base.scheme = SL_SCHEME_FILE;
    st->file_mode = 0666 & ~s_read_umask();
    atomic_init(&st->unnamed_ok, access("/proc/self/fd", X_OK) == 0);
    pthread_mutex_init(&st->group.lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->group.wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&st->group.idle, NULL);
    st->group.tail = &st->group.head;
    *out = &st->base;
    return 0;

on_error:
    if (st)
        free(st->root);
    free(st);
    return sl__fail(SL_ENOMEM, "%s: out of memory opening the store", url->path);
}

static void s_group_stop(s_group *g);

static void s_store_close(sl_store *store) {
    s_store *st = (s_store *)store;
    s_group_stop(&st->group);
    pthread_mutex_destroy(&st->group.lock);
    pthread_cond_destroy(&st->group.wake);
    pthread_cond_destroy(&st->group.idle);
    free(st->root);
    free(st);
}

static int s_client_new(sl_store *store, sl_client **out) {
    s_client *c = malloc(sizeof(*c));
    if (!c)
        return sl__fail(SL_ENOMEM, "out of memory creating a client");
    c->base.store = store;
    c->open.next = c->open.prev = &c->open;
    c->dir_fd = -1;
    c->dir_key_len = 0;
    *out = &c->base;
    return 0;
}

static void s_list_close(sl_lister *lister);
static void s_read_close(sl_reader *reader);
static void s_write_abort(sl_writer *writer);

static void s_client_destroy(sl_client *client) {
    s_client *c = (s_client *)client;
    while (c->open.next != &c->open) {
        /* Unlinked here, and left pointing at itself so the close's own unlink is a no-op. */
        s_link *l = c->open.next;
        c->open.next = l->next;
        l->next->prev = &c->open;
        l->next = l->prev = l;
        switch (l->kind) {
        case S_LISTER:
            s_list_close(&((s_lister *)((char *)l - offsetof(s_lister, link)))->base);
            break;
        case S_READER:
            s_read_close(&((s_reader *)((char *)l - offsetof(s_reader, link)))->base);
            break;
        case S_WRITER:
            s_write_abort(&((s_writer *)((char *)l - offsetof(s_writer, link)))->base);
            break;
        }
    }
    if (c->dir_fd >= 0)
        close(c->dir_fd);
    free(c);
}

/* ---- listing ---- */

static const char *s_root_name(const s_store *st) {
    return st->root[0] ? st->root : "/";
}

static s_store *s_lister_store(const s_lister *ls) {
    return (s_store *)ls->base.client->store;
}

/* s_fail_path for the path of the first `len` key bytes followed by `name` (may be ""), however long. */
static int s_fail_listed(const s_lister *ls, int errnum, size_t len, const char *name, const char *what) {
    char buf[128];
    const char *reason = strerror_r(errnum, buf, sizeof(buf));
    return sl__fail(sl__errno_to_sl(errnum), "%s/%.*s%s: %s: %s%s", s_lister_store(ls)->root, (int)len, ls->key, name,
                    what, reason, s_hint(errnum));
}

static char *s_slot(const s_level *lv, uint32_t slot) {
    return lv->arena + (size_t)slot * S_SLOT;
}

static int s_entry_cmp(const s_level *lv, const s_entry *a, const s_entry *b) {
    return s_cmp(s_slot(lv, a->slot), a->len, s_slot(lv, b->slot), b->len);
}

static void s_sift_down(s_level *lv, size_t i, size_t n) {
    s_entry *h = lv->batch;
    for (;;) {
        size_t big = i, l = 2 * i + 1, r = l + 1;
        if (l < n && s_entry_cmp(lv, &h[l], &h[big]) > 0)
            big = l;
        if (r < n && s_entry_cmp(lv, &h[r], &h[big]) > 0)
            big = r;
        if (big == i)
            return;
        s_entry t = h[i];
        h[i] = h[big];
        h[big] = t;
        i = big;
    }
}

static void s_sift_up(s_level *lv, size_t i) {
    s_entry *h = lv->batch;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s_entry_cmp(lv, &h[i], &h[parent]) <= 0)
            return;
        s_entry t = h[i];
        h[i] = h[parent];
        h[parent] = t;
        i = parent;
    }
}

/* Makes room in the batch and arena of `lv` for one more entry, growing them up to batch_max entries. */
static int s_level_reserve(s_lister *ls, s_level *lv) {
    if (lv->n < lv->batch_cap)
        return 0;
    size_t cap = lv->batch_cap ? lv->batch_cap * 2 : 16;
    if (cap > ls->batch_max)
        cap = ls->batch_max;
    s_entry *batch = realloc(lv->batch, cap * sizeof(*batch));
    if (!batch)
        return sl__fail(SL_ENOMEM, "out of memory listing a directory");
    lv->batch = batch;
    char *arena = realloc(lv->arena, cap * S_SLOT);
    if (!arena)
        return sl__fail(SL_ENOMEM, "out of memory listing a directory");
    lv->arena = arena;
    lv->batch_cap = cap;
    return 0;
}

/* Whether a sort name is wanted in the next batch of `lv` (not counting the batch-size bound). */
static bool s_wanted(const s_lister *ls, const s_level *lv, const char *name, size_t len, bool is_dir) {
    if (lv->has_cursor)
        return s_cmp(name, len, lv->cursor, lv->cursor_len) > 0;
    if (!lv->start)
        return true;
    if (s_cmp(name, len, lv->start, lv->start_len) > 0)
        return true;
    /* A directory that start_after points into still holds keys after it. */
    return ls->recursive && is_dir && lv->start_len >= len && memcmp(lv->start, name, len) == 0;
}

/* Classifies one directory entry: 1 = file, 2 = directory, 0 = skip, <0 = error. A symlink to a regular file is
 * that file; symlinks to directories are skipped, so a listing never loops; fifos, sockets and devices are skipped. */
static int s_classify(s_lister *ls, s_level *lv, const struct dirent *d) {
    struct stat st;
    mode_t mode;
    switch (d->d_type) {
    case DT_REG:
        return 1;
    case DT_DIR:
        return 2;
    case DT_LNK:
        mode = S_IFLNK;
        break;
    case DT_UNKNOWN:
        /* File systems without d_type. */
        if (fstatat(lv->fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                return 0;
            return s_fail_listed(ls, errno, lv->prefix_len, d->d_name, "cannot stat");
        }
        mode = st.st_mode;
        break;
    default:
        return 0;
    }
    if (S_ISDIR(mode))
        return 2;
    if (S_ISREG(mode))
        return 1;
    if (!S_ISLNK(mode) || fstatat(lv->fd, d->d_name, &st, 0) < 0)
        return 0;
    return S_ISREG(st.st_mode) ? 1 : 0;
}

/* One readdir pass over the directory of `lv`: selects the next batch (the batch_max smallest wanted sort names)
 * and sorts it. */
static int s_scan(s_lister *ls, s_level *lv) {
    if (lv->n) {
        /* Moving on from a used-up batch: everything up to its greatest name has been handed out. */
        s_entry *last = &lv->batch[lv->n - 1];
        memcpy(lv->cursor, s_slot(lv, last->slot), last->len);
        lv->cursor_len = last->len;
        lv->has_cursor = true;
        rewinddir(lv->dir);
    }
    lv->n = lv->pos = 0;
    for (;;) {
        errno = 0;
        struct dirent *d = readdir(lv->dir);
        if (!d) {
            if (errno)
                return s_fail_listed(ls, errno, lv->prefix_len, "", "cannot list");
            break;
        }
        const char *name = d->d_name;
        if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
            continue;
        size_t len = strlen(name);
        if (len > NAME_MAX)
            continue;
        int kind = s_classify(ls, lv, d);
        if (kind < 0)
            return kind;
        if (kind == 0)
            continue;
        /* A file named exactly like a temp file is a write in progress or the leftover of a killed one, never an
         * object, in a source as in a destination. */
        if (kind == 1 && s_is_temp_name(name, len)) {
            if (ls->clean_stale)
                s_remove_stale(lv->fd, name);
            continue;
        }
        bool is_dir = kind == 2;
        /* A directory sorts as "name/": that puts its subtree exactly where its keys fall in byte order. */
        char sort_name[S_SLOT];
        memcpy(sort_name, name, len);
        if (is_dir)
            sort_name[len++] = '/';
        if (!s_wanted(ls, lv, sort_name, len, is_dir))
            continue;
        s_entry e = {.len = (uint16_t)len, .is_dir = is_dir};
        if (lv->n < ls->batch_max) {
            int rc = s_level_reserve(ls, lv);
            if (rc < 0)
                return rc;
            e.slot = (uint32_t)lv->n;
            memcpy(s_slot(lv, e.slot), sort_name, len);
            lv->batch[lv->n] = e;
            s_sift_up(lv, lv->n++);
        } else {
            s_entry *max = &lv->batch[0];
            if (s_cmp(sort_name, len, s_slot(lv, max->slot), max->len) >= 0)
                continue;
            e.slot = max->slot;
            memcpy(s_slot(lv, e.slot), sort_name, len);
            *max = e;
            s_sift_down(lv, 0, lv->n);
        }
    }
    for (size_t i = lv->n; i > 1; i--) {
        s_entry t = lv->batch[0];
        lv->batch[0] = lv->batch[i - 1];
        lv->batch[i - 1] = t;
        s_sift_down(lv, 0, i - 1);
    }
    lv->more = lv->n == ls->batch_max;
    return 0;
}

/* Makes `fd` (a directory) the next level; takes ownership of fd. */
static int s_push_level(s_lister *ls, int fd, size_t prefix_len, const char *start, size_t start_len) {
    if (ls->depth == ls->levels_cap) {
        size_t cap = ls->levels_cap ? ls->levels_cap * 2 : 8;
        s_level *levels = realloc(ls->levels, cap * sizeof(*levels));
        if (!levels) {
            close(fd);
            return sl__fail(SL_ENOMEM, "out of memory listing a directory");
        }
        memset(levels + ls->levels_cap, 0, (cap - ls->levels_cap) * sizeof(*levels));
        ls->levels = levels;
        ls->levels_cap = cap;
    }
    s_level *lv = &ls->levels[ls->depth];
    lv->dir = fdopendir(fd);
    if (!lv->dir) {
        int e = errno;
        close(fd);
        return s_fail_listed(ls, e, prefix_len, "", "cannot list");
    }
    lv->fd = fd;
    lv->prefix_len = prefix_len;
    lv->n = lv->pos = 0;
    lv->more = true;
    lv->has_cursor = false;
    lv->start = start;
    lv->start_len = start_len;
    ls->depth++;
    return 0;
}

static void s_pop_level(s_lister *ls) {
    s_level *lv = &ls->levels[--ls->depth];
    closedir(lv->dir);
    lv->dir = NULL;
}

/* Why `path`, which is not a directory, can be neither listed nor read: what it is. */
static const char *s_not_dir_kind(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || S_ISREG(sb.st_mode))
        return "not a directory (only a directory can be listed)";
    if (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode))
        return "a device, not a regular file or a directory (sluice reads regular files only)";
    if (S_ISFIFO(sb.st_mode))
        return "a FIFO, not a regular file or a directory (sluice reads regular files only; use a file)";
    if (S_ISSOCK(sb.st_mode))
        return "a socket, not a regular file or a directory (sluice reads regular files only)";
    return "not a regular file or a directory (sluice reads regular files only)";
}

static int s_list_open(sl_client *client, const sl_list_options *opts, sl_lister **out) {
    const char *root = s_root_name((s_store *)client->store);
    int rc;
    s_lister *ls = calloc(1, sizeof(*ls));
    if (!ls)
        return sl__fail(SL_ENOMEM, "out of memory opening a listing");
    ls->base.client = client;
    ls->recursive = opts->recursive;
    ls->fingerprints = opts->fingerprints;
    ls->clean_stale = opts->clean_stale;
    ls->on_skipped = opts->on_skipped;
    ls->on_skipped_data = opts->on_skipped_data;
    ls->batch_max = opts->page_size ? opts->page_size : S_DEFAULT_BATCH;
    if (ls->batch_max > S_MAX_BATCH)
        ls->batch_max = S_MAX_BATCH;
    if (opts->start_after) {
        ls->start_after = strdup(opts->start_after);
        if (!ls->start_after) {
            rc = sl__fail(SL_ENOMEM, "out of memory opening a listing");
            goto on_error;
        }
    }
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            rc = sl__fail(SL_ENOENT, "%s: no such file or directory", root);
        else if (errno == ENOTDIR)
            rc = sl__fail(SL_ENOTDIR, "%s: %s", root, s_not_dir_kind(root));
        else
            rc = s_fail_path(errno, root, "cannot list");
        goto on_error;
    }
    rc = s_push_level(ls, fd, 0, ls->start_after, ls->start_after ? strlen(ls->start_after) : 0);
    if (rc < 0)
        goto on_error;
    s_link_add((s_client *)client, &ls->link, S_LISTER);
    *out = &ls->base;
    return 0;

on_error:
    free(ls->levels);
    free(ls->start_after);
    free(ls);
    return rc;
}

/* sl_prefix_probe: the directory root/sub, judged by its first entry. What is not there (or is a file, when `sub` is
 * given: nothing can be under a file) is missing; what cannot be listed fails as sl_list_open would fail on it. */
static int s_probe(sl_client *client, const char *sub) {
    const s_store *st = (const s_store *)client->store;
    size_t sl = strlen(sub);
    while (sl && sub[sl - 1] == '/')
        sl--;
    char path[PATH_MAX];
    int n = sl ? snprintf(path, sizeof(path), "%s/%.*s", st->root, (int)sl, sub)
               : snprintf(path, sizeof(path), "%s", s_root_name(st));
    if (n < 0 || (size_t)n >= sizeof(path))
        return sl__fail(SL_ENAMETOOLONG, "%s/%.*s: path too long (limit %d bytes)", st->root, (int)sl, sub, S_KEY_MAX);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && (errno == ENOENT || (errno == ENOTDIR && sl)))
        return SL_PREFIX_MISSING;
    if (fd < 0 && errno == ENOTDIR)
        return sl__fail(SL_ENOTDIR, "%s: %s", path, s_not_dir_kind(path));
    if (fd < 0)
        return s_fail_path(errno, path, "cannot list");
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return s_fail_path(e, path, "cannot list");
    }
    int state = SL_PREFIX_EMPTY;
    struct dirent *de;
    errno = 0;
    while (state == SL_PREFIX_EMPTY && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            state = SL_PREFIX_OBJECTS;
    int e = errno;
    closedir(d);
    return state == SL_PREFIX_EMPTY && e ? s_fail_path(e, path, "cannot list") : state;
}

/* Descends into the directory entry `e` of `lv`, whose key (ending in '/') is ls->key[0, key_len). A directory
 * removed or replaced since the scan is skipped. */
static int s_descend(s_lister *ls, const s_level *lv, const s_entry *e, size_t key_len) {
    char *name = ls->key + lv->prefix_len;
    name[e->len - 1] = '\0';
    int fd = openat(lv->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    name[e->len - 1] = '/';
    if (fd < 0) {
        if (err == ENOENT || err == ENOTDIR || err == ELOOP)
            return 0;
        int rc = s_fail_listed(ls, err, key_len - 1, "", "cannot list directory");
        if ((err == EACCES || err == EPERM) && ls->on_skipped) {
            /* One unreadable directory fails alone; the rest of the tree is still listed. */
            ls->on_skipped(ls->on_skipped_data, ls->key, key_len, rc, sl_last_error());
            return 0;
        }
        return rc;
    }
    /* Only the first batch of a level is selected by start_after; the directory it points into inherits the rest. */
    const char *start = NULL;
    size_t start_len = 0;
    if (!lv->has_cursor && lv->start && lv->start_len >= e->len && memcmp(lv->start, name, e->len) == 0) {
        start = lv->start + e->len;
        start_len = lv->start_len - e->len;
    }
    return s_push_level(ls, fd, key_len, start, start_len);
}

/* After an error the listing can go on: the next call continues after the entry or directory that failed. */
static int s_list_next(sl_lister *lister, sl_object *out) {
    s_lister *ls = (s_lister *)lister;
    while (ls->depth) {
        s_level *lv = &ls->levels[ls->depth - 1];
        if (lv->pos == lv->n) {
            if (!lv->more) {
                s_pop_level(ls);
                continue;
            }
            int rc = s_scan(ls, lv);
            if (rc < 0) {
                s_pop_level(ls);
                return rc;
            }
            continue;
        }
        const s_entry *e = &lv->batch[lv->pos++];
        size_t key_len = lv->prefix_len + e->len;
        memcpy(ls->key + lv->prefix_len, s_slot(lv, e->slot), e->len);
        ls->key[key_len] = '\0';
        if (key_len > S_KEY_MAX) {
            /* Found however deep it is (levels are opened relative to their parent), but no key can name it: it fails
             * alone, a directory with everything under it, under the key it would have. */
            int rc = sl__fail(
                SL_ENAMETOOLONG, "%s/%s: skipped%s: its key would be %zu bytes long, over the limit of %d",
                s_lister_store(ls)->root, ls->key, e->is_dir ? " with everything under it" : "", key_len, S_KEY_MAX);
            if (!ls->on_skipped)
                return rc;
            ls->on_skipped(ls->on_skipped_data, ls->key, key_len, rc, sl_last_error());
            continue;
        }
        if (e->is_dir) {
            if (!ls->recursive) {
                s_fill_object(out, ls->key, key_len, NULL);
                out->is_prefix = true;
                return 1;
            }
            int rc = s_descend(ls, lv, e, key_len);
            if (rc < 0)
                return rc;
            continue;
        }
        struct stat st;
        if (fstatat(lv->fd, ls->key + lv->prefix_len, &st, 0) < 0) {
            if (errno == ENOENT)
                continue;
            return s_fail_listed(ls, errno, key_len, "", "cannot stat");
        }
        if (!S_ISREG(st.st_mode))
            continue;
        s_fill_object(out, ls->key, key_len, &st);
        if (ls->fingerprints) {
            char path[PATH_MAX];
            int n = snprintf(path, sizeof(path), "%s/%s", s_lister_store(ls)->root, ls->key);
            if (n > 0 && (size_t)n < sizeof(path))
                s_read_fingerprint(path, &st, ls->fp, out);
            else
                s_read_fingerprint_at(lv->fd, ls->key + lv->prefix_len, &st, ls->fp, out);
        }
        return 1;
    }
    return 0;
}

static void s_list_close(sl_lister *lister) {
    s_lister *ls = (s_lister *)lister;
    while (ls->depth)
        s_pop_level(ls);
    for (size_t i = 0; i < ls->levels_cap; i++) {
        free(ls->levels[i].batch);
        free(ls->levels[i].arena);
    }
    free(ls->levels);
    free(ls->start_after);
    s_link_remove(&ls->link);
    free(ls);
}

/* ---- stat, read, delete ---- */

static int s_not_found(const s_store *st, const char *key, int errnum) {
    if (errnum == ENOENT || errnum == ENOTDIR)
        return sl__fail(SL_ENOENT, "%s/%s: no such object (no such file)", st->root, key);
    return s_fail_key(errnum, st->root, key, "cannot open");
}

static int s_not_regular(const s_store *st, const char *key, const struct stat *sb) {
    if (S_ISDIR(sb->st_mode))
        return sl__fail(SL_ENOENT, "%s/%s: is a directory, not an object", st->root, key);
    return sl__fail(SL_ENOENT, "%s/%s: not a regular file, not an object", st->root, key);
}

static int s_stat(sl_client *client, const char *key, sl_object *out) {
    const s_store *st = (const s_store *)client->store;
    s_loc loc;
    int rc = s_loc_open(st, key, &loc);
    struct stat sb;
    if (rc == 0 && fstatat(loc.dirfd, loc.name, &sb, 0) < 0)
        rc = s_not_found(st, key, errno);
    else if (rc == 0 && !S_ISREG(sb.st_mode))
        rc = s_not_regular(st, key, &sb);
    if (rc == 0) {
        s_fill_object(out, key, strlen(key), &sb);
        s_read_fingerprint_at(loc.dirfd, loc.name, &sb, ((s_client *)client)->fp, out);
    }
    s_loc_close(&loc);
    return rc;
}

static int s_read_open(sl_client *client, const char *key, uint64_t offset, uint64_t length, sl_object *info,
                       sl_reader **out) {
    const s_store *st = (const s_store *)client->store;
    s_loc loc;
    int rc = s_loc_open(st, key, &loc);
    if (rc < 0)
        return rc;
    size_t root_len = strlen(st->root), key_len = strlen(key);
    s_reader *r = malloc(sizeof(*r) + root_len + 1 + key_len + 1);
    if (!r) {
        s_loc_close(&loc);
        return sl__fail(SL_ENOMEM, "%s/%s: out of memory opening for reading", st->root, key);
    }
    memcpy(r->path, st->root, root_len);
    r->path[root_len] = '/';
    memcpy(r->path + root_len + 1, key, key_len + 1);
    /* O_NONBLOCK: opening a fifo must not wait for a writer; it is cleared once the file is known to be regular. */
    r->fd = openat(loc.dirfd, loc.name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    s_loc_close(&loc);
    if (r->fd < 0) {
        rc = s_not_found(st, key, errno);
        goto on_error;
    }
    struct stat sb;
    if (fstat(r->fd, &sb) < 0) {
        rc = s_fail_path(errno, r->path, "cannot stat");
        goto on_error;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = s_not_regular(st, key, &sb);
        goto on_error;
    }
    int flags = fcntl(r->fd, F_GETFL);
    if (flags < 0 || fcntl(r->fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        rc = s_fail_path(errno, r->path, "cannot open");
        goto on_error;
    }
    uint64_t size = (uint64_t)sb.st_size;
    r->size = size;
    r->mtime_ns = s_mtime_ns(&sb);
    r->changed = false;
    r->offset = r->pos = offset;
    /* A size of 0 is what /proc, cgroup and similar file systems report for files that do have content: such a file
     * is read to its end, never taken for an empty one. Only a range counted from the end (the only way to ask for
     * 0 bytes, "-N" of a 0-byte object) cannot be served, as its end is not known. */
    r->to_eof = size == 0 && length > 0 && (offset == 0 || s_has_content(r->fd));
    if (size == 0 && length == 0 && s_has_content(r->fd)) {
        rc = sl__fail(SL_ERANGE,
                      "%s: the file system reports a size of 0 but the file has content (as files in /proc do), so a "
                      "range counted from its end cannot be read: read the whole file",
                      r->path);
        goto on_error;
    }
    if (r->to_eof) {
        r->end = length > UINT64_MAX - offset ? UINT64_MAX : offset + length;
    } else if (offset > size) {
        rc = sl__fail(SL_ERANGE, "%s: range starts at byte %llu, past the end of the object (%llu bytes)", r->path,
                      (unsigned long long)offset, (unsigned long long)size);
        goto on_error;
    } else {
        /* The range ends at the size seen now, so the bytes delivered match info->size; a file that changes before
         * they are all read fails (s_read). */
        r->end = length < size - offset ? offset + length : size;
        (void)posix_fadvise(r->fd, (off_t)offset, (off_t)(r->end - offset), POSIX_FADV_SEQUENTIAL);
    }
    if (info)
        s_fill_object(info, key, strlen(key), &sb);
    r->base.client = client;
    s_link_add((s_client *)client, &r->link, S_READER);
    *out = &r->base;
    return 0;

on_error:
    if (r->fd >= 0)
        close(r->fd);
    free(r);
    return rc;
}

/* Fails unless the file is still the size and mtime it had when opened: the bytes delivered are then all of one
 * version of the file, the one its listing and info described. */
static int s_check_unchanged(s_reader *r) {
    struct stat sb;
    if (fstat(r->fd, &sb) < 0)
        return s_fail_path(errno, r->path, "cannot stat");
    if ((uint64_t)sb.st_size == r->size && s_mtime_ns(&sb) == r->mtime_ns)
        return 0;
    r->changed = true;
    return sl__fail(SL_EIO,
                    "%s: changed while being read (%llu bytes when opened, %llu now%s): not used; rerun to process "
                    "it as it is then",
                    r->path, (unsigned long long)r->size, (unsigned long long)sb.st_size,
                    (uint64_t)sb.st_size == r->size ? ", modified since" : "");
}

static int64_t s_read(sl_reader *reader, void *buf, size_t cap) {
    s_reader *r = (s_reader *)reader;
    if (r->changed)
        return sl__fail(SL_EIO, "%s: changed while being read: not used", r->path);
    uint64_t left = r->end - r->pos;
    if (left == 0)
        return 0;
    if (cap > left)
        cap = (size_t)left;
    if (cap > (1u << 30))
        cap = 1u << 30;
    for (;;) {
        ssize_t n = pread(r->fd, buf, cap, (off_t)r->pos);
        if (n > 0) {
            r->pos += (uint64_t)n;
            /* The last byte of the range: checked before it is handed out, so no caller can take a changed file for
             * a complete one, whether or not it reads on to the end. */
            if (r->pos == r->end) {
                int rc = s_check_unchanged(r);
                if (rc < 0)
                    return rc;
            }
            return n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return s_fail_path(errno, r->path, "cannot read");
        if (r->to_eof) {
            if (r->pos == r->offset && r->offset > 0)
                return sl__fail(SL_ERANGE, "%s: range starts at byte %llu, past the end of the file", r->path,
                                (unsigned long long)r->offset);
            r->end = r->pos;
            int rc = s_check_unchanged(r);
            return rc < 0 ? rc : 0;
        }
        /* Before the size it had when opened: it shrank, unless its file system reports sizes that are not the
         * content's (sysfs says 4096 for every attribute). */
        if (s_is_pseudo_fs(r->fd)) {
            r->end = r->pos;
            return 0;
        }
        r->changed = true;
        return sl__fail(SL_EIO,
                        "%s: changed while being read (it shrank: ended at byte %llu, not %llu): not used; rerun to "
                        "process it as it is then",
                        r->path, (unsigned long long)r->pos, (unsigned long long)r->end);
    }
}

static void s_read_close(sl_reader *reader) {
    s_reader *r = (s_reader *)reader;
    close(r->fd);
    s_link_remove(&r->link);
    free(r);
}

static int s_del(sl_client *client, const char *key) {
    const s_store *st = (const s_store *)client->store;
    s_loc loc;
    int rc = s_loc_open(st, key, &loc);
    if (rc < 0)
        return rc;
    if (unlinkat(loc.dirfd, loc.name, 0) < 0) {
        int err = errno;
        if (err == EISDIR)
            rc = sl__fail(SL_ENOENT, "%s/%s: is a directory, not an object", st->root, key);
        else if (err == ENOENT || err == ENOTDIR)
            rc = sl__fail(SL_ENOENT, "%s/%s: no such object (no such file)", st->root, key);
        else
            rc = s_fail_key(err, st->root, key, "cannot delete");
    }
    s_loc_close(&loc);
    return rc;
}

/* ---- write ---- */

/* mkdir -p of dir[0, len) (NUL-terminated at len), trying the deepest directory first so that the common case, a
 * missing leaf under an existing parent, costs one call. The mode is 0777 so the umask applies. Returns 0 or an
 * errno value; dir is unchanged on return. */
static int s_mkdirs(char *dir, size_t len) {
    size_t end = len;
    while (mkdir(dir, 0777) < 0 && errno != EEXIST) {
        int err = errno;
        char *slash = err == ENOENT ? memrchr(dir, '/', end) : NULL;
        if (end < len)
            dir[end] = '/';
        if (!slash || slash == dir)
            return err;
        end = (size_t)(slash - dir);
        dir[end] = '\0';
    }
    while (end < len) {
        dir[end] = '/';
        char *slash = memchr(dir + end + 1, '/', len - end - 1);
        end = slash ? (size_t)(slash - dir) : len;
        dir[end] = '\0';
        if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
            int err = errno;
            if (end < len)
                dir[end] = '/';
            return err;
        }
    }
    return 0;
}

/* SL_ENOTDIR for the file `shown`, naming the ancestor of (or the) directory `dir` that is in the way. */
static int s_fail_notdir(const char *shown, const char *dir) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", dir);
    for (char *p = buf + 1;; p++) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        struct stat sb;
        if (stat(buf, &sb) == 0 && !S_ISDIR(sb.st_mode))
            return sl__fail(SL_ENOTDIR, "%s: cannot create the file: %s is a file, not a directory", shown, buf);
        if (!slash)
            break;
        *slash = '/';
        p = slash;
    }
    return sl__fail(SL_ENOTDIR, "%s: cannot create the file: a parent is not a directory", shown);
}

/* An O_PATH fd of the root, made (mkdir -p) if it does not exist yet; the root itself may be a symbolic link. */
static int s_open_root(const s_store *st, const char *shown, int *out) {
    const char *root = s_root_name(st);
    int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        char dir[PATH_MAX];
        size_t len = strlen(root);
        memcpy(dir, root, len + 1);
        int err = s_mkdirs(dir, len);
        if (err == ENOTDIR || err == EEXIST)
            return s_fail_notdir(shown, root);
        if (err)
            return s_fail_path(err, root, "cannot create directory");
        fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    if (fd < 0) {
        int err = errno;
        if (err == ENOTDIR)
            return s_fail_notdir(shown, root);
        return s_fail_path(err, root, "cannot open directory");
    }
    *out = fd;
    return 0;
}

/* Opens the directory key[0, dir_len) below the root in *out (an O_PATH fd the caller owns), making the missing
 * ones, one component at a time relative to its parent: no path is ever longer than a name, and no directory on the
 * way may be a symbolic link (O_NOFOLLOW): a key names a place below the destination, and a link left there would
 * carry the file (and the directories made for it) somewhere else. Directories that do not exist yet are made by us,
 * as directories. The client's open directory is taken when it is the one; a writer gives its own back when done
 * (s_writer_free), so a client holds one directory fd, not one per file. */
static int s_open_dir(s_client *c, const char *key, size_t dir_len, const char *shown, int *out) {
    const s_store *st = (const s_store *)c->base.store;
    if (c->dir_fd >= 0 && c->dir_key_len == dir_len && memcmp(c->dir_key, key, dir_len) == 0) {
        *out = c->dir_fd;
        c->dir_fd = -1;
        return 0;
    }
    int fd = -1;
    int rc = s_open_root(st, shown, &fd);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < dir_len;) {
        const char *slash = memchr(key + i, '/', dir_len - i);
        size_t n = slash ? (size_t)(slash - (key + i)) : dir_len - i, end = i + n;
        char name[NAME_MAX + 1];
        memcpy(name, key + i, n);
        name[n] = '\0';
        int next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT) {
            if (mkdirat(fd, name, 0777) < 0 && errno != EEXIST) {
                int err = errno;
                close(fd);
                char buf[128];
                return sl__fail(sl__errno_to_sl(err), "%s/%.*s: cannot create directory: %s%s", st->root, (int)end, key,
                                strerror_r(err, buf, sizeof(buf)), s_hint(err));
            }
            next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0) {
            int err = errno;
            struct stat sb;
            bool known = (err == ENOTDIR || err == ELOOP) && fstatat(fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
            close(fd);
            if (known && S_ISLNK(sb.st_mode))
                return sl__fail(SL_EUNSAFEKEY,
                                "%s/%.*s: a directory on its path is a symbolic link: not written through it, "
                                "so that nothing lands outside the destination %s",
                                st->root, (int)end, key, s_root_name(st));
            if (known)
                return sl__fail(SL_ENOTDIR, "%s: cannot create the file: %s/%.*s is a file, not a directory", shown,
                                st->root, (int)end, key);
            char buf[128];
            return sl__fail(sl__errno_to_sl(err), "%s/%.*s: cannot open directory: %s%s", st->root, (int)end, key,
                            strerror_r(err, buf, sizeof(buf)), s_hint(err));
        }
        close(fd);
        fd = next;
        i = end + 1;
    }
    *out = fd;
    return 0;
}

/* A temp-file name: the prefix and S_TMP_RANDOM letters or digits. */
static void s_temp_name(char *out) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    /* Seeded from getrandom once a thread, then splitmix64: names only need to differ (O_EXCL catches a clash and
     * O_NOFOLLOW a planted link), and a system call per file is a cost every small file would pay. */
    static _Thread_local uint64_t tl_state;
    static _Thread_local bool tl_seeded;
    if (!tl_seeded) {
        if (getrandom(&tl_state, sizeof(tl_state), GRND_NONBLOCK) != (ssize_t)sizeof(tl_state)) {
            struct timespec ts; /* no entropy yet (early boot) */
            clock_gettime(CLOCK_REALTIME, &ts);
            tl_state = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)(uintptr_t)&tl_state;
        }
        tl_seeded = true;
    }
    uint64_t z = (tl_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    z ^= z >> 31;
    memcpy(out, S_TMP_PREFIX, S_TMP_PREFIX_LEN);
    for (size_t i = 0; i < S_TMP_RANDOM; i++, z >>= 8)
        out[S_TMP_PREFIX_LEN + i] = alphabet[(z & 0xff) % (sizeof(alphabet) - 1)];
    out[S_TMP_NAME_LEN] = '\0';
}

/* Opens w's file unnamed (O_TMPFILE) in w->dir_fd, with the final mode at once: nobody can open a file without a name
 * (only this process, through /proc/self/fd), so it needs no private mode while written, no lock and no cleaning
 * after a kill. Returns 0, or an errno value (ENOTSUP when the file system or the store does not allow it). */
static int s_make_unnamed(s_store *st, s_writer *w) {
    if (!atomic_load_explicit(&st->unnamed_ok, memory_order_relaxed))
        return ENOTSUP;
    w->tmp_name[0] = '\0';
    w->fd = openat(w->dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, st->file_mode);
    if (w->fd >= 0)
        return 0;
    int err = errno;
    if (err == EOPNOTSUPP || err == EISDIR || err == EINVAL) {
        atomic_store(&st->unnamed_ok, false); /* this file system does not have it: say so once */
        return ENOTSUP;
    }
    return err;
}

/* Creates the temp file (mode 0600) in w->dir_fd and locks it. A listing cleaning leftovers may have taken the file
 * for one in the instant between its creation and the lock, and removed it: then the name is no longer this file,
 * and another is made. Returns 0 or an errno value. */
static int s_make_temp(s_writer *w) {
    for (int attempt = 0, lost = 0;; attempt++) {
        s_temp_name(w->tmp_name);
        w->fd = openat(w->dir_fd, w->tmp_name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
        if (w->fd < 0) {
            if (errno == EEXIST && attempt < 100)
                continue;
            return errno;
        }
        int locked;
        while ((locked = flock(w->fd, LOCK_EX)) < 0 && errno == EINTR)
            ;
        if (locked < 0)
            return 0; /* no locks here (some network file systems): cleaners cannot lock it either */
        struct stat a, b;
        if (fstat(w->fd, &a) == 0 && fstatat(w->dir_fd, w->tmp_name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
            a.st_ino == b.st_ino && a.st_dev == b.st_dev)
            return 0;
        close(w->fd);
        w->fd = -1;
        if (++lost == 3)
            return EAGAIN;
    }
}

/* The file a writer writes into: unnamed unless its commit is a synced one (the group commit renames named files) or
 * the file system cannot, else a named temp file. Returns 0 or an errno value. */
static int s_make_file(s_store *st, s_writer *w) {
    /* Any failure of the unnamed file is asked again with a named one, whose errno says what is wrong: a directory
     * removed behind the client's back is EPERM for O_TMPFILE, but ENOENT (walk to it again) for a name. */
    return (w->fsync || s_make_unnamed(st, w) != 0) ? s_make_temp(w) : 0;
}

static int s_write_open(sl_client *client, const char *key, const sl_write_options *opts, sl_writer **out) {
    s_client *c = (s_client *)client;
    s_store *st = (s_store *)client->store;
    int rc = s_key_check(st, key);
    if (rc < 0)
        return rc;
    size_t root_len = strlen(st->root), key_len = strlen(key);
    const char *slash = strrchr(key, '/');
    size_t dir_len = slash ? (size_t)(slash - key) : 0;
    const char *fp = opts->source_fingerprint;
    if (fp) {
        size_t n = strlen(fp);
        bool printable = n > 0 && n <= S_FP_MAX;
        for (size_t i = 0; i < n && printable; i++)
            printable = fp[i] >= 0x20 && fp[i] < 0x7f;
        if (!printable)
            return sl__fail(SL_EINVAL, "%s/%s: a source fingerprint must be 1 to %d printable ASCII characters",
                            st->root, key, S_FP_MAX);
    }
    s_writer *w = malloc(sizeof(*w) + root_len + 1 + key_len + 1);
    if (!w)
        return sl__fail(SL_ENOMEM, "%s/%s: out of memory opening for writing", st->root, key);
    memcpy(w->path, st->root, root_len);
    w->path[root_len] = '/';
    memcpy(w->path + root_len + 1, key, key_len + 1);
    w->name = w->path + root_len + 1 + (slash ? dir_len + 1 : 0);
    w->fd = -1;
    w->dir_fd = -1;
    w->dir_len = dir_len;
    w->fsync = opts->fsync;
    w->crc32c = 0;
    w->fingerprint = fp ? strdup(fp) : NULL;
    if (fp && !w->fingerprint) {
        rc = sl__fail(SL_ENOMEM, "%s: out of memory opening for writing", w->path);
        goto on_error;
    }
    rc = s_open_dir(c, key, dir_len, w->path, &w->dir_fd);
    if (rc < 0)
        goto on_error;
    int err = s_make_file(st, w);
    if (err == ENOENT) {
        /* The remembered directory was removed behind our back: walk (and make) it again. */
        close(w->dir_fd);
        w->dir_fd = -1;
        rc = s_open_dir(c, key, dir_len, w->path, &w->dir_fd);
        if (rc < 0)
            goto on_error;
        err = s_make_file(st, w);
    }
    if (err) {
        rc = s_fail_path(err, w->path, "cannot create");
        goto on_error;
    }
    w->base.client = client;
    s_link_add(c, &w->link, S_WRITER);
    *out = &w->base;
    return 0;

on_error:
    if (w->fd >= 0)
        close(w->fd);
    if (w->dir_fd >= 0)
        close(w->dir_fd);
    free(w->fingerprint);
    free(w);
    return rc;
}

/* Writes all of buf to w's file: at `offset` (pwrite) or, with offset -1, where the file is (write). Only w->fd and
 * w->path are used. */
static int s_write_all(const s_writer *w, int64_t offset, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        size_t step = len < (1u << 30) ? len : (1u << 30);
        ssize_t n = offset < 0 ? write(w->fd, p, step) : pwrite(w->fd, p, step, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return s_fail_path(errno, w->path, "cannot write");
        }
        p += n;
        len -= (size_t)n;
        if (offset >= 0)
            offset += n;
    }
    return 0;
}

static int s_write(sl_writer *writer, const void *buf, size_t len) {
    s_writer *w = (s_writer *)writer;
    w->crc32c = sl__crc32c_update(w->crc32c, buf, len);
    return s_write_all(w, -1, buf, len);
}

/* Safe from other threads while the writer is open (store_vtable.h): s_write_all reads nothing else of w. */
static int s_write_at(sl_writer *writer, uint64_t offset, const void *buf, size_t len) {
    if (offset > INT64_MAX)
        return sl__fail(SL_EINVAL, "%s: offset %" PRIu64 " is past what a file can hold", ((s_writer *)writer)->path,
                        offset);
    return s_write_all((s_writer *)writer, (int64_t)offset, buf, len);
}

static void s_write_set_crc32c(sl_writer *writer, uint32_t crc) {
    ((s_writer *)writer)->crc32c = crc;
}

/* The directory of w's write goes back to its client for the next write, in place of the one the client held (a
 * write elsewhere found it not to be its directory): the latest is the likeliest next, as keys come in order. */
static void s_client_keep_dir(s_client *c, s_writer *w) {
    if (c->dir_fd >= 0)
        close(c->dir_fd);
    c->dir_fd = w->dir_fd;
    c->dir_key_len = w->dir_len;
    memcpy(c->dir_key, w->path + strlen(((const s_store *)c->base.store)->root) + 1, w->dir_len);
}

static void s_writer_free(s_writer *w) {
    s_client *c = (s_client *)w->base.client;
    s_link_remove(&w->link);
    s_client_keep_dir(c, w);
    free(w->fingerprint);
    free(w);
}

/* Records the fingerprint with the finished file's own size and mtime (setting an xattr changes neither). A file
 * system without user xattrs records nothing: the output is then simply not known to be complete by a rerun. */
static void s_record_fingerprint(s_writer *w) {
    struct stat st;
    char value[S_XATTR_CAP];
    if (!w->fingerprint || fstat(w->fd, &st) < 0)
        return;
    int64_t mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    /* The compact record (resume.h), or the text one for a fingerprint it cannot hold. */
    int n = (int)sl__fp_record_encode((unsigned char *)value, sizeof(value), (uint64_t)st.st_size, mtime_ns, w->crc32c,
                                      w->fingerprint);
    if (n == 0)
        n = snprintf(value, sizeof(value), "%llu %lld %s" S_OUT_CRC "%08" PRIx32, (unsigned long long)st.st_size,
                     (long long)mtime_ns, w->fingerprint, w->crc32c);
    if (n > 0 && (size_t)n < sizeof(value))
        (void)fsetxattr(w->fd, S_XATTR, value, (size_t)n, 0);
}

/* Whether linkat(fd, "", ..., AT_EMPTY_PATH) works for this process (it needs CAP_DAC_READ_SEARCH: root, most
 * containers): it spares the kernel the walk of a /proc path per file. Cleared at the first refusal. */
static atomic_bool s_empty_path_ok = true;

/* Gives the unnamed file of w the name `name` in its directory. Returns 0 or an errno value. */
static int s_link_unnamed(const s_writer *w, const char *name) {
    if (atomic_load_explicit(&s_empty_path_ok, memory_order_relaxed)) {
        if (linkat(w->fd, "", w->dir_fd, name, AT_EMPTY_PATH) == 0)
            return 0;
        if (errno != ENOENT)
            return errno;
    }
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", w->fd);
    if (linkat(AT_FDCWD, proc, w->dir_fd, name, AT_SYMLINK_FOLLOW) < 0)
        return errno;
    /* ENOENT above was the missing capability, not a missing directory: the /proc path works. */
    atomic_store_explicit(&s_empty_path_ok, false, memory_order_relaxed);
    return 0;
}

/* An unnamed file into place: linked under its name when that is free; when it is taken (a file to replace), linked
 * under a temp name, locked first as every temp file is while its writer lives, and renamed over it. Returns 0 or an
 * errno value (EEXIST: the name is a directory). */
static int s_place_unnamed(s_writer *w) {
    int err = s_link_unnamed(w, w->name);
    if (err != EEXIST)
        return err;
    int locked;
    while ((locked = flock(w->fd, LOCK_EX)) < 0 && errno == EINTR)
        ;
    for (int attempt = 0; attempt < 100; attempt++) {
        s_temp_name(w->tmp_name);
        if ((err = s_link_unnamed(w, w->tmp_name)) != EEXIST)
            break;
    }
    if (err) {
        w->tmp_name[0] = '\0';
        return err;
    }
    return renameat(w->dir_fd, w->tmp_name, w->dir_fd, w->name) == 0 ? 0 : errno;
}

/* Renames the finished temp file into place (links an unnamed one). Returns 0 or <0 (a temp file is then still
 * there). */
static int s_rename_into_place(s_writer *w) {
    if (!w->tmp_name[0]) {
        int err = s_place_unnamed(w);
        if (err == 0)
            return 0;
        if (err == EISDIR || err == ENOTEMPTY || err == EEXIST)
            return sl__fail(SL_EISDIR, "%s: is a directory: cannot replace it with a file", w->path);
        return s_fail_path(err, w->path, "cannot link the finished file into place");
    }
    if (renameat(w->dir_fd, w->tmp_name, w->dir_fd, w->name) == 0)
        return 0;
    if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST)
        return sl__fail(SL_EISDIR, "%s: is a directory: cannot replace it with a file", w->path);
    return s_fail_path(errno, w->path, "cannot rename the finished file into place");
}

/* Fails p with rc and the calling thread's last error, for p's callback. */
static void s_pending_fail(s_pending *p, int rc) {
    p->rc = rc;
    free(p->message);
    p->message = strdup(sl_last_error());
}

/* The durable commit of one batch, on the committer's thread: every file's bytes and fingerprint on disk, then the
 * renames, then the directories that got a new name. The data goes first with one syncfs per file system in the batch
 * (a bind mount below the root is another one), which also covers directories made for these files; a syncfs that
 * fails (a write error somewhere on that file system) is no verdict on these files, so each is then fsynced alone and
 * fails alone. A directory is fsynced once for all its new names; if that fails, the outputs renamed into it are
 * visible but not known durable, and fail. */
static void s_group_commit(s_pending *batch) {
    size_t n = 0;
    s_pending *items[S_GROUP_MAX];
    struct stat file_st[S_GROUP_MAX];
    for (s_pending *p = batch; p && n < S_GROUP_MAX; p = p->next) {
        items[n] = p;
        if (fstat(p->w->fd, &file_st[n]) < 0)
            file_st[n].st_dev = 0; /* synced on its own below */
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        bool first_of_fs = file_st[i].st_dev != 0;
        for (size_t j = 0; j < i && first_of_fs; j++)
            first_of_fs = file_st[j].st_dev != file_st[i].st_dev;
        if (!first_of_fs || syncfs(items[i]->w->fd) == 0)
            continue;
        for (size_t j = i + 1; j < n; j++)
            if (file_st[j].st_dev == file_st[i].st_dev)
                file_st[j].st_dev = 0;
        file_st[i].st_dev = 0;
    }
    for (size_t i = 0; i < n; i++) {
        s_writer *w = items[i]->w;
        if (file_st[i].st_dev == 0 && fsync(w->fd) < 0) {
            s_pending_fail(items[i], s_fail_path(errno, w->path, "cannot flush to disk"));
            continue;
        }
        int rc = s_rename_into_place(w);
        if (rc < 0)
            s_pending_fail(items[i], rc);
    }
    /* Each directory once: the batch's renames into it are all in its one fsync. */
    struct stat dir_st[S_GROUP_MAX];
    for (size_t i = 0; i < n; i++) {
        if (items[i]->rc < 0 || fstat(items[i]->w->dir_fd, &dir_st[i]) < 0) {
            dir_st[i].st_ino = 0;
            dir_st[i].st_dev = 0;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i]->rc < 0)
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = items[j]->rc == 0 && dir_st[i].st_ino && dir_st[j].st_ino == dir_st[i].st_ino &&
                   dir_st[j].st_dev == dir_st[i].st_dev;
        if (seen)
            continue;
        /* The writer's directory fd is O_PATH, which fsync refuses: the directory itself, opened for reading. */
        int dfd = openat(items[i]->w->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int err = dfd < 0 ? errno : fsync(dfd) < 0 ? errno : 0;
        if (dfd >= 0)
            close(dfd);
        if (!err)
            continue;
        for (size_t j = i; j < n; j++) {
            if (items[j]->rc < 0 || (j != i && !(dir_st[i].st_ino && dir_st[j].st_ino == dir_st[i].st_ino &&
                                                 dir_st[j].st_dev == dir_st[i].st_dev)))
                continue;
            char buf[128];
            s_pending_fail(items[j], sl__fail(sl__errno_to_sl(err),
                                              "%s: renamed into place, but its directory cannot be flushed to disk: "
                                              "%s (it may not survive a power loss; rerun to check it)",
                                              items[j]->w->path, strerror_r(err, buf, sizeof(buf))));
        }
    }
}

/* Removes the temp file of w if its name is still this file: a failed commit leaves none, unless it got as far as its
 * rename (a directory that could not be synced), after which the name is gone or another writer's new file. */
static void s_unlink_own_temp(s_writer *w) {
    struct stat a, b;
    if (w->tmp_name[0] && fstat(w->fd, &a) == 0 && fstatat(w->dir_fd, w->tmp_name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
        a.st_ino == b.st_ino && a.st_dev == b.st_dev)
        unlinkat(w->dir_fd, w->tmp_name, 0);
}

static int64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *s_committer_main(void *arg) {
    s_group *g = arg;
    pthread_mutex_lock(&g->lock);
    for (;;) {
        /* A fuller batch costs the same syncfs: wait for one, a little, unless someone waits for the queue to empty. */
        while (!g->stop &&
               (!g->queued || (g->queued < S_GROUP_FULL && !g->drains && s_now_ns() < g->first_ns + S_GROUP_WAIT_NS))) {
            if (!g->queued) {
                pthread_cond_wait(&g->wake, &g->lock);
                continue;
            }
            int64_t until = g->first_ns + S_GROUP_WAIT_NS;
            struct timespec deadline = {.tv_sec = (time_t)(until / 1000000000), .tv_nsec = (long)(until % 1000000000)};
            pthread_cond_timedwait(&g->wake, &g->lock, &deadline);
        }
        if (!g->queued)
            break; /* stop, with nothing left */
        s_pending *batch = g->head, **cut = &g->head;
        size_t n = 0;
        for (; *cut && n < S_GROUP_MAX; n++)
            cut = &(*cut)->next;
        g->head = *cut;
        *cut = NULL;
        if (!g->head)
            g->tail = &g->head;
        g->queued -= n;
        g->first_ns = s_now_ns();
        g->busy = true;
        pthread_cond_broadcast(&g->idle); /* room in the queue */
        pthread_mutex_unlock(&g->lock);
        s_group_commit(batch);
        for (s_pending *p = batch, *next; p; p = next) {
            next = p->next;
            s_writer *w = p->w;
            if (p->rc < 0)
                s_unlink_own_temp(w);
            /* Closed only now: the lock must hold until the temp name is gone, or a cleaner could take the finished
             * file for a leftover. Its bytes are on disk: a failing close loses nothing. */
            close(w->fd);
            close(w->dir_fd);
            free(w->fingerprint);
            free(w);
            p->fn(p->ctx, p->rc, p->rc < 0 ? (p->message ? p->message : sl_strerror(p->rc)) : NULL);
            free(p->message);
            free(p);
        }
        pthread_mutex_lock(&g->lock);
        g->busy = false;
        pthread_cond_broadcast(&g->idle);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

/* Waits until every commit queued so far has been done and its callback has returned. */
static void s_group_drain(s_group *g) {
    pthread_mutex_lock(&g->lock);
    g->drains++;
    pthread_cond_signal(&g->wake);
    while (g->queued || g->busy)
        pthread_cond_wait(&g->idle, &g->lock);
    g->drains--;
    pthread_mutex_unlock(&g->lock);
}

static void s_group_stop(s_group *g) {
    pthread_mutex_lock(&g->lock);
    bool started = g->started;
    g->stop = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    if (started)
        pthread_join(g->thread, NULL);
}

/* Hands w (its temp file finished, its mode set and its fingerprint recorded) to the committer: w leaves its client
 * (the client keeps its directory fd; w takes a copy), and fn(ctx, ...) is called on the committer's thread once the
 * output is durable or failed. Waits while the queue is full. Returns 0, or <0 when w could not be handed over (w is
 * then still the caller's, and fn is not called). */
static int s_group_queue(s_store *st, s_writer *w, sl__commit_fn fn, void *ctx) {
    s_group *g = &st->group;
    s_pending *p = calloc(1, sizeof(*p));
    int dir_fd = p ? fcntl(w->dir_fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (!p || dir_fd < 0) {
        int err = p ? errno : ENOMEM;
        free(p);
        return s_fail_path(err, w->path, "cannot hand the finished file to the committer");
    }
    p->w = w;
    p->fn = fn;
    p->ctx = ctx;
    pthread_mutex_lock(&g->lock);
    if (!g->started) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int err = pthread_create(&g->thread, NULL, s_committer_main, g);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (err) {
            pthread_mutex_unlock(&g->lock);
            close(dir_fd);
            free(p);
            return sl__fail_errno(err, "%s: cannot start the thread that commits outputs to disk", w->path);
        }
        g->started = true;
    }
    while (g->queued >= S_GROUP_MAX)
        pthread_cond_wait(&g->idle, &g->lock);
    /* From here w is the committer's: its client gets its directory back (s_writer_free without the free). */
    s_link_remove(&w->link);
    s_client_keep_dir((s_client *)w->base.client, w);
    w->dir_fd = dir_fd;
    w->base.client = NULL;
    if (!g->queued)
        g->first_ns = s_now_ns();
    *g->tail = p;
    g->tail = &p->next;
    g->queued++;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    return 0;
}

/* A synchronous durable commit: queued like any other, then waited for. */
typedef struct s_sync_wait {
    s_group *g;
    bool done;
    int rc;
    char message[SL__MESSAGE_CAP];
} s_sync_wait;

static void s_sync_done(void *ctx, int rc, const char *message) {
    s_sync_wait *sw = ctx;
    pthread_mutex_lock(&sw->g->lock);
    sw->rc = rc;
    if (rc < 0)
        snprintf(sw->message, sizeof(sw->message), "%s", message);
    sw->done = true;
    pthread_cond_broadcast(&sw->g->idle);
    pthread_mutex_unlock(&sw->g->lock);
}

/* Everything a commit does before the rename: the output's mode, its fingerprint. Returns 0 or <0. */
static int s_commit_prepare(const s_store *st, s_writer *w) {
    /* mkostemp made the temp file 0600, and so it stays while being written, whatever the umask (0666 & ~000 would
     * let anyone write into it). The finished output gets the mode any new file would get. */
    if (w->tmp_name[0] && fchmod(w->fd, st->file_mode) < 0)
        return s_fail_path(errno, w->path, "cannot set the mode of the new file");
    s_record_fingerprint(w);
    return 0;
}

static int s_write_commit(sl_writer *writer) {
    s_writer *w = (s_writer *)writer;
    s_store *st = (s_store *)writer->client->store;
    int rc = s_commit_prepare(st, w);
    if (rc == 0 && w->fsync) {
        s_sync_wait sw = {.g = &st->group};
        if ((rc = s_group_queue(st, w, s_sync_done, &sw)) == 0) {
            pthread_mutex_lock(&st->group.lock);
            st->group.drains++; /* nothing to wait for: this thread does */
            pthread_cond_signal(&st->group.wake);
            while (!sw.done)
                pthread_cond_wait(&st->group.idle, &st->group.lock);
            st->group.drains--;
            pthread_mutex_unlock(&st->group.lock);
            return sw.rc < 0 ? sl__fail(sw.rc, "%s", sw.message) : 0;
        }
    } else if (rc == 0) {
        rc = s_rename_into_place(w);
    }
    if (rc < 0)
        s_unlink_own_temp(w);
    /* Closed only now: the lock must hold until the temp name is gone, or a cleaner could take the finished file for
     * a leftover. Without fsync, a file system that writes back on close (NFS) reports there that the bytes did not
     * make it: the output just renamed into place is then not what was written, and is removed. */
    int closed = close(w->fd);
    if (closed < 0 && rc == 0 && (errno == EIO || errno == ENOSPC || errno == EDQUOT)) {
        rc = s_fail_path(errno, w->path, "cannot write (reported when the file was closed)");
        unlinkat(w->dir_fd, w->name, 0);
    }
    s_writer_free(w);
    return rc;
}

static int s_commit_deferred(sl_writer *writer, sl__commit_fn fn, void *ctx) {
    s_writer *w = (s_writer *)writer;
    s_store *st = (s_store *)writer->client->store;
    if (!w->fsync)
        return SL_ENOTSUP;
    int rc = s_commit_prepare(st, w);
    if (rc == 0 && (rc = s_group_queue(st, w, fn, ctx)) == 0)
        return 0;
    s_unlink_own_temp(w);
    close(w->fd);
    s_writer_free(w);
    return rc;
}

static void s_commit_drain(sl_store *store) {
    s_group_drain(&((s_store *)store)->group);
}

static void s_write_abort(sl_writer *writer) {
    s_writer *w = (s_writer *)writer;
    close(w->fd);
    if (w->tmp_name[0])
        unlinkat(w->dir_fd, w->tmp_name, 0);
    s_writer_free(w);
}

static const sl_store_vtable s_vtable = {
    .client_new = s_client_new,
    .client_destroy = s_client_destroy,
    .list_open = s_list_open,
    .list_next = s_list_next,
    .list_close = s_list_close,
    .stat = s_stat,
    .read_open = s_read_open,
    .read = s_read,
    .read_close = s_read_close,
    .write_open = s_write_open,
    .write = s_write,
    .write_commit = s_write_commit,
    .write_abort = s_write_abort,
    .commit_deferred = s_commit_deferred,
    .commit_drain = s_commit_drain,
    .del = s_del,
    .write_at = s_write_at,
    .write_set_crc32c = s_write_set_crc32c,
    .probe = s_probe,
    .close = s_store_close,
};
