/* Built-in operations (op_builtin.c) and the task helpers (task.c), run on in-memory readers and writers. */
#include "crc32c.h"
#include "fail.h"
#include "memstore.h"
#include "task.h"
#include "test.h"

#include <pthread.h>
#include <zlib.h>

/* ---- harness ---- */

/* One object run through one op: the task and everything it points to. */
typedef struct run {
    mem_reader r;
    mem_writer w;
    sl_object src;
    sl__task task;
    unsigned char *buf;
    char result[512];
    char error[512];
    bool has_out;
} run;

/* out_cap 0: no destination (task->out = NULL, as for dst "-"). */
static void run_init(run *x, const void *data, size_t len, size_t buf_size, size_t out_cap) {
    memset(x, 0, sizeof(*x));
    mem_reader_init(&x->r, data, len);
    x->has_out = out_cap > 0;
    if (x->has_out)
        mem_writer_init(&x->w, out_cap);
    x->src.key = "dir/object";
    x->src.key_len = strlen(x->src.key);
    x->src.size = len;
    x->buf = malloc(buf_size ? buf_size : 1);
    if (!x->buf || (x->has_out && !x->w.data))
        TEST_FAIL_("out of memory");
    x->task = (sl__task){
        .src = &x->src,
        .src_url = "mem://dir/object",
        .dst_key = x->has_out ? "dir/object.out" : NULL,
        .in = &x->r.base,
        .out = x->has_out ? &x->w.base : NULL,
        .buf = x->buf,
        .buf_size = buf_size,
        .result = x->result,
        .result_cap = sizeof(x->result),
        .error = x->error,
        .error_cap = sizeof(x->error),
    };
}

static void run_free(run *x) {
    free(x->buf);
    if (x->has_out)
        free(x->w.data);
}

static const sl__op *find_op(const char *name) {
    const sl__op *op = sl__op_find(name);
    if (!op)
        TEST_FAIL_("op %s not found", name);
    return op;
}

static void *op_state(const sl__op *op) {
    void *state = NULL;
    int rc = op->thread_init(NULL, &state);
    if (rc != 0)
        TEST_FAIL_("%s thread_init: %d %s", op->name, rc, sl_last_error());
    return state;
}

/* Runs `name` once on data with a fresh state; returns process()'s code; the result is left in x. */
static int run_once(const char *name, run *x) {
    const sl__op *op = find_op(name);
    void *state = op_state(op);
    int rc = op->process(state, &x->task);
    op->thread_fini(state);
    return rc;
}

/* The result member an op gives for data, read in chunks of at most max_chunk bytes through a buf_size buffer. */
static void assert_result(const char *name, const void *data, size_t len, size_t buf_size, size_t max_chunk,
                          const char *want) {
    run x;
    run_init(&x, data, len, buf_size, 0);
    x.r.max_chunk = max_chunk;
    int rc = run_once(name, &x);
    if (rc != 0)
        TEST_FAIL_("%s on %zu bytes: %d %s", name, len, rc, x.error);
    if (strcmp(x.result, want) != 0)
        TEST_FAIL_("%s on %zu bytes (buf %zu, chunk %zu): got %s, want %s", name, len, buf_size, max_chunk, x.result,
                   want);
    ASSERT_UINT_EQ(x.task.result_len, strlen(want));
    ASSERT_UINT_EQ(x.task.bytes_in, len);
    ASSERT_UINT_EQ(x.task.bytes_out, 0);
    run_free(&x);
}

/* Like assert_result with several buffer and chunk sizes, so results cannot depend on how the bytes arrive. */
static void assert_result_chunked(const char *name, const void *data, size_t len, const char *want) {
    assert_result(name, data, len, 65536, 0, want);
    assert_result(name, data, len, 1, 0, want);
    assert_result(name, data, len, 7, 0, want);
    assert_result(name, data, len, 4096, 3, want);
}

static bool contains(const char *haystack, const char *needle) {
    return strstr(haystack, needle) != NULL;
}

#define ASSERT_CONTAINS(h, n)                                                                                          \
    do {                                                                                                               \
        s_test_checks++;                                                                                               \
        if (!contains((h), (n)))                                                                                       \
            TEST_FAIL_("\"%s\" does not contain \"%s\"", (h), (n));                                                    \
    } while (0)

static uint64_t s_rng = 0x2545F4914F6CDD1Dull;

static void fill_random(unsigned char *p, size_t len) {
    for (size_t i = 0; i < len; i++) {
        s_rng ^= s_rng << 13;
        s_rng ^= s_rng >> 7;
        s_rng ^= s_rng << 17;
        p[i] = (unsigned char)(s_rng >> 24);
    }
}

/* Text-like data that compresses well but not trivially. */
static unsigned char *make_text(size_t len) {
    static const char *words[] = {"alpha ", "beta ", "gamma\n", "delta ", "epsilon\n", "zeta "};
    unsigned char *p = malloc(len ? len : 1);
    ASSERT_TRUE(p != NULL);
    size_t pos = 0;
    while (pos < len) {
        unsigned char r;
        fill_random(&r, 1);
        for (const char *w = words[r % 6]; *w && pos < len; w++)
            p[pos++] = (unsigned char)*w;
    }
    return p;
}

/* Compresses into one gzip member (wrapper 16) or a zlib stream (wrapper 0). Caller frees. */
static unsigned char *deflate_bytes(const void *data, size_t len, int wrapper, size_t *out_len) {
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    ASSERT_INT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 15 + wrapper, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, (uLong)len) + 32;
    unsigned char *out = malloc(cap);
    ASSERT_TRUE(out != NULL);
    zs.next_in = (unsigned char *)(uintptr_t)data;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    ASSERT_INT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

static unsigned char *gzip_bytes(const void *data, size_t len, size_t *out_len) {
    return deflate_bytes(data, len, 16, out_len);
}

/* Appends b to a (realloc); returns the new buffer. */
static unsigned char *concat(unsigned char *a, size_t *a_len, const void *b, size_t b_len) {
    a = realloc(a, *a_len + b_len + 1);
    ASSERT_TRUE(a != NULL);
    memcpy(a + *a_len, b, b_len);
    *a_len += b_len;
    return a;
}

/* gunzip of in into a destination; expects success and exactly want/want_len out. */
static void assert_gunzip(const void *in, size_t in_len, const void *want, size_t want_len, size_t buf_size,
                          size_t max_chunk) {
    run x;
    run_init(&x, in, in_len, buf_size, want_len + 1);
    x.r.max_chunk = max_chunk;
    int rc = run_once("gunzip", &x);
    if (rc != 0)
        TEST_FAIL_("gunzip (buf %zu, chunk %zu): %d %s", buf_size, max_chunk, rc, x.error);
    ASSERT_UINT_EQ(x.w.len, want_len);
    ASSERT_MEM_EQ(x.w.data, want, want_len);
    ASSERT_UINT_EQ(x.task.bytes_in, in_len);
    ASSERT_UINT_EQ(x.task.bytes_out, want_len);
    ASSERT_STR_EQ(x.result, "");
    run_free(&x);
}

/* gunzip of in without a destination; expects failure with code and a message containing `msg`. */
static void assert_gunzip_fails(const void *in, size_t in_len, size_t buf_size, int code, const char *msg) {
    run x;
    run_init(&x, in, in_len, buf_size, 0);
    int rc = run_once("gunzip", &x);
    if (rc != code)
        TEST_FAIL_("gunzip of %zu bytes: got %d (%s), want %d", in_len, rc, x.error, code);
    ASSERT_CONTAINS(x.error, msg);
    ASSERT_STR_EQ(x.result, "");
    run_free(&x);
}

/* A reader whose sl_read fails like a real backend would: the code plus an explanation in sl_last_error(). */
typedef struct explaining_reader {
    sl_reader base;
    int calls;
} explaining_reader;

static int64_t explaining_read(sl_reader *r, void *buf, size_t cap) {
    explaining_reader *e = (explaining_reader *)r;
    if (e->calls++ == 0 && cap > 0) {
        memset(buf, 'x', 1);
        return 1;
    }
    return sl__fail(SL_EIO, "gs://bucket/dir/object: connection reset by peer");
}

static const sl_store_vtable explaining_vtable = {.read = explaining_read};
static sl_store explaining_store = {.vt = &explaining_vtable, .scheme = SL_SCHEME_GS, .url = (char *)"gs://bucket"};
static sl_client explaining_client = {.store = &explaining_store};

/* A reader that raises the job's abort flag during its first read, to see that ops stop between chunks. */
typedef struct aborting_reader {
    mem_reader mem;
    atomic_bool *flag;
    int reads;
} aborting_reader;

static int64_t aborting_read(sl_reader *r, void *buf, size_t cap) {
    aborting_reader *a = (aborting_reader *)r;
    a->reads++;
    atomic_store(a->flag, true);
    return mem_read_(r, buf, cap);
}

static const sl_store_vtable aborting_vtable = {.read = aborting_read};
static sl_store aborting_store = {.vt = &aborting_vtable, .scheme = SL_SCHEME_FILE, .url = (char *)"mem://"};
static sl_client aborting_client = {.store = &aborting_store};

static const char *const s_public[] = {"md5", "crc32c", "sha256", "count", "gunzip"};
static const char *const s_all[] = {"md5", "crc32c", "sha256", "count", "gunzip", "copy"};
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- task.c ---- */

static void test_result_printf_separator(void) {
    char buf[64];
    sl__task t = {.result = buf, .result_cap = sizeof(buf)};
    buf[0] = '\0';
    ASSERT_INT_EQ(sl__task_result_printf(&t, "\"a\":%d", 1), 0);
    ASSERT_STR_EQ(buf, "\"a\":1");
    ASSERT_UINT_EQ(t.result_len, 5);
    ASSERT_INT_EQ(sl__task_result_printf(&t, "\"b\":\"%s\"", "x"), 0);
    ASSERT_STR_EQ(buf, "\"a\":1,\"b\":\"x\"");
    ASSERT_UINT_EQ(t.result_len, strlen(buf));
    ASSERT_INT_EQ(sl__task_result_printf(&t, "%s", ""), 0);
    ASSERT_STR_EQ(buf, "\"a\":1,\"b\":\"x\"");
    ASSERT_UINT_EQ(t.result_len, strlen(buf));
}

static void test_result_printf_exact_fit_and_overflow(void) {
    char buf[16];
    /* "abc" + ',' + "defghijk" + NUL = 13 bytes: fits a cap of 13, not of 12. */
    sl__task t = {.result = buf, .result_cap = 13};
    strcpy(buf, "abc");
    t.result_len = 3;
    ASSERT_INT_EQ(sl__task_result_printf(&t, "%s", "defghijk"), 0);
    ASSERT_STR_EQ(buf, "abc,defghijk");
    ASSERT_UINT_EQ(t.result_len, 12);

    strcpy(buf, "abc");
    t.result_len = 3;
    t.result_cap = 12;
    ASSERT_INT_EQ(sl__task_result_printf(&t, "%s", "defghijk"), SL_ETOOBIG);
    ASSERT_STR_EQ(buf, "abc");
    ASSERT_UINT_EQ(t.result_len, 3);

    /* Room for the separator but not a single byte of the member. */
    t.result_cap = 5;
    ASSERT_INT_EQ(sl__task_result_printf(&t, "%s", "d"), SL_ETOOBIG);
    ASSERT_STR_EQ(buf, "abc");
    t.result_cap = 4;
    ASSERT_INT_EQ(sl__task_result_printf(&t, "%s", "d"), SL_ETOOBIG);
    ASSERT_STR_EQ(buf, "abc");
    ASSERT_UINT_EQ(t.result_len, 3);

    /* Empty result: no separator; exact fit is len + NUL. */
    buf[0] = '\0';
    t.result_len = 0;
    t.result_cap = 4;
    ASSERT_INT_EQ(sl__task_result_printf(&t, "%s", "wxyz"), SL_ETOOBIG);
    ASSERT_STR_EQ(buf, "");
    ASSERT_UINT_EQ(t.result_len, 0);
    ASSERT_INT_EQ(sl__task_result_printf(&t, "%s", "xyz"), 0);
    ASSERT_STR_EQ(buf, "xyz");

    sl__task none = {0};
    ASSERT_INT_EQ(sl__task_result_printf(&none, "%s", "x"), SL_ETOOBIG);
}

static void test_task_fail(void) {
    char err[8];
    sl__task t = {.error = err, .error_cap = sizeof(err)};
    ASSERT_INT_EQ(sl__task_fail(&t, SL_EIO, "%s %d", "abc", 42), SL_EIO);
    ASSERT_STR_EQ(err, "abc 42");
    /* Too long, and no room even for " [...] ": its end, where the reason is. */
    ASSERT_INT_EQ(sl__task_fail(&t, SL_ECORRUPT, "%s", "much too long for it"), SL_ECORRUPT);
    ASSERT_STR_EQ(err, " for it");
    sl__task none = {0};
    ASSERT_INT_EQ(sl__task_fail(&none, SL_ENOMEM, "%s", "nowhere to put it"), SL_ENOMEM);
}

/* ---- registry ---- */

static void test_find_and_names(void) {
    const char *const *names = sl__op_names();
    size_t n = 0;
    while (names[n])
        n++;
    ASSERT_UINT_EQ(n, COUNT_OF(s_public));
    for (size_t i = 0; i < COUNT_OF(s_public); i++) {
        bool listed = false;
        for (size_t j = 0; j < n; j++)
            listed = listed || strcmp(names[j], s_public[i]) == 0;
        ASSERT_TRUE(listed);
    }
    for (size_t i = 0; i < COUNT_OF(s_all); i++) {
        const sl__op *op = sl__op_find(s_all[i]);
        ASSERT_TRUE(op != NULL);
        ASSERT_STR_EQ(op->name, s_all[i]);
        ASSERT_TRUE(op->description != NULL && op->description[0] != '\0');
        ASSERT_TRUE(strchr(op->description, '\n') == NULL);
        ASSERT_TRUE(op->thread_init && op->process && op->thread_fini);
        op->thread_fini(NULL);
    }
    for (size_t j = 0; j < n; j++)
        ASSERT_TRUE(strcmp(names[j], "copy") != 0);
    ASSERT_FALSE(sl__op_find("md5")->flags & SL_OP_TRANSFORMS);
    ASSERT_FALSE(sl__op_find("sha256")->flags & SL_OP_TRANSFORMS);
    ASSERT_FALSE(sl__op_find("crc32c")->flags & SL_OP_TRANSFORMS);
    ASSERT_FALSE(sl__op_find("count")->flags & SL_OP_TRANSFORMS);
    ASSERT_TRUE(sl__op_find("gunzip")->flags & SL_OP_TRANSFORMS);
    ASSERT_TRUE(sl__op_find("copy")->flags & SL_OP_TRANSFORMS);
    ASSERT_TRUE(sl__op_find(NULL) == NULL);
    ASSERT_TRUE(sl__op_find("") == NULL);
    ASSERT_TRUE(sl__op_find("MD5") == NULL);
    ASSERT_TRUE(sl__op_find("md") == NULL);
    ASSERT_TRUE(sl__op_find("md55") == NULL);
    ASSERT_TRUE(sl__op_find("nope") == NULL);
}

/* ---- digests ---- */

static void test_md5_known(void) {
    assert_result_chunked("md5", "", 0, "\"md5\":\"d41d8cd98f00b204e9800998ecf8427e\"");
    assert_result_chunked("md5", "a", 1, "\"md5\":\"0cc175b9c0f1b6a831c399e269772661\"");
    assert_result_chunked("md5", "abc", 3, "\"md5\":\"900150983cd24fb0d6963f7d28e17f72\"");
    assert_result_chunked("md5", "message digest", 14, "\"md5\":\"f96b697d7cb7938d525a2f31aaf161d0\"");
    const char *fox = "The quick brown fox jumps over the lazy dog";
    assert_result_chunked("md5", fox, strlen(fox), "\"md5\":\"9e107d9d372bb6826bd81d3542a419d6\"");
}

static void test_sha256_known(void) {
    assert_result_chunked("sha256", "", 0,
                          "\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"");
    assert_result_chunked("sha256", "abc", 3,
                          "\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_result_chunked("sha256", two_blocks, strlen(two_blocks),
                          "\"sha256\":\"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1\"");
}

/* One million 'a': the classic long vectors, streamed through a buffer much smaller than the object. */
static void test_digests_million_a(void) {
    size_t len = 1000000;
    unsigned char *a = malloc(len);
    ASSERT_TRUE(a != NULL);
    memset(a, 'a', len);
    assert_result("md5", a, len, 4096, 0, "\"md5\":\"7707d6ae4e027c70eea2a935c2296f21\"");
    assert_result("md5", a, len, 65536, 1000, "\"md5\":\"7707d6ae4e027c70eea2a935c2296f21\"");
    assert_result("sha256", a, len, 4096, 0,
                  "\"sha256\":\"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0\"");
    assert_result("sha256", a, len, 100, 33,
                  "\"sha256\":\"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0\"");
    free(a);
}

static void test_crc32c_known(void) {
    assert_result_chunked("crc32c", "", 0, "\"crc32c\":\"00000000\"");
    assert_result_chunked("crc32c", "123456789", 9, "\"crc32c\":\"e3069283\"");
    unsigned char zeros[32] = {0};
    assert_result_chunked("crc32c", zeros, sizeof(zeros), "\"crc32c\":\"8a9136aa\"");
    size_t len = 100000;
    unsigned char *data = malloc(len);
    ASSERT_TRUE(data != NULL);
    fill_random(data, len);
    char want[64];
    snprintf(want, sizeof(want), "\"crc32c\":\"%08x\"", (unsigned)sl__crc32c_update_portable(0, data, len));
    assert_result_chunked("crc32c", data, len, want);
    free(data);
}

/* The hex is zero-padded to 8 digits: find an input whose CRC is below 0x10000000 and check its width. */
static void test_crc32c_zero_padded(void) {
    unsigned char b[4] = {0};
    uint32_t crc = 0;
    for (uint32_t i = 0;; i++) {
        memcpy(b, &i, sizeof(b));
        crc = sl__crc32c_update_portable(0, b, sizeof(b));
        if (crc < 0x10000000u)
            break;
    }
    char want[64];
    snprintf(want, sizeof(want), "\"crc32c\":\"%08x\"", (unsigned)crc);
    ASSERT_UINT_EQ(strlen(want), strlen("\"crc32c\":\"\"") + 8);
    ASSERT_TRUE(want[10] == '0');
    assert_result("crc32c", b, sizeof(b), 16, 0, want);
}

/* ---- count ---- */

static void test_count_edges(void) {
    assert_result_chunked("count", "", 0, "\"bytes\":0,\"lines\":0");
    assert_result_chunked("count", "a", 1, "\"bytes\":1,\"lines\":0");
    assert_result_chunked("count", "\n", 1, "\"bytes\":1,\"lines\":1");
    assert_result_chunked("count", "a\nb", 3, "\"bytes\":3,\"lines\":1");
    assert_result_chunked("count", "a\nb\n", 4, "\"bytes\":4,\"lines\":2");
    assert_result_chunked("count", "\n\n\n", 3, "\"bytes\":3,\"lines\":3");
    assert_result_chunked("count", "a\r\nb\rc\r\n", 8, "\"bytes\":8,\"lines\":2");
    assert_result_chunked("count", "x\0\ny\0", 5, "\"bytes\":5,\"lines\":1");
}

static void test_count_large(void) {
    size_t len = 300001;
    unsigned char *data = malloc(len);
    ASSERT_TRUE(data != NULL);
    fill_random(data, len);
    uint64_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += data[i] == '\n';
    ASSERT_TRUE(lines > 0);
    char want[96];
    snprintf(want, sizeof(want), "\"bytes\":%zu,\"lines\":%" PRIu64, len, lines);
    assert_result_chunked("count", data, len, want);
    free(data);
}

/* ---- gunzip ---- */

static void test_gunzip_single_member(void) {
    size_t len = 200000, gz_len;
    unsigned char *text = make_text(len);
    unsigned char *gz = gzip_bytes(text, len, &gz_len);
    ASSERT_TRUE(gz_len < len / 2);
    assert_gunzip(gz, gz_len, text, len, 65536, 0);
    assert_gunzip(gz, gz_len, text, len, (size_t)256 * 1024, 0);
    assert_gunzip(gz, gz_len, text, len, 4096, 1);
    assert_gunzip(gz, gz_len, text, len, 1000, 777);
    free(gz);
    free(text);
}

/* The smallest buffers force inflate to hold back output it has no room for, many times per input byte. */
static void test_gunzip_tiny_buffers(void) {
    size_t len = 50000, gz_len;
    unsigned char *zeros = calloc(1, len);
    ASSERT_TRUE(zeros != NULL);
    unsigned char *gz = gzip_bytes(zeros, len, &gz_len);
    assert_gunzip(gz, gz_len, zeros, len, 2, 0);
    assert_gunzip(gz, gz_len, zeros, len, 3, 0);
    assert_gunzip(gz, gz_len, zeros, len, 5, 1);
    free(gz);
    unsigned char *text = make_text(len);
    gz = gzip_bytes(text, len, &gz_len);
    assert_gunzip(gz, gz_len, text, len, 2, 0);
    assert_gunzip(gz, gz_len, text, len, 9, 2);
    free(gz);
    free(text);
    free(zeros);
}

static void test_gunzip_multi_member(void) {
    size_t a_len = 30000, b_len = 12345, gz_len = 0, part_len;
    unsigned char *a = make_text(a_len);
    unsigned char *b = malloc(b_len);
    ASSERT_TRUE(b != NULL);
    fill_random(b, b_len);

    unsigned char *gz = NULL, *part;
    part = gzip_bytes(a, a_len, &part_len);
    gz = concat(gz, &gz_len, part, part_len);
    free(part);
    part = gzip_bytes("", 0, &part_len);
    gz = concat(gz, &gz_len, part, part_len);
    free(part);
    part = gzip_bytes(b, b_len, &part_len);
    gz = concat(gz, &gz_len, part, part_len);
    free(part);

    size_t want_len = 0;
    unsigned char *want = concat(NULL, &want_len, a, a_len);
    want = concat(want, &want_len, b, b_len);
    assert_gunzip(gz, gz_len, want, want_len, 65536, 0);
    assert_gunzip(gz, gz_len, want, want_len, 64, 0);
    assert_gunzip(gz, gz_len, want, want_len, 4096, 1);

    /* Zero padding after the last member is ignored. */
    unsigned char pad[700] = {0};
    gz = concat(gz, &gz_len, pad, sizeof(pad));
    assert_gunzip(gz, gz_len, want, want_len, 65536, 0);
    assert_gunzip(gz, gz_len, want, want_len, 16, 3);

    /* Anything else after the last member is trailing garbage. */
    gz = concat(gz, &gz_len, "junk", 4);
    assert_gunzip_fails(gz, gz_len, 65536, SL_ECORRUPT, "trailing garbage");
    free(want);
    free(gz);
    free(b);
    free(a);
}

static void test_gunzip_empty(void) {
    size_t gz_len;
    unsigned char *gz = gzip_bytes("", 0, &gz_len);
    assert_gunzip(gz, gz_len, "", 0, 65536, 0);

    run x;
    run_init(&x, gz, gz_len, 4096, 0);
    ASSERT_INT_EQ(run_once("gunzip", &x), 0);
    ASSERT_STR_EQ(x.result, "\"bytes_out\":0");
    run_free(&x);
    free(gz);

    assert_gunzip_fails("", 0, 4096, SL_ECORRUPT, "not gzip data");
}

static void test_gunzip_no_destination_counts(void) {
    size_t len = 123457, gz_len;
    unsigned char *text = make_text(len);
    unsigned char *gz = gzip_bytes(text, len, &gz_len);
    run x;
    run_init(&x, gz, gz_len, 4096, 0);
    x.r.max_chunk = 100;
    ASSERT_INT_EQ(run_once("gunzip", &x), 0);
    ASSERT_STR_EQ(x.result, "\"bytes_out\":123457");
    ASSERT_UINT_EQ(x.task.result_len, strlen(x.result));
    ASSERT_UINT_EQ(x.task.bytes_in, gz_len);
    ASSERT_UINT_EQ(x.task.bytes_out, 0);
    run_free(&x);
    free(gz);
    free(text);
}

static void test_gunzip_not_gzip(void) {
    const char *text = "hello, this is plain text and certainly not gzip\n";
    assert_gunzip_fails(text, strlen(text), 4096, SL_ECORRUPT, "not gzip data");
    unsigned char noise[5000];
    fill_random(noise, sizeof(noise));
    noise[0] = 0x42;
    assert_gunzip_fails(noise, sizeof(noise), 4096, SL_ECORRUPT, "not gzip data");
    /* gzip magic with an unknown compression method. */
    unsigned char bad_method[20] = {0x1f, 0x8b, 0x07, 0x00};
    assert_gunzip_fails(bad_method, sizeof(bad_method), 4096, SL_ECORRUPT, "not gzip data");
}

static void test_gunzip_truncated(void) {
    size_t len = 40000, gz_len;
    unsigned char *text = make_text(len);
    unsigned char *gz = gzip_bytes(text, len, &gz_len);
    size_t cuts[] = {1, 2, 9, 10, 11, gz_len / 2, gz_len - 8, gz_len - 4, gz_len - 1};
    for (size_t i = 0; i < COUNT_OF(cuts); i++) {
        assert_gunzip_fails(gz, cuts[i], 4096, SL_ECORRUPT, "truncated gzip stream");
        assert_gunzip_fails(gz, cuts[i], 2, SL_ECORRUPT, "truncated gzip stream");
    }
    /* A second member cut short is truncation too, not success with the first member's data. */
    size_t two_len = 0;
    unsigned char *two = concat(NULL, &two_len, gz, gz_len);
    two = concat(two, &two_len, gz, gz_len / 3);
    assert_gunzip_fails(two, two_len, 4096, SL_ECORRUPT, "truncated gzip stream");
    free(two);
    free(gz);
    free(text);
}

static void test_gunzip_corrupt(void) {
    size_t len = 40000, gz_len;
    unsigned char *text = make_text(len);
    unsigned char *gz = gzip_bytes(text, len, &gz_len);

    /* Trailer CRC: the data inflates but does not match. */
    gz[gz_len - 6] ^= 0x55;
    assert_gunzip_fails(gz, gz_len, 4096, SL_ECORRUPT, "corrupt gzip data");
    gz[gz_len - 6] ^= 0x55;
    /* Trailer length. */
    gz[gz_len - 2] ^= 0x01;
    assert_gunzip_fails(gz, gz_len, 4096, SL_ECORRUPT, "corrupt gzip data");
    gz[gz_len - 2] ^= 0x01;
    /* Inside the deflate data: either an invalid code or a CRC mismatch, never success. */
    for (size_t at = 12; at < gz_len - 8; at += gz_len / 17) {
        gz[at] ^= 0xA5;
        assert_gunzip_fails(gz, gz_len, 4096, SL_ECORRUPT, "corrupt gzip data at byte ");
        gz[at] ^= 0xA5;
    }
    assert_gunzip(gz, gz_len, text, len, 4096, 0);
    free(gz);
    free(text);
}

/* The zlib wrapper (RFC 1950) is auto-detected as well, as inflateInit2(15 + 32) does. */
static void test_gunzip_zlib_wrapper(void) {
    size_t len = 5000, z_len;
    unsigned char *text = make_text(len);
    unsigned char *z = deflate_bytes(text, len, 0, &z_len);
    assert_gunzip(z, z_len, text, len, 4096, 0);
    free(z);
    free(text);
}

static void test_gunzip_buffer_too_small(void) {
    size_t gz_len;
    unsigned char *gz = gzip_bytes("x", 1, &gz_len);
    assert_gunzip_fails(gz, gz_len, 1, SL_EINVAL, "too small");
    free(gz);
}

/* ---- copy ---- */

static void test_copy(void) {
    size_t len = 100003;
    unsigned char *data = malloc(len);
    ASSERT_TRUE(data != NULL);
    fill_random(data, len);
    size_t bufs[] = {1, 7, 4096, 1 << 20};
    for (size_t i = 0; i < COUNT_OF(bufs); i++) {
        run x;
        run_init(&x, data, len, bufs[i], len);
        x.r.max_chunk = i == 2 ? 1000 : 0;
        ASSERT_INT_EQ(run_once("copy", &x), 0);
        ASSERT_UINT_EQ(x.w.len, len);
        ASSERT_MEM_EQ(x.w.data, data, len);
        ASSERT_UINT_EQ(x.task.bytes_in, len);
        ASSERT_UINT_EQ(x.task.bytes_out, len);
        ASSERT_STR_EQ(x.result, "");
        run_free(&x);
    }
    run x;
    run_init(&x, "", 0, 16, 1);
    ASSERT_INT_EQ(run_once("copy", &x), 0);
    ASSERT_UINT_EQ(x.w.len, 0);
    run_free(&x);

    run_init(&x, data, len, 4096, 0);
    ASSERT_INT_EQ(run_once("copy", &x), SL_EINVAL);
    ASSERT_CONTAINS(x.error, "destination");
    run_free(&x);
    free(data);
}

/* ---- failures common to all ops ---- */

static void test_read_error_message(void) {
    for (size_t i = 0; i < COUNT_OF(s_all); i++) {
        explaining_reader er = {.base.client = &explaining_client};
        run x;
        run_init(&x, "", 0, 4096, 64);
        x.task.in = &er.base;
        int rc = run_once(s_all[i], &x);
        if (rc != SL_EIO)
            TEST_FAIL_("%s: got %d (%s), want SL_EIO", s_all[i], rc, x.error);
        ASSERT_CONTAINS(x.error, "read failed");
        ASSERT_CONTAINS(x.error, "gs://bucket/dir/object: connection reset by peer");
        ASSERT_STR_EQ(x.result, "");
        run_free(&x);
    }
}

/* A backend that fails without explaining itself still gives a reason: the code's text. */
static void test_read_error_without_explanation(void) {
    size_t len = 200000, gz_len;
    unsigned char *text = make_text(len);
    unsigned char *gz = gzip_bytes(text, len, &gz_len);
    ASSERT_TRUE(gz_len > 1000);
    for (size_t i = 0; i < COUNT_OF(s_all); i++) {
        run x;
        bool gunzip = strcmp(s_all[i], "gunzip") == 0;
        run_init(&x, gunzip ? gz : text, gunzip ? gz_len : len, 256, len + 1);
        x.r.fail_at = 1000;
        sl__fail(SL_OK, "%s", "");
        int rc = run_once(s_all[i], &x);
        if (rc != SL_EIO)
            TEST_FAIL_("%s: got %d (%s), want SL_EIO", s_all[i], rc, x.error);
        ASSERT_CONTAINS(x.error, "read failed");
        ASSERT_CONTAINS(x.error, sl_strerror(SL_EIO));
        ASSERT_TRUE(x.task.bytes_in < 1000);
        ASSERT_STR_EQ(x.result, "");
        run_free(&x);
    }
    free(gz);
    free(text);
}

static void test_write_error(void) {
    size_t len = 20000, gz_len;
    unsigned char *text = make_text(len);
    unsigned char *gz = gzip_bytes(text, len, &gz_len);
    for (int gunzip = 0; gunzip <= 1; gunzip++) {
        run x;
        run_init(&x, gunzip ? gz : text, gunzip ? gz_len : len, 4096, len / 2);
        sl__fail(SL_OK, "%s", "");
        int rc = run_once(gunzip ? "gunzip" : "copy", &x);
        ASSERT_INT_EQ(rc, SL_ENOSPC);
        ASSERT_CONTAINS(x.error, "write to dir/object.out failed");
        ASSERT_CONTAINS(x.error, sl_strerror(SL_ENOSPC));
        ASSERT_TRUE(x.task.bytes_out <= len / 2);
        ASSERT_UINT_EQ(x.task.bytes_out, x.w.len);
        run_free(&x);
    }
    free(gz);
    free(text);
}

static void test_abort_before_start(void) {
    atomic_bool flag;
    atomic_init(&flag, true);
    for (size_t i = 0; i < COUNT_OF(s_all); i++) {
        run x;
        run_init(&x, "abc", 3, 4096, 16);
        x.task.abort = &flag;
        int rc = run_once(s_all[i], &x);
        if (rc != SL_ECANCELED)
            TEST_FAIL_("%s: got %d (%s), want SL_ECANCELED", s_all[i], rc, x.error);
        ASSERT_CONTAINS(x.error, "interrupted");
        ASSERT_UINT_EQ(x.task.bytes_in, 0);
        ASSERT_STR_EQ(x.result, "");
        run_free(&x);
    }
    /* An abort pointer that is present but false changes nothing. */
    atomic_store(&flag, false);
    run x;
    run_init(&x, "abc", 3, 4096, 0);
    x.task.abort = &flag;
    ASSERT_INT_EQ(run_once("md5", &x), 0);
    ASSERT_STR_EQ(x.result, "\"md5\":\"900150983cd24fb0d6963f7d28e17f72\"");
    run_free(&x);
}

/* The flag rises during the first read: every op must stop before its second read. */
static void test_abort_between_chunks(void) {
    size_t len = 200000, gz_len;
    unsigned char *text = make_text(len);
    unsigned char *gz = gzip_bytes(text, len, &gz_len);
    ASSERT_TRUE(gz_len > 1000);
    for (size_t i = 0; i < COUNT_OF(s_all); i++) {
        bool gunzip = strcmp(s_all[i], "gunzip") == 0;
        atomic_bool flag;
        atomic_init(&flag, false);
        aborting_reader ar;
        mem_reader_init(&ar.mem, gunzip ? gz : text, gunzip ? gz_len : len);
        ar.mem.base.client = &aborting_client;
        ar.mem.max_chunk = 1000;
        ar.flag = &flag;
        ar.reads = 0;
        run x;
        run_init(&x, "", 0, 4096, 2 * len);
        x.task.in = &ar.mem.base;
        x.task.abort = &flag;
        int rc = run_once(s_all[i], &x);
        if (rc != SL_ECANCELED)
            TEST_FAIL_("%s: got %d (%s), want SL_ECANCELED", s_all[i], rc, x.error);
        ASSERT_INT_EQ(ar.reads, 1);
        ASSERT_UINT_EQ(x.task.bytes_in, 1000);
        run_free(&x);
    }
    free(gz);
    free(text);
}

/* A small compressed input that inflates to a lot must still notice the abort while it is producing output. */
static void test_abort_during_inflate(void) {
    size_t len = 8u << 20, gz_len;
    unsigned char *zeros = calloc(1, len);
    ASSERT_TRUE(zeros != NULL);
    unsigned char *gz = gzip_bytes(zeros, len, &gz_len);
    free(zeros);
    ASSERT_TRUE(gz_len < 16384);
    atomic_bool flag;
    atomic_init(&flag, false);
    aborting_reader ar;
    mem_reader_init(&ar.mem, gz, gz_len);
    ar.mem.base.client = &aborting_client;
    ar.flag = &flag;
    ar.reads = 0;
    run x;
    run_init(&x, "", 0, 65536, len);
    x.task.in = &ar.mem.base;
    x.task.abort = &flag;
    ASSERT_INT_EQ(run_once("gunzip", &x), SL_ECANCELED);
    ASSERT_INT_EQ(ar.reads, 1);
    /* Stopped after the first output chunk, not after inflating everything and trying the next read. */
    ASSERT_TRUE(x.w.len > 0);
    ASSERT_TRUE(x.w.len <= 65536);
    ASSERT_UINT_EQ(x.task.bytes_out, x.w.len);
    run_free(&x);
    free(gz);
}

static void test_result_overflow(void) {
    for (size_t i = 0; i < COUNT_OF(s_public); i++) {
        size_t gz_len;
        unsigned char *gz = gzip_bytes("abc", 3, &gz_len);
        bool gunzip = strcmp(s_public[i], "gunzip") == 0;
        run x;
        run_init(&x, gunzip ? gz : (const void *)"abc", gunzip ? gz_len : 3, 4096, 0);
        strcpy(x.result, "\"key\":1");
        x.task.result_len = 7;
        x.task.result_cap = 12;
        int rc = run_once(s_public[i], &x);
        if (rc != SL_ETOOBIG)
            TEST_FAIL_("%s: got %d (%s), want SL_ETOOBIG", s_public[i], rc, x.error);
        ASSERT_STR_EQ(x.result, "\"key\":1");
        ASSERT_UINT_EQ(x.task.result_len, 7);
        ASSERT_CONTAINS(x.error, "result does not fit");
        run_free(&x);
        free(gz);
    }
    /* With room, the op's member follows the existing ones after a comma. */
    run x;
    run_init(&x, "abc", 3, 4096, 0);
    strcpy(x.result, "\"key\":1");
    x.task.result_len = 7;
    ASSERT_INT_EQ(run_once("crc32c", &x), 0);
    char want[64];
    snprintf(want, sizeof(want), "\"key\":1,\"crc32c\":\"%08x\"", (unsigned)sl__crc32c_update_portable(0, "abc", 3));
    ASSERT_STR_EQ(x.result, want);
    run_free(&x);
}

static void test_no_buffer(void) {
    for (size_t i = 0; i < COUNT_OF(s_all); i++) {
        run x;
        run_init(&x, "abc", 3, 0, 16);
        int rc = run_once(s_all[i], &x);
        if (rc != SL_EINVAL)
            TEST_FAIL_("%s with a 0-byte buffer: got %d (%s), want SL_EINVAL", s_all[i], rc, x.error);
        run_free(&x);
    }
}

/* ---- per-thread state ---- */

/* One thread_init, then many objects through the same state, with failures in between: each result must be what a
 * fresh state gives, so nothing of one object (digest state, inflate state) leaks into the next. */
static void test_state_reused_across_objects(void) {
    static const struct {
        const char *op, *abc, *empty;
    } cases[] = {
        {"md5", "\"md5\":\"900150983cd24fb0d6963f7d28e17f72\"", "\"md5\":\"d41d8cd98f00b204e9800998ecf8427e\""},
        {"sha256", "\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"",
         "\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\""},
        {"crc32c", "\"crc32c\":\"364b3fb7\"", "\"crc32c\":\"00000000\""},
        {"count", "\"bytes\":3,\"lines\":0", "\"bytes\":0,\"lines\":0"},
    };
    size_t junk_len = 10000;
    unsigned char *junk = make_text(junk_len);
    for (size_t c = 0; c < COUNT_OF(cases); c++) {
        const sl__op *op = find_op(cases[c].op);
        void *state = op_state(op);
        for (int round = 0; round < 50; round++) {
            run x;
            /* An object that fails after several chunks leaves half-fed state behind. */
            run_init(&x, junk, junk_len, 100, 0);
            x.r.fail_at = 5000;
            ASSERT_INT_EQ(op->process(state, &x.task), SL_EIO);
            run_free(&x);

            run_init(&x, "abc", 3, 100, 0);
            ASSERT_INT_EQ(op->process(state, &x.task), 0);
            ASSERT_STR_EQ(x.result, cases[c].abc);
            run_free(&x);

            run_init(&x, junk, junk_len, 100, 0);
            ASSERT_INT_EQ(op->process(state, &x.task), 0);
            run_free(&x);

            run_init(&x, "", 0, 100, 0);
            ASSERT_INT_EQ(op->process(state, &x.task), 0);
            ASSERT_STR_EQ(x.result, cases[c].empty);
            run_free(&x);
        }
        op->thread_fini(state);
    }
    free(junk);
}

static void test_gunzip_state_reused_across_objects(void) {
    size_t a_len = 70000, b_len = 3000, a_gz_len, b_gz_len;
    unsigned char *a = make_text(a_len);
    unsigned char *b = make_text(b_len);
    unsigned char *a_gz = gzip_bytes(a, a_len, &a_gz_len);
    unsigned char *b_gz = gzip_bytes(b, b_len, &b_gz_len);
    const sl__op *op = find_op("gunzip");
    void *state = op_state(op);
    for (int round = 0; round < 30; round++) {
        run x;
        /* Stops mid-member: the inflate state is in the middle of a block. */
        run_init(&x, a_gz, a_gz_len / 2, 512, 0);
        ASSERT_INT_EQ(op->process(state, &x.task), SL_ECORRUPT);
        ASSERT_CONTAINS(x.error, "truncated");
        run_free(&x);

        run_init(&x, b_gz, b_gz_len, 512, b_len);
        ASSERT_INT_EQ(op->process(state, &x.task), 0);
        ASSERT_UINT_EQ(x.w.len, b_len);
        ASSERT_MEM_EQ(x.w.data, b, b_len);
        run_free(&x);

        /* Fails on a read error mid-member. */
        run_init(&x, a_gz, a_gz_len, 512, a_len);
        x.r.fail_at = (int)(a_gz_len / 3);
        ASSERT_INT_EQ(op->process(state, &x.task), SL_EIO);
        run_free(&x);

        run_init(&x, "garbage!", 8, 512, 16);
        ASSERT_INT_EQ(op->process(state, &x.task), SL_ECORRUPT);
        ASSERT_CONTAINS(x.error, "not gzip data");
        run_free(&x);

        run_init(&x, a_gz, a_gz_len, 512, a_len);
        ASSERT_INT_EQ(op->process(state, &x.task), 0);
        ASSERT_UINT_EQ(x.w.len, a_len);
        ASSERT_MEM_EQ(x.w.data, a, a_len);
        run_free(&x);
    }
    op->thread_fini(state);
    free(b_gz);
    free(a_gz);
    free(b);
    free(a);
}

typedef struct worker_arg {
    const char *op;
    const unsigned char *data;
    size_t len;
    const char *want; /* result, or NULL for gunzip: output must equal plain */
    const unsigned char *plain;
    size_t plain_len;
    bool ok;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    const sl__op *op = sl__op_find(a->op);
    void *state = NULL;
    a->ok = op && op->thread_init(NULL, &state) == 0;
    for (int i = 0; a->ok && i < 40; i++) {
        run x;
        run_init(&x, a->data, a->len, 1024 + (size_t)i, a->want ? 0 : a->plain_len);
        x.r.max_chunk = (size_t)(i % 5) * 100;
        bool good = op->process(state, &x.task) == 0 &&
                    (a->want ? strcmp(x.result, a->want) == 0
                             : x.w.len == a->plain_len && memcmp(x.w.data, a->plain, a->plain_len) == 0);
        a->ok = a->ok && good;
        run_free(&x);
    }
    if (op)
        op->thread_fini(state);
    return NULL;
}

/* Worker threads each with their own state, all at once (run under TSan to check for shared mutable state). */
static void test_threads(void) {
    size_t len = 1000000, gz_len;
    unsigned char *a = malloc(len);
    ASSERT_TRUE(a != NULL);
    memset(a, 'a', len);
    unsigned char *gz = gzip_bytes(a, len, &gz_len);
    worker_arg args[] = {
        {"md5", a, len, "\"md5\":\"7707d6ae4e027c70eea2a935c2296f21\"", NULL, 0, false},
        {"sha256", a, len, "\"sha256\":\"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0\"", NULL, 0,
         false},
        {"md5", a, len, "\"md5\":\"7707d6ae4e027c70eea2a935c2296f21\"", NULL, 0, false},
        {"count", a, len, "\"bytes\":1000000,\"lines\":0", NULL, 0, false},
        {"gunzip", gz, gz_len, NULL, a, len, false},
        {"gunzip", gz, gz_len, NULL, a, len, false},
    };
    pthread_t tids[COUNT_OF(args)];
    for (size_t i = 0; i < COUNT_OF(args); i++)
        ASSERT_INT_EQ(pthread_create(&tids[i], NULL, worker, &args[i]), 0);
    for (size_t i = 0; i < COUNT_OF(args); i++) {
        ASSERT_INT_EQ(pthread_join(tids[i], NULL), 0);
        if (!args[i].ok)
            TEST_FAIL_("thread %zu (%s) got a wrong result", i, args[i].op);
    }
    free(gz);
    free(a);
}

int main(void) {
    RUN_TEST(test_result_printf_separator);
    RUN_TEST(test_result_printf_exact_fit_and_overflow);
    RUN_TEST(test_task_fail);
    RUN_TEST(test_find_and_names);
    RUN_TEST(test_md5_known);
    RUN_TEST(test_sha256_known);
    RUN_TEST(test_digests_million_a);
    RUN_TEST(test_crc32c_known);
    RUN_TEST(test_crc32c_zero_padded);
    RUN_TEST(test_count_edges);
    RUN_TEST(test_count_large);
    RUN_TEST(test_gunzip_single_member);
    RUN_TEST(test_gunzip_tiny_buffers);
    RUN_TEST(test_gunzip_multi_member);
    RUN_TEST(test_gunzip_empty);
    RUN_TEST(test_gunzip_no_destination_counts);
    RUN_TEST(test_gunzip_not_gzip);
    RUN_TEST(test_gunzip_truncated);
    RUN_TEST(test_gunzip_corrupt);
    RUN_TEST(test_gunzip_zlib_wrapper);
    RUN_TEST(test_gunzip_buffer_too_small);
    RUN_TEST(test_copy);
    RUN_TEST(test_read_error_message);
    RUN_TEST(test_read_error_without_explanation);
    RUN_TEST(test_write_error);
    RUN_TEST(test_abort_before_start);
    RUN_TEST(test_abort_between_chunks);
    RUN_TEST(test_abort_during_inflate);
    RUN_TEST(test_result_overflow);
    RUN_TEST(test_no_buffer);
    RUN_TEST(test_state_reused_across_objects);
    RUN_TEST(test_gunzip_state_reused_across_objects);
    RUN_TEST(test_threads);
    TEST_DONE();
}
