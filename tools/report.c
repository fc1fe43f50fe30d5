/* `sluice report PLACE`: the reports a job's shards wrote with `--report PLACE/` (shard-I-of-N.json in a local
 * directory, gs:// or s3://) merged into one account of the job: which shards are there, missing or failed, the
 * totals, the first failures and where the full logs are, the memory verdict of every shard and the worst, and an
 * exit status a pipeline can branch on. Memory: one report at a time (at most REPORT_CAP bytes), a bitmap of the shards
 * seen, and fixed-size samples. */
#include "report.h"

#include <jansson.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_CAP ((size_t)4 << 20) /* a report has at most 10 failures in its sample: a few KiB */
#define SAMPLE_MAX 10                /* failures shown */
#define LIST_MAX 20                  /* shards named in each list (missing, failed, ...) */

enum { EXIT_OK = 0, EXIT_PARTIAL = 1, EXIT_USAGE = 2, EXIT_FATAL = 3 };

/* The worse of two memory trends: growing, then unknown, then flat. */
static int s_trend_rank(const char *trend) {
    if (!trend)
        return 1;
    if (strcmp(trend, "growing") == 0)
        return 2;
    if (strcmp(trend, "flat") == 0)
        return 0;
    return 1;
}

/* A bounded list of shard numbers for messages: the first LIST_MAX, and how many in all. */
typedef struct s_list {
    unsigned v[LIST_MAX];
    size_t n, total;
} s_list;

static void s_list_add(s_list *l, unsigned shard) {
    if (l->n < LIST_MAX)
        l->v[l->n++] = shard;
    l->total++;
}

static void s_list_text(const s_list *l, char *buf, size_t cap) {
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < l->n && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%u", i ? ", " : "", l->v[i]);
    if (l->total > l->n && at < cap)
        snprintf(buf + at, cap - at, " and %zu more", l->total - l->n);
}

static json_t *s_list_json(const s_list *l) {
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(a, json_integer(l->v[i]));
    return a;
}

typedef struct s_merge {
    unsigned count;      /* N */
    unsigned char *seen; /* bitmap of N */
    size_t present;
    s_list missing, failed_shards, unfinished, growing, unknown, bad;
    uint64_t listed, done, skipped, failed, bytes_read, bytes_written, peak_rss;
    double rate_sum, slowest_s;
    unsigned slowest, peak_rss_shard;
    int worst_rank;
    unsigned worst_shard;
    char worst_verdict[512];
    json_t *samples; /* [{"shard", "key", "error"}], at most SAMPLE_MAX */
    json_t *logs;    /* [{"shard", "failures_log"}] of shards with failures */
    json_t *shards;  /* per shard, for --json: only with N <= 1000 */
} s_merge;

static uint64_t s_u64(json_t *o, const char *a, const char *b) {
    json_t *v = json_object_get(o, a);
    if (b)
        v = json_object_get(v, b);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

static double s_num(json_t *o, const char *a) {
    json_t *v = json_object_get(o, a);
    return json_is_number(v) ? json_number_value(v) : 0;
}

/* Takes one shard's report. Returns 0, or -1 when it is not a report of sluice (said on err, counted as bad). */
static int s_take(s_merge *m, unsigned shard, const char *name, json_t *r, FILE *err) {
    json_t *objects = json_object_get(r, "objects");
    const char *outcome = json_string_value(json_object_get(r, "outcome"));
    if (!json_is_object(r) || !json_is_object(objects) || !outcome) {
        fprintf(err,
                "sluice: report: %s is not a report of sluice (no objects or outcome): shard %u taken as missing\n",
                name, shard);
        s_list_add(&m->bad, shard);
        return -1;
    }
    json_t *sh = json_object_get(r, "shard");
    unsigned idx = (unsigned)s_u64(r, "shard", "index"), cnt = (unsigned)s_u64(r, "shard", "count");
    if ((json_is_object(sh) && (idx != shard || cnt != m->count)) || (!json_is_object(sh) && m->count != 1)) {
        fprintf(err, "sluice: report: %s says it is shard %u of %u: taken as missing\n", name, idx, cnt);
        s_list_add(&m->bad, shard);
        return -1;
    }
    m->seen[shard / 8] |= (unsigned char)(1u << (shard % 8));
    m->present++;
    m->listed += s_u64(r, "objects", "listed");
    m->done += s_u64(r, "objects", "done");
    m->skipped += s_u64(r, "objects", "skipped");
    uint64_t failed = s_u64(r, "objects", "failed");
    m->failed += failed;
    m->bytes_read += s_u64(r, "bytes", "read");
    m->bytes_written += s_u64(r, "bytes", "written");
    m->rate_sum += s_num(r, "objects_per_s");
    double d = s_num(r, "duration_s");
    if (d >= m->slowest_s) {
        m->slowest_s = d;
        m->slowest = shard;
    }
    uint64_t peak = s_u64(r, "peak_rss_bytes", NULL);
    if (peak >= m->peak_rss) {
        m->peak_rss = peak;
        m->peak_rss_shard = shard;
    }
    if (strcmp(outcome, "ok") != 0 && strcmp(outcome, "partial") != 0)
        s_list_add(&m->unfinished, shard);
    if (failed)
        s_list_add(&m->failed_shards, shard);
    json_t *mem = json_object_get(r, "memory");
    const char *trend = json_string_value(json_object_get(mem, "trend"));
    const char *verdict = json_string_value(json_object_get(mem, "verdict"));
    int rank = s_trend_rank(trend);
    if (rank == 2)
        s_list_add(&m->growing, shard);
    else if (rank == 1)
        s_list_add(&m->unknown, shard);
    if (m->present == 1 || rank > m->worst_rank) {
        m->worst_rank = rank;
        m->worst_shard = shard;
        snprintf(m->worst_verdict, sizeof(m->worst_verdict), "%s", verdict ? verdict : "unknown");
    }
    json_t *log = json_object_get(r, "failures_log");
    if (failed && json_is_string(log))
        json_array_append_new(m->logs, json_pack("{s:i, s:O}", "shard", (json_int_t)shard, "failures_log", log));
    json_t *sample = json_object_get(r, "failures_sample");
    size_t i;
    json_t *f;
    json_array_foreach(sample, i, f) {
        if (json_array_size(m->samples) >= SAMPLE_MAX)
            break;
        json_array_append_new(m->samples, json_pack("{s:i, s:O?, s:O?}", "shard", (json_int_t)shard, "key",
                                                    json_object_get(f, "key"), "error", json_object_get(f, "error")));
    }
    if (m->shards)
        json_array_append_new(m->shards, json_pack("{s:i, s:s, s:I, s:I, s:s?, s:f}", "shard", (json_int_t)shard,
                                                   "outcome", outcome, "done", (json_int_t)s_u64(r, "objects", "done"),
                                                   "failed", (json_int_t)failed, "memory", verdict, "duration_s", d));
    return 0;
}

/* Parses "shard-I-of-N.json" exactly (decimal, no leading zeros but "0"). */
static bool s_shard_name(const char *key, unsigned *index, unsigned *count) {
    unsigned long i, n;
    char *end;
    if (strncmp(key, "shard-", 6) != 0 || key[6] < '0' || key[6] > '9')
        return false;
    i = strtoul(key + 6, &end, 10);
    if (strncmp(end, "-of-", 4) != 0 || end[4] < '1' || end[4] > '9')
        return false;
    n = strtoul(end + 4, &end, 10);
    if (strcmp(end, ".json") != 0 || n == 0 || n > 1000000 || i >= n)
        return false;
    char again[64];
    snprintf(again, sizeof(again), "shard-%lu-of-%lu.json", i, n);
    if (strcmp(again, key) != 0)
        return false;
    *index = (unsigned)i;
    *count = (unsigned)n;
    return true;
}

/* One pass over the place's reports: the shard counts found (first two distinct, with how many of each). */
static int s_counts(sl_client *c, const char *place, unsigned want, unsigned *count, FILE *err) {
    sl_list_options lo = {.recursive = false};
    sl_lister *ls = NULL;
    int rc = sl_list_open(c, &lo, &ls);
    if (rc < 0) {
        fprintf(err, "sluice: report: cannot list %s: %s\n", place, sl_last_error());
        return EXIT_FATAL;
    }
    unsigned seen[2] = {0, 0};
    size_t files[2] = {0, 0}, more = 0;
    sl_object obj;
    while ((rc = sl_list_next(ls, &obj)) > 0) {
        unsigned i, n;
        if (obj.is_prefix || !s_shard_name(obj.key, &i, &n) || (want && n != want))
            continue;
        if (!seen[0] || seen[0] == n)
            seen[0] = n, files[0]++;
        else if (!seen[1] || seen[1] == n)
            seen[1] = n, files[1]++;
        else
            more++;
    }
    sl_list_close(ls);
    if (rc < 0) {
        fprintf(err, "sluice: report: cannot list %s: %s\n", place, sl_last_error());
        return EXIT_FATAL;
    }
    if (!seen[0]) {
        if (want)
            fprintf(err, "sluice: report: no report of %u shards (shard-I-of-%u.json) in %s\n", want, want, place);
        else
            fprintf(err,
                    "sluice: report: no shard report (shard-I-of-N.json) in %s: was --report %s given to the job?\n",
                    place, place);
        return EXIT_FATAL;
    }
    if (seen[1]) {
        fprintf(err,
                "sluice: report: %s holds reports of runs with different numbers of shards: %u (%zu files), %u (%zu "
                "files)%s; give --shards N for the run to merge, or remove the old reports\n",
                place, seen[0], files[0], seen[1], files[1], more ? " and more" : "");
        return EXIT_USAGE;
    }
    *count = seen[0];
    return 0;
}

static void s_bytes(uint64_t b, char *buf, size_t cap) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    size_t i = 0;
    while (v >= 1024 && i + 1 < sizeof(u) / sizeof(u[0]))
        v /= 1024, i++;
    snprintf(buf, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

int sl_cli_report(const char *place, bool json, unsigned want, const sl_store_options *store_opts, FILE *out,
                  FILE *err) {
    sl_store *st = NULL;
    sl_client *c = NULL;
    char *buf = NULL;
    s_merge m = {0};
    int code = EXIT_FATAL;
    if (sl_store_open(place, store_opts, &st) < 0 || sl_client_new(st, &c) < 0) {
        fprintf(err, "sluice: report: %s\n", sl_last_error());
        goto done;
    }
    if ((code = s_counts(c, place, want, &m.count, err)) != 0)
        goto done;
    code = EXIT_FATAL;
    m.seen = calloc((m.count + 7) / 8, 1);
    buf = malloc(REPORT_CAP + 1);
    m.samples = json_array();
    m.logs = json_array();
    m.shards = json && m.count <= 1000 ? json_array() : NULL;
    if (!m.seen || !buf || !m.samples || !m.logs) {
        fprintf(err, "sluice: report: out of memory\n");
        goto done;
    }
    /* The second pass reads each report of that count: listing again keeps nothing per file in memory. */
    sl_list_options lo = {.recursive = false};
    sl_lister *ls = NULL;
    if (sl_list_open(c, &lo, &ls) < 0) {
        fprintf(err, "sluice: report: cannot list %s: %s\n", place, sl_last_error());
        goto done;
    }
    sl_object obj;
    int rc;
    while ((rc = sl_list_next(ls, &obj)) > 0) {
        unsigned i, n;
        if (obj.is_prefix || !s_shard_name(obj.key, &i, &n) || n != m.count)
            continue;
        char name[64];
        snprintf(name, sizeof(name), "%s", obj.key);
        sl_reader *r = NULL;
        size_t len = 0;
        int64_t got = 0;
        if (sl_read_open(c, name, 0, SL_LENGTH_TO_END, NULL, &r) == 0) {
            while (len < REPORT_CAP && (got = sl_read(r, buf + len, REPORT_CAP - len)) > 0)
                len += (size_t)got;
            sl_read_close(r);
        } else {
            got = -1;
        }
        if (got < 0 || len >= REPORT_CAP) {
            fprintf(err, "sluice: report: cannot read %s in %s: %s: shard %u taken as missing\n", name, place,
                    got < 0 ? sl_last_error() : "over 4 MiB", i);
            s_list_add(&m.bad, i);
            continue;
        }
        json_error_t je;
        json_t *j = json_loadb(buf, len, 0, &je);
        if (!j) {
            fprintf(err, "sluice: report: %s in %s is not JSON (%s, line %d): shard %u taken as missing\n", name, place,
                    je.text, je.line, i);
            s_list_add(&m.bad, i);
            continue;
        }
        s_take(&m, i, name, j, err);
        json_decref(j);
    }
    sl_list_close(ls);
    if (rc < 0) {
        fprintf(err, "sluice: report: cannot list %s: %s\n", place, sl_last_error());
        goto done;
    }
    for (unsigned i = 0; i < m.count; i++)
        if (!(m.seen[i / 8] & (1u << (i % 8))))
            s_list_add(&m.missing, i);
    bool complete = m.missing.total == 0 && m.unfinished.total == 0;
    code = !complete ? EXIT_FATAL : m.failed ? EXIT_PARTIAL : EXIT_OK;
    const char *state = m.missing.total      ? "incomplete: shards missing"
                        : m.unfinished.total ? "incomplete: shards did not finish"
                        : m.failed           ? "complete, with failed objects"
                                             : "complete";
    const char *worst = m.worst_rank == 2 ? "growing" : m.worst_rank == 1 ? "unknown" : "flat";
    if (json) {
        json_t *o = json_pack(
            "{s:s, s:s, s:b, s:i, s:{s:I, s:I, s:o, s:o, s:o, s:o}, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I}, s:f, "
            "s:{s:I, s:f}, s:{s:s, s:I, s:s, s:I, s:I, s:o, s:o}, s:o, s:o}",
            "place", place, "state", state, "complete", complete, "exit", code, "shards", "count", (json_int_t)m.count,
            "present", (json_int_t)m.present, "missing", s_list_json(&m.missing), "unfinished",
            s_list_json(&m.unfinished), "with_failures", s_list_json(&m.failed_shards), "unreadable",
            s_list_json(&m.bad), "objects", "listed", (json_int_t)m.listed, "done", (json_int_t)m.done, "skipped",
            (json_int_t)m.skipped, "failed", (json_int_t)m.failed, "bytes", "read", (json_int_t)m.bytes_read, "written",
            (json_int_t)m.bytes_written, "objects_per_s", m.rate_sum, "slowest", "shard", (json_int_t)m.slowest,
            "duration_s", m.slowest_s, "memory", "worst", worst, "worst_shard", (json_int_t)m.worst_shard,
            "worst_verdict", m.worst_verdict, "peak_rss_bytes", (json_int_t)m.peak_rss, "peak_rss_shard",
            (json_int_t)m.peak_rss_shard, "growing", s_list_json(&m.growing), "unknown", s_list_json(&m.unknown),
            "failures_sample", json_incref(m.samples), "failures_logs", json_incref(m.logs));
        if (o && m.shards)
            json_object_set(o, "per_shard", m.shards);
        char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) : NULL;
        if (text)
            fprintf(out, "%s\n", text);
        free(text);
        json_decref(o);
    } else {
        char a[32], b[32], list[512];
        s_bytes(m.bytes_read, a, sizeof(a));
        s_bytes(m.bytes_written, b, sizeof(b));
        fprintf(out, "%s: %zu of %u shards: %s\n", place, m.present, m.count, state);
        if (m.missing.total) {
            s_list_text(&m.missing, list, sizeof(list));
            fprintf(out, "missing: %s\n", list);
        }
        if (m.unfinished.total) {
            s_list_text(&m.unfinished, list, sizeof(list));
            fprintf(out, "did not finish (interrupted or stopped by an error): %s\n", list);
        }
        fprintf(out,
                "objects: %" PRIu64 " listed, %" PRIu64 " done (%" PRIu64 " skipped), %" PRIu64
                " failed; read %s, wrote %s; slowest shard %u: %.1f s; %.0f objects/s together\n",
                m.listed, m.done, m.skipped, m.failed, a, b, m.slowest, m.slowest_s, m.rate_sum);
        s_bytes(m.peak_rss, a, sizeof(a));
        if (m.worst_rank == 0)
            fprintf(out, "memory: flat on every shard (peak RSS %s, shard %u)\n", a, m.peak_rss_shard);
        else
            fprintf(out, "memory: worst %s on shard %u (%s); peak RSS %s, shard %u\n", worst, m.worst_shard,
                    m.worst_verdict, a, m.peak_rss_shard);
        if (m.growing.total) {
            s_list_text(&m.growing, list, sizeof(list));
            fprintf(out, "memory growing on: %s\n", list);
        }
        size_t i;
        json_t *f;
        json_array_foreach(m.samples, i, f) {
            fprintf(out, "%s shard %" JSON_INTEGER_FORMAT ": %s: %s\n",
                    i ? "        " : "failed:", json_integer_value(json_object_get(f, "shard")),
                    json_string_value(json_object_get(f, "key")), json_string_value(json_object_get(f, "error")));
        }
        json_array_foreach(m.logs, i, f) {
            fprintf(out, "failure log of shard %" JSON_INTEGER_FORMAT ": %s\n",
                    json_integer_value(json_object_get(f, "shard")),
                    json_string_value(json_object_get(f, "failures_log")));
        }
    }
done:
    json_decref(m.samples);
    json_decref(m.logs);
    json_decref(m.shards);
    free(m.seen);
    free(buf);
    sl_client_destroy(c);
    sl_store_close(st);
    return code;
}
