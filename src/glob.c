/* Glob matching for --include / --exclude.
 *
 * The pattern is tokenised into a table indexed by byte offset; the offsets of token starts are the states of an
 * NFA, and matching runs the NFA over the key with a bit set of live states. Every key byte costs at most one pass
 * over the pattern, hence O(len(pattern) * len(key)) time whatever the pattern, and only fixed-size stack memory. */
#include "fail.h"

#include <stdint.h>
#include <string.h>

#define GLOB_MAX 1024

enum {
    TOK_LIT,         /* one byte, possibly escaped */
    TOK_ANY,         /* ? */
    TOK_CLASS,       /* [...] */
    TOK_STAR,        /* * */
    TOK_STAR2,       /* ** not forming a whole "**" + "/" component: any run, '/' included */
    TOK_STAR2DIR,    /* "**" + "/" at the start of a component: zero or more whole directories */
    TOK_STAR2DIR_IN, /* inside a TOK_STAR2DIR (state at its second '*'): some directory bytes consumed, so only a
                      * '/' can leave */
    TOK_ALT_OPEN,    /* { */
    TOK_ALT_CLOSE,   /* ',' or '}' inside braces: the end of one alternative */
    TOK_END,
};

typedef struct glob_prog {
    const unsigned char *p;
    size_t n;
    unsigned char kind[GLOB_MAX + 1];
    uint16_t next[GLOB_MAX + 1]; /* the state after the token; for TOK_ALT_CLOSE, the one after the closing '}' */
    uint16_t link[GLOB_MAX + 1]; /* '{' and ',': the next ',' or '}' of the same group */
} glob_prog;

typedef struct state_set {
    uint64_t w[(GLOB_MAX + 1 + 63) / 64];
} state_set;

/* Parses the class starting at p[i] == '['. Returns the offset just past its ']', or 0 with *why set if it is
 * malformed. If c >= 0, *hit says whether byte c is in the class. */
static size_t s_class(const unsigned char *p, size_t n, size_t i, int c, bool *hit, const char **why) {
    size_t j = i + 1;
    bool negate = j < n && p[j] == '!';
    bool in = false;
    if (negate)
        j++;
    for (bool first = true;; first = false) {
        if (j >= n) {
            *why = "unbalanced '['";
            return 0;
        }
        if (p[j] == ']' && !first)
            break;
        if (p[j] == '[' && j + 1 < n && p[j + 1] == ':') {
            *why = "character classes like [:alpha:] are not supported (write [a-zA-Z] or escape the '[')";
            return 0;
        }
        if (p[j] == '\\' && ++j >= n) {
            *why = "trailing backslash";
            return 0;
        }
        unsigned char lo = p[j++], hi = lo;
        if (j + 1 < n && p[j] == '-' && p[j + 1] != ']') {
            j++;
            if (p[j] == '\\' && ++j >= n) {
                *why = "trailing backslash";
                return 0;
            }
            hi = p[j++];
            if (hi < lo) {
                *why = "reversed range in '[...]'";
                return 0;
            }
        }
        if (c >= lo && c <= hi)
            in = true;
    }
    if (hit)
        *hit = c >= 0 && c != '/' && in != negate;
    return j + 1;
}

/* Fills g from the pattern p (n bytes, n <= GLOB_MAX). Returns 0, or -1 with *why and *at describing the error. */
static int s_compile(glob_prog *g, const unsigned char *p, size_t n, const char **why, size_t *at) {
    g->p = p;
    g->n = n;
    bool in_braces = false;
    size_t open = 0, last = 0;
    size_t i = 0;
    while (i < n) {
        *at = i;
        size_t j, adv = i + 1;
        switch (p[i]) {
        case '\\':
            if (i + 1 >= n) {
                *why = "trailing backslash";
                return -1;
            }
            g->kind[i] = TOK_LIT;
            g->next[i] = (uint16_t)(i + 2);
            adv = i + 2;
            break;
        case '*':
            for (j = i; j < n && p[j] == '*';)
                j++;
            if (j - i == 1) {
                g->kind[i] = TOK_STAR;
                g->next[i] = (uint16_t)j;
            } else if ((i == 0 || p[i - 1] == '/') && j < n && p[j] == '/') {
                g->kind[i] = TOK_STAR2DIR;
                g->next[i] = (uint16_t)(j + 1);
                g->kind[i + 1] = TOK_STAR2DIR_IN;
                g->next[i + 1] = (uint16_t)(j + 1);
            } else {
                g->kind[i] = TOK_STAR2;
                g->next[i] = (uint16_t)j;
            }
            adv = g->next[i];
            break;
        case '?':
            g->kind[i] = TOK_ANY;
            g->next[i] = (uint16_t)(i + 1);
            break;
        case '[':
            j = s_class(p, n, i, -1, NULL, why);
            if (!j)
                return -1;
            g->kind[i] = TOK_CLASS;
            g->next[i] = (uint16_t)j;
            adv = j;
            break;
        case '{':
            if (in_braces) {
                *why = "nested '{' (alternatives cannot be nested)";
                return -1;
            }
            in_braces = true;
            open = last = i;
            g->kind[i] = TOK_ALT_OPEN;
            g->next[i] = (uint16_t)(i + 1);
            break;
        case ',':
            g->next[i] = (uint16_t)(i + 1);
            if (!in_braces) {
                g->kind[i] = TOK_LIT;
                break;
            }
            g->kind[i] = TOK_ALT_CLOSE;
            g->link[last] = (uint16_t)i;
            last = i;
            break;
        case '}':
            if (!in_braces) {
                *why = "unmatched '}' (write \\} for a literal '}')";
                return -1;
            }
            g->kind[i] = TOK_ALT_CLOSE;
            g->link[last] = (uint16_t)i;
            for (j = open; j != i;) {
                j = g->link[j];
                g->next[j] = (uint16_t)(i + 1);
            }
            in_braces = false;
            break;
        default:
            g->kind[i] = TOK_LIT;
            g->next[i] = (uint16_t)(i + 1);
            break;
        }
        i = adv;
    }
    if (in_braces) {
        *at = open;
        *why = "unbalanced '{'";
        return -1;
    }
    g->kind[n] = TOK_END;
    return 0;
}

static bool s_has(const state_set *s, size_t x) {
    return (s->w[x / 64] >> (x % 64)) & 1;
}

static void s_set(state_set *s, size_t x) {
    s->w[x / 64] |= (uint64_t)1 << (x % 64);
}

/* Adds state x and everything reachable from it without consuming a byte. */
static void s_add(const glob_prog *g, state_set *s, size_t x) {
    uint16_t stack[GLOB_MAX + 1];
    size_t top = 0;
    if (s_has(s, x))
        return;
    s_set(s, x);
    stack[top++] = (uint16_t)x;
    while (top) {
        size_t y = stack[--top];
        size_t eps[2] = {0, 0};
        size_t neps = 0;
        switch (g->kind[y]) {
        case TOK_STAR:
        case TOK_STAR2:
        case TOK_ALT_CLOSE:
            eps[neps++] = g->next[y];
            break;
        case TOK_STAR2DIR:
            eps[neps++] = g->next[y];
            eps[neps++] = y + 1;
            break;
        case TOK_ALT_OPEN:
            /* Each alternative starts after the '{' or after a ','; the '}' ends the list. */
            for (size_t z = y;; z = g->link[z]) {
                if (!s_has(s, z + 1)) {
                    s_set(s, z + 1);
                    stack[top++] = (uint16_t)(z + 1);
                }
                if (g->p[g->link[z]] == '}')
                    break;
            }
            break;
        default:
            break;
        }
        for (size_t k = 0; k < neps; k++) {
            if (!s_has(s, eps[k])) {
                s_set(s, eps[k]);
                stack[top++] = (uint16_t)eps[k];
            }
        }
    }
}

static bool s_run(const glob_prog *g, const unsigned char *key, size_t len) {
    state_set a, b;
    state_set *cur = &a, *nxt = &b;
    const size_t words = g->n / 64 + 1;
    memset(cur, 0, sizeof(*cur));
    s_add(g, cur, 0);
    for (size_t k = 0; k < len; k++) {
        unsigned char c = key[k];
        bool any = false;
        memset(nxt, 0, sizeof(*nxt));
        for (size_t w = 0; w < words; w++) {
            for (uint64_t bits = cur->w[w]; bits; bits &= bits - 1) {
                size_t x = w * 64 + (size_t)__builtin_ctzll(bits);
                const unsigned char *p = g->p;
                bool hit = false;
                switch (g->kind[x]) {
                case TOK_LIT:
                    hit = c == (p[x] == '\\' ? p[x + 1] : p[x]);
                    break;
                case TOK_ANY:
                    hit = c != '/';
                    break;
                case TOK_CLASS: {
                    const char *why;
                    s_class(p, g->n, x, c, &hit, &why);
                    break;
                }
                case TOK_STAR:
                    if (c != '/') {
                        s_add(g, nxt, x);
                        any = true;
                    }
                    break;
                case TOK_STAR2:
                    s_add(g, nxt, x);
                    any = true;
                    break;
                case TOK_STAR2DIR_IN:
                    s_add(g, nxt, x);
                    any = true;
                    hit = c == '/';
                    break;
                default:
                    break;
                }
                if (hit) {
                    s_add(g, nxt, g->next[x]);
                    any = true;
                }
            }
        }
        if (!any)
            return false;
        state_set *t = cur;
        cur = nxt;
        nxt = t;
    }
    return s_has(cur, g->n);
}

/* The part of the pattern that is matched: a leading '/' only anchors (every pattern with a '/' is matched against
 * the whole key). */
static size_t s_effective_start(const char *pattern) {
    return pattern[0] == '/' ? 1 : 0;
}

int sl_glob_check(const char *pattern) {
    if (!pattern)
        return sl__fail(SL_EINVAL, "glob pattern: NULL");
    size_t n = strnlen(pattern, GLOB_MAX + 1);
    char shown[100 * 4 + 8];
    size_t shown_len = sl_text_escape(shown, sizeof(shown), pattern, n < 100 ? n : 100);
    const char *more = n > 100 || shown_len >= sizeof(shown) ? "..." : "";
    if (n == 0)
        return sl__fail(SL_EINVAL, "glob '': empty pattern");
    if (n > GLOB_MAX)
        return sl__fail(SL_EINVAL, "glob '%s%s': pattern longer than %d bytes", shown, more, GLOB_MAX);
    glob_prog g;
    const char *why = "malformed";
    size_t at = 0;
    size_t start = s_effective_start(pattern);
    if (s_compile(&g, (const unsigned char *)pattern + start, n - start, &why, &at) < 0)
        return sl__fail(SL_EINVAL, "glob '%s%s': at offset %zu: %s", shown, more, at + start, why);
    return 0;
}

bool sl_glob_match(const char *pattern, const char *key, size_t key_len) {
    if (!pattern || (!key && key_len))
        return false;
    size_t n = strnlen(pattern, GLOB_MAX + 1);
    if (n == 0 || n > GLOB_MAX)
        return false;
    glob_prog g;
    const char *why;
    size_t at;
    size_t start = s_effective_start(pattern);
    if (s_compile(&g, (const unsigned char *)pattern + start, n - start, &why, &at) < 0)
        return false;
    const unsigned char *k = (const unsigned char *)(key ? key : "");
    if (!memchr(pattern, '/', n)) {
        /* No '/' in the pattern: it is about the last component of the key. */
        size_t base = key_len;
        while (base > 0 && k[base - 1] != '/')
            base--;
        k += base;
        key_len -= base;
    }
    return s_run(&g, k, key_len);
}
