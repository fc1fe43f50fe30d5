/* The memory chart: one self-contained SVG a stranger can read. Memory (RSS, or what the caller names: `sluice watch`
 * draws a process tree's PSS) over time on the left axis (MiB), the limit as a
 * dashed line, objects per second on the right axis, the fitted trend over the judged span, the verdict in the title.
 * Numbers in the markup are formatted with integer arithmetic, so a caller's setlocale() cannot put commas in them. */
#include "fail.h"
#include "memfit.h"

#include "sluice/memwatch.h"
#include "sluice/outfile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_W 960
#define S_H 580
#define S_LEFT 90.0
#define S_RIGHT 870.0
#define S_TOP 96.0
#define S_BOTTOM 460.0
#define S_MIB (1024.0 * 1024.0)
#define S_TICKS 5

#define S_RSS_COLOR "#1f77b4"
#define S_CG_COLOR "#9e9e9e"
#define S_RATE_COLOR "#2ca02c"
#define S_TREND_COLOR "#ff7f0e"
#define S_LIMIT_COLOR "#d62728"

/* 0, 1 or 2 decimals, '.' always. */
static const char *s_num(char *buf, size_t size, double v, int decimals) {
    long long scale = decimals >= 2 ? 100 : decimals == 1 ? 10 : 1;
    bool neg = v < 0;
    long long q = (long long)((neg ? -v : v) * (double)scale + 0.5);
    if (scale == 1)
        snprintf(buf, size, "%s%lld", neg && q ? "-" : "", q);
    else
        snprintf(buf, size, "%s%lld.%0*lld", neg && q ? "-" : "", q / scale, decimals >= 2 ? 2 : 1, q % scale);
    return buf;
}

#define S_N(v) s_num((char[32]){0}, 32, (v), 1)

static void s_escaped(FILE *f, const char *text) {
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        switch (*p) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        default:
            /* Control characters are not allowed in XML 1.0 at all. */
            if (*p < 0x20 && *p != '\t' && *p != '\n')
                fputc(' ', f);
            else
                fputc(*p, f);
        }
    }
}

/* The smallest of 1, 2, 2.5, 5 x 10^k that is >= x (x > 0); without 2.5 when quarter is false (time reads oddly in
 * 2.5-minute steps). */
static double s_nice(double x, bool quarter) {
    double e = 1;
    while (e * 10 <= x)
        e *= 10;
    while (e > x)
        e /= 10;
    static const double steps[] = {1, 2, 2.5, 5, 10};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        if ((quarter || steps[i] != 2.5) && steps[i] * e >= x)
            return steps[i] * e;
    return 10 * e;
}

/* Decimals that show every multiple of step exactly (2.5 needs one, 0.25 two). */
static int s_decimals(double step) {
    for (int d = 0; d < 2; d++, step *= 10) {
        double frac = step - (double)(long long)step;
        if (frac < 1e-9 || frac > 1 - 1e-9)
            return d;
    }
    return 2;
}

typedef struct s_scale {
    double min, max; /* data range drawn */
    double lo, hi;   /* pixels */
} s_scale;

static double s_map(const s_scale *sc, double v) {
    double span = sc->max - sc->min;
    return sc->lo + (span > 0 ? (v - sc->min) / span : 0) * (sc->hi - sc->lo);
}

/* One legend entry at (*x, *y), wrapping to a new row when it would not fit. */
static void s_legend_item(FILE *f, double *x, double *y, const char *color, const char *dash, double width,
                          const char *label) {
    double w = 34 + 7.0 * (double)strlen(label); /* 13 px sans-serif averages under 7 px a character */
    if (*x + w > S_W - 20) {
        *x = S_LEFT;
        *y += 20;
    }
    fprintf(f, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" stroke-width=\"%s\"%s%s%s/>\n", S_N(*x),
            S_N(*y - 4), S_N(*x + 28), S_N(*y - 4), color, S_N(width), dash ? " stroke-dasharray=\"" : "",
            dash ? dash : "", dash ? "\"" : "");
    fprintf(f, "<text x=\"%s\" y=\"%s\">", S_N(*x + 34), S_N(*y));
    s_escaped(f, label);
    fputs("</text>\n", f);
    *x += w + 26;
}

/* Objects per second at sample i, averaged over the `window` samples before it: per-interval counts jitter. */
static bool s_rate(const sl_timeline *tl, size_t i, size_t window, double *rate) {
    const sl_mem_sample *s = sl_timeline_get(tl, i), *p = sl_timeline_get(tl, i >= window ? i - window : 0);
    double dt = s->t_s - p->t_s;
    if (dt <= 0 || s->objects < p->objects)
        return false;
    *rate = (double)(s->objects - p->objects) / dt;
    return true;
}

/* What the memory line measures, in the places the chart names it. */
typedef struct s_names {
    const char *desc, *axis, *legend, *peak;
} s_names;

static void s_draw(FILE *f, const sl_timeline *tl, const sl_mem_verdict *v, const char *title, const s_names *nm) {
    const size_t n = sl_timeline_count(tl);
    const sl_mem_sample *first = n ? sl_timeline_get(tl, 0) : NULL, *last = n ? sl_timeline_get(tl, n - 1) : NULL;
    char b1[48], b2[48];

    /* Time axis unit chosen so the tick labels stay short. */
    double t0 = first ? first->t_s : 0, t1 = last ? last->t_s : 0;
    if (t1 <= t0)
        t1 = t0 + 1;
    double span = t1 - t0, unit = 1;
    const char *unit_name = "s";
    if (span >= 2 * 3600) {
        unit = 3600;
        unit_name = "h";
    } else if (span >= 120) {
        unit = 60;
        unit_name = "min";
    }
    double tstep = s_nice(span / unit / 6, false);
    double tmin = (double)(long long)(t0 / unit / tstep) * tstep;
    s_scale tx = {tmin * unit, t1, S_LEFT, S_RIGHT};

    /* The trend over the judged span: intercept = median of rss - slope * t there, as the verdict fitted it. */
    bool has_trend = false;
    double trend_t0 = 0, trend_y0 = 0, trend_y1 = 0;
    size_t skip = sl__mem_warmup(n);
    if (v->trend != SL_MEM_UNKNOWN && n > skip) {
        double *r = malloc((n - skip) * sizeof(double));
        if (r) {
            for (size_t i = skip; i < n; i++) {
                const sl_mem_sample *s = sl_timeline_get(tl, i);
                r[i - skip] = (double)s->rss_bytes - v->bytes_per_second * s->t_s;
            }
            double a = sl__median(r, n - skip);
            free(r);
            trend_t0 = sl_timeline_get(tl, skip)->t_s;
            trend_y0 = a + v->bytes_per_second * trend_t0;
            trend_y1 = a + v->bytes_per_second * t1;
            has_trend = true;
        }
    }

    /* RSS axis: the data, the trend, and the limit when the limit is not so far above that the curve would flatten. */
    double ymax = 0, rate_max = 0;
    const size_t rate_window = n / 60 > 1 ? n / 60 : 1;
    bool has_cg = false, has_rate = false;
    for (size_t i = 0; i < n; i++) {
        const sl_mem_sample *s = sl_timeline_get(tl, i);
        ymax = (double)s->rss_bytes > ymax ? (double)s->rss_bytes : ymax;
        /* The container's usage matters next to its limit; without one it is every process in the container and
         * would flatten this program's own curve (it stays in the CSV timeline). */
        if (s->cg_usage_bytes && v->limit_bytes) {
            has_cg = true;
            ymax = (double)s->cg_usage_bytes > ymax ? (double)s->cg_usage_bytes : ymax;
        }
        double rate;
        if (i > 0 && s_rate(tl, i, rate_window, &rate))
            rate_max = rate > rate_max ? rate : rate_max;
    }
    has_rate = first && last->objects > first->objects;
    if (has_trend) {
        ymax = trend_y0 > ymax ? trend_y0 : ymax;
        ymax = trend_y1 > ymax ? trend_y1 : ymax;
    }
    const double limit = (double)v->limit_bytes;
    const bool limit_on_chart = limit > 0 && (ymax == 0 || limit <= 4 * ymax);
    if (limit_on_chart && limit > ymax)
        ymax = limit;
    double ystep = s_nice((ymax > 0 ? ymax * 1.05 : S_MIB) / S_MIB / S_TICKS, true);
    double ytop = ystep * S_TICKS;
    while (ytop * S_MIB < ymax)
        ytop += ystep;
    int yticks = (int)(ytop / ystep + 0.5);
    s_scale sy = {0, ytop * S_MIB, S_BOTTOM, S_TOP};
    double rstep = s_nice((rate_max > 0 ? rate_max : 1) / yticks, true);
    s_scale sr = {0, rstep * yticks, S_BOTTOM, S_TOP};

    const char *color = v->trend == SL_MEM_GROWING ? S_LIMIT_COLOR : v->trend == SL_MEM_FLAT ? "#1e8449" : "#555555";
    const char *heading = title && *title ? title : "Memory over time";

    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\" fill=\"#222222\">\n",
            S_W, S_H, S_W, S_H);
    fputs("<title>", f);
    s_escaped(f, heading);
    fputs(": memory ", f);
    s_escaped(f, v->text);
    fputs("</title>\n<desc>", f);
    s_escaped(f, nm->desc);
    fputs(" sampled over time, with the memory limit, the objects processed per second and a robust (Theil-Sen) trend "
          "line. Drawn by sluice.</desc>\n",
          f);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", S_W, S_H);
    fprintf(f, "<text x=\"%d\" y=\"34\" text-anchor=\"middle\" font-size=\"20\" font-weight=\"bold\">", S_W / 2);
    s_escaped(f, heading);
    fprintf(f, "</text>\n<text x=\"%d\" y=\"64\" text-anchor=\"middle\" font-size=\"16\" fill=\"%s\">Memory: ", S_W / 2,
            color);
    s_escaped(f, v->text);
    if (v->trend == SL_MEM_FLAT)
        fputs(" (no lasting growth after the warm-up)", f);
    fputs("</text>\n", f);

    /* Grid and tick labels. */
    fputs("<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n", f);
    for (int k = 0; k <= yticks; k++) {
        double y = s_map(&sy, k * ystep * S_MIB);
        fprintf(f, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\"/>\n", S_N(S_LEFT), S_N(y), S_N(S_RIGHT), S_N(y));
    }
    for (double t = tmin; t * unit <= t1 + 1e-9; t += tstep) {
        double x = s_map(&tx, t * unit);
        fprintf(f, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\"/>\n", S_N(x), S_N(S_TOP), S_N(x), S_N(S_BOTTOM));
    }
    fputs("</g>\n<g font-size=\"12\">\n", f);
    for (int k = 0; k <= yticks; k++) {
        double y = s_map(&sy, k * ystep * S_MIB);
        fprintf(f, "<text x=\"%s\" y=\"%s\" text-anchor=\"end\">%s</text>\n", S_N(S_LEFT - 8), S_N(y + 4),
                s_num(b1, sizeof(b1), k * ystep, s_decimals(ystep)));
        if (has_rate)
            fprintf(f, "<text x=\"%s\" y=\"%s\" fill=\"%s\">%s</text>\n", S_N(S_RIGHT + 8), S_N(y + 4), S_RATE_COLOR,
                    s_num(b1, sizeof(b1), k * rstep, s_decimals(rstep)));
    }
    for (double t = tmin; t * unit <= t1 + 1e-9; t += tstep)
        fprintf(f, "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\">%s</text>\n", S_N(s_map(&tx, t * unit)),
                S_N(S_BOTTOM + 18), s_num(b1, sizeof(b1), t, s_decimals(tstep)));
    fputs("</g>\n", f);
    fprintf(f, "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"none\" stroke=\"#444444\"/>\n", S_N(S_LEFT),
            S_N(S_TOP), S_N(S_RIGHT - S_LEFT), S_N(S_BOTTOM - S_TOP));

    /* The warm-up, which the verdict does not judge. */
    if (has_trend) {
        double wx = s_map(&tx, trend_t0);
        fprintf(f, "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"#000000\" fill-opacity=\"0.05\"/>\n",
                S_N(S_LEFT), S_N(S_TOP), S_N(wx - S_LEFT), S_N(S_BOTTOM - S_TOP));
        fprintf(f, "<text x=\"%s\" y=\"%s\" font-size=\"11\" fill=\"#777777\">warm-up</text>\n", S_N(S_LEFT + 4),
                S_N(S_TOP + 14));
    }

    /* Axis titles. */
    fprintf(f, "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\">time since start (%s)</text>\n",
            S_N((S_LEFT + S_RIGHT) / 2), S_N(S_BOTTOM + 42), unit_name);
    fprintf(f, "<text x=\"24\" y=\"%s\" text-anchor=\"middle\" transform=\"rotate(-90 24 %s)\" fill=\"%s\">",
            S_N((S_TOP + S_BOTTOM) / 2), S_N((S_TOP + S_BOTTOM) / 2), S_RSS_COLOR);
    s_escaped(f, nm->axis);
    fputs(" (MiB)</text>\n", f);
    if (has_rate)
        fprintf(f,
                "<text x=\"%d\" y=\"%s\" text-anchor=\"middle\" transform=\"rotate(90 %d %s)\" fill=\"%s\">"
                "objects done per second</text>\n",
                S_W - 24, S_N((S_TOP + S_BOTTOM) / 2), S_W - 24, S_N((S_TOP + S_BOTTOM) / 2), S_RATE_COLOR);

    /* The limit. */
    if (limit > 0) {
        sl__fmt_bytes(limit, b2, sizeof(b2));
        if (limit_on_chart) {
            double y = s_map(&sy, limit);
            fprintf(f,
                    "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" stroke-width=\"2\" "
                    "stroke-dasharray=\"8 5\"/>\n",
                    S_N(S_LEFT), S_N(y), S_N(S_RIGHT), S_N(y), S_LIMIT_COLOR);
            fprintf(f, "<text x=\"%s\" y=\"%s\" text-anchor=\"end\" fill=\"%s\">memory limit %s</text>\n",
                    S_N(S_RIGHT - 6), S_N(y - 6), S_LIMIT_COLOR, b2);
        } else {
            fprintf(f,
                    "<text x=\"%s\" y=\"%s\" text-anchor=\"end\" fill=\"%s\">memory limit %s (far above the "
                    "chart)</text>\n",
                    S_N(S_RIGHT - 6), S_N(S_TOP + 16), S_LIMIT_COLOR, b2);
        }
    }

    /* The series: cgroup usage underneath, objects/s, RSS on top. */
    if (has_cg) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", S_CG_COLOR);
        for (size_t i = 0; i < n; i++) {
            const sl_mem_sample *s = sl_timeline_get(tl, i);
            fprintf(f, "%s%s,%s", i ? " " : "", S_N(s_map(&tx, s->t_s)), S_N(s_map(&sy, (double)s->cg_usage_bytes)));
        }
        fputs("\"/>\n", f);
    }
    if (has_rate) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" stroke-opacity=\"0.8\" points=\"",
                S_RATE_COLOR);
        bool any = false;
        for (size_t i = 1; i < n; i++) {
            double rate;
            if (!s_rate(tl, i, rate_window, &rate))
                continue;
            fprintf(f, "%s%s,%s", any ? " " : "", S_N(s_map(&tx, sl_timeline_get(tl, i)->t_s)), S_N(s_map(&sr, rate)));
            any = true;
        }
        fputs("\"/>\n", f);
    }
    if (n > 0) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" stroke-linejoin=\"round\" points=\"",
                S_RSS_COLOR);
        for (size_t i = 0; i < n; i++) {
            const sl_mem_sample *s = sl_timeline_get(tl, i);
            fprintf(f, "%s%s,%s", i ? " " : "", S_N(s_map(&tx, s->t_s)), S_N(s_map(&sy, (double)s->rss_bytes)));
        }
        fputs("\"/>\n", f);
    } else {
        fprintf(f, "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\" font-size=\"16\">no samples</text>\n",
                S_N((S_LEFT + S_RIGHT) / 2), S_N((S_TOP + S_BOTTOM) / 2));
    }
    if (has_trend) {
        double y0 = trend_y0 < 0 ? 0 : trend_y0, y1 = trend_y1 < 0 ? 0 : trend_y1;
        fprintf(f,
                "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" stroke-width=\"2.5\" "
                "stroke-dasharray=\"2 5\" stroke-linecap=\"round\"/>\n",
                S_N(s_map(&tx, trend_t0)), S_N(s_map(&sy, y0)), S_N(s_map(&tx, t1)), S_N(s_map(&sy, y1)),
                S_TREND_COLOR);
    }

    /* Legend, then one line of context. */
    double lx = S_LEFT, ly = 528;
    char legend[160];
    snprintf(legend, sizeof(legend), "%s (left axis)", nm->legend);
    s_legend_item(f, &lx, &ly, S_RSS_COLOR, NULL, 2.5, legend);
    if (has_cg)
        s_legend_item(f, &lx, &ly, S_CG_COLOR, NULL, 1.5, "container (cgroup) usage");
    if (limit > 0)
        s_legend_item(f, &lx, &ly, S_LIMIT_COLOR, "8 5", 2, "memory limit");
    if (has_trend)
        s_legend_item(f, &lx, &ly, S_TREND_COLOR, "2 5", 2.5, "trend (robust fit)");
    if (has_rate)
        s_legend_item(f, &lx, &ly, S_RATE_COLOR, NULL, 1.5, "objects/s (right axis)");
    fprintf(f, "<text x=\"%s\" y=\"%d\" font-size=\"11\" fill=\"#666666\">", S_N(S_LEFT), S_H - 8);
    fprintf(f, "%zu samples over %s, peak ", n, sl__fmt_duration(t1 - t0, b1, sizeof(b1)));
    s_escaped(f, nm->peak);
    fprintf(f, " %s", sl__fmt_bytes((double)sl_timeline_peak_rss(tl), b2, sizeof(b2)));
    if (last && last->objects)
        fprintf(f, ", %llu objects", (unsigned long long)last->objects);
    fputs(". The trend is fitted after a warm-up (the first 20 % of the run).</text>\n</svg>\n", f);
}

int sl_mem_chart_svg(const sl_timeline *tl, const sl_mem_verdict *v, const char *title, const char *path) {
    return sl_mem_chart_svg_named(tl, v, title, NULL, path);
}

int sl_mem_chart_svg_named(const sl_timeline *tl, const sl_mem_verdict *v, const char *title, const char *memory_name,
                           const char *path) {
    s_names nm = {"Resident memory (RSS) of the watched program", "resident memory, RSS", "RSS", "RSS"};
    char desc[160];
    if (memory_name && *memory_name) {
        snprintf(desc, sizeof(desc), "Memory (%s) of the watched program", memory_name);
        nm = (s_names){desc, memory_name, memory_name, memory_name};
    }
    if (!tl || !path)
        return sl__fail(SL_EINVAL, "memory chart: no timeline or no path");
    sl_mem_verdict judged;
    if (!v) {
        sl_mem_judge(tl, 0, &judged);
        v = &judged;
    }
    /* Like `> FILE`: /dev/null or a FIFO is written into, a symbolic link is followed, and a regular file is
     * replaced whole (temp file + rename), with the mode the umask gives a new file. */
    sl_outfile *out = NULL;
    int rc = sl_outfile_open(path, SL_OUTFILE_REPLACE, "the chart", &out);
    if (rc < 0)
        return rc;
    s_draw(sl_outfile_stream(out), tl, v, title, &nm);
    return sl_outfile_close(out);
}
