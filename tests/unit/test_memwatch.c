/* Memory watch: cgroup detection on fake v1/v2 trees (and the real one when readable), the fixed-size timeline, the
 * verdict on synthetic curves, the SVG chart, and the sampler thread with its CSV timeline and warning hook. */
#include "memfit.h"
#include "test.h"

#include "sluice/memwatch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)
#define KIB 1024.0

static char s_tmp[256];

static void s_mkdirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
}

/* Writes text to s_tmp/rel, creating the directories on the way. */
static void s_put(const char *rel, const char *text) {
    char path[1024], dir[1024];
    snprintf(path, sizeof(path), "%s/%s", s_tmp, rel);
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    s_mkdirs(dir);
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    fputs(text, f);
    fclose(f);
}

static const char *s_path(const char *rel) {
    static char path[8][1024];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 1024, "%s/%s", s_tmp, rel);
    return p;
}

static void s_rm_tree(void) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_tmp);
    ASSERT_INT_EQ(system(cmd), 0);
}

static void s_fresh_tmp(void) {
    snprintf(s_tmp, sizeof(s_tmp), "/tmp/sl_memwatch_XXXXXX");
    ASSERT_TRUE(mkdtemp(s_tmp) != NULL);
}

/* ---- cgroup ---- */

static void test_cgroup_v2_nested(void) {
    s_fresh_tmp();
    s_put("proc_cgroup", "0::/kubepods/pod1/ctr\n");
    s_put("cg/kubepods/pod1/ctr/memory.current", "1048576\n");
    s_put("cg/kubepods/pod1/ctr/memory.max", "max\n");
    s_put("cg/kubepods/pod1/ctr/memory.stat", "anon 700000\nfile 300000\nactive_file 100000\ninactive_file 48576\n");
    s_put("cg/kubepods/pod1/memory.max", "536870912\n");
    s_put("cg/kubepods/memory.max", "max\n");
    sl_cgroup cg;
    ASSERT_INT_EQ(sl_cgroup_find(s_path("cg"), s_path("proc_cgroup"), &cg), 0);
    ASSERT_INT_EQ(cg.version, 2);
    ASSERT_STR_EQ(cg.dir, s_path("cg/kubepods/pod1/ctr"));
    uint64_t usage, limit;
    ASSERT_INT_EQ(sl_cgroup_read(&cg, &usage, &limit), 0);
    ASSERT_UINT_EQ(usage, 1048576 - 48576); /* working set: inactive file cache is reclaimable */
    ASSERT_UINT_EQ(limit, 536870912);       /* the leaf is "max": the parent's limit applies */
    /* What cannot be reclaimed: all the page cache (active and inactive) off the usage. */
    sl_cgroup_memory m;
    ASSERT_INT_EQ(sl_cgroup_read_memory(&cg, &m), 0);
    ASSERT_UINT_EQ(m.usage_bytes, 1048576 - 48576);
    ASSERT_UINT_EQ(m.unreclaimable_bytes, 1048576 - 48576 - 100000);
    ASSERT_UINT_EQ(m.limit_bytes, 536870912);
    /* A usage read before the counters moved on is never below zero. */
    s_put("cg/kubepods/pod1/ctr/memory.stat", "active_file 2000000\ninactive_file 10\n");
    ASSERT_INT_EQ(sl_cgroup_read_memory(&cg, &m), 0);
    ASSERT_UINT_EQ(m.unreclaimable_bytes, 0);
    ASSERT_UINT_EQ(m.usage_bytes, 1048576 - 10);
    s_put("cg/kubepods/pod1/ctr/memory.stat", "anon 700000\nfile 300000\nactive_file 100000\ninactive_file 48576\n");

    /* A child limit smaller than its parent's wins; a parent smaller than the child wins too. */
    s_put("cg/kubepods/pod1/ctr/memory.max", "268435456\n");
    ASSERT_INT_EQ(sl_cgroup_read(&cg, &usage, &limit), 0);
    ASSERT_UINT_EQ(limit, 268435456);
    s_put("cg/kubepods/pod1/ctr/memory.max", "1073741824\n");
    s_put("cg/kubepods/memory.max", "134217728\n");
    ASSERT_INT_EQ(sl_cgroup_read(&cg, &usage, &limit), 0);
    ASSERT_UINT_EQ(limit, 134217728);

    /* No limit anywhere. */
    s_put("cg/kubepods/pod1/ctr/memory.max", "max\n");
    s_put("cg/kubepods/pod1/memory.max", "max\n");
    s_put("cg/kubepods/memory.max", "max\n");
    ASSERT_INT_EQ(sl_cgroup_read(&cg, &usage, &limit), 0);
    ASSERT_UINT_EQ(limit, 0);

    /* A limit above the hierarchy's top (outside root) is not ours to read. */
    s_put("memory.max", "1\n");
    ASSERT_INT_EQ(sl_cgroup_read(&cg, &usage, &limit), 0);
    ASSERT_UINT_EQ(limit, 0);
    s_rm_tree();
}

static void test_cgroup_v2_container_view(void) {
    /* No cgroup namespace: /proc/self/cgroup names the host path, the mount shows only our own cgroup. */
    s_fresh_tmp();
    s_put("proc_cgroup", "0::/kubepods/burstable/pod9/abc\n");
    s_put("cg/memory.current", "4096\n");
    s_put("cg/memory.max", "65536\n");
    sl_cgroup cg;
    ASSERT_INT_EQ(sl_cgroup_find(s_path("cg"), s_path("proc_cgroup"), &cg), 0);
    ASSERT_INT_EQ(cg.version, 2);
    ASSERT_STR_EQ(cg.dir, s_path("cg"));
    uint64_t usage, limit;
    ASSERT_INT_EQ(sl_cgroup_read(&cg, &usage, &limit), 0);
    ASSERT_UINT_EQ(usage, 4096);
    ASSERT_UINT_EQ(limit, 65536);

    /* The root given through the environment. */
    setenv("SLUICE_CGROUP_ROOT", s_path("cg"), 1);
    ASSERT_INT_EQ(sl_cgroup_find(NULL, s_path("proc_cgroup"), &cg), 0);
    ASSERT_STR_EQ(cg.dir, s_path("cg"));
    unsetenv("SLUICE_CGROUP_ROOT");
    s_rm_tree();
}

static void test_cgroup_v1(void) {
    s_fresh_tmp();
    /* A hybrid system: v1 has the memory controller, the v2 line must not be taken. */
    s_put("proc_cgroup", "12:pids:/x/y\n4:memory:/x/y\n1:name=systemd:/x/y\n0::/x/y\n");
    s_put("cg/memory/x/y/memory.usage_in_bytes", "2000000\n");
    s_put("cg/memory/x/y/memory.limit_in_bytes", "9223372036854771712\n");
    s_put("cg/memory/x/y/memory.stat", "cache 10\ninactive_file 5\ntotal_inactive_file 1000000\n");
    s_put("cg/memory/x/memory.limit_in_bytes", "1073741824\n");
    s_put("cg/memory/memory.limit_in_bytes", "9223372036854771712\n");
    s_put("cg/unified/x/y/cgroup.procs", "");
    sl_cgroup cg;
    ASSERT_INT_EQ(sl_cgroup_find(s_path("cg"), s_path("proc_cgroup"), &cg), 0);
    ASSERT_INT_EQ(cg.version, 1);
    ASSERT_STR_EQ(cg.dir, s_path("cg/memory/x/y"));
    uint64_t usage, limit;
    ASSERT_INT_EQ(sl_cgroup_read(&cg, &usage, &limit), 0);
    ASSERT_UINT_EQ(usage, 1000000); /* hierarchical inactive file cache subtracted */
    ASSERT_UINT_EQ(limit, 1073741824);
    /* v1: the hierarchical total_ counters, active and inactive file pages both off. */
    s_put("cg/memory/x/y/memory.stat", "cache 10\ninactive_file 5\nactive_file 7\ntotal_inactive_file 1000000\n"
                                       "total_active_file 600000\n");
    sl_cgroup_memory m;
    ASSERT_INT_EQ(sl_cgroup_read_memory(&cg, &m), 0);
    ASSERT_UINT_EQ(m.usage_bytes, 1000000);
    ASSERT_UINT_EQ(m.unreclaimable_bytes, 400000);

    /* "unlimited" all the way up. */
    s_put("cg/memory/x/memory.limit_in_bytes", "9223372036854771712\n");
    ASSERT_INT_EQ(sl_cgroup_read(&cg, &usage, &limit), 0);
    ASSERT_UINT_EQ(limit, 0);

    /* Controllers co-mounted: "cpu,memory". */
    s_put("proc2", "3:cpu,memory:/a/b\n");
    s_put("cg/cpu,memory/a/b/memory.usage_in_bytes", "123\n");
    s_put("cg/cpu,memory/a/b/memory.limit_in_bytes", "456789\n");
    ASSERT_INT_EQ(sl_cgroup_find(s_path("cg"), s_path("proc2"), &cg), 0);
    ASSERT_INT_EQ(cg.version, 1);
    ASSERT_STR_EQ(cg.dir, s_path("cg/cpu,memory/a/b"));
    ASSERT_INT_EQ(sl_cgroup_read(&cg, &usage, &limit), 0);
    ASSERT_UINT_EQ(usage, 123); /* no memory.stat: the raw usage */
    ASSERT_UINT_EQ(limit, 456789);
    ASSERT_INT_EQ(sl_cgroup_read_memory(&cg, &m), 0);
    ASSERT_UINT_EQ(m.unreclaimable_bytes, 123);

    /* Only the leaf has usage, no limit file anywhere: found, no limit. */
    s_put("proc3", "5:memory:/only/usage\n");
    s_put("cg/memory/only/usage/memory.usage_in_bytes", "77\n");
    ASSERT_INT_EQ(sl_cgroup_find(s_path("cg"), s_path("proc3"), &cg), 0);
    ASSERT_INT_EQ(sl_cgroup_read(&cg, &usage, &limit), 0);
    ASSERT_UINT_EQ(usage, 77);
    ASSERT_UINT_EQ(limit, 0);
    s_rm_tree();
}

static void test_cgroup_none(void) {
    s_fresh_tmp();
    sl_cgroup cg;
    s_put("proc_cgroup", "0::/a/b\n");
    s_mkdirs(s_path("cg/a/b"));
    ASSERT_INT_EQ(sl_cgroup_find(s_path("cg"), s_path("proc_cgroup"), &cg), SL_ENOENT);
    ASSERT_INT_EQ(cg.version, 0);
    ASSERT_TRUE(strstr(sl_last_error(), "no memory cgroup") != NULL);
    /* A v1 line for other controllers only. */
    s_put("proc2", "3:cpu,cpuacct:/a\n2:pids:/a\n");
    ASSERT_INT_EQ(sl_cgroup_find(s_path("cg"), s_path("proc2"), &cg), SL_ENOENT);
    /* Garbage and an empty file. */
    s_put("proc3", "garbage without colons\n\n");
    ASSERT_INT_EQ(sl_cgroup_find(s_path("cg"), s_path("proc3"), &cg), SL_ENOENT);
    s_put("proc4", "");
    ASSERT_INT_EQ(sl_cgroup_find(s_path("cg"), s_path("proc4"), &cg), SL_ENOENT);
    /* No /proc file at all. */
    ASSERT_TRUE(sl_cgroup_find(s_path("cg"), s_path("missing"), &cg) < 0);
    ASSERT_INT_EQ(cg.version, 0);
    uint64_t usage = 1, limit = 1;
    ASSERT_INT_EQ(sl_cgroup_read(&cg, &usage, &limit), SL_ENOENT);
    ASSERT_UINT_EQ(usage, 0);
    ASSERT_UINT_EQ(limit, 0);
    ASSERT_INT_EQ(sl_cgroup_read(NULL, &usage, &limit), SL_ENOENT);
    s_rm_tree();
}

static void test_cgroup_real(void) {
    const char *saved = getenv("SLUICE_CGROUP_ROOT");
    if (saved)
        fprintf(stderr, "    (SLUICE_CGROUP_ROOT=%s)\n", saved);
    sl_cgroup cg;
    int rc = sl_cgroup_find(NULL, NULL, &cg);
    if (rc != 0) {
        fprintf(stderr, "    no memory cgroup readable here (%s); nothing to check\n", sl_last_error());
        return;
    }
    uint64_t usage = 0, limit = 0;
    rc = sl_cgroup_read(&cg, &usage, &limit);
    char u[32], l[32];
    fprintf(stderr, "    real cgroup v%d at %s: read %d, usage %s, limit %s\n", cg.version, cg.dir, rc,
            sl__fmt_bytes((double)usage, u, sizeof(u)), limit ? sl__fmt_bytes((double)limit, l, sizeof(l)) : "none");
    ASSERT_TRUE(cg.version == 1 || cg.version == 2);
    ASSERT_INT_EQ(rc, 0);
}

/* ---- timeline ---- */

static void test_timeline_merge(void) {
    sl_timeline *tl = sl_timeline_new(8);
    ASSERT_TRUE(tl != NULL);
    size_t fixed = sl_timeline_memory_bytes(tl);
    for (int i = 0; i < 8; i++) {
        sl_mem_sample s = {.t_s = i, .rss_bytes = (uint64_t)(i == 5 ? 9000 : 100 + i), .objects = (uint64_t)i};
        sl_timeline_add(tl, &s);
    }
    ASSERT_UINT_EQ(sl_timeline_count(tl), 8);
    ASSERT_TRUE(sl_timeline_get(tl, 8) == NULL);
    ASSERT_UINT_EQ(sl_timeline_get(tl, 3)->rss_bytes, 103);

    sl_mem_sample s8 = {.t_s = 8, .rss_bytes = 108, .objects = 8, .cg_limit_bytes = 77};
    sl_timeline_add(tl, &s8); /* full: pairs merge, the new one waits for its partner */
    ASSERT_UINT_EQ(sl_timeline_count(tl), 5);
    for (size_t k = 0; k < 4; k++) {
        const sl_mem_sample *m = sl_timeline_get(tl, k);
        ASSERT_TRUE(m->t_s == (double)(2 * k + 1)); /* the later of the pair */
        ASSERT_UINT_EQ(m->objects, 2 * k + 1);
    }
    ASSERT_UINT_EQ(sl_timeline_get(tl, 2)->rss_bytes, 9000); /* max of (104, 9000) */
    ASSERT_UINT_EQ(sl_timeline_get(tl, 0)->rss_bytes, 101);
    ASSERT_UINT_EQ(sl_timeline_get(tl, 4)->cg_limit_bytes, 77); /* the newest reading stays visible */
    sl_mem_sample s9 = {.t_s = 9, .rss_bytes = 50, .objects = 9};
    sl_timeline_add(tl, &s9);
    ASSERT_UINT_EQ(sl_timeline_count(tl), 5);
    ASSERT_TRUE(sl_timeline_get(tl, 4)->t_s == 9.0);
    ASSERT_UINT_EQ(sl_timeline_get(tl, 4)->rss_bytes, 108);
    ASSERT_UINT_EQ(sl_timeline_peak_rss(tl), 9000);
    ASSERT_UINT_EQ(sl_timeline_memory_bytes(tl), fixed);
    sl_timeline_destroy(tl);
    sl_timeline_destroy(NULL);

    tl = sl_timeline_new(0);
    ASSERT_TRUE(tl != NULL);
    ASSERT_TRUE(sl_timeline_memory_bytes(tl) >= SL_TIMELINE_DEFAULT_CAPACITY * sizeof(sl_mem_sample));
    sl_timeline_destroy(tl);
}

static void test_timeline_million(void) {
    sl_timeline *tl = sl_timeline_new(0);
    size_t fixed = sl_timeline_memory_bytes(tl);
    const uint64_t n = 1000000, spike_at = 777777;
    for (uint64_t i = 0; i < n; i++) {
        sl_mem_sample s = {.t_s = (double)i, .rss_bytes = i == spike_at ? 5000000 : 1000 + i % 7, .objects = i};
        sl_timeline_add(tl, &s);
        if (i % 100000 == 0)
            ASSERT_UINT_EQ(sl_timeline_memory_bytes(tl), fixed);
    }
    ASSERT_UINT_EQ(sl_timeline_memory_bytes(tl), fixed);
    size_t count = sl_timeline_count(tl);
    ASSERT_TRUE(count >= SL_TIMELINE_DEFAULT_CAPACITY / 2 && count <= SL_TIMELINE_DEFAULT_CAPACITY + 1);
    ASSERT_UINT_EQ(sl_timeline_peak_rss(tl), 5000000);
    /* Chronological, evenly spaced (all complete slots have the same stride), the spike kept in a merged slot. */
    double step = sl_timeline_get(tl, 1)->t_s - sl_timeline_get(tl, 0)->t_s;
    ASSERT_TRUE(step > 1000);
    bool spike = false;
    for (size_t i = 0; i < count; i++) {
        const sl_mem_sample *s = sl_timeline_get(tl, i);
        if (i > 0 && i + 1 < count)
            ASSERT_TRUE(s->t_s - sl_timeline_get(tl, i - 1)->t_s == step);
        if (i > 0)
            ASSERT_TRUE(s->t_s > sl_timeline_get(tl, i - 1)->t_s);
        ASSERT_UINT_EQ(s->objects, (uint64_t)s->t_s);
        spike |= s->rss_bytes == 5000000;
    }
    ASSERT_TRUE(spike);
    ASSERT_TRUE(sl_timeline_get(tl, count - 1)->t_s == (double)(n - 1));
    sl_timeline_destroy(tl);
}

/* ---- verdict ---- */

static uint64_t s_rand_state = 88172645463325252ull;
static double s_noise(double amplitude) { /* deterministic, uniform in [-amplitude, amplitude] */
    s_rand_state ^= s_rand_state << 13;
    s_rand_state ^= s_rand_state >> 7;
    s_rand_state ^= s_rand_state << 17;
    return ((double)(s_rand_state >> 11) / (double)(1ull << 53) * 2 - 1) * amplitude;
}

static sl_timeline *s_curve(size_t n, double (*rss)(size_t i, size_t n), double objects_per_s) {
    sl_timeline *tl = sl_timeline_new(0);
    for (size_t i = 0; i < n; i++) {
        sl_mem_sample s = {
            .t_s = (double)i, .rss_bytes = (uint64_t)rss(i, n), .objects = (uint64_t)(i * objects_per_s)};
        sl_timeline_add(tl, &s);
    }
    return tl;
}

static double s_leak_per_object(size_t i, size_t n) {
    (void)n;
    return 80 * MIB + 10 * KIB * (double)(i * 50) + s_noise(256 * KIB);
}
static double s_flat_noisy(size_t i, size_t n) {
    (void)n;
    double spike = i % 37 == 0 ? 40 * MIB : 0; /* a GC-like spike now and then */
    return 200 * MIB + s_noise(3 * MIB) + spike;
}
static double s_alloc_once(size_t i, size_t n) {
    return (i < n / 10 ? 50 * MIB : 550 * MIB) + s_noise(512 * KIB);
}
static double s_cache_fills(size_t i, size_t n) {
    double fill = (double)i / (0.4 * (double)n);
    return 100 * MIB + (fill < 1 ? fill : 1) * 300 * MIB + s_noise(1 * MIB);
}
static double s_time_leak(size_t i, size_t n) {
    (void)n;
    return 100 * MIB + 2 * MIB * (double)i + s_noise(1 * MIB);
}
static double s_big_slow_creep(size_t i, size_t n) {
    return 2048 * MIB + 50 * MIB * (double)i / (double)n + s_noise(2 * MIB);
}

static void test_verdict_leak_per_object(void) {
    sl_timeline *tl = s_curve(300, s_leak_per_object, 50);
    sl_mem_verdict v;
    sl_mem_judge(tl, 0, &v);
    fprintf(stderr, "    %s\n", v.text);
    ASSERT_INT_EQ(v.trend, SL_MEM_GROWING);
    ASSERT_TRUE(v.bytes_per_object > 0.95 * 10 * KIB && v.bytes_per_object < 1.05 * 10 * KIB);
    ASSERT_TRUE(v.bytes_per_second > 0.95 * 500 * KIB && v.bytes_per_second < 1.05 * 500 * KIB);
    ASSERT_TRUE(strncmp(v.text, "growing: +10.0 KiB per object (+29.", 35) == 0);
    ASSERT_TRUE(strstr(v.text, "MiB/min)") != NULL);
    ASSERT_TRUE(strstr(v.text, "limit") == NULL); /* no limit known */
    ASSERT_TRUE(v.limit_at_object < 0 && v.limit_in_s < 0);
    ASSERT_UINT_EQ(v.samples_used, 240);
    sl_timeline_destroy(tl);
}

static void test_verdict_flat(void) {
    sl_mem_verdict v;
    sl_timeline *tl = s_curve(300, s_flat_noisy, 100);
    sl_mem_judge(tl, 0, &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_FLAT);
    ASSERT_STR_EQ(v.text, "flat");
    sl_timeline_destroy(tl);

    tl = s_curve(300, s_alloc_once, 100);
    sl_mem_judge(tl, 0, &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_FLAT);
    sl_timeline_destroy(tl);

    tl = s_curve(300, s_cache_fills, 100);
    sl_mem_judge(tl, 0, &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_FLAT);
    sl_timeline_destroy(tl);

    /* 50 MiB over the run of a 2 GiB process is under 10 % of it: flat by the documented threshold. */
    tl = s_curve(300, s_big_slow_creep, 100);
    sl_mem_judge(tl, 0, &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_FLAT);
    sl_timeline_destroy(tl);
}

/* One step of 500 MiB at every position of the run, sudden or spread over 4 samples (pages touched over a few
 * seconds), with and without noise: never a leak. */
static void test_verdict_single_step_anywhere(void) {
    for (int variant = 0; variant < 4; variant++) {
        const bool noisy = variant & 1;
        const double ramp = variant & 2 ? 4 : 1;
        for (size_t step_at = 1; step_at < 200; step_at++) {
            sl_timeline *tl = sl_timeline_new(0);
            for (size_t i = 0; i < 200; i++) {
                double done = ((double)i - (double)step_at + 1) / ramp;
                done = done < 0 ? 0 : done > 1 ? 1 : done;
                double rss = 100 * MIB + 500 * MIB * done + (noisy ? s_noise(2 * MIB) : 0);
                sl_mem_sample s = {.t_s = (double)i, .rss_bytes = (uint64_t)rss, .objects = i * 10};
                sl_timeline_add(tl, &s);
            }
            sl_mem_verdict v;
            sl_mem_judge(tl, 0, &v);
            if (v.trend != SL_MEM_FLAT)
                fprintf(stderr, "    step at %zu/200 (noise %d, ramp %.0f): %s\n", step_at, noisy, ramp, v.text);
            ASSERT_INT_EQ(v.trend, SL_MEM_FLAT);
            sl_timeline_destroy(tl);
        }
    }
}

static double s_sawtooth_flat(size_t i, size_t n) {
    (void)n;
    return 200 * MIB + (double)(i % 10) * 5 * MIB; /* a garbage collector that frees every 10 samples */
}
static double s_sawtooth_leak(size_t i, size_t n) {
    return s_sawtooth_flat(i, n) + 300 * KIB * (double)i;
}
static double s_late_leak(size_t i, size_t n) {
    return 100 * MIB + (i > n / 2 ? (double)(i - n / 2) * MIB : 0) + s_noise(1 * MIB);
}

static void test_verdict_shapes(void) {
    sl_mem_verdict v;
    sl_timeline *tl = s_curve(300, s_sawtooth_flat, 10);
    sl_mem_judge(tl, 0, &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_FLAT);
    sl_timeline_destroy(tl);

    tl = s_curve(300, s_sawtooth_leak, 10);
    sl_mem_judge(tl, 0, &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_GROWING);
    ASSERT_TRUE(v.bytes_per_second > 0.9 * 300 * KIB && v.bytes_per_second < 1.1 * 300 * KIB);
    sl_timeline_destroy(tl);

    /* Flat for the first half, then a leak that is still going at the end. */
    tl = s_curve(300, s_late_leak, 10);
    sl_mem_judge(tl, 0, &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_GROWING);
    sl_timeline_destroy(tl);
}

static void test_verdict_time_only(void) {
    sl_timeline *tl = s_curve(120, s_time_leak, 0);
    sl_mem_verdict v;
    sl_mem_judge(tl, 0, &v);
    fprintf(stderr, "    %s\n", v.text);
    ASSERT_INT_EQ(v.trend, SL_MEM_GROWING);
    ASSERT_TRUE(v.bytes_per_object == 0);
    ASSERT_TRUE(v.bytes_per_second > 0.95 * 2 * MIB && v.bytes_per_second < 1.05 * 2 * MIB);
    ASSERT_TRUE(strncmp(v.text, "growing: +120 MiB/min", 21) == 0);
    ASSERT_TRUE(strstr(v.text, "per object") == NULL);
    sl_timeline_destroy(tl);
}

static void test_verdict_unknown(void) {
    sl_mem_verdict v;
    sl_mem_judge(NULL, 0, &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_UNKNOWN);
    sl_timeline *tl = s_curve(6, s_time_leak, 1); /* 6 - warm-up 2 = 4 */
    sl_mem_judge(tl, 0, &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_UNKNOWN);
    ASSERT_UINT_EQ(v.samples_used, 4);
    ASSERT_TRUE(strncmp(v.text, "unknown: too few samples", 24) == 0);
    sl_timeline_destroy(tl);
    tl = s_curve(7, s_time_leak, 1);
    sl_mem_judge(tl, 0, &v);
    ASSERT_UINT_EQ(v.samples_used, 5);
    ASSERT_TRUE(v.trend != SL_MEM_UNKNOWN);
    sl_timeline_destroy(tl);
}

static void test_verdict_limit_projection(void) {
    /* 100 MiB + 1 MiB/s, 10 objects/s, 60 samples: at t = 59 the fitted RSS is 159 MiB; a 200 MiB limit is 41 s and
     * 410 objects away (object 590 + 410). */
    sl_timeline *tl = sl_timeline_new(0);
    for (int i = 0; i < 60; i++) {
        sl_mem_sample s = {.t_s = i, .rss_bytes = (uint64_t)(100 * MIB + MIB * i), .objects = (uint64_t)(10 * i)};
        sl_timeline_add(tl, &s);
    }
    sl_mem_verdict v;
    sl_mem_judge(tl, (uint64_t)(200 * MIB), &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_GROWING);
    ASSERT_UINT_EQ(v.limit_bytes, (uint64_t)(200 * MIB));
    ASSERT_TRUE(v.limit_in_s > 40.99 && v.limit_in_s < 41.01);
    ASSERT_TRUE(v.limit_at_object == 1000);
    ASSERT_STR_EQ(v.text, "growing: +102 KiB per object (+60.0 MiB/min), limit reached at object 1000 / in 41 s");

    /* A limit so far away that the object count is astronomical: the text is truncated, never overrun. */
    sl_mem_judge(tl, (uint64_t)1 << 62, &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_GROWING);
    ASSERT_TRUE(strlen(v.text) < sizeof(v.text));
    ASSERT_TRUE(strstr(v.text, "limit reached at object") != NULL);

    /* Already over. */
    sl_mem_judge(tl, (uint64_t)(150 * MIB), &v);
    ASSERT_TRUE(v.limit_in_s == 0);
    ASSERT_TRUE(strstr(v.text, "limit already reached") != NULL);
    sl_timeline_destroy(tl);

    /* The cgroup's limit from the samples, measured from the cgroup's usage (here 50 MiB above RSS). */
    tl = sl_timeline_new(0);
    for (int i = 0; i < 60; i++) {
        uint64_t rss = (uint64_t)(100 * MIB + MIB * i);
        sl_mem_sample s = {.t_s = i,
                           .rss_bytes = rss,
                           .cg_usage_bytes = rss + (uint64_t)(50 * MIB),
                           .cg_limit_bytes = (uint64_t)(4 * 1024 * MIB)};
        sl_timeline_add(tl, &s);
    }
    sl_mem_judge(tl, 0, &v);
    ASSERT_UINT_EQ(v.limit_bytes, (uint64_t)(4 * 1024 * MIB));
    ASSERT_TRUE(v.limit_at_object < 0);
    ASSERT_TRUE(v.limit_in_s > 4096 - 209 - 0.01 && v.limit_in_s < 4096 - 209 + 0.01);
    ASSERT_STR_EQ(v.text, "growing: +60.0 MiB/min, limit reached in 65 min");
    sl_timeline_destroy(tl);

    /* A cgroup whose usage is mostly page cache: the headroom is measured from what cannot be reclaimed (RSS + 50 MiB
     * again), not from the usage, which the cache fills to the limit. */
    tl = sl_timeline_new(0);
    for (int i = 0; i < 60; i++) {
        uint64_t rss = (uint64_t)(100 * MIB + MIB * i);
        sl_mem_sample s = {.t_s = i,
                           .rss_bytes = rss,
                           .cg_usage_bytes = (uint64_t)(4000 * MIB),
                           .cg_limit_bytes = (uint64_t)(4 * 1024 * MIB),
                           .cg_unreclaimable_bytes = rss + (uint64_t)(50 * MIB)};
        sl_timeline_add(tl, &s);
    }
    sl_mem_judge(tl, 0, &v);
    ASSERT_TRUE(v.limit_in_s > 4096 - 209 - 0.01 && v.limit_in_s < 4096 - 209 + 0.01);
    ASSERT_STR_EQ(v.text, "growing: +60.0 MiB/min, limit reached in 65 min");
    sl_timeline_destroy(tl);
}

static void test_fmt(void) {
    char b[48];
    ASSERT_STR_EQ(sl__fmt_bytes(512, b, sizeof(b)), "512 B");
    ASSERT_STR_EQ(sl__fmt_bytes(1536, b, sizeof(b)), "1.50 KiB");
    ASSERT_STR_EQ(sl__fmt_bytes(12.3 * MIB, b, sizeof(b)), "12.3 MiB");
    ASSERT_STR_EQ(sl__fmt_bytes(-300 * MIB, b, sizeof(b)), "-300 MiB");
    ASSERT_STR_EQ(sl__fmt_duration(41, b, sizeof(b)), "41 s");
    ASSERT_STR_EQ(sl__fmt_duration(600, b, sizeof(b)), "10 min");
    ASSERT_STR_EQ(sl__fmt_duration(3 * 3600 + 5 * 60, b, sizeof(b)), "3 h 05 min");
    ASSERT_STR_EQ(sl__fmt_duration(50 * 3600, b, sizeof(b)), "2 d 02 h");
    double v[] = {5, 1, 4, 2, 3, 6};
    ASSERT_TRUE(sl__median(v, 6) == 3.5);
    double w[] = {7, 7, 7, 1, 7};
    ASSERT_TRUE(sl__median(w, 5) == 7);
}

/* ---- chart ---- */

static bool s_have_xmllint(void) {
    return system("command -v xmllint >/dev/null 2>&1") == 0;
}

static char *s_slurp(const char *path) {
    FILE *f = fopen(path, "r");
    ASSERT_TRUE(f != NULL);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void s_check_svg(const char *path) {
    if (!s_have_xmllint()) {
        fprintf(stderr, "    xmllint not installed: well-formedness not checked\n");
        return;
    }
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "xmllint --noout '%s'", path);
    ASSERT_INT_EQ(system(cmd), 0);
}

static void test_chart_svg(void) {
    s_fresh_tmp();
    sl_timeline *tl = sl_timeline_new(0);
    for (int i = 0; i < 400; i++) {
        double rss = 300 * MIB + 40 * KIB * 25.0 * i + s_noise(2 * MIB);
        sl_mem_sample s = {.t_s = i * 1.0,
                           .rss_bytes = (uint64_t)rss,
                           .objects = (uint64_t)(25 * i),
                           .bytes = (uint64_t)i << 20,
                           .cg_usage_bytes = (uint64_t)(rss + 30 * MIB),
                           .cg_limit_bytes = (uint64_t)(1024 * MIB)};
        sl_timeline_add(tl, &s);
    }
    sl_mem_verdict v;
    sl_mem_judge(tl, 0, &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_GROWING);
    const char *path = s_path("chart.svg");
    ASSERT_INT_EQ(sl_mem_chart_svg(tl, &v, "leaky <job> & \"friends\"", path), 0);
    s_check_svg(path);
    char *svg = s_slurp(path);
    ASSERT_TRUE(strstr(svg, v.text) != NULL);
    ASSERT_TRUE(strstr(svg, "leaky &lt;job&gt; &amp; &quot;friends&quot;") != NULL);
    ASSERT_TRUE(strstr(svg, "stroke-dasharray=\"8 5\"") != NULL); /* the limit line */
    ASSERT_TRUE(strstr(svg, "objects done per second") != NULL);
    ASSERT_TRUE(strstr(svg, "RSS (MiB)") != NULL);
    ASSERT_TRUE(strstr(svg, "http://") == strstr(svg, "http://www.w3.org/2000/svg")); /* no external assets */
    ASSERT_TRUE(strstr(svg, "<script") == NULL);
    struct stat st;
    ASSERT_INT_EQ(stat(path, &st), 0);
    ASSERT_INT_EQ(st.st_mode & 0777, 0644);

    /* Named memory: the axis, the legend, the footer and the description say what the line is, escaped. */
    const char *named = s_path("named.svg");
    ASSERT_INT_EQ(sl_mem_chart_svg_named(tl, &v, "t", "tree <PSS>", named), 0);
    s_check_svg(named);
    svg = s_slurp(named);
    ASSERT_TRUE(strstr(svg, "tree &lt;PSS&gt; (MiB)") != NULL);
    ASSERT_TRUE(strstr(svg, "tree &lt;PSS&gt; (left axis)") != NULL);
    ASSERT_TRUE(strstr(svg, "peak tree &lt;PSS&gt; ") != NULL);
    ASSERT_TRUE(strstr(svg, "RSS") == NULL);
    sl_timeline_destroy(tl);

    /* Empty and tiny timelines still make a valid chart; no temp files are left behind. */
    tl = sl_timeline_new(0);
    ASSERT_INT_EQ(sl_mem_chart_svg(tl, NULL, NULL, s_path("empty.svg")), 0);
    s_check_svg(s_path("empty.svg"));
    ASSERT_TRUE(strstr(s_slurp(s_path("empty.svg")), "unknown") != NULL);
    sl_mem_sample one = {.t_s = 0, .rss_bytes = 1 << 20};
    sl_timeline_add(tl, &one);
    ASSERT_INT_EQ(sl_mem_chart_svg(tl, NULL, "", s_path("one.svg")), 0);
    s_check_svg(s_path("one.svg"));
    sl_timeline_destroy(tl);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls '%s' | grep tmp)\"", s_tmp);
    ASSERT_INT_EQ(system(cmd), 0);

    /* An unwritable place fails with a message, and nothing is created. */
    ASSERT_TRUE(sl_mem_chart_svg(tl = sl_timeline_new(0), NULL, NULL, s_path("no/such/dir/c.svg")) < 0);
    ASSERT_TRUE(strstr(sl_last_error(), "no/such/dir/c.svg") != NULL);
    sl_timeline_destroy(tl);
    s_rm_tree();
}

/* ---- sampler ---- */

typedef struct fake {
    atomic_ullong calls;
    atomic_ullong rss;
    atomic_int warns;
    uint64_t warn_limit;
    sl_mem_trend warn_trend;
    pthread_t warn_thread;
} fake;

static uint64_t s_fake_rss(void *user) {
    fake *f = user;
    atomic_fetch_add(&f->calls, 1);
    return atomic_fetch_add(&f->rss, 1 << 20) + (1 << 20);
}
static void s_fake_counts(void *user, uint64_t *objects, uint64_t *bytes) {
    fake *f = user;
    *objects = atomic_load(&f->calls) * 3;
    *bytes = *objects * 100;
}
static void s_fake_warn(void *user, const sl_mem_sample *s, uint64_t limit, const sl_mem_verdict *v) {
    fake *f = user;
    (void)s;
    f->warn_limit = limit;
    f->warn_trend = v->trend;
    f->warn_thread = pthread_self();
    atomic_fetch_add(&f->warns, 1);
}

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void s_sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_sampler_csv(void) {
    s_fresh_tmp();
    fake f = {0};
    sl_memwatch_options o = {.interval_ms = 5,
                             .timeline_path = s_path("t.csv"),
                             .proc_cgroup = s_path("none"),
                             .rss = s_fake_rss,
                             .counts = s_fake_counts,
                             .user_data = &f,
                             .capacity = 16};
    sl_memwatch *mw;
    ASSERT_INT_EQ(sl_memwatch_start(&o, &mw), 0);
    ASSERT_TRUE(atomic_load(&f.calls) >= 1); /* first sample at once */
    s_sleep_ms(200);
    sl_mem_sample last;
    sl_memwatch_last(mw, &last);
    ASSERT_TRUE(last.rss_bytes >= 1 << 20);
    sl_mem_verdict live;
    sl_memwatch_judge(mw, &live);
    sl_memwatch_stop(mw);
    sl_memwatch_stop(mw); /* idempotent */
    unsigned long long calls = atomic_load(&f.calls);
    ASSERT_TRUE(calls >= 10);
    const sl_timeline *tl = sl_memwatch_timeline(mw);
    ASSERT_TRUE(sl_timeline_count(tl) <= 17);
    ASSERT_UINT_EQ(sl_timeline_peak_rss(tl), calls << 20);
    ASSERT_UINT_EQ(sl_timeline_get(tl, sl_timeline_count(tl) - 1)->rss_bytes, calls << 20);
    ASSERT_UINT_EQ(sl_timeline_get(tl, sl_timeline_count(tl) - 1)->cg_limit_bytes, 0);
    sl_mem_verdict v;
    sl_mem_judge(tl, 0, &v);
    ASSERT_INT_EQ(v.trend, SL_MEM_GROWING);
    sl_memwatch_destroy(mw);

    /* The CSV: the header and one line per raw sample, times increasing. */
    FILE *csv = fopen(s_path("t.csv"), "r");
    ASSERT_TRUE(csv != NULL);
    char line[256];
    ASSERT_TRUE(fgets(line, sizeof(line), csv) != NULL);
    ASSERT_STR_EQ(line, "t_s,rss_bytes,objects,bytes,cgroup_usage_bytes,cgroup_limit_bytes\n");
    unsigned long long lines = 0;
    double prev_t = -1;
    while (fgets(line, sizeof(line), csv)) {
        double t;
        unsigned long long rss, objects, bytes, usage, limit;
        ASSERT_INT_EQ(sscanf(line, "%lf,%llu,%llu,%llu,%llu,%llu", &t, &rss, &objects, &bytes, &usage, &limit), 6);
        ASSERT_TRUE(t >= prev_t);
        ASSERT_UINT_EQ(rss, (lines + 1) << 20);
        ASSERT_UINT_EQ(bytes, objects * 100);
        prev_t = t;
        lines++;
    }
    fclose(csv);
    ASSERT_UINT_EQ(lines, calls);
    s_rm_tree();
}

static void test_sampler_stops_promptly(void) {
    fake f = {0};
    sl_memwatch_options o = {.interval_ms = 60000, .rss = s_fake_rss, .user_data = &f};
    sl_memwatch *mw;
    ASSERT_INT_EQ(sl_memwatch_start(&o, &mw), 0);
    double t0 = s_now();
    sl_memwatch_destroy(mw);
    ASSERT_TRUE(s_now() - t0 < 1.0);
    ASSERT_UINT_EQ(atomic_load(&f.calls), 2); /* the first and the last sample */
    sl_memwatch_destroy(NULL);

    /* Defaults: this process's own RSS, no cgroup file. */
    sl_memwatch_options d = {.interval_ms = 5, .proc_cgroup = "/nonexistent/cgroup"};
    ASSERT_INT_EQ(sl_memwatch_start(&d, &mw), 0);
    s_sleep_ms(30);
    sl_memwatch_stop(mw);
    ASSERT_TRUE(sl_timeline_peak_rss(sl_memwatch_timeline(mw)) > 0);
    sl_memwatch_destroy(mw);

    /* Failures: the callback never runs. */
    fake g = {0};
    sl_memwatch_options bad = {.timeline_path = "/nonexistent/dir/t.csv", .rss = s_fake_rss, .user_data = &g};
    ASSERT_TRUE(sl_memwatch_start(&bad, &mw) < 0);
    ASSERT_TRUE(mw == NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "/nonexistent/dir/t.csv") != NULL);
    ASSERT_UINT_EQ(atomic_load(&g.calls), 0);
    sl_memwatch_options frac = {.warn_fraction = 1.5};
    ASSERT_INT_EQ(sl_memwatch_start(&frac, &mw), SL_EINVAL);
}

static void test_sampler_warns_once(void) {
    s_fresh_tmp();
    /* A fake cgroup at 85 % of its limit: warned once, with the cgroup's limit, from the sampler thread. */
    s_put("proc_cgroup", "0::/job\n");
    s_put("cg/job/memory.current", "870\n");
    s_put("cg/job/memory.max", "1000\n");
    fake f = {0};
    sl_memwatch_options o = {.interval_ms = 2,
                             .cgroup_root = s_path("cg"),
                             .proc_cgroup = s_path("proc_cgroup"),
                             .rss = s_fake_rss,
                             .on_warn = s_fake_warn,
                             .user_data = &f};
    sl_memwatch *mw;
    ASSERT_INT_EQ(sl_memwatch_start(&o, &mw), 0);
    s_sleep_ms(100);
    sl_memwatch_destroy(mw);
    ASSERT_TRUE(atomic_load(&f.calls) >= 10);
    ASSERT_INT_EQ(atomic_load(&f.warns), 1);
    ASSERT_UINT_EQ(f.warn_limit, 1000);

    /* Below the fraction: never. */
    s_put("cg/job/memory.current", "700\n");
    fake g = {0};
    o.user_data = &g;
    ASSERT_INT_EQ(sl_memwatch_start(&o, &mw), 0);
    s_sleep_ms(30);
    sl_memwatch_destroy(mw);
    ASSERT_INT_EQ(atomic_load(&g.warns), 0);

    /* Past it, but most of it page cache (even the working set, 95 %, is past it): never. The samples carry both. */
    s_put("cg/job/memory.current", "990\n");
    s_put("cg/job/memory.stat", "anon 300\nactive_file 650\ninactive_file 40\n");
    fake k = {0};
    o.user_data = &k;
    ASSERT_INT_EQ(sl_memwatch_start(&o, &mw), 0);
    s_sleep_ms(30);
    sl_mem_sample last;
    sl_memwatch_last(mw, &last);
    sl_memwatch_destroy(mw);
    ASSERT_INT_EQ(atomic_load(&k.warns), 0);
    ASSERT_UINT_EQ(last.cg_usage_bytes, 950);
    ASSERT_UINT_EQ(last.cg_unreclaimable_bytes, 300);
    /* Anonymous memory past it: warned. */
    s_put("cg/job/memory.stat", "anon 900\nactive_file 50\ninactive_file 40\n");
    fake a = {0};
    o.user_data = &a;
    ASSERT_INT_EQ(sl_memwatch_start(&o, &mw), 0);
    double t1 = s_now();
    while (atomic_load(&a.warns) == 0 && s_now() - t1 < 10)
        s_sleep_ms(5);
    sl_memwatch_destroy(mw);
    ASSERT_INT_EQ(atomic_load(&a.warns), 1);
    unlink(s_path("cg/job/memory.stat"));

    /* A caller's limit is checked against RSS; the warning comes from the sampler thread with the current verdict. */
    fake h = {0};
    sl_memwatch_options r = {.interval_ms = 2,
                             .proc_cgroup = s_path("none"),
                             .limit_bytes = (uint64_t)(40 * MIB),
                             .warn_fraction = 0.5,
                             .rss = s_fake_rss,
                             .on_warn = s_fake_warn,
                             .user_data = &h};
    ASSERT_INT_EQ(sl_memwatch_start(&r, &mw), 0);
    double t0 = s_now();
    while (atomic_load(&h.warns) == 0 && s_now() - t0 < 10)
        s_sleep_ms(5);
    s_sleep_ms(20);
    sl_memwatch_destroy(mw);
    ASSERT_INT_EQ(atomic_load(&h.warns), 1);
    ASSERT_UINT_EQ(h.warn_limit, (uint64_t)(40 * MIB));
    ASSERT_INT_EQ(h.warn_trend, SL_MEM_GROWING); /* 20 samples of +1 MiB each by then */
    ASSERT_FALSE(pthread_equal(h.warn_thread, pthread_self()));
    s_rm_tree();
}

int main(void) {
    RUN_TEST(test_cgroup_v2_nested);
    RUN_TEST(test_cgroup_v2_container_view);
    RUN_TEST(test_cgroup_v1);
    RUN_TEST(test_cgroup_none);
    RUN_TEST(test_cgroup_real);
    RUN_TEST(test_timeline_merge);
    RUN_TEST(test_timeline_million);
    RUN_TEST(test_fmt);
    RUN_TEST(test_verdict_leak_per_object);
    RUN_TEST(test_verdict_flat);
    RUN_TEST(test_verdict_single_step_anywhere);
    RUN_TEST(test_verdict_shapes);
    RUN_TEST(test_verdict_time_only);
    RUN_TEST(test_verdict_unknown);
    RUN_TEST(test_verdict_limit_projection);
    RUN_TEST(test_chart_svg);
    RUN_TEST(test_sampler_csv);
    RUN_TEST(test_sampler_stops_promptly);
    RUN_TEST(test_sampler_warns_once);
    TEST_DONE();
}
