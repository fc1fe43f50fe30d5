/* Memory of a process tree, read from /proc.
 *
 * A program that forks workers after loading its data shares those pages with them (copy-on-write): summing RSS
 * would count the shared block once per worker. PSS (proportional set size) charges each shared page 1/N to each of
 * its N users, so the PSS of the processes of one tree adds up to what the tree really holds. It comes from
 * /proc/PID/smaps_rollup (Linux 4.14); where that is missing or unreadable we fall back to RSS from statm.
 *
 * Everything here races with processes starting and exiting while we read: a file that vanishes or reads empty
 * means the process is gone, and it is skipped without a word. */
#include "proc_tree.h"

#include "fail.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Guards against a runaway tree (or a pid-reuse cycle while we walk): nobody watches a million processes. */
#define S_MAX_PROCS (1u << 20)

typedef struct s_pids {
    pid_t *v;
    size_t n, cap;
} s_pids;

static int s_push(s_pids *p, pid_t pid) {
    if (p->n == p->cap) {
        if (p->cap >= S_MAX_PROCS)
            return -1;
        size_t cap = p->cap ? p->cap * 2 : 64;
        pid_t *v = realloc(p->v, cap * sizeof(*v));
        if (!v)
            return -1;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = pid;
    return 0;
}

/* Reads at most cap-1 bytes of a small /proc file and NUL-terminates them. -1 if it cannot be opened or read. */
static ssize_t s_read_small(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

static bool s_parse_pid(const char *s, pid_t *out) {
    if (!*s)
        return false;
    long v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s) || v > 100000000)
            return false;
        v = v * 10 + (*s - '0');
    }
    if (v <= 0)
        return false;
    *out = (pid_t)v;
    return true;
}

static bool s_exists(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    return access(path, F_OK) == 0;
}

/* ---- walking by /proc/PID/task/TID/children ---- */

/* Appends the pids listed in one children file ("12 345 678 "), read in pieces so a process with ten thousand
 * children needs no big buffer. */
static void s_read_children(const char *path, s_pids *out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[1024];
    long cur = 0;
    bool in_number = false;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                if (cur < 100000000)
                    cur = cur * 10 + (buf[i] - '0');
                in_number = true;
            } else if (in_number) {
                if (cur > 0)
                    s_push(out, (pid_t)cur);
                cur = 0;
                in_number = false;
            }
        }
    }
    if (in_number && cur > 0)
        s_push(out, (pid_t)cur);
    close(fd);
}

/* A process's children hang off the thread that forked them, so every thread's file is read. */
static void s_walk_children(s_pids *tree) {
    char path[96];
    for (size_t i = 0; i < tree->n; i++) {
        pid_t pid = tree->v[i];
        snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
        DIR *d = opendir(path);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            pid_t tid;
            if (!s_parse_pid(e->d_name, &tid))
                continue;
            snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)tid);
            s_read_children(path, tree);
        }
        closedir(d);
    }
}

/* ---- walking by the parent of every process ---- */

typedef struct s_link {
    pid_t ppid, pid;
} s_link;

static int s_cmp_link(const void *a, const void *b) {
    const s_link *x = a, *y = b;
    if (x->ppid != y->ppid)
        return x->ppid < y->ppid ? -1 : 1;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

/* The parent pid from the text of /proc/PID/stat: "pid (comm) state ppid ...". comm is whatever the program set
 * (spaces, parentheses, even ") R 1" are allowed), so the fields start after the LAST ')'. */
static bool s_parse_stat_ppid(const char *stat, pid_t *ppid) {
    const char *close_paren = strrchr(stat, ')');
    if (!close_paren)
        return false;
    char state;
    int p;
    if (sscanf(close_paren + 1, " %c %d", &state, &p) != 2 || p < 0)
        return false;
    *ppid = (pid_t)p;
    return true;
}

static void s_walk_scan(s_pids *tree) {
    DIR *d = opendir("/proc");
    if (!d)
        return;
    s_link *links = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    char path[64], stat[1024];
    while ((e = readdir(d)) != NULL) {
        pid_t pid, ppid;
        if (!s_parse_pid(e->d_name, &pid))
            continue;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (s_read_small(path, stat, sizeof(stat)) <= 0 || !s_parse_stat_ppid(stat, &ppid))
            continue;
        if (n == cap) {
            if (cap >= S_MAX_PROCS)
                break;
            size_t ncap = cap ? cap * 2 : 256;
            s_link *nl = realloc(links, ncap * sizeof(*nl));
            if (!nl)
                break;
            links = nl;
            cap = ncap;
        }
        links[n++] = (s_link){ppid, pid};
    }
    closedir(d);
    if (n)
        qsort(links, n, sizeof(*links), s_cmp_link);
    for (size_t i = 0; i < tree->n; i++) {
        pid_t parent = tree->v[i];
        size_t lo = 0, hi = n; /* first link with ppid >= parent */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (links[mid].ppid < parent)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t j = lo; j < n && links[j].ppid == parent; j++)
            if (s_push(tree, links[j].pid) < 0)
                break;
    }
    free(links);
}

static bool s_have_children_files(pid_t root) {
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)root, (int)root);
    if (access(path, F_OK) == 0)
        return true;
    /* root may be exiting; ask about ourselves before concluding the kernel lacks the files */
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
    return access(path, F_OK) == 0;
}

/* The tree in BFS order, root first; an empty list if root does not exist. */
static int s_collect(pid_t root, sl__proc_walk how, s_pids *tree) {
    if (root <= 0 || !s_exists(root))
        return 0;
    if (how == SL__PROC_WALK_AUTO)
        how = s_have_children_files(root) ? SL__PROC_WALK_CHILDREN : SL__PROC_WALK_SCAN;
    else if (how == SL__PROC_WALK_CHILDREN && !s_have_children_files(root))
        return sl__fail(SL_ENOTSUP, "/proc/%d/task/%d/children: not provided by this kernel", (int)root, (int)root);
    if (s_push(tree, root) < 0)
        return sl__fail(SL_ENOMEM, "out of memory");
    if (how == SL__PROC_WALK_CHILDREN)
        s_walk_children(tree);
    else
        s_walk_scan(tree);
    return 0;
}

long sl__proc_tree_pids(pid_t root, sl__proc_walk how, pid_t *pids, size_t cap) {
    s_pids tree = {0};
    int rc = s_collect(root, how, &tree);
    if (rc < 0) {
        free(tree.v);
        return rc;
    }
    for (size_t i = 0; i < tree.n && i < cap; i++)
        pids[i] = tree.v[i];
    long n = (long)tree.n;
    free(tree.v);
    return n;
}

/* "Pss:   1234 kB" in smaps_rollup; false if the file cannot be read or has no such line. */
static bool s_read_pss(pid_t pid, uint64_t *bytes) {
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    if (s_read_small(path, buf, sizeof(buf)) <= 0)
        return false;
    const char *line = strstr(buf, "\nPss:");
    unsigned long long kib;
    if (!line || sscanf(line + 5, " %llu", &kib) != 1)
        return false;
    *bytes = (uint64_t)kib * 1024;
    return true;
}

static uint64_t s_read_statm_rss(pid_t pid) {
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    unsigned long long size, resident;
    if (s_read_small(path, buf, sizeof(buf)) <= 0 || sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}

uint64_t sl__proc_mem(pid_t pid, int *is_pss) {
    uint64_t bytes;
    if (s_read_pss(pid, &bytes)) {
        if (is_pss)
            *is_pss = 1;
        return bytes;
    }
    if (is_pss)
        *is_pss = 0;
    return s_read_statm_rss(pid);
}

uint64_t sl_proc_tree_rss(pid_t pid) {
    s_pids tree = {0};
    uint64_t sum = 0;
    if (s_collect(pid, SL__PROC_WALK_AUTO, &tree) == 0)
        for (size_t i = 0; i < tree.n; i++)
            sum += sl__proc_mem(tree.v[i], NULL);
    free(tree.v);
    return sum;
}
