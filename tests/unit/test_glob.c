/* sl_glob_check / sl_glob_match: syntax, the basename and full-key rules, '**', classes, braces, escapes,
 * malformed patterns, and the polynomial-time guarantee. */
#include "sluice/glob.h"
#include "test.h"

#include <time.h>

typedef struct glob_case {
    const char *pattern;
    const char *key;
    bool match;
} glob_case;

static const glob_case s_cases[] = {
    /* Literals. */
    {"abc", "abc", true},
    {"abc", "abd", false},
    {"abc", "ab", false},
    {"ab", "abc", false},
    {"a b", "a b", true},
    {"a,b", "a,b", true},
    {"\xc3\xa9*", "\xc3\xa9t\xc3\xa9", true},
    /* Basename rule: no '/' in the pattern, only the last component counts. */
    {"*.csv", "c.csv", true},
    {"*.csv", "a/b/c.csv", true},
    {"*.csv", "a/b/c.csv.gz", false},
    {"*.csv", "a.csv/b", false},
    {"c.csv", "x/y/c.csv", true},
    {"c.csv", "x/cc.csv", false},
    {"b", "b/c", false},
    {"*", "a/b/c", true},
    {"*", "a/", true},
    {"?", "dir/x", true},
    {"?", "dir/xy", false},
    {"**", "x/y/z", true},
    /* Full-key rule: a '/' anywhere anchors the pattern to the whole key. */
    {"a/*.csv", "a/x.csv", true},
    {"a/*.csv", "z/a/x.csv", false},
    {"a/*.csv", "a/b/x.csv", false},
    {"a/?", "a/b", true},
    {"a/?", "a//", false},
    {"a/b", "a/b", true},
    {"a/b", "x/a/b", false},
    /* Leading '/': anchors at the store prefix. */
    {"/*.csv", "x.csv", true},
    {"/*.csv", "a/x.csv", false},
    {"/a", "a", true},
    {"/a", "b/a", false},
    {"/a", "/a", false},
    {"/**", "x/y", true},
    /* '*' never crosses '/'. */
    {"*a*b", "xaxb", true},
    {"*a*b", "xaxbx", false},
    {"a*", "a", true},
    {"a*b*c", "abc", true},
    {"/a*c", "ab/c", false},
    {"/*", "a/b", false},
    /* '**' crosses '/'; "**" + "/" may match zero directories. */
    {"a/**/b", "a/b", true},
    {"a/**/b", "a/x/b", true},
    {"a/**/b", "a/x/y/b", true},
    {"a/**/b", "a/xb", false},
    {"a/**/b", "ab", false},
    {"a/**/b", "a/x/y/c", false},
    {"a/**", "a/x/y", true},
    {"a/**", "a", false},
    {"a/**", "b/x", false},
    {"**/*.csv", "x.csv", true},
    {"**/*.csv", "d/e/x.csv", true},
    {"**/*.csv", "d/e/x.csvx", false},
    {"x/**/**/y", "x/y", true},
    {"x/**/**/y", "x/a/b/y", true},
    {"a/b**", "a/bc/d", true},
    {"a/b**", "a/b", true},
    {"a/x**/b", "a/xb", false},
    {"a/x**/b", "a/xy/z/b", true},
    {"a/x**/b", "a/x/b", true},
    {"a/x**/b", "a/b", false},
    {"a**b", "x/aqqb", true},
    {"/***/z", "z", true},
    /* Classes. */
    {"[abc].txt", "b.txt", true},
    {"[abc].txt", "d.txt", false},
    {"[a-c]x", "bx", true},
    {"[a-c]x", "dx", false},
    {"[a-cx-z]", "y", true},
    {"[!a-c]x", "dx", true},
    {"[!a-c]x", "ax", false},
    {"[0-9][0-9]", "42", true},
    {"[0-9]", "a", false},
    {"[]]", "]", true},
    {"[]a]", "a", true},
    {"[!]]", "a", true},
    {"[!]]", "]", false},
    {"[a-]", "-", true},
    {"[-a]", "-", true},
    {"[a-]", "b", false},
    {"[\\]]", "]", true},
    {"[\\!a]", "!", true},
    {"[\\!a]", "b", false},
    {"[^a]", "^", true},
    {"[^a]", "b", false},
    {"[\\a-\\c]", "b", true},
    {"[\x80-\xff]", "\xc3", true},
    {"[\x80-\xff]", "z", false},
    {"/x[!a]y", "x/y", false},
    {"/x[/]y", "x/y", false},
    {"/x?y", "x/y", false},
    {"[*]", "*", true},
    {"[*]", "a", false},
    {"[{]", "{", true},
    /* Escapes. */
    {"\\*", "*", true},
    {"\\*", "a", false},
    {"\\?", "?", true},
    {"\\?", "a", false},
    {"\\[a]", "[a]", true},
    {"\\[a\\]", "[a]", true},
    {"a]", "a]", true},
    {"]", "]", true},
    {"\\{a,b\\}", "{a,b}", true},
    {"\\{a,b\\}", "a", false},
    {"a\\\\b", "a\\b", true},
    {"\\a", "a", true},
    {"\\**", "*xyz", true},
    {"\\**", "x*", false},
    /* Braces. */
    {"*.{png,jpg}", "x.png", true},
    {"*.{png,jpg}", "d/x.jpg", true},
    {"*.{png,jpg}", "x.gif", false},
    {"*.{png,jpg}", "x.pngjpg", false},
    {"{,x}a", "a", true},
    {"{,x}a", "xa", true},
    {"{,x}a", "ya", false},
    {"x{,y}", "x", true},
    {"x{y,}", "xy", true},
    {"x{y,}", "xz", false},
    {"{}x", "x", true},
    {"{a/b,c}/d", "a/b/d", true},
    {"{a/b,c}/d", "c/d", true},
    {"{a/b,c}/d", "b/d", false},
    {"{*.png,img/*}", "x.png", true},
    {"{*.png,img/*}", "img/y", true},
    {"{*.png,img/*}", "d/x.png", false},
    {"{[ab],c}", "b", true},
    {"{[ab],c}", "d", false},
    {"{a\\,b,c}", "a,b", true},
    {"{a\\,b,c}", "b", false},
    {"{[,}],x}", "}", true},
    {"{a,b}{c,d}", "bc", true},
    {"{a,b}{c,d}", "ca", false},
    /* Malformed patterns match nothing. */
    {"[abc", "[abc", false},
    {"[abc", "a", false},
    {"{a,b", "{a,b", false},
    {"{a,b", "a", false},
    {"a\\", "a\\", false},
    {"a}", "a}", false},
    {"{a,{b}}", "b", false},
    {"[z-a]", "m", false},
    {"", "", false},
};

static void test_table(void) {
    size_t n = sizeof(s_cases) / sizeof(s_cases[0]);
    ASSERT_TRUE(n >= 60);
    for (size_t i = 0; i < n; i++) {
        const glob_case *c = &s_cases[i];
        bool got = sl_glob_match(c->pattern, c->key, strlen(c->key));
        if (got != c->match)
            TEST_FAIL_("case %zu: sl_glob_match(\"%s\", \"%s\") = %d, expected %d", i, c->pattern, c->key, got,
                       c->match);
        s_test_checks++;
    }
}

static void test_bytes_not_characters(void) {
    /* "é" is two bytes; '?' matches one byte. */
    ASSERT_FALSE(sl_glob_match("?", "\xc3\xa9", 2));
    ASSERT_TRUE(sl_glob_match("??", "\xc3\xa9", 2));
    /* Keys need not be UTF-8 nor NUL-terminated, and may contain NUL. */
    ASSERT_TRUE(sl_glob_match("a?b", "a\0b", 3));
    ASSERT_TRUE(sl_glob_match("*\xff", "x\xff", 2));
    ASSERT_TRUE(sl_glob_match("abc", "abcdef", 3));
    ASSERT_FALSE(sl_glob_match("abc", "abcdef", 6));
    ASSERT_TRUE(sl_glob_match("d/*", "d/xyz/more", 5));
}

static void test_edge_arguments(void) {
    ASSERT_FALSE(sl_glob_match(NULL, "a", 1));
    ASSERT_FALSE(sl_glob_match("*", NULL, 1));
    ASSERT_TRUE(sl_glob_match("*", NULL, 0));
    ASSERT_TRUE(sl_glob_match("*", "", 0));
    ASSERT_FALSE(sl_glob_match("?", "", 0));
    ASSERT_INT_EQ(sl_glob_check(NULL), SL_EINVAL);
}

static void check_ok(const char *pattern) {
    int rc = sl_glob_check(pattern);
    if (rc != 0)
        TEST_FAIL_("sl_glob_check(\"%s\") = %d (%s), expected 0", pattern, rc, sl_last_error());
    s_test_checks++;
}

static void check_bad(const char *pattern, const char *why) {
    int rc = sl_glob_check(pattern);
    if (rc != SL_EINVAL || !strstr(sl_last_error(), why))
        TEST_FAIL_("sl_glob_check(\"%s\") = %d, \"%s\"; expected SL_EINVAL mentioning \"%s\"", pattern, rc,
                   sl_last_error(), why);
    s_test_checks++;
}

static void test_check(void) {
    check_ok("*.csv");
    check_ok("a/**/b");
    check_ok("[]]");
    check_ok("[!a-z]x");
    check_ok("{,x}");
    check_ok("{}");
    check_ok("\\[\\]\\{\\}\\\\");
    check_ok("a,b");
    check_ok("/");
    check_bad("", "empty pattern");
    check_bad("[abc", "unbalanced '['");
    check_bad("[", "unbalanced '['");
    check_bad("[]", "unbalanced '['");
    check_bad("[!]", "unbalanced '['");
    check_bad("{a,b", "unbalanced '{'");
    check_bad("x{", "unbalanced '{'");
    check_bad("{a,{b,c}}", "nested '{'");
    check_bad("a}", "unmatched '}'");
    check_ok("a]");
    check_ok("\\[a]");
    check_bad("abc\\", "trailing backslash");
    check_bad("[a\\", "trailing backslash");
    check_bad("[z-a]", "reversed range");
    check_bad("[[:alpha:]]", "[:alpha:]");
    /* The message quotes the pattern and says where. */
    check_bad("ab[cd", "glob 'ab[cd'");
    check_bad("ab[cd", "at offset 2");
    check_bad("/ab{", "at offset 3");
    /* Control characters in the quoted pattern do not break the one-line message. */
    ASSERT_INT_EQ(sl_glob_check("a\n["), SL_EINVAL);
    ASSERT_TRUE(strchr(sl_last_error(), '\n') == NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "a\\n[") != NULL);
}

static void test_length_limit(void) {
    char p[1100];
    memset(p, 'a', sizeof(p));
    p[1024] = '\0';
    check_ok(p);
    ASSERT_TRUE(sl_glob_match(p, p, 1024));
    p[1024] = 'a';
    p[1025] = '\0';
    check_bad(p, "longer than 1024 bytes");
    ASSERT_TRUE(strlen(sl_last_error()) < 400);
    ASSERT_FALSE(sl_glob_match(p, p, 1025));
    /* A 1024-byte pattern full of stars still matches, and the last state (offset 1024) is reachable. */
    memset(p, '*', 1023);
    p[1023] = 'z';
    p[1024] = '\0';
    ASSERT_TRUE(sl_glob_match(p, "xyz", 3));
    ASSERT_FALSE(sl_glob_match(p, "xyzq", 4));
}

static double s_elapsed_ms(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void test_pathological_is_fast(void) {
    static char key[4002];
    memset(key, 'a', 4000);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* A backtracking matcher takes about 4000^8 steps here. */
    ASSERT_FALSE(sl_glob_match("*a*a*a*a*a*a*a*a*b", key, 4000));
    key[4000] = 'b';
    ASSERT_TRUE(sl_glob_match("*a*a*a*a*a*a*a*a*b", key, 4001));
    ASSERT_FALSE(sl_glob_match("/**a**a**a**a**a**a**a**a**b", key, 4000));
    ASSERT_TRUE(sl_glob_match("{*a,*a*}{*a,*a*}{*a,*a*}{*a,*a*}", key, 4000));
    for (int i = 0; i < 4000; i += 2)
        key[i] = '/';
    ASSERT_FALSE(sl_glob_match("/**/a/**/a/**/a/**/a/**/a/**/a/**/b", key, 4000));
    double ms = s_elapsed_ms(&t0);
    fprintf(stderr, "    pathological patterns: %.1f ms\n", ms);
    ASSERT_TRUE(ms < 500);

    /* The longest pattern against a long key: bounded by len(pattern) * len(key). */
    char p[1025];
    for (int i = 0; i < 1022; i += 2) {
        p[i] = '*';
        p[i + 1] = 'a';
    }
    p[1022] = 'b';
    p[1023] = '\0';
    memset(key, 'a', 4000);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ASSERT_FALSE(sl_glob_match(p, key, 4000));
    ms = s_elapsed_ms(&t0);
    fprintf(stderr, "    1023-byte pattern, 4000-byte key: %.1f ms\n", ms);
    ASSERT_TRUE(ms < 5000);
}

int main(void) {
    RUN_TEST(test_table);
    RUN_TEST(test_bytes_not_characters);
    RUN_TEST(test_edge_arguments);
    RUN_TEST(test_check);
    RUN_TEST(test_length_limit);
    RUN_TEST(test_pathological_is_fast);
    TEST_DONE();
}
