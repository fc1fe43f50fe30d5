/* The local store through the public API, on real files in a temporary directory: listing order and paging,
 * start_after, one-level listings, atomic writes, unsafe keys, the umask, ranged reads and the error paths. */
#include "crc32c.h"
#include "fail.h"
#include "sluice/sluice.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define ASSERT_OK(expr)                                                                                                \
    do {                                                                                                               \
        s_test_checks++;                                                                                               \
        long long rc_ = (long long)(expr);                                                                             \
        if (rc_ < 0)                                                                                                   \
            TEST_FAIL_("%s failed: %s: %s", #expr, sl_err_name((int)rc_), sl_last_error());                            \
    } while (0)
#define ASSERT_ERR(expr, code)                                                                                         \
    do {                                                                                                               \
        s_test_checks++;                                                                                               \
        long long rc_ = (long long)(expr);                                                                             \
        if (rc_ != (code))                                                                                             \
            TEST_FAIL_("%s returned %s, expected %s (%s)", #expr, rc_ < 0 ? sl_err_name((int)rc_) : "success",         \
                       sl_err_name(code), sl_last_error());                                                            \
    } while (0)
#define ASSERT_CONTAINS(hay, needle)                                                                                   \
    do {                                                                                                               \
        s_test_checks++;                                                                                               \
        if (!strstr((hay), (needle)))                                                                                  \
            TEST_FAIL_("\"%s\" does not contain \"%s\"", (hay), (needle));                                             \
    } while (0)

static char s_base[PATH_MAX]; /* the test's mkdtemp directory */

/* ---- file-system helpers ---- */

static const char *s_at(char *buf, const char *dir, const char *rel) {
    int n = snprintf(buf, PATH_MAX, "%s/%s", dir, rel);
    ASSERT_TRUE(n > 0 && n < PATH_MAX);
    return buf;
}

static void s_mkdir_p(const char *path) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = strchr(buf + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(buf, 0755) < 0)
            ASSERT_INT_EQ(errno, EEXIST);
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0)
        ASSERT_INT_EQ(errno, EEXIST);
}

static void s_put(const char *dir, const char *rel, const void *data, size_t len) {
    char path[PATH_MAX];
    s_at(path, dir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    s_mkdir_p(path);
    *slash = '/';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_TRUE(fd >= 0);
    ASSERT_INT_EQ(write(fd, data, len), (long long)len);
    close(fd);
}

/* Reads a whole file into a malloc'd buffer; NULL if it does not exist. */
static char *s_slurp(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    struct stat sb;
    ASSERT_INT_EQ(fstat(fd, &sb), 0);
    char *buf = malloc((size_t)sb.st_size + 1);
    ASSERT_TRUE(buf != NULL);
    ASSERT_INT_EQ(read(fd, buf, (size_t)sb.st_size), sb.st_size);
    buf[sb.st_size] = '\0';
    *len = (size_t)sb.st_size;
    close(fd);
    return buf;
}

static bool s_exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Removes name in dirfd and everything under it, relative to each directory: trees deeper than PATH_MAX too. */
static void s_rm_at(int dirfd, const char *name) {
    if (unlinkat(dirfd, name, 0) == 0 || (errno != EISDIR && errno != EPERM))
        return;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    ASSERT_TRUE(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            s_rm_at(fd, e->d_name);
    closedir(d);
    unlinkat(dirfd, name, AT_REMOVEDIR);
}

static void s_rm_rf(const char *path) {
    s_rm_at(AT_FDCWD, path);
}

static int s_tmp_found;
static int s_count_tmp_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    if (strncmp(path + ftw->base, ".sluice-tmp-", 12) == 0)
        s_tmp_found++;
    return 0;
}

/* Number of ".sluice-tmp-*" names anywhere under dir. */
static int s_count_tmp(const char *dir) {
    s_tmp_found = 0;
    nftw(dir, s_count_tmp_one, 16, FTW_PHYS);
    return s_tmp_found;
}

static size_t s_count_entries(const char *dir) {
    DIR *d = opendir(dir);
    ASSERT_TRUE(d != NULL);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- store helpers ---- */

typedef struct item {
    char *key;
    bool is_prefix;
    uint64_t size;
} item;

typedef struct items {
    item *v;
    size_t n, cap;
} items;

static void s_items_free(items *it) {
    for (size_t i = 0; i < it->n; i++)
        free(it->v[i].key);
    free(it->v);
    memset(it, 0, sizeof(*it));
}

static void s_items_push(items *it, const char *key, bool is_prefix, uint64_t size) {
    if (it->n == it->cap) {
        it->cap = it->cap ? it->cap * 2 : 64;
        it->v = realloc(it->v, it->cap * sizeof(*it->v));
        ASSERT_TRUE(it->v != NULL);
    }
    it->v[it->n].key = strdup(key);
    ASSERT_TRUE(it->v[it->n].key != NULL);
    it->v[it->n].is_prefix = is_prefix;
    it->v[it->n++].size = size;
}

static int s_memcmp_keys(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t xl = strlen(x), yl = strlen(y);
    int c = memcmp(x, y, xl < yl ? xl : yl);
    return c ? c : (xl > yl) - (xl < yl);
}

typedef struct open_store {
    sl_store *store;
    sl_client *client;
} open_store;

static open_store s_open(const char *dir) {
    open_store os;
    ASSERT_OK(sl_store_open(dir, NULL, &os.store));
    ASSERT_OK(sl_client_new(os.store, &os.client));
    return os;
}

static void s_close(open_store *os) {
    sl_client_destroy(os->client);
    sl_store_close(os->store);
}

/* The whole listing; fails the test on any error. */
static items s_list(sl_client *client, bool recursive, const char *start_after, size_t page_size) {
    sl_list_options opts = {.recursive = recursive, .start_after = start_after, .page_size = page_size};
    sl_lister *ls;
    ASSERT_OK(sl_list_open(client, &opts, &ls));
    items it = {0};
    sl_object obj;
    int rc;
    while ((rc = sl_list_next(ls, &obj)) == 1) {
        ASSERT_UINT_EQ(obj.key_len, strlen(obj.key));
        s_items_push(&it, obj.key, obj.is_prefix, obj.size);
    }
    ASSERT_OK(rc);
    sl_list_close(ls);
    return it;
}

/* The listing must be exactly `want` (n keys), in that order. */
static void s_assert_keys(const items *got, const char *const *want, size_t n, const char *what) {
    for (size_t i = 0; i < got->n && i < n; i++)
        if (strcmp(got->v[i].key, want[i]) != 0)
            TEST_FAIL_("%s: key %zu is \"%.100s\", expected \"%.100s\"", what, i, got->v[i].key, want[i]);
    if (got->n != n)
        TEST_FAIL_("%s: %zu keys listed, expected %zu", what, got->n, n);
    s_test_checks++;
}

/* ---- the tree used by the ordering, start_after and one-level tests ---- */

static const char *const s_tree_files[] = {
    "a-b",       "a/c",           "a.txt",   "a0",     "a/b/c",   "sp ace",        "unicodé",
    "unicode",   "unicodf/x",     "#hash",   "100%",   "what?",   "new\nline",     "tab\there",
    "ctrl\001x", "\xff\xfe high", ".hidden", "b-/z",   "b./z",    "b/x",           "b0/y",
    "c-",        "c/d",           "c.",      "c0",     "c/d-e/f", "c/d.e",         "c/e/f",
    "x/y/z/w",   "x/y/z-",        "x/y/z.",  "x/y/z0", "x/y-",    "deep/d01/file",
};
static const char *const s_tree_empty_dirs[] = {"empty", "a/emptysub", "z/y/x", "c/e/g"};

/* "AAA.../BBB.../f": `levels` components of `width` bytes and a final "f". Caller frees. */
static char *s_long_key(int levels, size_t width) {
    size_t len = (size_t)levels * (width + 1) + 1;
    char *key = malloc(len + 1);
    ASSERT_TRUE(key != NULL);
    for (int i = 0; i < levels; i++) {
        memset(key + (size_t)i * (width + 1), 'A' + i, width);
        key[(size_t)i * (width + 1) + width] = '/';
    }
    key[len - 1] = 'f';
    key[len] = '\0';
    return key;
}

/* Sorted (memcmp) file keys of the tree; the caller frees the array and its strings. */
static char **s_make_tree(const char *root, size_t *count) {
    size_t cap = 256, n = 0;
    char **keys = malloc(cap * sizeof(*keys));
    ASSERT_TRUE(keys != NULL);
    for (size_t i = 0; i < sizeof(s_tree_files) / sizeof(s_tree_files[0]); i++)
        keys[n++] = strdup(s_tree_files[i]);

    char name[300];
    memset(name, 'n', 254);
    name[254] = 'Z';
    name[255] = '\0';
    keys[n++] = strdup(name);

    /* 60 levels deep. */
    char deep[PATH_MAX] = "deep";
    size_t len = strlen(deep);
    for (int i = 1; i <= 60; i++)
        len += (size_t)snprintf(deep + len, sizeof(deep) - len, "/d%02d", i);
    snprintf(deep + len, sizeof(deep) - len, "/leaf");
    keys[n++] = strdup(deep);

    /* A key of 3,585 bytes: 14 components of 255 bytes. */
    keys[n++] = s_long_key(14, 255);

    /* A subdirectory big enough to need several batches with small page sizes. */
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "many/%d", i * 37 % 101);
        keys[n++] = strdup(name);
    }
    keys[n++] = strdup("link-to-file");
    /* Names that only look like the temp files of writes in progress are ordinary objects, as is everything under a
     * directory named exactly like one (writers make files, never directories, of that name). */
    static const char *const temp_like[] = {".sluice-tmp-abc", "a/.sluice-tmp-zzz", ".sluice-tmp-dir/inside",
                                            ".sluice-tmp-", ".sluice-tmp-abcdefg", ".sluice-tmp-ab-def",
                                            "b/.sluice-tmp-abcdef.txt", ".sluice-tmp-Dir123/inside"};
    for (size_t i = 0; i < sizeof(temp_like) / sizeof(temp_like[0]); i++)
        keys[n++] = strdup(temp_like[i]);

    for (size_t i = 0; i < n; i++) {
        ASSERT_TRUE(keys[i] != NULL);
        if (strcmp(keys[i], "link-to-file") != 0)
            s_put(root, keys[i], keys[i], strlen(keys[i]));
    }
    char path[PATH_MAX], other[PATH_MAX];
    for (size_t i = 0; i < sizeof(s_tree_empty_dirs) / sizeof(s_tree_empty_dirs[0]); i++)
        s_mkdir_p(s_at(path, root, s_tree_empty_dirs[i]));
    ASSERT_INT_EQ(symlink("a.txt", s_at(path, root, "link-to-file")), 0);
    ASSERT_INT_EQ(symlink("a", s_at(path, root, "link-to-dir")), 0);
    ASSERT_INT_EQ(symlink(s_at(other, root, "c"), s_at(path, root, "x/y/abs-link-to-dir")), 0);
    ASSERT_INT_EQ(symlink("nowhere", s_at(path, root, "dangling")), 0);
    ASSERT_INT_EQ(mkfifo(s_at(path, root, "fifo"), 0644), 0);
    /* Files named exactly like temp files: never listed. */
    s_put(root, ".sluice-tmp-AbC123", "x", 1);
    s_put(root, "a/.sluice-tmp-zzzzzz", "x", 1);
    s_put(root, ".sluice-tmp-Dir123/.sluice-tmp-000000", "x", 1);

    qsort(keys, n, sizeof(*keys), s_memcmp_keys);
    *count = n;
    return keys;
}

static void s_free_keys(char **keys, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* Built once by main: the tree and its sorted file keys. */
static char s_tree[PATH_MAX];
static char **s_keys;
static size_t s_nkeys;

static void test_order(void) {
    /* The traps the order must get right, and that a per-directory name sort gets wrong. */
    static const char *const before[][2] = {{"a-b", "a/b/c"}, {"a.txt", "a/b/c"}, {"a/emptysub", "a0"},
                                            {"c/e/f", "c0"},  {"b-/z", "b./z"},   {"b./z", "b/x"}};
    for (size_t i = 0; i < sizeof(before) / sizeof(before[0]); i++)
        ASSERT_TRUE(strcmp(before[i][0], before[i][1]) < 0);
    for (size_t i = 0; i + 1 < s_nkeys; i++)
        ASSERT_TRUE(s_memcmp_keys(&s_keys[i], &s_keys[i + 1]) < 0);

    open_store os = s_open(s_tree);
    const size_t pages[] = {1, 2, 3, 7, 0};
    for (size_t p = 0; p < sizeof(pages) / sizeof(pages[0]); p++) {
        items got = s_list(os.client, true, NULL, pages[p]);
        char what[64];
        snprintf(what, sizeof(what), "recursive listing, page_size %zu", pages[p]);
        s_assert_keys(&got, (const char *const *)s_keys, s_nkeys, what);
        for (size_t i = 0; i < got.n; i++) {
            ASSERT_FALSE(got.v[i].is_prefix);
            uint64_t size = strcmp(got.v[i].key, "link-to-file") == 0 ? strlen("a.txt") : strlen(got.v[i].key);
            ASSERT_UINT_EQ(got.v[i].size, size);
        }
        s_items_free(&got);
    }

    sl_object obj;
    char path[PATH_MAX];
    struct stat sb;
    ASSERT_OK(sl_stat(os.client, "a.txt", &obj));
    ASSERT_INT_EQ(stat(s_at(path, s_tree, "a.txt"), &sb), 0);
    ASSERT_INT_EQ(obj.mtime_ns, (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec);
    ASSERT_UINT_EQ(obj.size, 5);
    ASSERT_STR_EQ(obj.key, "a.txt");
    ASSERT_FALSE(obj.is_prefix);
    ASSERT_ERR(sl_stat(os.client, "a", &obj), SL_ENOENT);
    ASSERT_CONTAINS(sl_last_error(), "is a directory");
    ASSERT_ERR(sl_stat(os.client, "nope", &obj), SL_ENOENT);
    ASSERT_ERR(sl_stat(os.client, "a.txt/x", &obj), SL_ENOENT);
    ASSERT_ERR(sl_stat(os.client, "fifo", &obj), SL_ENOENT);
    ASSERT_OK(sl_stat(os.client, "link-to-file", &obj));
    ASSERT_UINT_EQ(obj.size, 5);
    s_close(&os);
}

#if defined(__SANITIZE_ADDRESS__)
#define S_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_ASAN 1
#endif
#endif

/* Heap in use while listing 10,000 files in batches of 64 stays far below what holding every name would take. */
static void s_check_list_memory(sl_client *client) {
#if defined(__GLIBC__) && !defined(S_ASAN)
    size_t base = mallinfo2().uordblks, peak = 0, n = 0;
    sl_list_options opts = {.recursive = true, .page_size = 64};
    sl_lister *ls;
    sl_object obj;
    ASSERT_OK(sl_list_open(client, &opts, &ls));
    while (sl_list_next(ls, &obj) == 1) {
        size_t used = mallinfo2().uordblks - base;
        peak = used > peak ? used : peak;
        n++;
    }
    sl_list_close(ls);
    ASSERT_UINT_EQ(n, 10000);
    fprintf(stderr, "    heap while listing 10,000 files with page_size 64: %zu bytes at most\n", peak);
    ASSERT_TRUE(peak < (size_t)128 * 1024);
#else
    (void)client;
    fprintf(stderr, "    SKIPPED the listing memory check: needs glibc's mallinfo2 without a sanitizer\n");
#endif
}

static void test_flat_10000(void) {
    char root[PATH_MAX];
    s_at(root, s_base, "flat");
    ASSERT_INT_EQ(mkdir(root, 0755), 0);
    enum { N = 10000 };
    char **want = malloc(N * sizeof(*want));
    ASSERT_TRUE(want != NULL);
    for (int i = 0; i < N; i++) {
        char name[32], path[PATH_MAX];
        /* Unpadded numbers and a mix of suffixes, so byte order differs from creation and numeric order. */
        snprintf(name, sizeof(name), "%d%s", i * 7919 % N, i % 3 == 0 ? "-x" : i % 3 == 1 ? ".y" : "");
        want[i] = strdup(name);
        int fd = open(s_at(path, root, name), O_WRONLY | O_CREAT | O_EXCL, 0644);
        ASSERT_TRUE(fd >= 0);
        close(fd);
    }
    qsort(want, N, sizeof(*want), s_memcmp_keys);

    open_store os = s_open(root);
    double t0 = s_now();
    items got = s_list(os.client, true, NULL, 64);
    double t1 = s_now();
    s_assert_keys(&got, (const char *const *)want, N, "flat directory, page_size 64");
    s_items_free(&got);
    double t2 = s_now();
    got = s_list(os.client, true, NULL, 0);
    double t3 = s_now();
    s_assert_keys(&got, (const char *const *)want, N, "flat directory, default page size");
    s_items_free(&got);
    fprintf(stderr, "    listing speed, 10,000 files: %.0f keys/s with page_size 64, %.0f keys/s with the default\n",
            N / (t1 - t0), N / (t3 - t2));

    s_check_list_memory(os.client);

    /* start_after in a flat directory, across batch boundaries. */
    for (int i = 0; i < N; i += 997) {
        got = s_list(os.client, true, want[i], 64);
        s_assert_keys(&got, (const char *const *)want + i + 1, (size_t)(N - i - 1), "flat directory, start_after");
        s_items_free(&got);
    }
    s_close(&os);
    s_free_keys(want, N);
    s_rm_rf(root);
}

static void s_check_start_after(sl_client *client, const char *start, size_t page) {
    size_t first = 0;
    while (first < s_nkeys && s_memcmp_keys(&s_keys[first], &start) <= 0)
        first++;
    items got = s_list(client, true, start, page);
    char what[128];
    snprintf(what, sizeof(what), "start_after \"%.60s\" (%zu bytes), page_size %zu", start, strlen(start), page);
    s_assert_keys(&got, (const char *const *)s_keys + first, s_nkeys - first, what);
    s_items_free(&got);
}

static void test_start_after(void) {
    open_store os = s_open(s_tree);
    static const char *const extra[] = {
        "",
        "a",
        "a/",
        "a/b",
        "a/b/",
        "a/b/c/d",
        "a/c0",
        "a/emptysub/",
        "deep/",
        "deep/d01/d02/",
        "deep/d01/d02/d03/zz",
        "deep/d01/d0",
        "c/d",
        "c/d/",
        "c/d/e",
        "b/",
        "b.",
        "\xff",
        "\xff\xff\xff",
        "zzzz",
        "many/",
        "many/5",
        "#",
        "~",
        "x/y/",
        "x/y/z/",
        "x/y/z/w/",
        "x/y/z/x",
    };
    const size_t pages[] = {1, 3, 0};
    for (size_t p = 0; p < sizeof(pages) / sizeof(pages[0]); p++) {
        for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
            s_check_start_after(os.client, extra[i], pages[p]);
        for (size_t i = 0; i < s_nkeys; i++) {
            char variant[PATH_MAX + 2];
            s_check_start_after(os.client, s_keys[i], pages[p]);
            snprintf(variant, sizeof(variant), "%s/", s_keys[i]);
            s_check_start_after(os.client, variant, pages[p]);
            snprintf(variant, sizeof(variant), "%.*s", (int)strlen(s_keys[i]) - 1, s_keys[i]);
            s_check_start_after(os.client, variant, pages[p]);
        }
    }
    s_close(&os);
}

static void test_one_level(void) {
    /* Each top-level file, and each top-level directory as "name/" (empty ones included). */
    char **want = malloc((s_nkeys + 2) * sizeof(*want));
    ASSERT_TRUE(want != NULL);
    size_t m = 0;
    for (size_t i = 0; i < s_nkeys; i++) {
        const char *slash = strchr(s_keys[i], '/');
        char *entry = slash ? strndup(s_keys[i], (size_t)(slash - s_keys[i] + 1)) : strdup(s_keys[i]);
        if (m && strcmp(want[m - 1], entry) == 0)
            free(entry);
        else
            want[m++] = entry;
    }
    want[m++] = strdup("empty/");
    want[m++] = strdup("z/");
    qsort(want, m, sizeof(*want), s_memcmp_keys);

    open_store os = s_open(s_tree);
    const size_t pages[] = {1, 2, 0};
    for (size_t p = 0; p < sizeof(pages) / sizeof(pages[0]); p++) {
        items got = s_list(os.client, false, NULL, pages[p]);
        s_assert_keys(&got, (const char *const *)want, m, "one-level listing");
        for (size_t i = 0; i < got.n; i++) {
            bool dir = got.v[i].key[strlen(got.v[i].key) - 1] == '/';
            ASSERT_INT_EQ(got.v[i].is_prefix, dir);
            if (!dir && strcmp(got.v[i].key, "link-to-file") != 0)
                ASSERT_UINT_EQ(got.v[i].size, strlen(got.v[i].key));
        }
        s_items_free(&got);
        /* start_after compares the listed keys themselves: the prefix "a/" is not after "a/". */
        for (size_t i = 0; i < m; i++) {
            got = s_list(os.client, false, want[i], pages[p]);
            s_assert_keys(&got, (const char *const *)want + i + 1, m - i - 1, "one-level listing, start_after");
            s_items_free(&got);
        }
    }
    s_close(&os);
    s_free_keys(want, m);
}

/* Whether the file system under dir lets the store write new files unnamed (O_TMPFILE, linked through /proc): then no
 * temp file is seen while a write without fsync is open. */
static bool s_unnamed_here(const char *dir) {
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    close(fd);
    return access("/proc/self/fd", X_OK) == 0;
}

static void test_atomic_write(void) {
    char root[PATH_MAX], path[PATH_MAX];
    /* The root does not exist yet: the first write creates it. */
    s_at(root, s_base, "w/out");
    open_store os = s_open(root);
    ASSERT_FALSE(s_exists(root));

    sl_writer *w;
    ASSERT_OK(sl_write_open(os.client, "dir/x.bin", NULL, &w));
    ASSERT_OK(sl_write(w, "hello ", 6));
    ASSERT_FALSE(s_exists(s_at(path, root, "dir/x.bin")));
    /* The data is somewhere (in a file without a name where the file system can, else in a temp file) ... */
    char dir[PATH_MAX];
    bool unnamed = s_unnamed_here(s_at(dir, root, "dir"));
    ASSERT_INT_EQ(s_count_tmp(root), unnamed ? 0 : 1);
    items got = s_list(os.client, true, NULL, 0);
    ASSERT_UINT_EQ(got.n, 0); /* ... but not in the listing */
    s_items_free(&got);
    ASSERT_OK(sl_write(w, "world", 5));
    ASSERT_OK(sl_write(w, "", 0));
    ASSERT_OK(sl_write_commit(w));
    size_t len;
    char *data = s_slurp(path, &len);
    ASSERT_TRUE(data != NULL);
    ASSERT_UINT_EQ(len, 11);
    ASSERT_MEM_EQ(data, "hello world", 11);
    free(data);
    ASSERT_INT_EQ(s_count_tmp(root), 0);
    got = s_list(os.client, true, NULL, 0);
    ASSERT_UINT_EQ(got.n, 1);
    ASSERT_STR_EQ(got.v[0].key, "dir/x.bin");
    s_items_free(&got);

    /* Replacing: the old bytes stay until the commit. */
    ASSERT_OK(sl_write_open(os.client, "dir/x.bin", NULL, &w));
    ASSERT_OK(sl_write(w, "new", 3));
    data = s_slurp(path, &len);
    ASSERT_UINT_EQ(len, 11);
    free(data);
    ASSERT_OK(sl_write_commit(w));
    data = s_slurp(path, &len);
    ASSERT_UINT_EQ(len, 3);
    ASSERT_MEM_EQ(data, "new", 3);
    free(data);

    /* Abort leaves nothing, and leaves the previous object untouched. */
    ASSERT_OK(sl_write_open(os.client, "dir/y.bin", NULL, &w));
    ASSERT_OK(sl_write(w, "junk", 4));
    sl_write_abort(w);
    ASSERT_FALSE(s_exists(s_at(path, root, "dir/y.bin")));
    ASSERT_OK(sl_write_open(os.client, "dir/x.bin", NULL, &w));
    ASSERT_OK(sl_write(w, "junk", 4));
    sl_write_abort(w);
    data = s_slurp(s_at(path, root, "dir/x.bin"), &len);
    ASSERT_UINT_EQ(len, 3);
    free(data);
    ASSERT_INT_EQ(s_count_tmp(root), 0);

    /* A large write in pieces. */
    enum { BIG = 3 << 20 };
    unsigned char *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (unsigned char)(i * 31 + 7);
    ASSERT_OK(sl_write_open(os.client, "big/deeper/b", NULL, &w));
    for (size_t off = 0; off < BIG; off += 100000)
        ASSERT_OK(sl_write(w, big + off, off + 100000 <= BIG ? 100000 : BIG - off));
    ASSERT_OK(sl_write_commit(w));
    data = s_slurp(s_at(path, root, "big/deeper/b"), &len);
    ASSERT_UINT_EQ(len, BIG);
    ASSERT_MEM_EQ(data, big, BIG);
    free(data);
    free(big);

    /* A directory in the way of the final name. */
    s_mkdir_p(s_at(path, root, "isdir"));
    s_put(root, "isdir/keep", "k", 1);
    ASSERT_OK(sl_write_open(os.client, "isdir", NULL, &w));
    ASSERT_OK(sl_write(w, "x", 1));
    ASSERT_ERR(sl_write_commit(w), SL_EISDIR);
    ASSERT_CONTAINS(sl_last_error(), "isdir");
    ASSERT_TRUE(s_exists(s_at(path, root, "isdir/keep")));
    ASSERT_INT_EQ(s_count_tmp(root), 0);

    /* The remembered directory removed behind the client's back. */
    ASSERT_OK(sl_write_open(os.client, "gone/1", NULL, &w));
    ASSERT_OK(sl_write_commit(w));
    s_rm_rf(s_at(path, root, "gone"));
    ASSERT_OK(sl_write_open(os.client, "gone/2", NULL, &w));
    ASSERT_OK(sl_write_commit(w));
    ASSERT_TRUE(s_exists(s_at(path, root, "gone/2")));

    /* Delete. */
    ASSERT_OK(sl_delete(os.client, "gone/2"));
    ASSERT_FALSE(s_exists(path));
    ASSERT_ERR(sl_delete(os.client, "gone/2"), SL_ENOENT);
    ASSERT_ERR(sl_delete(os.client, "isdir"), SL_ENOENT);
    ASSERT_TRUE(s_exists(s_at(path, root, "isdir/keep")));

    /* Destroying a client closes what is still open on it; an open writer is discarded. */
    sl_lister *ls;
    sl_reader *r;
    sl_list_options lo = {.recursive = true, .page_size = 1};
    sl_object obj;
    ASSERT_OK(sl_list_open(os.client, &lo, &ls));
    ASSERT_INT_EQ(sl_list_next(ls, &obj), 1);
    ASSERT_OK(sl_read_open(os.client, "dir/x.bin", 0, SL_LENGTH_TO_END, NULL, &r));
    ASSERT_OK(sl_write_open(os.client, "dir/pending", NULL, &w));
    ASSERT_OK(sl_write(w, "p", 1));
    ASSERT_INT_EQ(s_count_tmp(root), unnamed ? 0 : 1);
    s_close(&os);
    ASSERT_INT_EQ(s_count_tmp(root), 0);
    ASSERT_FALSE(s_exists(s_at(path, root, "dir/pending")));
}

static void test_unsafe_keys(void) {
    char base[PATH_MAX], root[PATH_MAX], path[PATH_MAX];
    s_at(base, s_base, "u");
    s_at(root, base, "root");
    s_mkdir_p(root);
    s_put(base, "secret", "s", 1);
    open_store os = s_open(root);
    static const char *const bad[] = {
        "",   "/abs", "/",  "../x",  "a/../../x", "..",      ".",         "./a",  "a/.", "a/..",
        "a/", "a//b", "//", "a/./b", "../secret", "x/../..", "a/b/../..", "dir/", ".sluice-tmp-abcdef",
        "a/.sluice-tmp-1Z2y3X",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sl_writer *w = NULL;
        sl_reader *r = NULL;
        sl_object obj;
        int rc = sl_write_open(os.client, bad[i], NULL, &w);
        if (rc != SL_EUNSAFEKEY)
            TEST_FAIL_("write_open(\"%s\") returned %s, expected SL_EUNSAFEKEY", bad[i], sl_err_name(rc));
        ASSERT_ERR(sl_stat(os.client, bad[i], &obj), SL_EUNSAFEKEY);
        ASSERT_ERR(sl_read_open(os.client, bad[i], 0, SL_LENGTH_TO_END, NULL, &r), SL_EUNSAFEKEY);
        ASSERT_ERR(sl_delete(os.client, bad[i]), SL_EUNSAFEKEY);
    }
    char name[300];
    memset(name, 'q', 256);
    name[256] = '\0';
    sl_writer *w;
    ASSERT_ERR(sl_write_open(os.client, name, NULL, &w), SL_ENAMETOOLONG);
    char *longkey = s_long_key(17, 250);
    ASSERT_ERR(sl_write_open(os.client, longkey, NULL, &w), SL_ENAMETOOLONG);
    free(longkey);

    /* Nothing was created or removed anywhere. */
    ASSERT_UINT_EQ(s_count_entries(base), 2);
    ASSERT_UINT_EQ(s_count_entries(root), 0);
    ASSERT_TRUE(s_exists(s_at(path, base, "secret")));

    /* Dots that are not "." or ".." components are ordinary names. */
    static const char *const fine[] = {"...", "..a", ".a", "a./b..", "a..b/c"};
    /* Nor is a name that only starts like a temp file, or a directory named like one. */
    static const char *const temp_like[] = {".sluice-tmp-x", "a/.sluice-tmp-1", ".sluice-tmp-abcdefg",
                                            ".sluice-tmp-abcde", ".sluice-tmp-abc.ef", ".sluice-tmp-abcdef/x"};
    for (size_t i = 0; i < sizeof(temp_like) / sizeof(temp_like[0]); i++) {
        ASSERT_OK(sl_write_open(os.client, temp_like[i], NULL, &w));
        ASSERT_OK(sl_write(w, "t", 1));
        ASSERT_OK(sl_write_commit(w));
        sl_object obj;
        ASSERT_OK(sl_stat(os.client, temp_like[i], &obj));
        ASSERT_UINT_EQ(obj.size, 1);
        ASSERT_OK(sl_delete(os.client, temp_like[i]));
        ASSERT_FALSE(s_exists(s_at(path, root, temp_like[i])));
    }
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        ASSERT_OK(sl_write_open(os.client, fine[i], NULL, &w));
        ASSERT_OK(sl_write_commit(w));
        ASSERT_TRUE(s_exists(s_at(path, root, fine[i])));
    }
    ASSERT_UINT_EQ(s_count_entries(base), 2);
    s_close(&os);
}

/* Only files named exactly like sluice's temp files (the prefix and six ASCII letters or digits) are taken for writes
 * in progress: left out of listings, and removed by a cleaning listing when no writer holds their lock. Everything
 * else is an ordinary object. */
static unsigned char *s_read_range(sl_client *client, const char *key, uint64_t offset, uint64_t length, size_t chunk,
                                   size_t *got, sl_object *info);

static void test_temp_names(void) {
    char root[PATH_MAX], path[PATH_MAX];
    s_at(root, s_base, "temps");
    static const char *const objects[] = {
        ".sluice-tmp-abcdefg", "d/.sluice-tmp-", "d/.sluice-tmp-DIR000/keep", "d/.sluice-tmp-a_cdef",
        "d/.sluice-tmp-abcde", "d/.sluice-tmp-notes", "d/.sluice-tmp-stale1.bak", ("d/.sluice-tmp-\xc3\xa9" "bcde"),
        "d/other",
    };
    size_t n = sizeof(objects) / sizeof(objects[0]);
    for (size_t i = 0; i < n; i++)
        s_put(root, objects[i], objects[i], strlen(objects[i]));
    s_put(root, "d/.sluice-tmp-Stale1", "partial", 7);
    s_put(root, ".sluice-tmp-000000", "partial", 7);
    s_put(root, "d/.sluice-tmp-Live01", "partial", 7);
    ASSERT_INT_EQ(symlink("other", s_at(path, root, "d/.sluice-tmp-Link00")), 0);
    /* A writer still at work: its lock is held (by another open file description than the cleaner's). */
    int live = open(s_at(path, root, "d/.sluice-tmp-Live01"), O_RDWR);
    ASSERT_TRUE(live >= 0);
    ASSERT_INT_EQ(flock(live, LOCK_EX), 0);

    open_store os = s_open(root);
    /* A plain listing (a source) leaves the temp files out and removes nothing. */
    for (int clean = 0; clean < 2; clean++) {
        sl_list_options opts = {.recursive = true, .clean_stale = clean == 1, .page_size = 2};
        sl_lister *ls;
        sl_object obj;
        ASSERT_OK(sl_list_open(os.client, &opts, &ls));
        size_t i = 0;
        int rc;
        while ((rc = sl_list_next(ls, &obj)) == 1) {
            ASSERT_TRUE(i < n);
            ASSERT_STR_EQ(obj.key, objects[i]);
            ASSERT_UINT_EQ(obj.size, strlen(objects[i]));
            i++;
        }
        ASSERT_OK(rc);
        ASSERT_UINT_EQ(i, n);
        sl_list_close(ls);
        ASSERT_INT_EQ(s_exists(s_at(path, root, "d/.sluice-tmp-Stale1")), clean == 0);
        ASSERT_INT_EQ(s_exists(s_at(path, root, ".sluice-tmp-000000")), clean == 0);
        ASSERT_TRUE(s_exists(s_at(path, root, "d/.sluice-tmp-Live01")));
        ASSERT_TRUE(s_exists(s_at(path, root, "d/.sluice-tmp-Link00")));
        for (size_t k = 0; k < n; k++)
            ASSERT_TRUE(s_exists(s_at(path, root, objects[k])));
    }
    close(live);

    /* The others are objects like any: read, replaced, deleted. */
    size_t got;
    unsigned char *data = s_read_range(os.client, "d/.sluice-tmp-notes", 0, SL_LENGTH_TO_END, 64, &got, NULL);
    ASSERT_UINT_EQ(got, strlen("d/.sluice-tmp-notes"));
    free(data);
    sl_writer *w;
    ASSERT_OK(sl_write_open(os.client, "d/.sluice-tmp-notes", NULL, &w));
    ASSERT_OK(sl_write(w, "new", 3));
    ASSERT_OK(sl_write_commit(w));
    data = (unsigned char *)s_slurp(s_at(path, root, "d/.sluice-tmp-notes"), &got);
    ASSERT_UINT_EQ(got, 3);
    free(data);
    ASSERT_OK(sl_delete(os.client, "d/.sluice-tmp-abcde"));
    ASSERT_FALSE(s_exists(s_at(path, root, "d/.sluice-tmp-abcde")));
    /* A key naming a file exactly like a temp file is refused everywhere. */
    sl_object obj;
    sl_reader *r;
    ASSERT_ERR(sl_stat(os.client, "d/.sluice-tmp-Live01", &obj), SL_EUNSAFEKEY);
    ASSERT_CONTAINS(sl_last_error(), "reserved for writes in progress");
    ASSERT_ERR(sl_read_open(os.client, "d/.sluice-tmp-Live01", 0, SL_LENGTH_TO_END, NULL, &r), SL_EUNSAFEKEY);
    ASSERT_ERR(sl_delete(os.client, "d/.sluice-tmp-Live01"), SL_EUNSAFEKEY);
    ASSERT_ERR(sl_write_open(os.client, "d/.sluice-tmp-Zz9999", NULL, &w), SL_EUNSAFEKEY);
    ASSERT_TRUE(s_exists(s_at(path, root, "d/.sluice-tmp-Live01")));
    s_close(&os);
}

/* Mode of the one ".sluice-tmp-*" file in dir. */
static unsigned s_tmp_mode(const char *dir) {
    DIR *d = opendir(dir);
    ASSERT_TRUE(d != NULL);
    struct dirent *e;
    unsigned mode = 0, found = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, ".sluice-tmp-", 12) != 0)
            continue;
        struct stat sb;
        ASSERT_INT_EQ(fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW), 0);
        mode = sb.st_mode & 07777;
        found++;
    }
    closedir(d);
    ASSERT_UINT_EQ(found, 1);
    return mode;
}

static void s_check_mode(mode_t mask, mode_t file_mode, mode_t dir_mode) {
    char root[PATH_MAX], path[PATH_MAX];
    snprintf(path, sizeof(path), "umask%03o", (unsigned)mask);
    s_at(root, s_base, path);
    mode_t old = umask(mask);
    open_store os = s_open(root);
    sl_writer *w;
    sl_write_options synced = {.fsync = true};
    ASSERT_OK(sl_write_open(os.client, "d/f", &synced, &w));
    ASSERT_OK(sl_write(w, "x", 1));
    /* A temp file is private while it is being written, whatever the umask. */
    ASSERT_UINT_EQ(s_tmp_mode(s_at(path, root, "d")), 0600);
    ASSERT_OK(sl_write_commit(w));
    /* A write without fsync (an unnamed file where the file system allows it) ends with the same mode. */
    ASSERT_OK(sl_write_open(os.client, "d/g", NULL, &w));
    ASSERT_OK(sl_write(w, "x", 1));
    ASSERT_OK(sl_write_commit(w));
    s_close(&os);
    umask(old);
    struct stat sb;
    ASSERT_INT_EQ(stat(s_at(path, root, "d/f"), &sb), 0);
    ASSERT_INT_EQ(sb.st_mode & 07777, file_mode);
    ASSERT_INT_EQ(stat(s_at(path, root, "d/g"), &sb), 0);
    ASSERT_INT_EQ(sb.st_mode & 07777, file_mode);
    ASSERT_INT_EQ(stat(s_at(path, root, "d"), &sb), 0);
    ASSERT_INT_EQ(sb.st_mode & 07777, dir_mode);
}

static void test_umask(void) {
    s_check_mode(027, 0640, 0750);
    s_check_mode(0, 0666, 0777);
    s_check_mode(022, 0644, 0755);
}

/* A symbolic link inside the destination is never written through; the destination itself may be one. */
static void test_links_in_destination(void) {
    char base[PATH_MAX], root[PATH_MAX], path[PATH_MAX], target[PATH_MAX];
    s_at(base, s_base, "links");
    s_at(root, base, "root");
    s_mkdir_p(s_at(path, root, "real"));
    s_mkdir_p(s_at(path, base, "outside"));
    ASSERT_INT_EQ(symlink("../outside", s_at(path, root, "out")), 0);
    ASSERT_INT_EQ(symlink("real", s_at(path, root, "in")), 0);
    open_store os = s_open(root);
    sl_writer *w = NULL;
    static const char *const through[] = {"real/../out/x", "out/x", "out/new/dir/x", "in/x"};
    for (size_t i = 0; i < sizeof(through) / sizeof(through[0]); i++) {
        int rc = sl_write_open(os.client, through[i], NULL, &w);
        if (rc != SL_EUNSAFEKEY)
            TEST_FAIL_("write_open(\"%s\") returned %s, expected SL_EUNSAFEKEY", through[i], sl_err_name(rc));
    }
    ASSERT_CONTAINS(sl_last_error(), "symbolic link");
    ASSERT_UINT_EQ(s_count_entries(s_at(path, base, "outside")), 0);
    ASSERT_UINT_EQ(s_count_entries(s_at(path, root, "real")), 0);
    /* A key that names the link itself replaces the link (rename does not follow it). */
    ASSERT_OK(sl_write_open(os.client, "out", NULL, &w));
    ASSERT_OK(sl_write(w, "f", 1));
    ASSERT_OK(sl_write_commit(w));
    struct stat sb;
    ASSERT_INT_EQ(lstat(s_at(path, root, "out"), &sb), 0);
    ASSERT_TRUE(S_ISREG(sb.st_mode));
    ASSERT_UINT_EQ(s_count_entries(s_at(path, base, "outside")), 0);
    s_close(&os);

    /* Opened through a link to it, the destination works as usual. */
    ASSERT_INT_EQ(symlink("root/real", s_at(path, base, "via")), 0);
    os = s_open(s_at(target, base, "via"));
    ASSERT_OK(sl_write_open(os.client, "sub/y", NULL, &w));
    ASSERT_OK(sl_write_commit(w));
    ASSERT_TRUE(s_exists(s_at(path, root, "real/sub/y")));
    s_close(&os);
}

/* Reads [offset, offset+length) of key in reads of at most `chunk` bytes; returns the bytes (caller frees). */
static unsigned char *s_read_range(sl_client *client, const char *key, uint64_t offset, uint64_t length, size_t chunk,
                                   size_t *got, sl_object *info) {
    sl_reader *r;
    ASSERT_OK(sl_read_open(client, key, offset, length, info, &r));
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    int64_t k;
    while ((k = sl_read(r, buf + n, chunk < cap - n ? chunk : cap - n)) > 0)
        n += (size_t)k;
    ASSERT_OK(k);
    ASSERT_INT_EQ(sl_read(r, buf, chunk), 0);
    sl_read_close(r);
    *got = n;
    return buf;
}

static void test_ranged_read(void) {
    char root[PATH_MAX], path[PATH_MAX];
    s_at(root, s_base, "r");
    enum { SIZE = 100000 };
    unsigned char *data = malloc(SIZE);
    for (size_t i = 0; i < SIZE; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    s_put(root, "obj", data, SIZE);
    s_put(root, "empty", "", 0);
    ASSERT_INT_EQ(mkfifo(s_at(path, root, "fifo"), 0644), 0);
    s_mkdir_p(s_at(path, root, "dir"));
    open_store os = s_open(root);

    static const struct {
        uint64_t offset, length;
        size_t chunk;
        size_t want_off, want_len;
    } cases[] = {
        {0, SL_LENGTH_TO_END, 1 << 20, 0, SIZE},
        {0, SL_LENGTH_TO_END, 7, 0, SIZE},
        {10, 90, 1 << 20, 10, 90},
        {10, 90, 4, 10, 90},
        {SIZE - 10, SL_LENGTH_TO_END, 1 << 20, SIZE - 10, 10},
        {SIZE, SL_LENGTH_TO_END, 1 << 20, SIZE, 0},
        {50, 1000000000, 1 << 20, 50, SIZE - 50},
        {0, 0, 1 << 20, 0, 0},
        {SIZE - 1, 1, 1, SIZE - 1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t got;
        sl_object info;
        unsigned char *buf =
            s_read_range(os.client, "obj", cases[i].offset, cases[i].length, cases[i].chunk, &got, &info);
        ASSERT_UINT_EQ(got, cases[i].want_len);
        ASSERT_MEM_EQ(buf, data + cases[i].want_off, got);
        ASSERT_UINT_EQ(info.size, SIZE);
        ASSERT_STR_EQ(info.key, "obj");
        ASSERT_TRUE(info.mtime_ns > 0);
        free(buf);
    }
    sl_reader *r;
    ASSERT_ERR(sl_read_open(os.client, "obj", SIZE + 1, SL_LENGTH_TO_END, NULL, &r), SL_ERANGE);
    ASSERT_CONTAINS(sl_last_error(), "obj");
    size_t got;
    sl_object info;
    free(s_read_range(os.client, "empty", 0, SL_LENGTH_TO_END, 16, &got, &info));
    ASSERT_UINT_EQ(got, 0);
    ASSERT_UINT_EQ(info.size, 0);
    ASSERT_ERR(sl_read_open(os.client, "empty", 1, SL_LENGTH_TO_END, NULL, &r), SL_ERANGE);
    ASSERT_ERR(sl_read_open(os.client, "missing", 0, SL_LENGTH_TO_END, NULL, &r), SL_ENOENT);
    ASSERT_CONTAINS(sl_last_error(), "missing");
    ASSERT_ERR(sl_read_open(os.client, "dir", 0, SL_LENGTH_TO_END, NULL, &r), SL_ENOENT);
    /* A fifo is not an object, and opening it must not wait for a writer (the alarm fails the test if it does). */
    alarm(20);
    ASSERT_ERR(sl_read_open(os.client, "fifo", 0, SL_LENGTH_TO_END, NULL, &r), SL_ENOENT);
    alarm(0);

    /* A file that shrinks under the reader is an error, not a silently short object. */
    ASSERT_OK(sl_read_open(os.client, "obj", 0, SL_LENGTH_TO_END, NULL, &r));
    ASSERT_INT_EQ(truncate(s_at(path, root, "obj"), 1000), 0);
    unsigned char buf[4096];
    int64_t k;
    size_t total = 0;
    while ((k = sl_read(r, buf, sizeof(buf))) > 0)
        total += (size_t)k;
    ASSERT_ERR(k, SL_EIO);
    ASSERT_UINT_EQ(total, 1000);
    sl_read_close(r);
    s_close(&os);
    free(data);
}

/* Reads all of key in reads of `chunk` bytes; returns the last sl_read result (0 at a clean end, <0 on error) and the
 * bytes delivered before it. */
static int64_t s_read_all(sl_client *client, const char *key, size_t chunk, size_t *total) {
    sl_reader *r;
    ASSERT_OK(sl_read_open(client, key, 0, SL_LENGTH_TO_END, NULL, &r));
    unsigned char buf[4096];
    int64_t k;
    *total = 0;
    while ((k = sl_read(r, buf, chunk < sizeof(buf) ? chunk : sizeof(buf))) > 0)
        *total += (size_t)k;
    /* A reader that failed keeps failing. */
    if (k < 0)
        ASSERT_TRUE(sl_read(r, buf, sizeof(buf)) < 0);
    sl_read_close(r);
    return k;
}

/* A file is read as it was when opened, or not at all: one that grows, shrinks or is rewritten in place while being
 * read fails before its last byte is handed out. A file whose size the file system reports as 0 is read to its end. */
static void test_changing_files(void) {
    char root[PATH_MAX], path[PATH_MAX];
    s_at(root, s_base, "changing");
    enum { SIZE = 100000 };
    unsigned char *data = malloc(SIZE);
    memset(data, 'c', SIZE);
    open_store os = s_open(root);
    sl_reader *r;
    unsigned char buf[4096];
    size_t total;

    /* Appended to after the open: the copy would be short of what the file now holds. */
    s_put(root, "grows", data, SIZE);
    ASSERT_OK(sl_read_open(os.client, "grows", 0, SL_LENGTH_TO_END, NULL, &r));
    int fd = open(s_at(path, root, "grows"), O_WRONLY | O_APPEND);
    ASSERT_INT_EQ(write(fd, "more", 4), 4);
    close(fd);
    total = 0;
    int64_t k;
    while ((k = sl_read(r, buf, sizeof(buf))) > 0)
        total += (size_t)k;
    ASSERT_ERR(k, SL_EIO);
    ASSERT_CONTAINS(sl_last_error(), "changed while being read (100000 bytes when opened, 100004 now)");
    ASSERT_TRUE(total < SIZE); /* the last bytes were never handed out */
    sl_read_close(r);

    /* Rewritten in place, same size, after part of it was read. */
    s_put(root, "rewritten", data, SIZE);
    ASSERT_OK(sl_read_open(os.client, "rewritten", 0, SL_LENGTH_TO_END, NULL, &r));
    ASSERT_INT_EQ(sl_read(r, buf, sizeof(buf)), sizeof(buf));
    fd = open(s_at(path, root, "rewritten"), O_WRONLY);
    ASSERT_INT_EQ(pwrite(fd, "XY", 2, 50000), 2);
    struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 1000000000, .tv_nsec = 0}};
    ASSERT_INT_EQ(futimens(fd, times), 0); /* a new mtime, whatever the clock's granularity */
    close(fd);
    while ((k = sl_read(r, buf, sizeof(buf))) > 0)
        ;
    ASSERT_ERR(k, SL_EIO);
    ASSERT_CONTAINS(sl_last_error(), "modified since");
    sl_read_close(r);

    /* A range that ends before the end of the file is checked the same way. */
    ASSERT_OK(sl_read_open(os.client, "rewritten", 10, 100, NULL, &r));
    fd = open(s_at(path, root, "rewritten"), O_WRONLY | O_APPEND);
    ASSERT_INT_EQ(write(fd, "z", 1), 1);
    close(fd);
    ASSERT_ERR(sl_read(r, buf, sizeof(buf)), SL_EIO);
    sl_read_close(r);

    /* Unchanged files are read as before, to the last byte, whatever the chunk size. */
    ASSERT_INT_EQ(s_read_all(os.client, "rewritten", 4096, &total), 0);
    ASSERT_UINT_EQ(total, SIZE + 1);
    ASSERT_INT_EQ(s_read_all(os.client, "rewritten", 7, &total), 0);
    ASSERT_UINT_EQ(total, SIZE + 1);
    s_close(&os);

    /* /proc reports 0 bytes for files that have content: they are read to their end. */
    os = s_open("/proc/self");
    sl_object info;
    unsigned char *got = s_read_range(os.client, "status", 0, SL_LENGTH_TO_END, 100, &total, &info);
    ASSERT_UINT_EQ(info.size, 0);
    ASSERT_TRUE(total > 100);
    ASSERT_MEM_EQ(got, "Name:", 5);
    free(got);
    /* A range from a given byte works; one counted from the end ("-N" of a 0-byte object asks for 0 bytes) cannot. */
    uint64_t off, len;
    ASSERT_OK(sl_range_parse("0-4", 0, &off, &len));
    got = s_read_range(os.client, "status", off, len, 100, &total, NULL);
    ASSERT_UINT_EQ(total, 5);
    ASSERT_MEM_EQ(got, "Name:", 5);
    free(got);
    got = s_read_range(os.client, "status", 1, SL_LENGTH_TO_END, 100, &total, NULL);
    ASSERT_MEM_EQ(got, "ame:", 4);
    free(got);
    ASSERT_OK(sl_range_parse("-10", 0, &off, &len));
    ASSERT_ERR(sl_read_open(os.client, "status", off, len, NULL, &r), SL_ERANGE);
    ASSERT_CONTAINS(sl_last_error(), "reports a size of 0 but the file has content");
    ASSERT_OK(sl_read_open(os.client, "status", 1000000, SL_LENGTH_TO_END, NULL, &r));
    ASSERT_ERR(sl_read(r, buf, sizeof(buf)), SL_ERANGE);
    ASSERT_CONTAINS(sl_last_error(), "past the end of the file");
    sl_read_close(r);
    s_close(&os);

    /* A truly empty file stays one: "-10" of it is empty, a range past its end is refused at once. */
    s_put(root, "empty", "", 0);
    os = s_open(root);
    ASSERT_OK(sl_read_open(os.client, "empty", 0, 0, NULL, &r));
    ASSERT_INT_EQ(sl_read(r, buf, sizeof(buf)), 0);
    sl_read_close(r);
    ASSERT_ERR(sl_read_open(os.client, "empty", 1, SL_LENGTH_TO_END, NULL, &r), SL_ERANGE);
    s_close(&os);

    /* sysfs reports 4096 bytes for every attribute: its shorter content is all of it, not a file that shrank. */
    const char *attr = "/sys/class/net/lo";
    if (access("/sys/class/net/lo/mtu", R_OK) == 0) {
        os = s_open(attr);
        ASSERT_OK(sl_stat(os.client, "mtu", &info));
        got = s_read_range(os.client, "mtu", 0, SL_LENGTH_TO_END, 100, &total, NULL);
        ASSERT_TRUE(total > 0 && total < info.size);
        ASSERT_TRUE(got[total - 1] == '\n');
        free(got);
        s_close(&os);
    } else {
        fprintf(stderr, "    SKIPPED the sysfs check: no /sys/class/net/lo/mtu here\n");
    }
    free(data);
}

/* The deep tree of test_deep_tree: under the root, D[0]/.../D[19] (20 names of 200 bytes, 4,020 key bytes). */
#define S_DEEP_LEVELS 20
static char s_deep_dir[S_DEEP_LEVELS][201];

/* Makes dirfd's D[0]/.../D[levels-1] (those missing), relative step by step; returns an fd of the last. */
static int s_deep_open(int dirfd, int levels) {
    int fd = dup(dirfd);
    for (int i = 0; i < levels; i++) {
        if (mkdirat(fd, s_deep_dir[i], 0755) < 0)
            ASSERT_INT_EQ(errno, EEXIST);
        int next = openat(fd, s_deep_dir[i], O_RDONLY | O_DIRECTORY);
        ASSERT_TRUE(next >= 0);
        close(fd);
        fd = next;
    }
    return fd;
}

static void s_put_at(int dirfd, const char *name, const char *data) {
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_TRUE(fd >= 0);
    ASSERT_INT_EQ(write(fd, data, strlen(data)), (long long)strlen(data));
    close(fd);
}

/* "D[0]/.../D[19]/<name>", with room for one more byte; caller frees. */
static char *s_deep_key(const char *name) {
    size_t len = S_DEEP_LEVELS * 201 + strlen(name);
    char *key = malloc(len + 2);
    ASSERT_TRUE(key != NULL);
    for (int i = 0; i < S_DEEP_LEVELS; i++) {
        memcpy(key + i * 201, s_deep_dir[i], 200);
        key[i * 201 + 200] = '/';
    }
    strcpy(key + S_DEEP_LEVELS * 201, name);
    return key;
}

typedef struct skipped {
    items keys;
    int errs[8];
    char last_message[SL__MESSAGE_CAP];
} skipped;

static void s_on_skipped(void *user_data, const char *key, size_t key_len, int err, const char *message) {
    skipped *sk = user_data;
    ASSERT_UINT_EQ(strlen(key), key_len);
    if (sk->keys.n < 8)
        sk->errs[sk->keys.n] = err;
    s_items_push(&sk->keys, key, false, 0);
    snprintf(sk->last_message, sizeof(sk->last_message), "%s", message);
}

/* A message that quotes a path of several KiB (a key of up to 4,095 bytes under its root, the full path longer than
 * PATH_MAX) is whole: one line that ends with its reason, nothing cut from its middle. */
static void s_check_long_message(const char *message, const char *start, const char *reason) {
    size_t len = strlen(message), rlen = strlen(reason);
    ASSERT_TRUE(len > PATH_MAX && len < SL__MESSAGE_CAP);
    ASSERT_TRUE(strncmp(message, start, strlen(start)) == 0);
    ASSERT_TRUE(strstr(message, " [...] ") == NULL);
    ASSERT_TRUE(len >= rlen && strcmp(message + len - rlen, reason) == 0);
    ASSERT_TRUE(strchr(message, '\n') == NULL);
}

/* A tree whose full paths are longer than PATH_MAX (a long root, 20 levels of 200-byte names): every key of up to
 * 4,095 bytes is listed, read, stat'ed, fingerprinted, written and deleted; an entry whose key would be longer fails
 * alone, under that key, with the reason. */
static void test_deep_tree(void) {
    char root[PATH_MAX], name[256];
    memset(name, 'r', 220);
    name[220] = '\0';
    s_at(root, s_base, "deeptree");
    s_mkdir_p(root);
    strcat(root, "/");
    strcat(root, name);
    s_mkdir_p(root);
    for (int i = 0; i < S_DEEP_LEVELS; i++) {
        snprintf(s_deep_dir[i], sizeof(s_deep_dir[i]), "d%02d", i);
        memset(s_deep_dir[i] + 3, 'x', 197);
        s_deep_dir[i][200] = '\0';
    }
    int rootfd = open(root, O_RDONLY | O_DIRECTORY);
    ASSERT_TRUE(rootfd >= 0);
    s_put_at(rootfd, "top", "top");
    s_put_at(rootfd, "zz", "zz");
    int deep = s_deep_open(rootfd, S_DEEP_LEVELS);
    /* f: a key of 4,090 bytes (the full path is longer than PATH_MAX); g: 4,120 bytes; h/: a directory of 4,111. */
    char f[71], g[101], h[91];
    memset(f, 'f', 70);
    f[70] = '\0';
    memset(g, 'g', 100);
    g[100] = '\0';
    memset(h, 'h', 90);
    h[90] = '\0';
    s_put_at(deep, f, "deep file");
    s_put_at(deep, g, "too long");
    ASSERT_INT_EQ(mkdirat(deep, h, 0755), 0);
    int hfd = openat(deep, h, O_RDONLY | O_DIRECTORY);
    s_put_at(hfd, "inner", "inner");
    close(hfd);
    char *kf = s_deep_key(f), *kg = s_deep_key(g), *kh = s_deep_key(h);
    strcat(kh, "/");
    ASSERT_UINT_EQ(strlen(kf), 4090);
    ASSERT_TRUE(strlen(root) + 1 + strlen(kf) > PATH_MAX);

    open_store os = s_open(root);
    const char *const want[] = {kf, "top", "zz"};
    const size_t pages[] = {1, 2, 0};
    for (size_t p = 0; p < sizeof(pages) / sizeof(pages[0]); p++) {
        skipped sk = {0};
        sl_list_options opts = {.recursive = true, .page_size = pages[p], .on_skipped = s_on_skipped,
                                .on_skipped_data = &sk, .fingerprints = true};
        sl_lister *ls;
        sl_object obj;
        items got = {0};
        ASSERT_OK(sl_list_open(os.client, &opts, &ls));
        int rc;
        while ((rc = sl_list_next(ls, &obj)) == 1)
            s_items_push(&got, obj.key, false, obj.size);
        ASSERT_OK(rc);
        sl_list_close(ls);
        s_assert_keys(&got, want, 3, "deep tree");
        ASSERT_UINT_EQ(got.v[0].size, strlen("deep file"));
        const char *const want_skipped[] = {kg, kh};
        s_assert_keys(&sk.keys, want_skipped, 2, "deep tree, skipped");
        ASSERT_INT_EQ(sk.errs[0], SL_ENAMETOOLONG);
        ASSERT_INT_EQ(sk.errs[1], SL_ENAMETOOLONG);
        s_check_long_message(sk.last_message, root,
                             "/: skipped with everything under it: its key would be 4111 bytes long, over the limit "
                             "of 4095");
        s_items_free(&got);
        s_items_free(&sk.keys);
    }
    /* Without on_skipped each of them is an error, after which the listing goes on. */
    {
        sl_list_options opts = {.recursive = true};
        sl_lister *ls;
        sl_object obj;
        ASSERT_OK(sl_list_open(os.client, &opts, &ls));
        int rc, errors = 0, objects = 0;
        while ((rc = sl_list_next(ls, &obj)) != 0) {
            if (rc < 0) {
                ASSERT_INT_EQ(rc, SL_ENAMETOOLONG);
                ASSERT_CONTAINS(sl_last_error(), "over the limit of 4095");
                errors++;
            } else {
                objects++;
            }
        }
        sl_list_close(ls);
        ASSERT_INT_EQ(errors, 2);
        ASSERT_INT_EQ(objects, 3);
    }
    /* start_after inside the deep directory, and past what fails there ("h...0" sorts after every "h.../..."). */
    char *kh0 = strdup(kh);
    kh0[strlen(kh0) - 1] = '0';
    for (int past = 0; past < 2; past++) {
        skipped sk = {0};
        sl_list_options opts = {.recursive = true, .page_size = 1, .start_after = past ? kh0 : kf,
                                .on_skipped = s_on_skipped, .on_skipped_data = &sk};
        sl_lister *ls;
        sl_object obj;
        items got = {0};
        ASSERT_OK(sl_list_open(os.client, &opts, &ls));
        while (sl_list_next(ls, &obj) == 1)
            s_items_push(&got, obj.key, false, obj.size);
        sl_list_close(ls);
        const char *const after_f[] = {"top", "zz"};
        s_assert_keys(&got, after_f, 2, "deep tree, start_after in its deepest directory");
        ASSERT_UINT_EQ(sk.keys.n, past ? 0 : 2);
        s_items_free(&got);
        s_items_free(&sk.keys);
    }
    free(kh0);

    /* The key of 4,090 bytes is an object like any other. */
    sl_object obj;
    ASSERT_OK(sl_stat(os.client, kf, &obj));
    ASSERT_UINT_EQ(obj.size, strlen("deep file"));
    size_t n;
    unsigned char *data = s_read_range(os.client, kf, 0, SL_LENGTH_TO_END, 4, &n, NULL);
    ASSERT_UINT_EQ(n, strlen("deep file"));
    ASSERT_MEM_EQ(data, "deep file", n);
    free(data);
    char *kw = s_deep_key("written");
    sl_writer *w;
    sl_write_options wo = {.source_fingerprint = "size=1 fp"};
    ASSERT_OK(sl_write_open(os.client, kw, &wo, &w));
    ASSERT_OK(sl_write(w, "w", 1));
    ASSERT_OK(sl_write_commit(w));
    ASSERT_OK(sl_stat(os.client, kw, &obj));
    ASSERT_STR_EQ(obj.source_fingerprint, "size=1 fp");
    {
        skipped sk = {0};
        sl_list_options opts = {.recursive = true, .fingerprints = true, .start_after = kf,
                                .on_skipped = s_on_skipped, .on_skipped_data = &sk};
        sl_lister *ls;
        ASSERT_OK(sl_list_open(os.client, &opts, &ls));
        ASSERT_INT_EQ(sl_list_next(ls, &obj), 1);
        ASSERT_STR_EQ(obj.key, kw);
        ASSERT_STR_EQ(obj.source_fingerprint, "size=1 fp");
        sl_list_close(ls);
        s_items_free(&sk.keys);
    }
    ASSERT_INT_EQ(faccessat(deep, "written", F_OK, 0), 0);
    ASSERT_OK(sl_delete(os.client, kw));
    ASSERT_INT_EQ(faccessat(deep, "written", F_OK, 0), -1);
    ASSERT_ERR(sl_stat(os.client, kw, &obj), SL_ENOENT);
    /* New directories below that depth are made one by one. */
    char *kn = s_deep_key("new/dir/x");
    kn[0] = 'n'; /* another first directory: the whole chain is new */
    ASSERT_OK(sl_write_open(os.client, kn, NULL, &w));
    ASSERT_OK(sl_write(w, "n", 1));
    ASSERT_OK(sl_write_commit(w));
    ASSERT_OK(sl_stat(os.client, kn, &obj));
    ASSERT_UINT_EQ(obj.size, 1);
    ASSERT_INT_EQ(s_count_tmp(root), 0);

    /* A key over 4,095 bytes is refused by every call, with a whole message. */
    sl_reader *r;
    ASSERT_ERR(sl_write_open(os.client, kg, NULL, &w), SL_ENAMETOOLONG);
    s_check_long_message(sl_last_error(), root, ": the key is 4120 bytes long, over the limit of 4095 bytes");
    ASSERT_ERR(sl_stat(os.client, kg, &obj), SL_ENAMETOOLONG);
    ASSERT_ERR(sl_read_open(os.client, kg, 0, SL_LENGTH_TO_END, NULL, &r), SL_ENAMETOOLONG);
    ASSERT_ERR(sl_delete(os.client, kg), SL_ENAMETOOLONG);
    ASSERT_INT_EQ(faccessat(deep, g, F_OK, 0), 0);
    /* A missing deep key: the message names it and says why, however long the path. */
    char *km = s_deep_key("missing");
    ASSERT_ERR(sl_read_open(os.client, km, 0, SL_LENGTH_TO_END, NULL, &r), SL_ENOENT);
    s_check_long_message(sl_last_error(), root, "/missing: no such object (no such file)");
    s_close(&os);

    close(deep);
    close(rootfd);
    free(kf);
    free(kg);
    free(kh);
    free(kw);
    free(kn);
    free(km);
    s_rm_rf(s_at(root, s_base, "deeptree"));
}

/* The permission checks, run as a user that permissions apply to. Exits the process with 0 on success. */
static void s_unreadable_checks(const char *root) {
    open_store os = s_open(root);
    sl_list_options opts = {.recursive = true};
    sl_lister *ls;
    sl_object obj;
    ASSERT_OK(sl_list_open(os.client, &opts, &ls));
    ASSERT_INT_EQ(sl_list_next(ls, &obj), 1);
    ASSERT_STR_EQ(obj.key, "a");
    ASSERT_ERR(sl_list_next(ls, &obj), SL_EACCES);
    ASSERT_CONTAINS(sl_last_error(), "/b");
    /* The listing goes on after the directory it could not read. */
    ASSERT_INT_EQ(sl_list_next(ls, &obj), 1);
    ASSERT_STR_EQ(obj.key, "c");
    ASSERT_INT_EQ(sl_list_next(ls, &obj), 1);
    ASSERT_STR_EQ(obj.key, "d");
    ASSERT_INT_EQ(sl_list_next(ls, &obj), 0);
    sl_list_close(ls);

    /* A subtree entirely before start_after is never opened. */
    items got = s_list(os.client, true, "b0", 0);
    ASSERT_UINT_EQ(got.n, 2);
    ASSERT_STR_EQ(got.v[0].key, "c");
    s_items_free(&got);
    /* One that starts inside it must open it. */
    opts.start_after = "b/";
    ASSERT_OK(sl_list_open(os.client, &opts, &ls));
    ASSERT_ERR(sl_list_next(ls, &obj), SL_EACCES);
    ASSERT_INT_EQ(sl_list_next(ls, &obj), 1);
    ASSERT_STR_EQ(obj.key, "c");
    sl_list_close(ls);
    /* A one-level listing reports the directory without opening it. */
    got = s_list(os.client, false, NULL, 0);
    ASSERT_UINT_EQ(got.n, 4);
    ASSERT_STR_EQ(got.v[1].key, "b/");
    s_items_free(&got);

    sl_reader *r;
    ASSERT_ERR(sl_read_open(os.client, "d", 0, SL_LENGTH_TO_END, NULL, &r), SL_EACCES);
    ASSERT_CONTAINS(sl_last_error(), "/d");
    s_close(&os);
}

static void test_errors(void) {
    char root[PATH_MAX], path[PATH_MAX];
    open_store os;
    sl_lister *ls;
    sl_list_options opts = {.recursive = true};

    s_at(root, s_base, "no/such/dir");
    os = s_open(root);
    ASSERT_ERR(sl_list_open(os.client, &opts, &ls), SL_ENOENT);
    ASSERT_CONTAINS(sl_last_error(), root);
    s_close(&os);

    s_at(root, s_base, "plainfile");
    s_put(s_base, "plainfile", "x", 1);
    os = s_open(root);
    ASSERT_ERR(sl_list_open(os.client, &opts, &ls), SL_ENOTDIR);
    ASSERT_CONTAINS(sl_last_error(), root);
    sl_writer *w;
    ASSERT_ERR(sl_write_open(os.client, "k", NULL, &w), SL_ENOTDIR);
    s_close(&os);

    /* A parent that is a file. */
    s_at(root, s_base, "pf");
    s_put(root, "f", "x", 1);
    os = s_open(root);
    ASSERT_ERR(sl_write_open(os.client, "f/x", NULL, &w), SL_ENOTDIR);
    ASSERT_CONTAINS(sl_last_error(), "pf/f is a file");
    ASSERT_ERR(sl_write_open(os.client, "f/y/z", NULL, &w), SL_ENOTDIR);
    ASSERT_CONTAINS(sl_last_error(), "pf/f is a file");
    ASSERT_UINT_EQ(s_count_entries(root), 1);
    /* ... and a later write that is fine is not confused by the failure. */
    ASSERT_OK(sl_write_open(os.client, "g/x", NULL, &w));
    ASSERT_OK(sl_write_commit(w));
    s_close(&os);

    /* Permissions. */
    s_at(root, s_base, "perm");
    s_put(root, "a", "a", 1);
    s_put(root, "b/secret", "s", 1);
    s_put(root, "c", "c", 1);
    s_put(root, "d", "d", 1);
    ASSERT_INT_EQ(chmod(s_at(path, root, "b"), 0), 0);
    ASSERT_INT_EQ(chmod(s_at(path, root, "d"), 0), 0);
    if (geteuid() != 0) {
        s_unreadable_checks(root);
    } else {
        /* root reads everything; run the checks as "nobody" in a child, or skip them. */
        ASSERT_INT_EQ(chmod(s_base, 0755), 0);
        fflush(NULL);
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
            if (setgid(65534) < 0 || setuid(65534) < 0 || access(root, R_OK | X_OK) < 0)
                _exit(77);
            s_unreadable_checks(root);
            _exit(0);
        }
        int status;
        ASSERT_INT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status));
        if (WEXITSTATUS(status) == 77)
            fprintf(stderr, "    SKIPPED the unreadable-directory checks: running as root and cannot switch to "
                            "uid 65534 (root can read anything)\n");
        else
            ASSERT_INT_EQ(WEXITSTATUS(status), 0);
        ASSERT_INT_EQ(chmod(s_base, 0700), 0);
    }
    ASSERT_INT_EQ(chmod(s_at(path, root, "b"), 0755), 0);
}

/* Commits with fsync from several threads at once, each with its own client of one store: every output is there with
 * its bytes, its fingerprint and its own CRC32C, no temp file is left, and a commit without fsync records the same. */
#define S_DURABLE_THREADS 8
#define S_DURABLE_FILES 40
typedef struct durable_arg {
    sl_store *store;
    unsigned index;
    int rc; /* the first failure, 0 if none */
    char message[256];
} durable_arg;

static void *s_durable_main(void *p) {
    durable_arg *a = p;
    sl_client *c = NULL;
    a->rc = sl_client_new(a->store, &c);
    for (unsigned i = 0; i < S_DURABLE_FILES && a->rc == 0; i++) {
        char key[64], data[64];
        snprintf(key, sizeof(key), "t%u/f%02u", a->index % 3, a->index * 100 + i);
        int n = snprintf(data, sizeof(data), "bytes of %s", key);
        sl_write_options wo = {.source_fingerprint = "size=1 mtime=1 job=t", .fsync = true};
        sl_writer *w;
        if ((a->rc = sl_write_open(c, key, &wo, &w)) == 0 && (a->rc = sl_write(w, data, (size_t)n)) < 0)
            sl_write_abort(w);
        else if (a->rc == 0)
            a->rc = sl_write_commit(w);
    }
    if (a->rc < 0)
        snprintf(a->message, sizeof(a->message), "%s", sl_last_error());
    sl_client_destroy(c);
    return NULL;
}

static void test_durable_commits(void) {
    char root[PATH_MAX], path[PATH_MAX];
    s_at(root, s_base, "durable");
    open_store os = s_open(root);
    pthread_t tids[S_DURABLE_THREADS];
    durable_arg args[S_DURABLE_THREADS];
    for (unsigned t = 0; t < S_DURABLE_THREADS; t++) {
        args[t] = (durable_arg){.store = os.store, .index = t};
        ASSERT_INT_EQ(pthread_create(&tids[t], NULL, s_durable_main, &args[t]), 0);
    }
    for (unsigned t = 0; t < S_DURABLE_THREADS; t++) {
        pthread_join(tids[t], NULL);
        if (args[t].rc < 0)
            TEST_FAIL_("thread %u: %s: %s", t, sl_err_name(args[t].rc), args[t].message);
    }
    for (unsigned t = 0; t < S_DURABLE_THREADS; t++) {
        for (unsigned i = 0; i < S_DURABLE_FILES; i++) {
            char key[64], data[64];
            snprintf(key, sizeof(key), "t%u/f%02u", t % 3, t * 100 + i);
            int n = snprintf(data, sizeof(data), "bytes of %s", key);
            size_t len;
            char *got = s_slurp(s_at(path, root, key), &len);
            ASSERT_TRUE(got != NULL);
            ASSERT_UINT_EQ(len, (size_t)n);
            ASSERT_MEM_EQ(got, data, (size_t)n);
            free(got);
            sl_object obj;
            ASSERT_OK(sl_stat(os.client, key, &obj));
            ASSERT_STR_EQ(obj.source_fingerprint, "size=1 mtime=1 job=t");
            ASSERT_TRUE(obj.has_committed_crc32c);
            ASSERT_UINT_EQ(obj.committed_crc32c, sl__crc32c_update(0, data, (size_t)n));
        }
    }
    ASSERT_INT_EQ(s_count_tmp(root), 0);

    /* Without fsync: the same record. */
    sl_write_options wo = {.source_fingerprint = "size=2 mtime=2 job=t"};
    sl_writer *w;
    ASSERT_OK(sl_write_open(os.client, "plain", &wo, &w));
    ASSERT_OK(sl_write(w, "abc", 3));
    ASSERT_OK(sl_write(w, "def", 3));
    ASSERT_OK(sl_write_commit(w));
    sl_object obj;
    ASSERT_OK(sl_stat(os.client, "plain", &obj));
    ASSERT_STR_EQ(obj.source_fingerprint, "size=2 mtime=2 job=t");
    ASSERT_TRUE(obj.has_committed_crc32c);
    ASSERT_UINT_EQ(obj.committed_crc32c, sl__crc32c_update(0, "abcdef", 6));

    /* A record made before out_crc32c existed: the fingerprint still counts, without a CRC32C; a malformed one is not
     * taken for one. */
    s_at(path, root, "plain");
    struct stat sb;
    ASSERT_INT_EQ(stat(path, &sb), 0);
    char value[256];
    long long mtime = (long long)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    snprintf(value, sizeof(value), "6 %lld size=2 mtime=2 job=t", mtime);
    ASSERT_INT_EQ(setxattr(path, "user.sluice.source", value, strlen(value), 0), 0);
    ASSERT_OK(sl_stat(os.client, "plain", &obj));
    ASSERT_STR_EQ(obj.source_fingerprint, "size=2 mtime=2 job=t");
    ASSERT_FALSE(obj.has_committed_crc32c);
    snprintf(value, sizeof(value), "6 %lld size=2 mtime=2 job=t out_crc32c=12x45678", mtime);
    ASSERT_INT_EQ(setxattr(path, "user.sluice.source", value, strlen(value), 0), 0);
    ASSERT_OK(sl_stat(os.client, "plain", &obj));
    ASSERT_STR_EQ(obj.source_fingerprint, "size=2 mtime=2 job=t out_crc32c=12x45678");
    ASSERT_FALSE(obj.has_committed_crc32c);
    s_close(&os);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(s_base, sizeof(s_base), "%s/sl-test-local-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    ASSERT_TRUE(mkdtemp(s_base) != NULL);
    s_at(s_tree, s_base, "tree");
    s_keys = s_make_tree(s_tree, &s_nkeys);

    RUN_TEST(test_order);
    RUN_TEST(test_flat_10000);
    RUN_TEST(test_start_after);
    RUN_TEST(test_one_level);
    RUN_TEST(test_atomic_write);
    RUN_TEST(test_durable_commits);
    RUN_TEST(test_unsafe_keys);
    RUN_TEST(test_temp_names);
    RUN_TEST(test_umask);
    RUN_TEST(test_links_in_destination);
    RUN_TEST(test_ranged_read);
    RUN_TEST(test_changing_files);
    RUN_TEST(test_deep_tree);
    RUN_TEST(test_errors);

    s_free_keys(s_keys, s_nkeys);
    s_rm_rf(s_base);
    TEST_DONE();
}
