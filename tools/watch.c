/* `sluice watch -- CMD ARGS...`: run any command, record the memory of its whole process tree over time, and say
 * whether it leaks. Uses only the public API (sluice/memwatch.h).
 *
 * CMD is spawned without a shell, in our process group, with our stdin, stdout and stderr: to the terminal it looks
 * as if it had been run directly. We only write to stderr (the verdict, the live line) and to files.
 *
 * Signals: SIGCHLD, SIGINT, SIGTERM and SIGHUP are blocked and taken synchronously with sigtimedwait(), so no handler
 * runs and the sampler threads never see them. A signal someone sent to us with kill() is passed on to CMD; one the
 * terminal sent (Ctrl-C) already reached CMD, which shares our process group, so it is not sent twice. We then wait
 * for CMD to exit, like a shell does.
 *
 * Sampling: programs that run for less than a second need samples every few milliseconds to have a curve at all;
 * programs that run for hours need one per --interval. So two samplers run: a fast one (every 20 ms) for the first
 * 20 intervals (at least 1 s, at most 30 s), and the --interval one for the whole run, which is also the one that
 * streams --timeline. The verdict and the chart use the fast timeline when CMD ended within the fast phase, else the
 * --interval one: either way samples evenly spaced in time, which the trend fit assumes. */
#include "watch.h"

#include "cli_parse.h"
#include "sluice/memwatch.h"
#include "sluice/sluice.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum {
    S_EXIT_USAGE = 2,
    S_EXIT_OUTPUT = 3,       /* CMD exited 0, but --report, --timeline or --chart could not be written */
    S_EXIT_CANNOT_RUN = 126, /* as a shell: found but not executable */
    S_EXIT_NOT_FOUND = 127,  /* as a shell: no such command */
};

#define S_FAST_MS 20u
#define S_FAST_MIN_S 1.0
#define S_FAST_MAX_S 30.0
#define S_FAST_INTERVALS 20 /* the fast phase lasts this many --interval periods (within the bounds above) */
#define S_LIVE_MS 250u
#define S_FLOOR_BELOW_READINGS 5u /* see the use */
#define S_DEFAULT_INTERVAL_MS 1000u

static const char *const s_prog = "sluice: watch";

typedef struct s_opts {
    unsigned interval_ms;
    const char *chart, *timeline, *report;
    bool json, live;
    uint64_t limit_bytes;
    char **cmd; /* NULL-terminated */
    int cmd_argc;
} s_opts;

/* What the sampler threads share with the main thread, behind one lock. Once CMD has exited, its pid may be reaped
 * and reused, so from then on no sampler reads /proc for it: they report the last memory seen (or the kernel's own
 * maximum, when the samplers saw almost nothing). */
typedef struct s_watched {
    pthread_mutex_t lock;
    pid_t pid;
    bool exited;
    uint64_t last_seen;   /* last nonzero reading */
    unsigned readings;    /* nonzero readings so far */
    uint64_t final_bytes; /* what samples report once exited */
} s_watched;

void sl_cli_watch_help(FILE *out) {
    fputs("usage: sluice watch [OPTIONS] [--] CMD [ARGS...]\n"
          "\n"
          "Run CMD and record the memory of its whole process tree (CMD, its children and grandchildren) over time;\n"
          "at exit, say whether memory is flat or growing, and how fast.\n"
          "\n"
          "CMD runs without a shell, with stdin, stdout and stderr passed through: stdout is CMD's alone; everything\n"
          "sluice says goes to stderr or to files. SIGINT/SIGTERM/SIGHUP sent to sluice are passed on to CMD.\n"
          "\n"
          "options:\n"
          "  --interval MS     sample every MS milliseconds (default 1000); the first 20 intervals (at least 1 s,\n"
          "                    at most 30 s) are also sampled every 20 ms, so short programs get a curve too\n"
          "  --chart FILE.svg  write a chart: memory over time, the fitted trend, the verdict in the title\n"
          "  --timeline FILE   stream one CSV line per --interval sample, header first\n"
          "  --json            print the result as one JSON object on stderr instead of the text block\n"
          "  --report FILE     also write that JSON object to FILE\n"
          "  --limit SIZE      judge against this memory limit, e.g. 2G (default: the container's cgroup limit)\n"
          "  --live            a status line on stderr while CMD runs (memory, elapsed, trend; terminals only)\n"
          "  -h, --help        this help\n"
          "\n"
          "Memory is the sum over the tree of each process's PSS (its own pages plus its share of pages shared with\n"
          "other processes: a block shared by 4 forked workers counts once, not 4 times), or RSS where PSS cannot\n"
          "be read. The verdict is a robust (Theil-Sen) fit of memory against time after a warm-up of 20 % of the\n"
          "samples: 'flat', 'growing: +X per minute, limit reached in T', or 'unknown: too few samples'.\n"
          "\n"
          "Output files are checked before CMD runs (exit 2 if one cannot be written) and written like\n"
          "`> FILE`: a device or FIFO is written into, a link followed, a regular file replaced whole\n"
          "(report, chart). One that fails later (a full disk) is said at once.\n"
          "\n"
          "exit status: CMD's own; 128+N if signal N killed it (137 = SIGKILL, e.g. the OOM killer);\n"
          "             2 usage error, 126 CMD cannot be executed, 127 CMD not found;\n"
          "             3 CMD exited 0 but --report, --timeline or --chart could not be written\n",
          out);
}

/* Writes "sluice: watch: <message><tail>" as one line on stderr: control characters in what it quotes (CMD's words,
 * file names) are written as \n, \t, \r or \xHH, as in every message of sluice. */
static void s_vsay(const char *tail, const char *fmt, va_list ap) {
    char small[1024];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    char *text = small;
    if (n >= (int)sizeof(small) && (text = malloc((size_t)n + 1)) != NULL)
        vsnprintf(text, (size_t)n + 1, fmt, again);
    va_end(again);
    fprintf(stderr, "%s: ", s_prog);
    sl_cli_put_one_line(stderr, text ? text : small);
    fprintf(stderr, "%s\n", tail);
    if (text && text != small)
        free(text);
}

static void s_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void s_say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    s_vsay("", fmt, ap);
    va_end(ap);
}

static void s_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void s_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    s_vsay(" (see `sluice watch --help`)", fmt, ap);
    va_end(ap);
}

/* ---- parsing ---- */

/* Returns -1 usage error (reported), 1 help printed, 0 ok. Options end at "--" or at the first word that is not an
 * option: everything after belongs to CMD. */
static int s_parse(int argc, char **argv, s_opts *o) {
    int i = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            sl_cli_watch_help(stdout);
            return 1;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--live") == 0) {
            o->live = true;
            continue;
        }
        static const char *const valued[] = {"--interval", "--chart", "--timeline", "--report", "--limit"};
        size_t k = 0, len = 0;
        for (; k < sizeof(valued) / sizeof(valued[0]); k++) {
            len = strlen(valued[k]);
            if (strncmp(a, valued[k], len) == 0 && (a[len] == '\0' || a[len] == '='))
                break;
        }
        if (k == sizeof(valued) / sizeof(valued[0])) {
            s_usage_error("unknown option '%s'", a);
            return -1;
        }
        const char *value = a[len] == '=' ? a + len + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc) {
                s_usage_error("%s needs a value", a);
                return -1;
            }
            value = argv[++i];
        }
        switch (k) {
        case 0:
            if (!sl_cli_parse_uint(value, 10, 24u * 3600 * 1000, &o->interval_ms)) {
                s_usage_error("--interval '%s': want milliseconds, 10 to 86400000", value);
                return -1;
            }
            break;
        case 1:
            o->chart = value;
            break;
        case 2:
            o->timeline = value;
            break;
        case 3:
            o->report = value;
            break;
        default:
            if (!sl_cli_parse_size(value, &o->limit_bytes) || o->limit_bytes == 0) {
                s_usage_error("--limit '%s': want a size such as 512M or 2G", value);
                return -1;
            }
            break;
        }
        if (!value[0]) {
            s_usage_error("%.*s: empty file name", (int)len, a);
            return -1;
        }
    }
    if (i >= argc) {
        s_usage_error("no command to run: sluice watch [OPTIONS] -- CMD [ARGS...]");
        return -1;
    }
    o->cmd = argv + i;
    o->cmd_argc = argc - i;
    return 0;
}

/* An output file must be writable before CMD runs: finding out afterwards would waste the run. */
static bool s_output_ok(const char *what, const char *path, sl_outfile_mode mode) {
    if (sl_outfile_check(path, mode, what) == 0)
        return true;
    s_say("%s", sl_last_error());
    return false;
}

/* ---- small helpers ---- */

static double s_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *s_fmt_bytes(double bytes, char *buf, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = bytes < 0 ? -bytes : bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap,
             u == 0      ? "%s%.0f %s"
             : v < 9.995 ? "%s%.2f %s"
             : v < 99.95 ? "%s%.1f %s"
                         : "%s%.0f %s",
             bytes < 0 ? "-" : "", v, units[u]);
    return buf;
}

static char *s_fmt_seconds(double s, char *buf, size_t cap) {
    if (s < 10)
        snprintf(buf, cap, "%.2f s", s);
    else if (s < 120)
        snprintf(buf, cap, "%.1f s", s);
    else if (s < 7200)
        snprintf(buf, cap, "%d min %02d s", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, cap, "%d h %02d min", (int)(s / 3600), (int)(s / 60) % 60);
    return buf;
}

/* The command as one line for titles and the summary: words joined by spaces, each escaped as every message escapes
 * names (sl_text_escape: a newline is "\n", a control character "\xHH"), at most cap-1 bytes, "..." when cut. */
static void s_command_line(char **cmd, int n, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len + 1 < cap; i++) {
        const char *w = cmd[i];
        if (i == 0) {
            const char *slash = strrchr(w, '/');
            if (slash && slash[1])
                w = slash + 1;
        }
        if (i)
            buf[len++] = ' ';
        /* What does not fit is cut below; sl_text_escape always terminates what it wrote. */
        len += sl_text_escape(buf + len, cap - len, w, strlen(w));
    }
    if (len >= cap && cap > 4) {
        size_t at = cap - 4;
        while (at > 0 && ((unsigned char)buf[at] & 0xC0) == 0x80)
            at--; /* not inside a UTF-8 sequence */
        memcpy(buf + at, "...", 4);
    }
}

/* s as a JSON string, escaped as every JSON output of sluice is (sl_json_quote: bytes that are not UTF-8 as \u00XX). */
static void s_json_string(FILE *f, const char *s) {
    size_t len = strlen(s), need = sl_json_quote(NULL, 0, s, len) + 1;
    char small[512];
    char *buf = need <= sizeof(small) ? small : malloc(need);
    if (!buf) {
        fputs("\"\"", f);
        return;
    }
    sl_json_quote(buf, need, s, len);
    fputs(buf, f);
    if (buf != small)
        free(buf);
}

/* ---- sampling ---- */

static uint64_t s_sample_rss(void *user_data) {
    s_watched *w = user_data;
    pthread_mutex_lock(&w->lock);
    uint64_t v;
    if (w->exited) {
        v = w->final_bytes;
    } else {
        v = sl_proc_tree_rss(w->pid);
        if (v) {
            w->last_seen = v;
            w->readings++;
        } else {
            v = w->last_seen; /* exiting (a zombie holds no memory): keep the curve where it was */
        }
    }
    pthread_mutex_unlock(&w->lock);
    return v;
}

static int s_start_sampler(s_watched *w, unsigned interval_ms, const s_opts *o, const char *timeline,
                           sl_memwatch **out) {
    sl_memwatch_options mo;
    memset(&mo, 0, sizeof(mo));
    mo.interval_ms = interval_ms;
    mo.timeline_path = timeline;
    mo.limit_bytes = o->limit_bytes;
    mo.rss = s_sample_rss;
    mo.user_data = w;
    int rc = sl_memwatch_start(&mo, out);
    if (rc < 0) {
        const char *why = sl_last_error();
        if (timeline)
            s_say("%s (the watch goes on without --timeline)", why[0] ? why : sl_strerror(rc));
        else
            s_say("cannot sample memory: %s", why[0] ? why : sl_strerror(rc));
        *out = NULL;
    }
    return rc;
}

/* Says, once, that the --timeline file could not be written (a full disk): at once while CMD runs, not at its end.
 * True once it has been said. */
static bool s_timeline_failed(const sl_memwatch *slow, bool *said) {
    char why[8192];
    if (!*said && slow && sl_memwatch_error(slow, why, sizeof(why)) < 0) {
        s_say("%s (the timeline ends there; the watch goes on)", why);
        *said = true;
    }
    return *said;
}

/* ---- the live line ---- */

typedef struct s_live {
    bool on;
    sl_timeline *tl; /* our own copy of the latest samples, for the trend */
    double last_t;
    bool shown;
} s_live;

static void s_live_update(s_live *lv, const sl_memwatch *mw, uint64_t limit_bytes) {
    sl_mem_sample s;
    sl_memwatch_last(mw, &s);
    if (s.t_s > lv->last_t || !lv->shown) {
        sl_timeline_add(lv->tl, &s);
        lv->last_t = s.t_s;
    }
    sl_mem_verdict v;
    sl_mem_judge(lv->tl, limit_bytes, &v);
    char mem[32], el[32], line[512];
    int n = snprintf(line, sizeof(line), "watch: %s  %s  trend: %s", s_fmt_bytes((double)s.rss_bytes, mem, sizeof(mem)),
                     s_fmt_seconds(s.t_s, el, sizeof(el)), v.trend == SL_MEM_UNKNOWN ? "(measuring)" : v.text);
    struct winsize ws;
    size_t width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10 ? ws.ws_col - 1 : 79;
    if (n > 0 && (size_t)n > width)
        line[width] = '\0';
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    lv->shown = true;
}

static void s_live_clear(s_live *lv) {
    if (lv->shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

/* ---- the result ---- */

typedef struct s_result {
    int status;        /* from wait4 */
    int exit_code;     /* what sluice returns */
    double duration_s; /* spawn to exit */
    uint64_t max_rss;  /* kernel's maximum RSS of the largest single process (CMD or a descendant it reaped); 0 if
                        * unknown (not above our own, which it may be copied from) */
    uint64_t peak;     /* of the tree, over every sample of both samplers */
    size_t samples;
    const char *sampling; /* how the judged samples were taken, for humans */
    char sampling_buf[96];
    sl_mem_verdict v;
} s_result;

static void s_print_json(FILE *f, const s_opts *o, const s_result *r) {
    static const char *const trends[] = {"unknown", "flat", "growing"};
    fputs("{\"command\":[", f);
    for (int i = 0; i < o->cmd_argc; i++) {
        if (i)
            fputc(',', f);
        s_json_string(f, o->cmd[i]);
    }
    fprintf(f, "],\"exit_code\":%d,", r->exit_code);
    if (WIFSIGNALED(r->status))
        fprintf(f, "\"signal\":%d,", WTERMSIG(r->status));
    else
        fputs("\"signal\":null,", f);
    fprintf(f, "\"duration_s\":%.3f,\"peak_bytes\":%" PRIu64 ",\"max_rss_bytes\":", r->duration_s, r->peak);
    if (r->max_rss)
        fprintf(f, "%" PRIu64, r->max_rss);
    else
        fputs("null", f);
    fprintf(f, ",\"samples\":%zu,\"interval_ms\":%u,\"verdict\":{\"trend\":\"%s\",\"text\":", r->samples,
            o->interval_ms, trends[r->v.trend <= 2 ? r->v.trend : 0]);
    s_json_string(f, r->v.text);
    fprintf(f, ",\"bytes_per_second\":%.1f,\"limit_bytes\":%" PRIu64 ",\"limit_in_s\":", r->v.bytes_per_second,
            r->v.limit_bytes);
    if (r->v.limit_in_s >= 0)
        fprintf(f, "%.1f", r->v.limit_in_s);
    else
        fputs("null", f);
    fprintf(f, ",\"samples_used\":%zu},\"chart\":", r->v.samples_used);
    if (o->chart)
        s_json_string(f, o->chart);
    else
        fputs("null", f);
    fputs(",\"timeline\":", f);
    if (o->timeline)
        s_json_string(f, o->timeline);
    else
        fputs("null", f);
    fputs("}\n", f);
}

/* A line of the summary naming a file, escaped like the command (sl_text_escape). */
static void s_print_name(const char *label, const char *name) {
    size_t len = strlen(name), need = sl_text_escape(NULL, 0, name, len) + 1;
    char *buf = malloc(need);
    if (buf)
        sl_text_escape(buf, need, name, len);
    fprintf(stderr, "  %-12s %s\n", label, buf ? buf : "(out of memory)");
    free(buf);
}

static void s_print_text(const s_opts *o, const s_result *r, const char *cmdline) {
    char a[32], b[32], d[32], exit_text[96];
    if (WIFSIGNALED(r->status))
        snprintf(exit_text, sizeof(exit_text), "killed by signal %d (%s), exit status %d", WTERMSIG(r->status),
                 strsignal(WTERMSIG(r->status)), r->exit_code);
    else
        snprintf(exit_text, sizeof(exit_text), "exit status %d", r->exit_code);
    fprintf(stderr, "sluice watch: %s\n", cmdline);
    fprintf(stderr, "  peak memory  %s (whole process tree, PSS)", s_fmt_bytes((double)r->peak, a, sizeof(a)));
    if (r->max_rss)
        fprintf(stderr, "; largest single process: %s RSS", s_fmt_bytes((double)r->max_rss, b, sizeof(b)));
    fprintf(stderr, "\n  duration     %s, %s\n", s_fmt_seconds(r->duration_s, d, sizeof(d)), exit_text);
    fprintf(stderr, "  samples      %zu, %s\n", r->samples, r->sampling);
    fprintf(stderr, "  verdict      %s\n", r->v.text[0] ? r->v.text : "unknown");
    if (o->chart)
        s_print_name("chart", o->chart);
    if (o->timeline)
        s_print_name("timeline", o->timeline);
}

/* The evenly spaced samples to judge and draw (see the top of the file). *owned is set when the returned timeline
 * was built here and must be destroyed by the caller. */
static const sl_timeline *s_pick_timeline(sl_memwatch *fast, bool fast_whole_run, sl_memwatch *slow, const s_opts *o,
                                          s_result *r, sl_timeline **owned) {
    *owned = NULL;
    const sl_timeline *slow_tl = slow ? sl_memwatch_timeline(slow) : NULL;
    const sl_timeline *fast_tl = fast ? sl_memwatch_timeline(fast) : NULL;
    if (fast_tl && (fast_whole_run || !slow_tl)) {
        snprintf(r->sampling_buf, sizeof(r->sampling_buf), "every %u ms", S_FAST_MS);
        r->sampling = r->sampling_buf;
        return fast_tl;
    }
    snprintf(r->sampling_buf, sizeof(r->sampling_buf), "every %u ms", o->interval_ms);
    r->sampling = r->sampling_buf;
    if (!fast_tl || !slow_tl || sl_timeline_count(slow_tl) >= S_FAST_INTERVALS)
        return slow_tl;
    /* A long --interval and a run past the fast phase: the fast samples, then the slower ones after them. */
    sl_timeline *both = sl_timeline_new(0);
    if (!both)
        return slow_tl;
    size_t nf = sl_timeline_count(fast_tl), ns = sl_timeline_count(slow_tl);
    double fast_end = 0;
    for (size_t i = 0; i < nf; i++) {
        const sl_mem_sample *s = sl_timeline_get(fast_tl, i);
        sl_timeline_add(both, s);
        fast_end = s->t_s;
    }
    for (size_t i = 0; i < ns; i++) {
        const sl_mem_sample *s = sl_timeline_get(slow_tl, i);
        if (s->t_s > fast_end)
            sl_timeline_add(both, s);
    }
    snprintf(r->sampling_buf, sizeof(r->sampling_buf), "every %u ms for %.0f s, then every %u ms", S_FAST_MS, fast_end,
             o->interval_ms);
    *owned = both;
    return both;
}

/* ---- running CMD ---- */

static int s_spawn(const s_opts *o, const sigset_t *child_mask, pid_t *pid) {
    posix_spawnattr_t attr;
    int e = posix_spawnattr_init(&attr);
    if (e == 0) {
        posix_spawnattr_setsigmask(&attr, child_mask);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
        e = posix_spawnp(pid, o->cmd[0], NULL, &attr, o->cmd, environ);
        posix_spawnattr_destroy(&attr);
    }
    if (e == 0)
        return 0;
    if (e == ENOENT) {
        s_say("%s: command not found", o->cmd[0]);
        return S_EXIT_NOT_FOUND;
    }
    s_say("%s: cannot run: %s", o->cmd[0], strerror(e));
    return e == EACCES || e == ENOEXEC || e == EISDIR || e == EPERM ? S_EXIT_CANNOT_RUN : S_EXIT_NOT_FOUND;
}

/* Waits for CMD to exit (without reaping it), passing signals on, ending the fast phase on time and drawing the live
 * line. */
static void s_wait_exit(pid_t pid, const sigset_t *waited, double start_s, double fast_end_s, sl_memwatch **fast,
                        sl_memwatch *slow, s_live *lv, uint64_t limit_bytes, bool *timeline_said) {
    double next_live = start_s + S_LIVE_MS / 1000.0;
    for (;;) {
        if (lv->shown && !*timeline_said && slow && sl_memwatch_error(slow, NULL, 0) < 0)
            s_live_clear(lv);
        s_timeline_failed(slow, timeline_said);
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        int wr = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if ((wr == 0 && si.si_pid == pid) || (wr < 0 && errno != EINTR))
            return; /* exited (a zombie until wait4), or nothing left to wait for */
        double now = s_now_s(), wake = now + 1.0;
        if (*fast && now >= fast_end_s) {
            sl_memwatch_stop(*fast); /* its timeline stays; only the --interval sampler goes on */
            *fast = NULL;
        }
        if (*fast && fast_end_s < wake)
            wake = fast_end_s;
        if (lv->on) {
            if (now >= next_live) {
                s_live_update(lv, *fast ? *fast : slow, limit_bytes);
                next_live = now + S_LIVE_MS / 1000.0;
            }
            if (next_live < wake)
                wake = next_live;
        }
        double wait_s = wake > now ? wake - now : 0;
        struct timespec ts = {(time_t)wait_s, (long)((wait_s - (double)(time_t)wait_s) * 1e9)};
        int sig = sigtimedwait(waited, &si, &ts);
        /* Sent by a process (si_code <= 0: kill, sigqueue, tgkill), not by the terminal to the whole group. */
        if ((sig == SIGINT || sig == SIGTERM || sig == SIGHUP) && si.si_code <= 0)
            kill(pid, sig);
    }
}

int sl_cli_watch(int argc, char **argv) {
    s_opts o;
    memset(&o, 0, sizeof(o));
    o.interval_ms = S_DEFAULT_INTERVAL_MS;
    int pr = s_parse(argc, argv, &o);
    if (pr)
        return pr < 0 ? S_EXIT_USAGE : 0;
    if ((o.chart && !s_output_ok("--chart", o.chart, SL_OUTFILE_REPLACE)) ||
        (o.timeline && !s_output_ok("--timeline", o.timeline, SL_OUTFILE_STREAM)) ||
        (o.report && !s_output_ok("--report", o.report, SL_OUTFILE_REPLACE)))
        return S_EXIT_USAGE;

    /* Blocked before CMD exists, so neither its exit nor a signal can slip in before we wait for them; the sampler
     * threads inherit the mask. CMD gets the mask we were started with. SIGPIPE is blocked so that a closed stderr
     * gives us EPIPE, never kills us before CMD is reaped. */
    sigset_t waited, blocked, old_mask;
    sigemptyset(&waited);
    sigaddset(&waited, SIGCHLD);
    sigaddset(&waited, SIGINT);
    sigaddset(&waited, SIGTERM);
    sigaddset(&waited, SIGHUP);
    blocked = waited;
    sigaddset(&blocked, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &blocked, &old_mask);
    /* An inherited SIG_IGN for SIGCHLD would make the kernel reap CMD behind our back. */
    signal(SIGCHLD, SIG_DFL);

    s_watched w;
    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.lock, NULL);
    /* A spawned child starts life in a copy (or, with vfork, a share) of our memory, and the kernel's maximum RSS
     * for it includes that: a maximum not above ours says nothing about CMD. */
    struct rusage self;
    uint64_t self_max_rss = getrusage(RUSAGE_SELF, &self) == 0 ? (uint64_t)self.ru_maxrss * 1024 : 0;
    double start_s = s_now_s();
    int rc = s_spawn(&o, &old_mask, &w.pid);
    if (rc) {
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
        pthread_mutex_destroy(&w.lock);
        return rc;
    }

    bool use_fast = o.interval_ms > S_FAST_MS;
    double fast_s = (double)o.interval_ms * S_FAST_INTERVALS / 1000.0;
    fast_s = fast_s < S_FAST_MIN_S ? S_FAST_MIN_S : fast_s > S_FAST_MAX_S ? S_FAST_MAX_S : fast_s;
    sl_memwatch *fast = NULL, *slow = NULL, *fast_running = NULL;
    if (use_fast && s_start_sampler(&w, S_FAST_MS, &o, NULL, &fast) == 0)
        fast_running = fast;
    bool outputs_failed = false; /* an output file could not be written: exit 3 where CMD exited 0 */
    bool timeline_said = false;
    if (s_start_sampler(&w, o.interval_ms, &o, o.timeline, &slow) < 0 && o.timeline) {
        o.timeline = NULL; /* said why above; the watch itself goes on */
        outputs_failed = true;
        s_start_sampler(&w, o.interval_ms, &o, NULL, &slow);
    }

    s_live lv = {.on = o.live && isatty(STDERR_FILENO) && (fast || slow)};
    if (lv.on && !(lv.tl = sl_timeline_new(128)))
        lv.on = false;
    s_wait_exit(w.pid, &waited, start_s, start_s + fast_s, &fast_running, slow, &lv, o.limit_bytes, &timeline_said);
    bool fast_whole_run = fast_running != NULL;

    /* CMD is a zombie now: its pid cannot be reused until we reap it, so stop reading /proc for it first. */
    pthread_mutex_lock(&w.lock);
    w.exited = true;
    w.final_bytes = w.last_seen;
    pthread_mutex_unlock(&w.lock);

    s_result r;
    memset(&r, 0, sizeof(r));
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    pid_t got;
    while ((got = wait4(w.pid, &r.status, 0, &ru)) < 0 && errno == EINTR) {
    }
    r.duration_s = s_now_s() - start_s;
    if (got == w.pid) {
        r.max_rss = (uint64_t)ru.ru_maxrss * 1024;
        if (r.max_rss <= self_max_rss + self_max_rss / 8 + ((uint64_t)1 << 20))
            r.max_rss = 0;
        r.exit_code = WIFSIGNALED(r.status) ? 128 + WTERMSIG(r.status) : WEXITSTATUS(r.status);
    } else {
        s_say("%s: lost track of the command: %s", o.cmd[0], strerror(errno));
        r.exit_code = S_EXIT_NOT_FOUND;
    }
    /* A CMD that lived a few milliseconds was barely seen: the kernel's maximum RSS (of the largest single process,
     * shared pages counted whole) becomes its last sample, so it has at least a peak. When the samplers saw it live
     * for a while, their readings stand: mixing RSS into a curve of PSS would fake a jump at the end. */
    pthread_mutex_lock(&w.lock);
    if (w.readings < S_FLOOR_BELOW_READINGS && r.max_rss > w.final_bytes)
        w.final_bytes = r.max_rss;
    pthread_mutex_unlock(&w.lock);

    s_live_clear(&lv);
    sl_timeline_destroy(lv.tl);
    if (fast_running)
        sl_memwatch_stop(fast_running);
    if (slow)
        sl_memwatch_stop(slow);
    if (s_timeline_failed(slow, &timeline_said))
        outputs_failed = true;

    char cmdline[200];
    s_command_line(o.cmd, o.cmd_argc, cmdline, sizeof(cmdline));
    sl_timeline *owned = NULL;
    const sl_timeline *tl = s_pick_timeline(fast, fast_whole_run, slow, &o, &r, &owned);
    if (tl) {
        r.samples = sl_timeline_count(tl);
        sl_mem_judge(tl, o.limit_bytes, &r.v);
    } else {
        r.sampling = "none: the sampler could not start";
        r.v.trend = SL_MEM_UNKNOWN;
        snprintf(r.v.text, sizeof(r.v.text), "unknown: no samples");
        r.v.limit_in_s = r.v.limit_at_object = -1;
    }
    if (fast && sl_timeline_peak_rss(sl_memwatch_timeline(fast)) > r.peak)
        r.peak = sl_timeline_peak_rss(sl_memwatch_timeline(fast));
    if (slow && sl_timeline_peak_rss(sl_memwatch_timeline(slow)) > r.peak)
        r.peak = sl_timeline_peak_rss(sl_memwatch_timeline(slow));

    if (o.chart && tl) {
        char title[256];
        snprintf(title, sizeof(title), "sluice watch: %s", cmdline);
        int crc = sl_mem_chart_svg_named(tl, &r.v, title, "process tree PSS", o.chart);
        if (crc < 0) {
            const char *why = sl_last_error();
            s_say("--chart %s: %s", o.chart, why[0] ? why : sl_strerror(crc));
            outputs_failed = true;
        }
    }
    if (o.report) {
        sl_outfile *f = NULL;
        int frc = sl_outfile_open(o.report, SL_OUTFILE_REPLACE, "--report", &f);
        if (frc == 0) {
            s_print_json(sl_outfile_stream(f), &o, &r);
            frc = sl_outfile_close(f);
        }
        if (frc < 0) {
            s_say("%s", sl_last_error());
            outputs_failed = true;
        }
    }
    if (o.json)
        s_print_json(stderr, &o, &r);
    else
        s_print_text(&o, &r, cmdline);
    fflush(stderr);

    sl_timeline_destroy(owned);
    sl_memwatch_destroy(fast);
    sl_memwatch_destroy(slow);
    pthread_mutex_destroy(&w.lock);
    /* A signal that came after CMD was reaped has nobody to go to; unblocked, it would replace CMD's exit status with
     * our own death. */
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&waited, NULL, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    /* CMD's own status, unless it succeeded and what was asked of the watch (a file) could not be done. */
    return outputs_failed && r.exit_code == 0 ? S_EXIT_OUTPUT : r.exit_code;
}
