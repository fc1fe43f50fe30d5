/* The memory cgroup of this process: where it is, how much it uses, what it may use.
 *
 * /proc/self/cgroup has one line per hierarchy, "ID:CONTROLLERS:PATH": "0::/a/b" for cgroup v2, "4:memory:/a/b" or
 * "3:cpu,memory:/a/b" for a v1 hierarchy that has the memory controller. PATH is relative to the hierarchy's root,
 * which is mounted at ROOT (v2) or ROOT/memory (v1). Inside a container without its own cgroup namespace the mount's
 * root is the container's cgroup while PATH still names it from the host's root ("/kubepods/pod.../abc"), so when
 * ROOT/PATH does not exist the leading components of PATH are dropped one at a time until a directory with the memory
 * files is found. */
#include "fail.h"

#include "sluice/memwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_UNLIMITED ((uint64_t)1 << 62) /* v1 writes "unlimited" as LONG_MAX rounded down to a page */
#define S_LINE_CAP 8192                 /* one /proc/self/cgroup line; longer ones are not a path we could open */

static const char *s_default_root(void) {
    const char *env = getenv("SLUICE_CGROUP_ROOT");
    return env && *env ? env : "/sys/fs/cgroup";
}

static bool s_is_file(const char *dir, const char *name) {
    char path[4096 + 64];
    struct stat st;
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return false;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Does base + path (with strip: or base + a suffix of path) hold a memory cgroup with files a or b? Fills out on
 * success. */
static bool s_try(const char *base, const char *path, bool strip, const char *file_a, const char *file_b, int version,
                  sl_cgroup *out) {
    /* A path that climbs out of our cgroup namespace ("/../..") cannot be followed from here; its mount's root is
     * the nearest cgroup we can see. */
    if (strstr(path, "/..") || path[0] != '/')
        path = "/";
    for (const char *suffix = path;;) {
        char dir[sizeof(out->dir)];
        size_t len = strlen(suffix);
        while (len > 1 && suffix[len - 1] == '/')
            len--;
        int n = len <= 1 ? snprintf(dir, sizeof(dir), "%s", base)
                         : snprintf(dir, sizeof(dir), "%s%.*s", base, (int)len, suffix);
        if (n > 0 && (size_t)n < sizeof(dir) && (s_is_file(dir, file_a) || s_is_file(dir, file_b))) {
            out->version = version;
            memcpy(out->dir, dir, (size_t)n + 1);
            out->base_len = strlen(base);
            return true;
        }
        if (len <= 1 || !strip)
            return false;
        const char *next = strchr(suffix + 1, '/');
        suffix = next ? next : "/";
    }
}

/* True when the comma-separated controller list has "memory". */
static bool s_has_memory(const char *controllers) {
    for (const char *p = controllers; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 6 && memcmp(p, "memory", 6) == 0)
            return true;
        p += len;
        if (*p == ',')
            p++;
    }
    return false;
}

int sl_cgroup_find(const char *root, const char *proc_cgroup, sl_cgroup *out) {
    memset(out, 0, sizeof(*out));
    if (!root)
        root = s_default_root();
    if (!proc_cgroup) {
        const char *env = getenv("SLUICE_PROC_CGROUP");
        proc_cgroup = env && *env ? env : "/proc/self/cgroup";
    }
    FILE *f = fopen(proc_cgroup, "re");
    if (!f)
        return sl__fail_errno(errno, "%s: cannot read this process's cgroups", proc_cgroup);

    static const size_t cap = S_LINE_CAP;
    char *line = malloc(cap), *v1_controllers = malloc(cap), *v1_path = malloc(cap), *v2_path = malloc(cap);
    bool have_v1 = false, have_v2 = false, found = false;
    int rc = 0;
    if (!line || !v1_controllers || !v1_path || !v2_path) {
        rc = sl__fail(SL_ENOMEM, "out of memory reading %s", proc_cgroup);
        goto done;
    }
    while (fgets(line, (int)cap, f)) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') {
            if (!feof(f)) { /* longer than any path we could open: drop the rest of it */
                int c;
                while ((c = fgetc(f)) != EOF && c != '\n')
                    ;
                continue;
            }
        } else {
            line[--len] = '\0';
        }
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        const char *id = line, *controllers = c1 + 1, *path = c2 + 1;
        if (strcmp(id, "0") == 0 && *controllers == '\0') {
            snprintf(v2_path, cap, "%s", path);
            have_v2 = true;
        } else if (!have_v1 && s_has_memory(controllers)) {
            snprintf(v1_controllers, cap, "%s", controllers);
            snprintf(v1_path, cap, "%s", path);
            have_v1 = true;
        }
    }

    /* A v1 memory hierarchy wins: on a hybrid system the v2 hierarchy exists but has no memory controller. */
    /* Exact paths first, everywhere; only then the container fallback of shorter paths. */
    char base[sizeof(out->dir)];
    for (int strip = 0; strip < 2 && !found; strip++) {
        if (have_v1) {
            if (snprintf(base, sizeof(base), "%s/memory", root) < (int)sizeof(base))
                found = s_try(base, v1_path, strip, "memory.usage_in_bytes", "memory.limit_in_bytes", 1, out);
            if (!found && strcmp(v1_controllers, "memory") != 0 &&
                snprintf(base, sizeof(base), "%s/%s", root, v1_controllers) < (int)sizeof(base))
                found = s_try(base, v1_path, strip, "memory.usage_in_bytes", "memory.limit_in_bytes", 1, out);
        }
        if (!found && have_v2)
            found = s_try(root, v2_path, strip, "memory.current", "memory.max", 2, out);
    }
    if (!found) {
        memset(out, 0, sizeof(*out));
        rc = sl__fail(SL_ENOENT, "no memory cgroup found under %s for the paths in %s", root, proc_cgroup);
    }
done:
    fclose(f);
    free(line);
    free(v1_controllers);
    free(v1_path);
    free(v2_path);
    return rc;
}

/* Reads a small file into buf (NUL-terminated). */
static bool s_read_small(const char *dir, const char *name, char *buf, size_t size) {
    char path[4096 + 64];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t len = 0;
    while (len + 1 < size) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return len > 0;
}

/* A byte count, or "max" (*unlimited set). */
static bool s_read_bytes(const char *dir, const char *name, uint64_t *value, bool *unlimited) {
    char buf[64];
    if (!s_read_small(dir, name, buf, sizeof(buf)))
        return false;
    const char *p = buf + strspn(buf, " \t");
    if (strncmp(p, "max", 3) == 0) {
        *unlimited = true;
        *value = 0;
        return true;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p || errno != 0 || *p == '-')
        return false;
    *unlimited = v >= S_UNLIMITED;
    *value = *unlimited ? 0 : (uint64_t)v;
    return true;
}

/* The value of key in a memory.stat ("key value" lines); false if absent. */
static bool s_stat_value(const char *stat, const char *key, uint64_t *value) {
    size_t klen = strlen(key);
    for (const char *p = stat; *p;) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ' ') {
            *value = strtoull(p + klen + 1, NULL, 10);
            return true;
        }
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;
        p = nl + 1;
    }
    return false;
}

/* A memory.stat counter: v1's hierarchical total_<key> when there is one (this cgroup and its children, as the usage
 * counts them), else <key>. */
static bool s_stat_counter(const char *stat, bool v2, const char *key, uint64_t *value) {
    char total[64];
    snprintf(total, sizeof(total), "total_%s", key);
    return (!v2 && s_stat_value(stat, total, value)) || s_stat_value(stat, key, value);
}

int sl_cgroup_read(const sl_cgroup *cg, uint64_t *usage_bytes, uint64_t *limit_bytes) {
    sl_cgroup_memory m;
    int rc = sl_cgroup_read_memory(cg, &m);
    *usage_bytes = m.usage_bytes;
    *limit_bytes = m.limit_bytes;
    return rc;
}

int sl_cgroup_read_memory(const sl_cgroup *cg, sl_cgroup_memory *out) {
    memset(out, 0, sizeof(*out));
    if (!cg || cg->version == 0)
        return sl__fail(SL_ENOENT, "no memory cgroup");
    const bool v2 = cg->version == 2;
    bool any = false, unlimited = false;

    uint64_t usage = 0;
    if (s_read_bytes(cg->dir, v2 ? "memory.current" : "memory.usage_in_bytes", &usage, &unlimited)) {
        any = true;
        /* memory.stat is 1-6 KiB; the LRU counters sit in its first half on every kernel. */
        char stat[8192];
        uint64_t inactive = 0, active = 0, working = usage, unreclaimable = usage;
        if (s_read_small(cg->dir, "memory.stat", stat, sizeof(stat)) &&
            s_stat_counter(stat, v2, "inactive_file", &inactive)) {
            working = inactive < usage ? usage - inactive : 0;
            if (s_stat_counter(stat, v2, "active_file", &active))
                unreclaimable = inactive + active < usage ? usage - inactive - active : 0;
        }
        out->usage_bytes = unlimited ? 0 : working;
        out->unreclaimable_bytes = unlimited ? 0 : unreclaimable;
    }

    /* The kernel enforces every ancestor's limit, so the one that bites is the smallest on the way up. */
    char dir[sizeof(cg->dir)];
    snprintf(dir, sizeof(dir), "%s", cg->dir);
    size_t len = strlen(dir), base_len = cg->base_len <= len ? cg->base_len : len;
    uint64_t limit = 0;
    for (;;) {
        uint64_t v;
        if (s_read_bytes(dir, v2 ? "memory.max" : "memory.limit_in_bytes", &v, &unlimited)) {
            any = true;
            if (!unlimited && v > 0 && (limit == 0 || v < limit))
                limit = v;
        }
        if (len <= base_len)
            break;
        while (len > base_len && dir[len - 1] != '/')
            len--;
        while (len > base_len && dir[len - 1] == '/')
            len--;
        if (len < base_len)
            len = base_len;
        dir[len] = '\0';
    }
    out->limit_bytes = limit;
    return any ? 0 : sl__fail(SL_ENOENT, "%s: no memory usage or limit files", cg->dir);
}
