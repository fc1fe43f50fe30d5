/* The option-value parsers of the sluice command (tools/cli_parse.c): every number typed on the command line goes
 * through them, so what they accept is exactly what --help documents, and nothing that merely starts like it. */
#include "../../tools/cli_parse.c"
#include "test.h"

static void test_uint(void) {
    unsigned v = 77;
    ASSERT_TRUE(sl_cli_parse_uint("4", 1, 1024, &v));
    ASSERT_UINT_EQ(v, 4);
    ASSERT_TRUE(sl_cli_parse_uint("0", 0, 100, &v));
    ASSERT_UINT_EQ(v, 0);
    ASSERT_TRUE(sl_cli_parse_uint("010", 1, 1024, &v)); /* decimal, not octal */
    ASSERT_UINT_EQ(v, 10);
    ASSERT_TRUE(sl_cli_parse_uint("1024", 1, 1024, &v));
    ASSERT_UINT_EQ(v, 1024);
    v = 77;
    static const char *const bad[] = {"",    " 4",  "4 ",  "+4",  "-4",   "4x", "0x4",
                                      "1e3", "4.0", "\t4", "4\n", "1025", "0",  "99999999999999999999999",
                                      "４"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sl_cli_parse_uint(bad[i], 1, 1024, &v))
            TEST_FAIL_("sl_cli_parse_uint(\"%s\", 1, 1024) accepted it as %u", bad[i], v);
    ASSERT_UINT_EQ(v, 77); /* untouched by a refusal */
}

static void test_size(void) {
    uint64_t v = 0;
    ASSERT_TRUE(sl_cli_parse_size("64M", &v));
    ASSERT_UINT_EQ(v, 64u << 20);
    ASSERT_TRUE(sl_cli_parse_size("1.5G", &v));
    ASSERT_UINT_EQ(v, 3ull << 29);
    ASSERT_TRUE(sl_cli_parse_size("512KiB", &v));
    ASSERT_UINT_EQ(v, 512u << 10);
    ASSERT_TRUE(sl_cli_parse_size("8mb", &v));
    ASSERT_UINT_EQ(v, 8u << 20);
    ASSERT_TRUE(sl_cli_parse_size("1048576", &v));
    ASSERT_UINT_EQ(v, 1048576);
    ASSERT_TRUE(sl_cli_parse_size("100B", &v));
    ASSERT_UINT_EQ(v, 100);
    ASSERT_TRUE(sl_cli_parse_size(".5K", &v));
    ASSERT_UINT_EQ(v, 512);
    ASSERT_TRUE(sl_cli_parse_size("0", &v));
    ASSERT_UINT_EQ(v, 0);
    ASSERT_TRUE(sl_cli_parse_size("1.9", &v)); /* whole bytes, rounded down */
    ASSERT_UINT_EQ(v, 1);
    v = 77;
    static const char *const bad[] = {"",     " 64M", "64M ", "+64M", "-1",        "64 M", "1e3", "1e3M",
                                      "0x10", "inf",  "nan",  "64X",  "64MiBx",    "1.",   ".",   "1..5",
                                      "64iB", "64Bi", "0.5",  "0.1B", "16777216T", "1,5G"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sl_cli_parse_size(bad[i], &v))
            TEST_FAIL_("sl_cli_parse_size(\"%s\") accepted it as %" PRIu64, bad[i], v);
    ASSERT_UINT_EQ(v, 77);
}

static void test_duration(void) {
    uint64_t ms = 0;
    ASSERT_INT_EQ(sl_cli_parse_duration_ms("30s", &ms), SL_CLI_DURATION_OK);
    ASSERT_UINT_EQ(ms, 30000);
    ASSERT_INT_EQ(sl_cli_parse_duration_ms("500ms", &ms), SL_CLI_DURATION_OK);
    ASSERT_UINT_EQ(ms, 500);
    ASSERT_INT_EQ(sl_cli_parse_duration_ms("2m", &ms), SL_CLI_DURATION_OK);
    ASSERT_UINT_EQ(ms, 120000);
    ASSERT_INT_EQ(sl_cli_parse_duration_ms("2min", &ms), SL_CLI_DURATION_OK);
    ASSERT_UINT_EQ(ms, 120000);
    ASSERT_INT_EQ(sl_cli_parse_duration_ms("1h", &ms), SL_CLI_DURATION_OK);
    ASSERT_UINT_EQ(ms, 3600000);
    ASSERT_INT_EQ(sl_cli_parse_duration_ms("1.5", &ms), SL_CLI_DURATION_OK);
    ASSERT_UINT_EQ(ms, 1500);
    ASSERT_INT_EQ(sl_cli_parse_duration_ms(".25s", &ms), SL_CLI_DURATION_OK);
    ASSERT_UINT_EQ(ms, 250);
    ASSERT_INT_EQ(sl_cli_parse_duration_ms("0.6ms", &ms), SL_CLI_DURATION_OK); /* to the nearest millisecond */
    ASSERT_UINT_EQ(ms, 1);
    ASSERT_INT_EQ(sl_cli_parse_duration_ms("24h", &ms), SL_CLI_DURATION_OK);
    ASSERT_UINT_EQ(ms, 86400000);
    /* 0 itself is a value (no limit, at once); what only rounds to it is not. */
    ASSERT_INT_EQ(sl_cli_parse_duration_ms("0", &ms), SL_CLI_DURATION_OK);
    ASSERT_UINT_EQ(ms, 0);
    ASSERT_INT_EQ(sl_cli_parse_duration_ms("0.000s", &ms), SL_CLI_DURATION_OK);
    ASSERT_UINT_EQ(ms, 0);
    ms = 77;
    ASSERT_INT_EQ(sl_cli_parse_duration_ms("0.0001s", &ms), SL_CLI_DURATION_ZERO);
    ASSERT_INT_EQ(sl_cli_parse_duration_ms("0.4ms", &ms), SL_CLI_DURATION_ZERO);
    ASSERT_UINT_EQ(ms, 77);
    static const char *const bad[] = {"",    " 30s", "30s ", "+30s",  "-1", "30 s", "1e3", "1e-3s", "0x10",
                                      "inf", "nan",  "30x",  "30sec", "1.", ".",    "25h", "1441m", "3s0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sl_cli_parse_duration_ms(bad[i], &ms) != SL_CLI_DURATION_BAD)
            TEST_FAIL_("sl_cli_parse_duration_ms(\"%s\") did not refuse it", bad[i]);
    ASSERT_UINT_EQ(ms, 77);
}

int main(void) {
    RUN_TEST(test_uint);
    RUN_TEST(test_size);
    RUN_TEST(test_duration);
    TEST_DONE();
}
