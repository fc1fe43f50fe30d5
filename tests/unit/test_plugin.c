/* The public operation interface (sluice/plugin.h): the task's accessors, result members and failure reasons on
 * in-memory streams; the config thread_init gets; the checks of an op handed over; the resume tag of a caller's op;
 * and jobs running an op of the caller's (sl_job_options.op, no dlopen) over real files, where the per-thread
 * lifecycle is checked from inside the op. Run under TSan in CI. */
#include "memstore.h"
#include "resume.h"
#include "task.h"
#include "test.h"

#include "sluice/sluice.h"

#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_root[256];

/* ---- one task on memory ---- */

typedef struct run {
    mem_reader r;
    mem_writer w;
    sl_object src;
    sl_task task;
    unsigned char buf[64];
    char result[128];
    char error[256];
    atomic_bool abort;
} run;

static void run_init(run *x, const char *data, bool with_output) {
    memset(x, 0, sizeof(*x));
    mem_reader_init(&x->r, data, strlen(data));
    if (with_output)
        mem_writer_init(&x->w, 1024);
    x->src = (sl_object){.key = "d/k\nx",
                         .key_len = 5,
                         .size = strlen(data),
                         .mtime_ns = 42,
                         .generation = 7,
                         .crc32c = 0xdeadbeef,
                         .has_crc32c = true};
    atomic_init(&x->abort, false);
    x->task = (sl_task){
        .src = &x->src,
        .src_url = "file:///s/d/k%0Ax",
        .dst_key = with_output ? "d/k\nx.out" : NULL,
        .in = &x->r.base,
        .out = with_output ? &x->w.base : NULL,
        .buf = x->buf,
        .buf_size = sizeof(x->buf),
        .result = x->result,
        .result_cap = sizeof(x->result),
        .error = x->error,
        .error_cap = sizeof(x->error),
        .abort = &x->abort,
    };
}

static void run_free(run *x) {
    free(x->w.data);
}

static void test_object_accessors(void) {
    run x;
    run_init(&x, "abc", true);
    size_t len = 0;
    ASSERT_STR_EQ(sl_task_key(&x.task, &len), "d/k\nx");
    ASSERT_UINT_EQ(len, 5);
    ASSERT_STR_EQ(sl_task_key(&x.task, NULL), "d/k\nx");
    ASSERT_UINT_EQ(sl_task_size(&x.task), 3);
    ASSERT_STR_EQ(sl_task_url(&x.task), "file:///s/d/k%0Ax");
    ASSERT_INT_EQ(sl_task_generation(&x.task), 7);
    ASSERT_INT_EQ(sl_task_mtime_ns(&x.task), 42);
    uint32_t crc = 0;
    ASSERT_TRUE(sl_task_crc32c(&x.task, &crc));
    ASSERT_UINT_EQ(crc, 0xdeadbeef);
    unsigned char md5[16] = {0};
    ASSERT_FALSE(sl_task_md5(&x.task, md5));
    x.src.has_md5 = true;
    x.src.md5[0] = 0xab;
    ASSERT_TRUE(sl_task_md5(&x.task, md5));
    ASSERT_UINT_EQ(md5[0], 0xab);
    ASSERT_TRUE(sl_task_content_encoding(&x.task) == NULL);
    x.src.content_encoding = "gzip";
    ASSERT_STR_EQ(sl_task_content_encoding(&x.task), "gzip");
    ASSERT_STR_EQ(sl_task_output_key(&x.task), "d/k\nx.out");
    ASSERT_TRUE(sl_task_has_output(&x.task));
    size_t cap = 0;
    ASSERT_TRUE(sl_task_buffer(&x.task, &cap) == x.buf);
    ASSERT_UINT_EQ(cap, sizeof(x.buf));
    run_free(&x);

    run_init(&x, "abc", false);
    ASSERT_TRUE(sl_task_output_key(&x.task) == NULL);
    ASSERT_FALSE(sl_task_has_output(&x.task));
    run_free(&x);
}

static void test_read_write(void) {
    run x;
    run_init(&x, "hello world", true);
    x.r.max_chunk = 4;
    char got[32];
    size_t n = 0;
    int64_t r;
    while ((r = sl_task_read(&x.task, got + n, sizeof(got) - n)) > 0)
        n += (size_t)r;
    ASSERT_INT_EQ(r, 0);
    ASSERT_UINT_EQ(n, 11);
    ASSERT_MEM_EQ(got, "hello world", 11);
    ASSERT_UINT_EQ(x.task.bytes_in, 11);
    ASSERT_INT_EQ(sl_task_write(&x.task, "HELLO", 5), 0);
    ASSERT_INT_EQ(sl_task_write(&x.task, "!", 1), 0);
    ASSERT_UINT_EQ(x.task.bytes_out, 6);
    ASSERT_UINT_EQ(x.w.len, 6);
    ASSERT_MEM_EQ(x.w.data, "HELLO!", 6);
    /* A write the store refuses: its code and a reason naming the output. */
    x.w.cap = 6;
    ASSERT_INT_EQ(sl_task_write(&x.task, "more", 4), SL_ENOSPC);
    ASSERT_TRUE(strstr(x.error, "write to d/k\nx.out failed") != NULL);
    /* An op that does not transform has no output stream of its own: its result line is the output. */
    x.task.no_write = true;
    ASSERT_INT_EQ(sl_task_write(&x.task, "x", 1), SL_EINVAL);
    ASSERT_TRUE(strstr(x.error, "SL_OP_TRANSFORMS") != NULL);
    run_free(&x);

    run_init(&x, "abc", false);
    ASSERT_INT_EQ(sl_task_write(&x.task, "x", 1), SL_EINVAL);
    ASSERT_TRUE(strstr(x.error, "no output stream") != NULL);
    /* A read error: the store's code, "read failed: ..." as the reason. */
    x.r.fail_at = 1;
    ASSERT_INT_EQ(sl_task_read(&x.task, got, sizeof(got)), SL_EIO);
    ASSERT_TRUE(strncmp(x.error, "read failed: ", 13) == 0);
    run_free(&x);

    /* Once the job is aborted, the next read says so instead of reading. */
    run_init(&x, "abc", false);
    ASSERT_FALSE(sl_task_aborted(&x.task));
    atomic_store(&x.abort, true);
    ASSERT_TRUE(sl_task_aborted(&x.task));
    ASSERT_INT_EQ(sl_task_read(&x.task, got, sizeof(got)), SL_ECANCELED);
    ASSERT_STR_EQ(x.error, "interrupted");
    ASSERT_UINT_EQ(x.r.pos, 0);
    ASSERT_INT_EQ(sl_task_fail(&x.task, SL_ECORRUPT, "line %d is not %s", 3, "JSON"), SL_ECORRUPT);
    ASSERT_STR_EQ(x.error, "line 3 is not JSON");
    run_free(&x);
}

static void test_result_members(void) {
    run x;
    run_init(&x, "", false);
    ASSERT_UINT_EQ(sl_task_result_room(&x.task), sizeof(x.result) - 1);
    ASSERT_INT_EQ(sl_task_result_string(&x.task, "s", "a\"b\n\xff", 5), 0);
    ASSERT_INT_EQ(sl_task_result_uint(&x.task, "u", UINT64_MAX), 0);
    ASSERT_INT_EQ(sl_task_result_int(&x.task, "i", INT64_MIN), 0);
    ASSERT_INT_EQ(sl_task_result_json(&x.task, "j", "{\"a\": [1, true]}", 16), 0);
    ASSERT_STR_EQ(x.result, "\"s\":\"a\\\"b\\n\\u00ff\",\"u\":18446744073709551615,\"i\":-9223372036854775808,"
                            "\"j\":{\"a\": [1, true]}");
    ASSERT_UINT_EQ(x.task.result_len, strlen(x.result));
    ASSERT_UINT_EQ(sl_task_result_room(&x.task), sizeof(x.result) - 1 - strlen(x.result));
    run_free(&x);

    /* Refused: the job's own members, a JSON value that is not one JSON text or spans lines. The result is kept. */
    run_init(&x, "", false);
    ASSERT_INT_EQ(sl_task_result_uint(&x.task, "n", 1), 0);
    ASSERT_INT_EQ(sl_task_result_uint(&x.task, "key", 1), SL_EINVAL);
    ASSERT_INT_EQ(sl_task_result_string(&x.task, "size", "x", 1), SL_EINVAL);
    ASSERT_TRUE(strstr(x.error, "\"size\" is the job's own") != NULL);
    ASSERT_INT_EQ(sl_task_result_json(&x.task, "j", "{\"a\":", 5), SL_EINVAL);
    ASSERT_INT_EQ(sl_task_result_json(&x.task, "j", "1 2", 3), SL_EINVAL);
    ASSERT_INT_EQ(sl_task_result_json(&x.task, "j", "[1,\n2]", 6), SL_EINVAL);
    ASSERT_INT_EQ(sl_task_result_json(&x.task, "j", "\"x\"", 3), 0);
    ASSERT_INT_EQ(sl_task_result_uint(&x.task, NULL, 1), SL_EINVAL);
    ASSERT_STR_EQ(x.result, "\"n\":1,\"j\":\"x\"");
    run_free(&x);

    /* Too big: SL_ETOOBIG with a reason, and the result exactly as it was, whatever part did not fit. */
    run_init(&x, "", false);
    char big[200];
    memset(big, 'v', sizeof(big));
    ASSERT_INT_EQ(sl_task_result_string(&x.task, "a", big, 100), 0);
    size_t before = x.task.result_len;
    char copy[sizeof(x.result)];
    memcpy(copy, x.result, before + 1);
    for (size_t len = 0; len < sizeof(big); len++) {
        int rc = sl_task_result_string(&x.task, "b", big, len);
        if (rc == 0) {
            /* It fitted: undo it for the next length. */
            x.task.result_len = before;
            x.result[before] = '\0';
            continue;
        }
        ASSERT_INT_EQ(rc, SL_ETOOBIG);
        ASSERT_UINT_EQ(x.task.result_len, before);
        ASSERT_STR_EQ(x.result, copy);
    }
    char name[200];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    ASSERT_INT_EQ(sl_task_result_uint(&x.task, name, 1), SL_ETOOBIG);
    ASSERT_STR_EQ(x.result, copy);
    ASSERT_TRUE(strstr(x.error, "result does not fit in 128 bytes") != NULL);
    /* The last byte of room is usable: a member that fits exactly is taken. */
    size_t room = sl_task_result_room(&x.task);
    ASSERT_TRUE(room > 6);
    ASSERT_INT_EQ(sl_task_result_string(&x.task, "c", big, room - 7), 0); /* ,"c":"" is 7 bytes */
    ASSERT_UINT_EQ(sl_task_result_room(&x.task), 0);
    ASSERT_UINT_EQ(x.task.result_len, sizeof(x.result) - 1);
    run_free(&x);
}

static void test_config(void) {
    const char *args[] = {"model=/m/x.bin", "k=", "k2=a=b"};
    sl_op_config cfg = {.args = args, .arg_count = 3, .worker = 2, .workers = 5};
    ASSERT_STR_EQ(sl_op_config_get(&cfg, "model"), "/m/x.bin");
    ASSERT_STR_EQ(sl_op_config_get(&cfg, "k"), "");
    ASSERT_STR_EQ(sl_op_config_get(&cfg, "k2"), "a=b");
    ASSERT_TRUE(sl_op_config_get(&cfg, "mod") == NULL);
    ASSERT_TRUE(sl_op_config_get(&cfg, "model=/m") == NULL);
    ASSERT_UINT_EQ(sl_op_config_count(&cfg), 3);
    ASSERT_STR_EQ(sl_op_config_arg(&cfg, 1), "k=");
    ASSERT_TRUE(sl_op_config_arg(&cfg, 3) == NULL);
    ASSERT_UINT_EQ(sl_op_config_worker(&cfg), 2);
    ASSERT_UINT_EQ(sl_op_config_workers(&cfg), 5);
    ASSERT_TRUE(sl_op_config_get(NULL, "k") == NULL);
    ASSERT_UINT_EQ(sl_op_config_count(NULL), 0);
    ASSERT_INT_EQ(sl_op_fail(SL_ENOENT, "no model at %s", "/m"), SL_ENOENT);
    ASSERT_STR_EQ(sl_last_error(), "no model at /m");
}

static int noop_process(void *state, sl_task *task) {
    (void)state;
    (void)task;
    return 0;
}

static void test_op_check(void) {
    sl_op op = {.abi_version = SL_OP_ABI_VERSION, .name = "ok-op_1.2", .process = noop_process};
    ASSERT_INT_EQ(sl__op_check(&op, "plugin p"), 0);
    op.flags = SL_OP_TRANSFORMS;
    ASSERT_INT_EQ(sl__op_check(&op, "plugin p"), 0);
    op.flags = 0x2;
    ASSERT_INT_EQ(sl__op_check(&op, "plugin p"), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "flags this sluice does not know (0x2)") != NULL);
    op.flags = 0;
    op.abi_version = 0;
    ASSERT_INT_EQ(sl__op_check(&op, "plugin p"), SL_EINVAL);
    ASSERT_STR_EQ(sl_last_error(), "plugin p was built for sluice plugin ABI version 0; this sluice loads version 1: "
                                   "rebuild it against this sluice's sluice/plugin.h");
    op.abi_version = SL_OP_ABI_VERSION;
    const char *bad_names[] = {NULL, "", "with space", "slash/", "123456789012345678901234567890123", "é"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        op.name = bad_names[i];
        ASSERT_INT_EQ(sl__op_check(&op, "plugin p"), SL_EINVAL);
    }
    op.name = "12345678901234567890123456789012";
    ASSERT_INT_EQ(sl__op_check(&op, "plugin p"), 0);
    op.process = NULL;
    ASSERT_INT_EQ(sl__op_check(&op, "plugin p"), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "has no process function") != NULL);
    ASSERT_INT_EQ(sl__op_check(NULL, "x"), SL_EINVAL);
}

static void test_job_tag(void) {
    char a[SL__JOB_TAG_CAP], b[SL__JOB_TAG_CAP];
    const char *ab[] = {"a=1", "b=2"}, *ba[] = {"b=2", "a=1"}, *swapped[] = {"a=2", "b=1"};
    sl__job_tag_plugin("op", "1", ab, 2, a);
    sl__job_tag_plugin("op", "1", ba, 2, b);
    ASSERT_STR_EQ(a, b);
    ASSERT_UINT_EQ(strlen(a), strlen("plugin:") + 8);
    ASSERT_TRUE(strncmp(a, "plugin:", 7) == 0);
    sl__job_tag_plugin("op", "1", swapped, 2, b);
    ASSERT_TRUE(strcmp(a, b) != 0);
    sl__job_tag_plugin("op", "2", ab, 2, b);
    ASSERT_TRUE(strcmp(a, b) != 0);
    sl__job_tag_plugin("op2", "1", ab, 2, b);
    ASSERT_TRUE(strcmp(a, b) != 0);
    sl__job_tag_plugin("op", "1", ab, 1, b);
    ASSERT_TRUE(strcmp(a, b) != 0);
    /* A NULL version is "", and name and version do not run into each other. */
    sl__job_tag_plugin("op", NULL, NULL, 0, a);
    sl__job_tag_plugin("op", "", NULL, 0, b);
    ASSERT_STR_EQ(a, b);
    sl__job_tag_plugin("o", "p", NULL, 0, b);
    ASSERT_TRUE(strcmp(a, b) != 0);
    /* The tag fits a fingerprint that parses back. */
    sl_object o = {.key = "k", .key_len = 1, .size = 3, .mtime_ns = 5};
    char fp[SL__FP_CAP];
    ASSERT_TRUE(sl__fp_format(&o, a, fp, sizeof(fp)) > 0);
    ASSERT_TRUE(sl__fp_matches(fp, &o, a));
    ASSERT_FALSE(sl__fp_matches(fp, &o, "op:md5"));
}

/* ---- an op of the caller's in a job ---- */

#define MAX_WORKERS 64

typedef struct counts {
    atomic_int inits, finis, processed, fails_seen;
    atomic_uint worker_seen; /* bit per worker index given to thread_init */
    atomic_int bad;          /* contract violations seen from inside the op */
} counts;

static counts s_counts;

typedef struct probe_state {
    pthread_t thread;
    unsigned worker;
    const sl_op_config *config;
    int objects;
} probe_state;

static int probe_init(const sl_op_config *config, void **state) {
    atomic_fetch_add(&s_counts.inits, 1);
    const char *fail = sl_op_config_get(config, "fail_init");
    if (fail)
        return sl_op_fail(SL_ENOENT, "cannot open %s", fail);
    if (sl_op_config_get(config, "positive_init"))
        return 7;
    unsigned w = sl_op_config_worker(config);
    if (w >= sl_op_config_workers(config) || w >= 32)
        atomic_fetch_add(&s_counts.bad, 1);
    else if (atomic_fetch_or(&s_counts.worker_seen, 1u << w) & (1u << w))
        atomic_fetch_add(&s_counts.bad, 1); /* two threads with the same index */
    probe_state *s = calloc(1, sizeof(*s));
    if (!s)
        return sl_op_fail(SL_ENOMEM, "out of memory");
    s->thread = pthread_self();
    s->worker = w;
    s->config = config;
    *state = s;
    return 0;
}

static int probe_process(void *state, sl_task *task) {
    probe_state *s = state;
    /* The same thread as thread_init, and the config still valid and the same. */
    if (!s || !pthread_equal(s->thread, pthread_self()) || sl_op_config_worker(s->config) != s->worker)
        atomic_fetch_add(&s_counts.bad, 1);
    s->objects++;
    atomic_fetch_add(&s_counts.processed, 1);
    size_t len;
    const char *key = sl_task_key(task, &len);
    if (strstr(key, "f00003"))
        return sl_task_fail(task, SL_EIO, "refusing %s", key);
    if (strstr(key, "f00004") && sl_op_config_get(s->config, "positive_process"))
        return 1;
    size_t cap;
    unsigned char *buf = sl_task_buffer(task, &cap);
    uint64_t total = 0;
    int64_t n;
    while ((n = sl_task_read(task, buf, cap)) > 0)
        total += (uint64_t)n;
    if (n < 0)
        return (int)n;
    if (total != sl_task_size(task))
        atomic_fetch_add(&s_counts.bad, 1);
    const char *tag = sl_op_config_get(s->config, "tag");
    int rc = sl_task_result_uint(task, "read", total);
    return rc < 0 || !tag ? rc : sl_task_result_string(task, "tag", tag, strlen(tag));
}

static void probe_fini(void *state) {
    atomic_fetch_add(&s_counts.finis, 1);
    probe_state *s = state;
    if (s && !pthread_equal(s->thread, pthread_self()))
        atomic_fetch_add(&s_counts.bad, 1);
    free(s);
}

static const sl_op s_probe = {
    .abi_version = SL_OP_ABI_VERSION,
    .name = "probe",
    .version = "1",
    .thread_init = probe_init,
    .process = probe_process,
    .thread_fini = probe_fini,
};

typedef struct sink {
    atomic_int lines, tagged, failures;
    char failure[512];
    int failure_code;
} sink;

static void on_result(void *ud, const char *line, size_t len) {
    sink *k = ud;
    atomic_fetch_add(&k->lines, 1);
    if (len > 12 && memcmp(line + len - 12, ",\"tag\":\"t1\"}", 12) == 0)
        atomic_fetch_add(&k->tagged, 1);
}

static void on_failure(void *ud, const char *key, int err, const char *error) {
    sink *k = ud;
    atomic_fetch_add(&k->failures, 1);
    snprintf(k->failure, sizeof(k->failure), "%s: %s", key, error);
    k->failure_code = err;
}

static void make_files(const char *dir, int n) {
    mkdir(dir, 0755);
    char path[PATH_MAX + 16];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/f%05d", dir, i);
        FILE *f = fopen(path, "wb");
        ASSERT_TRUE(f != NULL);
        for (int j = 0; j < i % 50; j++)
            fputs("some bytes\n", f);
        ASSERT_INT_EQ(fclose(f), 0);
    }
}

static int run_probe(const char *src, const char *const *args, size_t nargs, unsigned jobs, sink *k, sl_job_stats *st) {
    memset(&s_counts, 0, sizeof(s_counts));
    memset(k, 0, sizeof(*k));
    sl_job_options o = {
        .kind = SL_JOB_OP,
        .src_url = src,
        .dst_url = "-",
        .op = &s_probe,
        .op_args = args,
        .op_arg_count = nargs,
        .jobs = jobs,
        .on_result = on_result,
        .on_failure = on_failure,
        .user_data = k,
    };
    sl_job *job = NULL;
    int rc = sl_job_new(&o, &job);
    if (rc < 0)
        return rc;
    rc = sl_job_run(job);
    sl_job_stats_get(job, st);
    sl_job_destroy(job);
    return rc;
}

static void test_job_lifecycle(void) {
    char src[PATH_MAX];
    snprintf(src, sizeof(src), "%s/src", s_root);
    make_files(src, 400);
    sink k;
    sl_job_stats st;
    const char *args[] = {"tag=t1"};
    ASSERT_INT_EQ(run_probe(src, args, 1, 6, &k, &st), SL_EPARTIAL);
    /* thread_init and thread_fini once per worker, never per object; every index given once. */
    ASSERT_UINT_EQ(st.workers, 6);
    ASSERT_INT_EQ(atomic_load(&s_counts.inits), 6);
    ASSERT_INT_EQ(atomic_load(&s_counts.finis), 6);
    ASSERT_UINT_EQ(atomic_load(&s_counts.worker_seen), 0x3f);
    ASSERT_INT_EQ(atomic_load(&s_counts.bad), 0);
    ASSERT_INT_EQ(atomic_load(&s_counts.processed), 400);
    /* One object failed alone, with the op's reason; the others each gave a line with the argument's tag. */
    ASSERT_UINT_EQ(st.objects_done, 399);
    ASSERT_UINT_EQ(st.objects_failed, 1);
    ASSERT_INT_EQ(atomic_load(&k.lines), 399);
    ASSERT_INT_EQ(atomic_load(&k.tagged), 399);
    ASSERT_STR_EQ(k.failure, "f00003: refusing f00003");
    ASSERT_INT_EQ(k.failure_code, SL_EIO);

    /* A process that returns a positive value fails its object with SL_EINTERNAL. */
    const char *pos[] = {"positive_process=1"};
    ASSERT_INT_EQ(run_probe(src, pos, 1, 2, &k, &st), SL_EPARTIAL);
    ASSERT_UINT_EQ(st.objects_failed, 2);
    ASSERT_INT_EQ(atomic_load(&k.failures), 2);
}

static void test_job_init_failure(void) {
    char src[PATH_MAX];
    snprintf(src, sizeof(src), "%s/src", s_root);
    sink k;
    sl_job_stats st;
    const char *args[] = {"fail_init=/models/x.bin"};
    ASSERT_INT_EQ(run_probe(src, args, 1, 4, &k, &st), SL_ENOENT);
    ASSERT_STR_EQ(sl_last_error(), "operation probe: cannot start: cannot open /models/x.bin");
    ASSERT_INT_EQ(atomic_load(&s_counts.processed), 0);
    ASSERT_UINT_EQ(st.objects_done, 0);
    /* thread_fini still runs in every thread that started, with no state from a failed thread_init. */
    ASSERT_INT_EQ(atomic_load(&s_counts.finis), atomic_load(&s_counts.inits));
    const char *positive[] = {"positive_init=1"};
    ASSERT_INT_EQ(run_probe(src, positive, 1, 2, &k, &st), SL_EINTERNAL);
    ASSERT_TRUE(strstr(sl_last_error(), "operation probe: cannot start: thread_init returned 7") != NULL);
}

static void test_job_refuses(void) {
    char src[PATH_MAX];
    snprintf(src, sizeof(src), "%s/src", s_root);
    sink k;
    sl_job_stats st;
    const char *noeq[] = {"novalue"}, *twice[] = {"a=1", "b=2", "a=3"}, *empty_key[] = {"=v"};
    ASSERT_INT_EQ(run_probe(src, noeq, 1, 1, &k, &st), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "'novalue' is not KEY=VALUE") != NULL);
    ASSERT_INT_EQ(run_probe(src, twice, 3, 1, &k, &st), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "'a' is given twice") != NULL);
    ASSERT_INT_EQ(run_probe(src, empty_key, 1, 1, &k, &st), SL_EINVAL);
    ASSERT_INT_EQ(atomic_load(&s_counts.inits), 0);

    sl_op bad = s_probe;
    bad.abi_version = 99;
    sl_job_options o = {.kind = SL_JOB_OP, .src_url = src, .dst_url = "-", .op = &bad};
    sl_job *job = NULL;
    ASSERT_INT_EQ(sl_job_new(&o, &job), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "built for sluice plugin ABI version 99") != NULL);
    o.op = &s_probe;
    o.op_name = "md5";
    ASSERT_INT_EQ(sl_job_new(&o, &job), SL_EINVAL);
    o.op = NULL;
    o.op_args = noeq;
    o.op_arg_count = 1;
    ASSERT_INT_EQ(sl_job_new(&o, &job), SL_EINVAL);
    ASSERT_TRUE(strstr(sl_last_error(), "md5 takes no arguments") != NULL);
    ASSERT_TRUE(job == NULL);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(s_root, sizeof(s_root), "%s/sluice-test-plugin-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ASSERT_TRUE(mkdtemp(s_root) != NULL);
    RUN_TEST(test_object_accessors);
    RUN_TEST(test_read_write);
    RUN_TEST(test_result_members);
    RUN_TEST(test_config);
    RUN_TEST(test_op_check);
    RUN_TEST(test_job_tag);
    RUN_TEST(test_job_lifecycle);
    RUN_TEST(test_job_init_failure);
    RUN_TEST(test_job_refuses);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_root);
    ASSERT_INT_EQ(system(cmd), 0);
    TEST_DONE();
}
