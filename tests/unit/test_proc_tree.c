/* Process-tree memory from /proc, with real process trees: a child and a grandchild that each touch memory, and a
 * parent whose forked workers share one block (PSS must not count it once per worker). Everything runs under
 * alarm(): a hang is a failure. */
#include "proc_tree.h"
#include "test.h"

#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB ((size_t)1024 * 1024)

/* Kept reachable through a volatile global so the compiler cannot drop the allocation and the writes. */
static void *volatile s_keep;

static void s_touch(size_t bytes) {
    char *p = malloc(bytes);
    if (!p)
        _exit(99);
    memset(p, 0x5a, bytes); /* not zero: every page is really written */
    s_keep = p;
}

/* A member of a test tree: says "ready" on ready_w once its memory is touched, then waits until release_r hits EOF
 * (the test closes its end), reaps its own children, and exits. */
static void s_wait_release(int ready_w, int release_r) {
    char c = 'r';
    if (write(ready_w, &c, 1) != 1)
        _exit(98);
    while (read(release_r, &c, 1) > 0) {
    }
    while (wait(NULL) > 0) {
    }
    _exit(0);
}

typedef struct s_tree {
    pid_t root;
    int ready_r, release_w;
} s_tree;

static void s_wait_ready(s_tree *t, int n) {
    for (int i = 0; i < n; i++) {
        char c;
        ASSERT_INT_EQ(read(t->ready_r, &c, 1), 1);
    }
}

static void s_release(s_tree *t) {
    close(t->release_w);
    close(t->ready_r);
    int status = 0;
    ASSERT_INT_EQ(waitpid(t->root, &status, 0), t->root);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* root (touches per_proc) -> child (touches per_proc, has a comm that looks like the end of a stat line). */
static s_tree s_spawn_chain(size_t per_proc) {
    int ready[2], release[2];
    ASSERT_INT_EQ(pipe(ready), 0);
    ASSERT_INT_EQ(pipe(release), 0);
    s_tree t = {.ready_r = ready[0], .release_w = release[1]};
    t.root = fork();
    ASSERT_TRUE(t.root >= 0);
    if (t.root == 0) {
        close(ready[0]);
        close(release[1]);
        pid_t g = fork();
        if (g == 0) {
            prctl(PR_SET_NAME, "x) R 1 (y", 0, 0, 0);
            s_touch(per_proc);
            s_wait_release(ready[1], release[0]);
        }
        s_touch(per_proc); /* after the fork: not shared with the child, so it counts whole in the root's PSS */
        s_wait_release(ready[1], release[0]);
    }
    close(ready[1]);
    close(release[0]);
    s_wait_ready(&t, 2);
    return t;
}

static void test_tree_is_summed(void) {
    const size_t per_proc = 20 * MIB;
    s_tree t = s_spawn_chain(per_proc);

    uint64_t tree = sl_proc_tree_rss(t.root);
    uint64_t root_alone = sl__proc_mem(t.root, NULL);
    fprintf(stderr, "    tree %.1f MiB, root alone %.1f MiB\n", (double)tree / MIB, (double)root_alone / MIB);
    /* Lower bounds only: a sanitizer's shadow memory adds to what each process holds. */
    ASSERT_TRUE(tree >= 2 * per_proc);
    ASSERT_TRUE(root_alone >= per_proc);
    ASSERT_TRUE(tree + MIB >= root_alone + per_proc); /* the root alone lacks the grandchild's 20 MiB */

    /* Both ways of finding the descendants find the same two processes, root first. */
    pid_t by_children[8] = {0}, by_scan[8] = {0};
    long n_scan = sl__proc_tree_pids(t.root, SL__PROC_WALK_SCAN, by_scan, 8);
    ASSERT_INT_EQ(n_scan, 2);
    ASSERT_INT_EQ(by_scan[0], t.root);
    long n_children = sl__proc_tree_pids(t.root, SL__PROC_WALK_CHILDREN, by_children, 8);
    if (n_children == SL_ENOTSUP) {
        fprintf(stderr, "    SKIP children walk: the kernel has no /proc/PID/task/TID/children\n");
    } else {
        ASSERT_INT_EQ(n_children, 2);
        ASSERT_INT_EQ(by_children[0], t.root);
        ASSERT_INT_EQ(by_children[1], by_scan[1]);
    }
    /* The grandchild is found even with a comm that contains ") R 1 (". */
    char comm_path[64], comm[64] = {0};
    snprintf(comm_path, sizeof(comm_path), "/proc/%d/comm", (int)by_scan[1]);
    FILE *f = fopen(comm_path, "r");
    ASSERT_TRUE(f != NULL);
    ASSERT_TRUE(fgets(comm, sizeof(comm), f) != NULL);
    fclose(f);
    ASSERT_STR_EQ(comm, "x) R 1 (y\n");

    s_release(&t);
}

/* RSS from statm, which counts every page a process maps, shared or not. */
static uint64_t s_statm_rss(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    unsigned long long size = 0, resident = 0;
    ASSERT_TRUE(f != NULL);
    ASSERT_INT_EQ(fscanf(f, "%llu %llu", &size, &resident), 2);
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* A parent touches a 50 MiB block, then forks 4 workers that each touch 2 MiB of their own. RSS would count the
 * block 5 times (250+ MiB); PSS splits each shared page among its users, so the tree holds about 58 MiB. The bound is
 * against the RSS sum rather than a fixed size, so that a sanitizer's shadow memory (shared the same way) keeps it. */
static void test_shared_pages_counted_once(void) {
    const size_t shared = 50 * MIB, own = 2 * MIB;
    const int workers = 4;
    int ready[2], release[2];
    ASSERT_INT_EQ(pipe(ready), 0);
    ASSERT_INT_EQ(pipe(release), 0);
    s_tree t = {.ready_r = ready[0], .release_w = release[1]};
    t.root = fork();
    ASSERT_TRUE(t.root >= 0);
    if (t.root == 0) {
        close(ready[0]);
        close(release[1]);
        s_touch(shared);
        for (int i = 0; i < workers; i++) {
            if (fork() == 0) {
                s_touch(own);
                s_wait_release(ready[1], release[0]);
            }
        }
        s_wait_release(ready[1], release[0]);
    }
    close(ready[1]);
    close(release[0]);
    s_wait_ready(&t, workers + 1);

    int is_pss = 0;
    sl__proc_mem(t.root, &is_pss);
    uint64_t tree = sl_proc_tree_rss(t.root);
    pid_t pids[16];
    ASSERT_INT_EQ(sl__proc_tree_pids(t.root, SL__PROC_WALK_AUTO, pids, 16), workers + 1);
    fprintf(stderr, "    tree %.1f MiB (%s)\n", (double)tree / MIB, is_pss ? "PSS" : "RSS: smaps_rollup unreadable");
    uint64_t rss_sum = 0;
    for (int i = 0; i < workers + 1; i++)
        rss_sum += s_statm_rss(pids[i]);
    fprintf(stderr, "    (summing RSS instead: %.1f MiB)\n", (double)rss_sum / MIB);
    ASSERT_TRUE(tree >= shared + workers * own);
    ASSERT_TRUE(rss_sum >= (workers + 1) * shared);
    if (is_pss)
        ASSERT_TRUE(tree < rss_sum / 2); /* about 58 / 258: the block counted once, not 5 times */
    else
        fprintf(stderr, "    SKIP the not-counted-N-times check: no smaps_rollup on this kernel\n");
    s_release(&t);
}

static void test_gone_and_invalid(void) {
    pid_t p = fork();
    ASSERT_TRUE(p >= 0);
    if (p == 0)
        _exit(0);
    ASSERT_INT_EQ(waitpid(p, NULL, 0), p);
    ASSERT_UINT_EQ(sl_proc_tree_rss(p), 0);
    ASSERT_UINT_EQ(sl_proc_tree_rss(0), 0);
    ASSERT_UINT_EQ(sl_proc_tree_rss(-1), 0);
    pid_t one;
    ASSERT_INT_EQ(sl__proc_tree_pids(p, SL__PROC_WALK_SCAN, &one, 1), 0);
    /* Ourselves: alive, some memory, and the test binary itself is in its own tree. */
    ASSERT_TRUE(sl_proc_tree_rss(getpid()) > 0);
    ASSERT_TRUE(sl__proc_tree_pids(getpid(), SL__PROC_WALK_AUTO, &one, 1) >= 1);
    ASSERT_INT_EQ(one, getpid());
}

/* A zombie holds no memory: it counts 0, without an error, until it is reaped. */
static void test_zombie(void) {
    pid_t p = fork();
    ASSERT_TRUE(p >= 0);
    if (p == 0)
        _exit(0);
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    ASSERT_INT_EQ(waitid(P_PID, (id_t)p, &si, WEXITED | WNOWAIT), 0);
    ASSERT_UINT_EQ(sl_proc_tree_rss(p), 0);
    ASSERT_INT_EQ(waitpid(p, NULL, 0), p);
}

int main(void) {
    alarm(120);
    RUN_TEST(test_tree_is_summed);
    RUN_TEST(test_shared_pages_counted_once);
    RUN_TEST(test_gone_and_invalid);
    RUN_TEST(test_zombie);
    TEST_DONE();
}
