/* Memory watch: sample memory over time in fixed space, judge its trend, draw it.
 *
 *   sampler thread --(every interval)--> sample {t, RSS, objects, bytes, cgroup usage/limit} --> timeline
 *   timeline --> verdict (robust Theil-Sen fit after a warm-up: flat, or growing +X per object / per minute)
 *   timeline + verdict --> SVG chart
 *
 * The timeline has a fixed capacity: when it is full, neighbouring samples are merged (the resolution halves), so a
 * ten-hour run costs the same memory as a ten-second one. Every sample can also be streamed to a CSV file. */
#ifndef SLUICE_MEMWATCH_H
#define SLUICE_MEMWATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sluice/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_mem_sample {
    double t_s;              /* seconds since the watch started */
    uint64_t rss_bytes;      /* memory of what is watched: a process's RSS by default, or what the sampler's rss
                              * function returns (sluice watch: a process tree's PSS, see sl_proc_tree_rss) */
    uint64_t objects;        /* objects done so far (0 when not a job) */
    uint64_t bytes;          /* bytes done so far */
    uint64_t cg_usage_bytes; /* cgroup memory usage (the working set, sl_cgroup_read), 0 if unknown */
    uint64_t cg_limit_bytes; /* cgroup memory limit, 0 if none or unknown */
    /* cgroup memory the kernel cannot reclaim (sl_cgroup_memory.unreclaimable_bytes), 0 if unknown */
    uint64_t cg_unreclaimable_bytes;
} sl_mem_sample;

/* ---- cgroup (v1 and v2) ---- */

typedef struct sl_cgroup {
    int version;     /* 1 or 2; 0 = none found */
    char dir[4096];  /* the memory controller's directory of this process (under root) */
    size_t base_len; /* dir[0..base_len) is the hierarchy's top (root, or root/memory for v1); the effective limit is
                      * the smallest one from dir up to there */
} sl_cgroup;

/* Finds the memory cgroup of the process from proc_cgroup (NULL: $SLUICE_PROC_CGROUP, else "/proc/self/cgroup"; the
 * variable is for tests, with a fake tree under $SLUICE_CGROUP_ROOT), including nested paths,
 * under root (NULL: $SLUICE_CGROUP_ROOT, else "/sys/fs/cgroup"). v2: root/<path> with memory.max/memory.current;
 * v1: root/memory/<path> (or root/<controllers incl. memory>/<path>) with memory.limit_in_bytes/usage_in_bytes.
 * A v1 memory hierarchy wins over a v2 line (hybrid systems). When root/<path> has no memory files, leading
 * components of path are dropped until one does (a container without its own cgroup namespace sees its own cgroup at
 * the mount's root while /proc names it from the host's root). Returns 0 and out->version 1 or 2, or SL_ENOENT
 * (out->version 0) when there is none. */
SL_API int sl_cgroup_find(const char *root, const char *proc_cgroup, sl_cgroup *out);
/* Reads usage and limit. usage is the working set, as Kubernetes counts it: memory.current (v2) or
 * memory.usage_in_bytes (v1) minus the inactive file cache of memory.stat, which the kernel reclaims before it
 * OOM-kills anything (without memory.stat: the raw usage). limit is the smallest limit from the process's cgroup up to
 * the top of the hierarchy, as the kernel enforces them all; 0 = no limit anywhere ("max", or v1's huge "unlimited"
 * value, taken as any value of 2^62 bytes or more). Returns 0, or SL_ENOENT (both 0) when cg has no cgroup or nothing
 * could be read. */
SL_API int sl_cgroup_read(const sl_cgroup *cg, uint64_t *usage_bytes, uint64_t *limit_bytes);

/* What sl_cgroup_read_memory reads. */
typedef struct sl_cgroup_memory {
    uint64_t usage_bytes; /* the working set, as sl_cgroup_read's usage */
    uint64_t limit_bytes; /* as sl_cgroup_read's limit */
    /* The usage minus all the page cache the kernel can drop or write back to make room (memory.stat active_file +
     * inactive_file; v1: their total_ versions): anonymous memory, shared memory and tmpfs files (swap-backed), kernel
     * memory, unevictable pages. A cgroup full of cache is not short of memory; one full of this is. Without
     * memory.stat: the raw usage. */
    uint64_t unreclaimable_bytes;
} sl_cgroup_memory;
/* Reads the three figures at once (one read of memory.stat). Returns as sl_cgroup_read (all 0 on SL_ENOENT). */
SL_API int sl_cgroup_read_memory(const sl_cgroup *cg, sl_cgroup_memory *out);

/* ---- timeline: fixed capacity ---- */

typedef struct sl_timeline sl_timeline;

/* capacity 0 = SL_TIMELINE_DEFAULT_CAPACITY. NULL if out of memory. */
#define SL_TIMELINE_DEFAULT_CAPACITY 512
SL_API sl_timeline *sl_timeline_new(size_t capacity);
/* Appends a sample; when full, merges neighbours first (keeps the max RSS of a merged pair, the later counts). */
SL_API void sl_timeline_add(sl_timeline *tl, const sl_mem_sample *s);
SL_API size_t sl_timeline_count(const sl_timeline *tl);
SL_API const sl_mem_sample *sl_timeline_get(const sl_timeline *tl, size_t i);
SL_API uint64_t sl_timeline_peak_rss(const sl_timeline *tl);   /* over every sample ever added */
SL_API size_t sl_timeline_memory_bytes(const sl_timeline *tl); /* what the timeline itself holds */
SL_API void sl_timeline_destroy(sl_timeline *tl);              /* NULL ok */

/* ---- verdict ---- */

typedef enum sl_mem_trend {
    SL_MEM_UNKNOWN = 0, /* too few samples after the warm-up to say */
    SL_MEM_FLAT = 1,
    SL_MEM_GROWING = 2,
} sl_mem_trend;

typedef struct sl_mem_verdict {
    sl_mem_trend trend;
    double bytes_per_object; /* Theil-Sen slope of RSS against objects done (0 when no objects were counted) */
    double bytes_per_second; /* Theil-Sen slope of RSS against time */
    uint64_t limit_bytes;    /* the limit judged against (cgroup or given), 0 = none */
    double limit_at_object;  /* projected object count when RSS reaches the limit; < 0 if never / unknown */
    double limit_in_s;       /* projected seconds after the last sample until the limit; < 0 if never / unknown */
    size_t samples_used;     /* after the warm-up */
    char text[256];          /* "flat" or "growing: +X KiB per object (+Y MiB/min), limit reached at object N / in T"
                              * or "unknown: too few samples (...)" */
} sl_mem_verdict;

/* Judges the timeline against limit_bytes (0: the cgroup limit seen in the samples, if any). The first 20 % of the
 * samples (at least one) are a warm-up and are not judged; fewer than 5 samples after it give SL_MEM_UNKNOWN. RSS is
 * fitted with Theil-Sen against time, and against objects done when they were counted; a fit is growing when its
 * growth over the span exceeds max(4 MiB, 10 % of the RSS at the start of the span) and the second half of the span
 * still grows at a third of the whole span's rate or more (see memwatch.c for why). The limit is projected only when
 * growing, from the cgroup's unreclaimable memory (else its usage) in the last sample when judging the cgroup limit,
 * else from the fitted RSS. */
SL_API void sl_mem_judge(const sl_timeline *tl, uint64_t limit_bytes, sl_mem_verdict *out);

/* ---- chart ---- */

/* Writes a self-contained SVG: RSS over time, the limit line, objects/s on a second axis, the fitted trend, the
 * verdict in the title (title may be NULL). Written as sl_outfile_open(path, SL_OUTFILE_REPLACE) writes: a regular or
 * new file whole (temp + rename, the mode the umask gives), a device or FIFO in place, through symbolic links. */
SL_API int sl_mem_chart_svg(const sl_timeline *tl, const sl_mem_verdict *v, const char *title, const char *path);
/* The same, with memory_name naming what the samples' memory is in the axis title, the legend and the footer (e.g.
 * "process tree PSS" for sl_proc_tree_rss samples); NULL or "": RSS, as sl_mem_chart_svg. */
SL_API int sl_mem_chart_svg_named(const sl_timeline *tl, const sl_mem_verdict *v, const char *title,
                                  const char *memory_name, const char *path);

/* ---- sampler thread ---- */

/* RSS of what is watched, in bytes (0 if it cannot be read). NULL in the options: this process. */
typedef uint64_t (*sl_mem_rss_fn)(void *user_data);
/* Progress counters of what is watched. NULL: zeros. */
typedef void (*sl_mem_counts_fn)(void *user_data, uint64_t *objects, uint64_t *bytes);
/* Called at most once, from the sampler thread, when usage first passes warn_fraction of a limit: RSS against
 * opts->limit_bytes when given, the cgroup's unreclaimable memory (cg_unreclaimable_bytes; page cache does not count,
 * the kernel drops it before it OOM-kills anything) against the cgroup's limit, or RSS when the cgroup's usage is
 * unknown; limit_bytes is the one passed, v the verdict on the timeline so far. */
typedef void (*sl_mem_warn_fn)(void *user_data, const sl_mem_sample *s, uint64_t limit_bytes, const sl_mem_verdict *v);

typedef struct sl_memwatch_options {
    unsigned interval_ms;      /* 0 = 1000 */
    /* If set, every sample is appended as a CSV line (header first), in place (SL_OUTFILE_STREAM). A file that cannot
     * be created or whose header cannot be written fails sl_memwatch_start; a later write error ends the file there
     * and is kept for sl_memwatch_error (the sampling goes on). */
    const char *timeline_path;
    const char *cgroup_root;   /* NULL: see sl_cgroup_find */
    const char *proc_cgroup;   /* NULL: see sl_cgroup_find */
    uint64_t limit_bytes;      /* judge against this; 0 = the cgroup limit if any */
    double warn_fraction;      /* 0 = 0.8 */
    size_t capacity;           /* timeline capacity; 0 = default */
    sl_mem_rss_fn rss;
    sl_mem_counts_fn counts;
    sl_mem_warn_fn on_warn;
    void *user_data;
} sl_memwatch_options;

typedef struct sl_memwatch sl_memwatch;

/* Takes a first sample at once, then one every interval on its own thread. */
SL_API int sl_memwatch_start(const sl_memwatch_options *opts, sl_memwatch **out);
/* Takes a last sample and joins the thread; the timeline stays readable. Idempotent. */
SL_API void sl_memwatch_stop(sl_memwatch *mw);
/* The timeline; read it only after sl_memwatch_stop (or under no concurrent sampling). */
SL_API const sl_timeline *sl_memwatch_timeline(const sl_memwatch *mw);
/* The latest sample, safe while running. */
SL_API void sl_memwatch_last(const sl_memwatch *mw, sl_mem_sample *out);
/* The verdict on the timeline so far (sl_mem_judge against opts->limit_bytes), safe while running. */
SL_API void sl_memwatch_judge(const sl_memwatch *mw, sl_mem_verdict *out);
/* 0 while the timeline file is written without error (or there is none); else the SL_E* code of its first write
 * error, with its one-line message ("cannot write the timeline FILE: No space left on device") copied into buf (one
 * longer than cap loses bytes from its middle, not its reason). Safe while running; after sl_memwatch_stop it also
 * covers the file's final flush. */
SL_API int sl_memwatch_error(const sl_memwatch *mw, char *buf, size_t cap);
SL_API void sl_memwatch_destroy(sl_memwatch *mw); /* stops first; NULL ok */

/* ---- process trees ---- */

/* Memory of pid and all its descendants (children, grandchildren...) read from /proc: the sum of each process's PSS
 * (proportional set size, so pages shared by several of them count once in total), or its RSS where PSS cannot be
 * read (no /proc/PID/smaps_rollup). 0 if pid is gone. The name is historical: it is PSS whenever the kernel has it. */
SL_API uint64_t sl_proc_tree_rss(pid_t pid);

#ifdef __cplusplus
}
#endif

#endif
