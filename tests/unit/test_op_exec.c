/* The exec operation with real child processes, driven through thread_init / process / thread_fini with in-memory
 * sources and destinations. Every test that could hang runs under alarm(): a hang is a failure, not a stuck CI job. */
#include "memstore.h"
#include "task.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KIB ((size_t)1024)
#define MIB (KIB * 1024)

typedef struct exec_run {
    /* in */
    const void *input;
    size_t input_len;
    size_t max_chunk;  /* mem_reader: bytes per sl_read, 0 = unlimited */
    int fail_at;       /* mem_reader: fail the read passing this offset */
    size_t out_cap;    /* mem_writer capacity */
    unsigned write_delay_ms; /* mem_writer: each write sleeps this long first */
    bool no_out;       /* task->out = NULL: the output is collected into result */
    size_t result_cap; /* 0 = sizeof(result) */
    size_t error_cap;  /* 0 = sizeof(error) */
    size_t buf_size;   /* 0 = 256 KiB */
    const char *key;   /* NULL = "obj" */
    const char *dst_key;
    const char *src_url;
    const atomic_bool *abort;
    /* out */
    int rc;
    mem_writer w;
    uint64_t bytes_in, bytes_out;
    double seconds;
    char error[4096];
    char result[8192];
    size_t result_len;
} exec_run;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned char *pattern(size_t n, unsigned seed) {
    unsigned char *p = malloc(n ? n : 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (unsigned char)(x >> 16);
    }
    return p;
}

static void *state_new(const sl__op_config *cfg) {
    void *st = NULL;
    ASSERT_INT_EQ(sl__op_exec.thread_init(cfg, &st), 0);
    ASSERT_TRUE(st != NULL);
    return st;
}

/* Runs one object through `st`. The caller frees r->w.data. */
static void run_on(void *st, exec_run *r) {
    mem_reader rd;
    mem_reader_init(&rd, r->input, r->input_len);
    rd.max_chunk = r->max_chunk;
    rd.fail_at = r->fail_at;
    mem_writer_init(&r->w, r->out_cap);
    r->w.delay_ms = r->write_delay_ms;
    const char *key = r->key ? r->key : "obj";
    sl_object obj = {.key = key, .key_len = strlen(key), .size = r->input_len};
    size_t buf_size = r->buf_size ? r->buf_size : 256 * KIB;
    unsigned char *buf = malloc(buf_size);
    r->result[0] = '\0';
    r->error[0] = '\0';
    sl__task t = {
        .src = &obj,
        .src_url = r->src_url,
        .dst_key = r->no_out ? NULL : r->dst_key,
        .in = &rd.base,
        .out = r->no_out ? NULL : &r->w.base,
        .buf = buf,
        .buf_size = buf_size,
        .result = r->result,
        .result_cap = r->result_cap ? r->result_cap : sizeof(r->result),
        .error = r->error,
        .error_cap = r->error_cap ? r->error_cap : sizeof(r->error),
        .abort = r->abort,
    };
    double t0 = now_s();
    r->rc = sl__op_exec.process(st, &t);
    r->seconds = now_s() - t0;
    r->bytes_in = t.bytes_in;
    r->bytes_out = t.bytes_out;
    r->result_len = t.result_len;
    free(buf);
}

static void run_once(const sl__op_config *cfg, exec_run *r) {
    void *st = state_new(cfg);
    run_on(st, r);
    sl__op_exec.thread_fini(st);
}

static void assert_no_children(void) {
    errno = 0;
    pid_t r = waitpid(-1, NULL, WNOHANG);
    ASSERT_INT_EQ(r, -1);
    ASSERT_INT_EQ(errno, ECHILD);
}

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    ASSERT_TRUE(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static bool sigpipe_pending(void) {
    sigset_t pending;
    sigpending(&pending);
    return sigismember(&pending, SIGPIPE);
}

static bool starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

#define SHELL(cmd) ((sl__op_config){.use_shell = true, .command = (cmd)})

static const char *const argv_cat[] = {"cat", NULL};
static const sl__op_config cfg_cat = {.argv = argv_cat};

static void test_cat_identity(void) {
    const size_t sizes[] = {0, 1, 10 * MIB};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *in = pattern(sizes[i], (unsigned)i);
        exec_run r = {.input = in, .input_len = sizes[i], .out_cap = sizes[i] + 1};
        run_once(&cfg_cat, &r);
        ASSERT_INT_EQ(r.rc, 0);
        ASSERT_STR_EQ(r.error, "");
        ASSERT_UINT_EQ(r.w.len, sizes[i]);
        ASSERT_MEM_EQ(r.w.data, in, sizes[i]);
        ASSERT_UINT_EQ(r.bytes_in, sizes[i]);
        ASSERT_UINT_EQ(r.bytes_out, sizes[i]);
        free(r.w.data);
        free(in);
    }
    /* Short reads from the store and a small transfer buffer: many partial pipe writes. */
    unsigned char *in = pattern(MIB + 13, 99);
    exec_run r = {.input = in, .input_len = MIB + 13, .out_cap = 2 * MIB, .max_chunk = 777, .buf_size = 1000};
    run_once(&cfg_cat, &r);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_UINT_EQ(r.w.len, MIB + 13);
    ASSERT_MEM_EQ(r.w.data, in, MIB + 13);
    free(r.w.data);
    free(in);
    assert_no_children();
}

static void test_tr_uppercase(void) {
    static const char *const argv[] = {"tr", "a-z", "A-Z", NULL};
    const sl__op_config cfg = {.argv = argv};
    const char *in = "Hello, World! abc xyz\n";
    exec_run r = {.input = in, .input_len = strlen(in), .out_cap = 100};
    run_once(&cfg, &r);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_UINT_EQ(r.w.len, strlen(in));
    ASSERT_MEM_EQ(r.w.data, "HELLO, WORLD! ABC XYZ\n", strlen(in));
    free(r.w.data);
}

static void test_exit_status_and_stderr(void) {
    const sl__op_config cfg = SHELL("echo '  first problem' >&2; printf 'second\\tline\\n\\n' >&2; exit 3");
    unsigned char *in = pattern(MIB, 1);
    exec_run r = {.input = in, .input_len = MIB, .out_cap = 10};
    run_once(&cfg, &r);
    ASSERT_INT_EQ(r.rc, SL_ECHILD);
    ASSERT_STR_EQ(r.error, "command exited with status 3: first problem\\nsecond\\tline");
    free(r.w.data);

    static const char *const argv_false[] = {"false", NULL};
    const sl__op_config cfg_false = {.argv = argv_false};
    r = (exec_run){.input = "x", .input_len = 1, .out_cap = 10};
    run_once(&cfg_false, &r);
    ASSERT_INT_EQ(r.rc, SL_ECHILD);
    ASSERT_STR_EQ(r.error, "command exited with status 1");
    free(r.w.data);
    free(in);
    assert_no_children();
}

static void test_killed_by_signal(void) {
    const sl__op_config cfg = SHELL("echo dying >&2; kill -SEGV $$");
    exec_run r = {.input = "abc", .input_len = 3, .out_cap = 10};
    run_once(&cfg, &r);
    ASSERT_INT_EQ(r.rc, SL_ECHILD);
    ASSERT_STR_EQ(r.error, "command killed by signal SIGSEGV: dying");
    free(r.w.data);
    assert_no_children();
}

static void test_stderr_bounded(void) {
    /* 100,000 bytes of stderr: the child must not block on a full stderr pipe, and the message keeps a bounded
     * excerpt plus a count of what it dropped. */
    const sl__op_config cfg = SHELL("head -c 100000 /dev/zero | tr '\\0' e >&2; exit 1");
    exec_run r = {.input = "", .input_len = 0, .out_cap = 10};
    run_once(&cfg, &r);
    ASSERT_INT_EQ(r.rc, SL_ECHILD);
    ASSERT_TRUE(starts_with(r.error, "command exited with status 1: eeeeeeeeee"));
    const char *note = strstr(r.error, " ... (");
    ASSERT_TRUE(note != NULL);
    size_t kept = (size_t)(note - r.error) - strlen("command exited with status 1: ");
    ASSERT_TRUE(kept >= 1024 && kept <= 2048);
    char expect[64];
    snprintf(expect, sizeof(expect), " ... (%zu more bytes)", 100000 - kept);
    ASSERT_STR_EQ(note, expect);
    free(r.w.data);

    /* A small error buffer: the excerpt is cut so that the note still shows. */
    r = (exec_run){.input = "", .input_len = 0, .out_cap = 10, .error_cap = 200};
    run_once(&cfg, &r);
    ASSERT_INT_EQ(r.rc, SL_ECHILD);
    ASSERT_TRUE(strlen(r.error) < 200);
    ASSERT_TRUE(starts_with(r.error, "command exited with status 1: eeee"));
    ASSERT_TRUE(strstr(r.error, " more bytes)") != NULL);
    free(r.w.data);

    /* Lots of stderr from a successful command is not an error. */
    const sl__op_config noisy = SHELL("head -c 1000000 /dev/zero >&2; cat");
    r = (exec_run){.input = "payload", .input_len = 7, .out_cap = 10};
    run_once(&noisy, &r);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_UINT_EQ(r.w.len, 7);
    ASSERT_MEM_EQ(r.w.data, "payload", 7);
    free(r.w.data);
    assert_no_children();
}

static void test_child_ignores_input(void) {
    unsigned char *in = pattern(20 * MIB, 2);
    static const char *const argv_true[] = {"true", NULL};
    const sl__op_config cfg_true = {.argv = argv_true};
    exec_run r = {.input = in, .input_len = 20 * MIB, .out_cap = 10};
    run_once(&cfg_true, &r);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_UINT_EQ(r.w.len, 0);
    ASSERT_TRUE(r.bytes_in < 20 * MIB);
    ASSERT_FALSE(sigpipe_pending());
    free(r.w.data);

    static const char *const argv_head[] = {"head", "-c", "10", NULL};
    const sl__op_config cfg_head = {.argv = argv_head};
    r = (exec_run){.input = in, .input_len = 20 * MIB, .out_cap = 100};
    run_once(&cfg_head, &r);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_UINT_EQ(r.w.len, 10);
    ASSERT_MEM_EQ(r.w.data, in, 10);
    ASSERT_UINT_EQ(r.bytes_out, 10);
    ASSERT_FALSE(sigpipe_pending());
    free(r.w.data);
    free(in);
    assert_no_children();
}

static void *run_true_unblocked(void *arg) {
    exec_run *r = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    static const char *const argv_true[] = {"true", NULL};
    const sl__op_config cfg = {.argv = argv_true};
    run_once(&cfg, r);
    sigset_t after;
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    ASSERT_FALSE(sigismember(&after, SIGPIPE));
    return NULL;
}

/* A library caller that did not block SIGPIPE: a child that exits early must not kill the process. */
static void test_sigpipe_not_blocked_by_caller(void) {
    unsigned char *in = pattern(20 * MIB, 3);
    exec_run r = {.input = in, .input_len = 20 * MIB, .out_cap = 10};
    pthread_t th;
    ASSERT_INT_EQ(pthread_create(&th, NULL, run_true_unblocked, &r), 0);
    pthread_join(th, NULL);
    ASSERT_INT_EQ(r.rc, 0);
    free(r.w.data);
    free(in);
}

static uint64_t status_mask(const char *text, const char *field) {
    const char *p = strstr(text, field);
    ASSERT_TRUE(p != NULL);
    return strtoull(p + strlen(field), NULL, 16);
}

/* Worker threads block signals and the process may ignore SIGPIPE; the child must start clean. */
static void test_child_signal_state(void) {
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    signal(SIGPIPE, SIG_IGN);
    static const char *const argv[] = {"grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status", NULL};
    const sl__op_config cfg = {.argv = argv};
    exec_run r = {.input = "", .input_len = 0, .out_cap = 4096};
    run_once(&cfg, &r);
    signal(SIGPIPE, SIG_DFL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    ASSERT_INT_EQ(r.rc, 0);
    r.w.data[r.w.len < 4095 ? r.w.len : 4095] = '\0';
    uint64_t blocked = status_mask((const char *)r.w.data, "SigBlk:");
    uint64_t ignored = status_mask((const char *)r.w.data, "SigIgn:");
    ASSERT_UINT_EQ(blocked, 0);
    ASSERT_UINT_EQ(ignored & (1ull << (SIGPIPE - 1)), 0);
    free(r.w.data);
}

static void test_output_before_input_no_deadlock(void) {
    unsigned char *in = pattern(8 * MIB, 4);
    /* 50 MiB out before reading a byte of input, then all of the input. */
    const sl__op_config cfg = SHELL("head -c 52428800 /dev/zero; wc -c");
    exec_run r = {.input = in, .input_len = 8 * MIB, .out_cap = 51 * MIB};
    run_once(&cfg, &r);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_UINT_EQ(r.bytes_in, 8 * MIB);
    ASSERT_TRUE(r.w.len > 50 * MIB);
    ASSERT_UINT_EQ(r.bytes_out, r.w.len);
    char tail[32];
    size_t tail_len = r.w.len - 50 * MIB;
    ASSERT_TRUE(tail_len < sizeof(tail));
    memcpy(tail, r.w.data + 50 * MIB, tail_len);
    tail[tail_len] = '\0';
    ASSERT_STR_EQ(tail, "8388608\n");
    ASSERT_UINT_EQ(r.w.data[0], 0);
    free(r.w.data);

    /* Never reads its input at all. */
    static const char *const argv[] = {"head", "-c", "52428800", "/dev/zero", NULL};
    const sl__op_config cfg2 = {.argv = argv};
    r = (exec_run){.input = in, .input_len = 8 * MIB, .out_cap = 51 * MIB};
    run_once(&cfg2, &r);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_UINT_EQ(r.w.len, 50 * MIB);
    free(r.w.data);
    free(in);
    assert_no_children();
}

static void test_environment(void) {
    /* A key a shell would interpret in every possible way: it must arrive verbatim. */
    const char *key = "dir with space/it's \"quoted\" $(echo INJECTED) `echo X` ${HOME}\nline2 ;|&*?.txt";
    const sl__op_config shell = SHELL("printf %s \"$SLUICE_KEY\"");
    exec_run r = {.input = "", .input_len = 0, .out_cap = 1024, .key = key};
    run_once(&shell, &r);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_UINT_EQ(r.w.len, strlen(key));
    ASSERT_MEM_EQ(r.w.data, key, strlen(key));
    free(r.w.data);

    /* The rest of the variables; stale SLUICE_* in our own environment are replaced, not duplicated; the rest of
     * the environment is inherited. */
    setenv("SLUICE_KEY", "stale", 1);
    setenv("SLUICE_OUTPUT_KEY", "stale", 1);
    setenv("SL_TEST_INHERITED", "yes", 1);
    static const char *const argv[] = {"sh", "-c",
                                       "printf '%s|%s|%s|%s|%s|%s' \"$SLUICE_KEY\" \"$SLUICE_SIZE\" \"$SLUICE_URL\" "
                                       "\"$SLUICE_OUTPUT_KEY\" \"$SL_TEST_INHERITED\" \"$(env | grep -c '^SLUICE_')\"",
                                       NULL};
    const sl__op_config cfg = {.argv = argv};
    r = (exec_run){.input = "12345",
                   .input_len = 5,
                   .out_cap = 1024,
                   .key = "a/b.txt",
                   .src_url = "file:///data/in/a/b.txt",
                   .dst_key = "a/b.txt.out"};
    run_once(&cfg, &r);
    ASSERT_INT_EQ(r.rc, 0);
    r.w.data[r.w.len] = '\0';
    ASSERT_STR_EQ((const char *)r.w.data, "a/b.txt|5|file:///data/in/a/b.txt|a/b.txt.out|yes|4");
    free(r.w.data);

    /* Without a shell in between (which would keep only the last of two definitions): exactly one of each. */
    static const char *const argv_env[] = {"env", NULL};
    const sl__op_config cfg_env = {.argv = argv_env};
    r = (exec_run){.input = "", .input_len = 0, .out_cap = 256 * KIB, .key = "k", .dst_key = "k.out"};
    run_once(&cfg_env, &r);
    ASSERT_INT_EQ(r.rc, 0);
    r.w.data[r.w.len] = '\0';
    int keys = 0, output_keys = 0;
    for (char *line = (char *)r.w.data; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        keys += starts_with(line, "SLUICE_KEY=");
        output_keys += starts_with(line, "SLUICE_OUTPUT_KEY=");
    }
    ASSERT_INT_EQ(keys, 1);
    ASSERT_INT_EQ(output_keys, 1);
    ASSERT_TRUE(strstr((const char *)r.w.data, "\nSLUICE_KEY=k\n") != NULL);
    ASSERT_TRUE(strstr((const char *)r.w.data, "\nSLUICE_OUTPUT_KEY=k.out\n") != NULL);
    free(r.w.data);

    /* No output key: none at all, not the inherited one. */
    const sl__op_config unset = SHELL("printf %s \"${SLUICE_OUTPUT_KEY-unset}\"");
    r = (exec_run){.input = "", .input_len = 0, .no_out = true};
    run_once(&unset, &r);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_TRUE(strstr(r.result, "\"output\":\"unset\"") != NULL);
    free(r.w.data);
    unsetenv("SLUICE_KEY");
    unsetenv("SLUICE_OUTPUT_KEY");
    unsetenv("SL_TEST_INHERITED");
}

static void test_command_not_found(void) {
    int fds = count_fds();
    static const char *const argv[] = {"sluice-no-such-command-7f3a", "arg", NULL};
    const sl__op_config cfg = {.argv = argv};
    exec_run r = {.input = "abc", .input_len = 3, .out_cap = 10};
    run_once(&cfg, &r);
    ASSERT_INT_EQ(r.rc, SL_ECHILD);
    ASSERT_STR_EQ(r.error, "cannot run 'sluice-no-such-command-7f3a': No such file or directory");
    free(r.w.data);

    static const char *const argv_noexec[] = {"/etc/passwd", NULL};
    const sl__op_config cfg_noexec = {.argv = argv_noexec};
    r = (exec_run){.input = "abc", .input_len = 3, .out_cap = 10};
    run_once(&cfg_noexec, &r);
    ASSERT_INT_EQ(r.rc, SL_ECHILD);
    ASSERT_STR_EQ(r.error, "cannot run '/etc/passwd': Permission denied");
    free(r.w.data);
    ASSERT_INT_EQ(count_fds(), fds);
    assert_no_children();
}

/* A process started with stdin, stdout and stderr closed gets pipes numbered 0-2; wiring them onto the child's
 * 0/1/2 must not clobber one another. */
static void test_stdio_closed(void) {
    int saved[3];
    for (int fd = 0; fd < 3; fd++)
        saved[fd] = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    unsigned char *in = pattern(300000, 9);
    const sl__op_config cfg = SHELL("cat; echo oops >&2; exit 4");
    exec_run r = {.input = in, .input_len = 300000, .out_cap = 400000};
    close(0);
    close(1);
    close(2);
    run_once(&cfg, &r);
    int lowest = dup(saved[0]);
    for (int fd = 0; fd < 3; fd++) {
        dup2(saved[fd], fd);
        close(saved[fd]);
    }
    close(lowest);
    ASSERT_INT_EQ(lowest, 0);
    ASSERT_INT_EQ(r.rc, SL_ECHILD);
    ASSERT_STR_EQ(r.error, "command exited with status 4: oops");
    ASSERT_UINT_EQ(r.w.len, 300000);
    ASSERT_MEM_EQ(r.w.data, in, 300000);
    free(r.w.data);
    free(in);
    assert_no_children();
}

static void test_bad_config(void) {
    void *st = (void *)1;
    const sl__op_config empty = {0};
    ASSERT_INT_EQ(sl__op_exec.thread_init(&empty, &st), SL_EINVAL);
    ASSERT_TRUE(st == NULL);
    const sl__op_config no_command = {.use_shell = true};
    ASSERT_INT_EQ(sl__op_exec.thread_init(&no_command, &st), SL_EINVAL);
    ASSERT_INT_EQ(sl__op_exec.thread_init(NULL, &st), SL_EINVAL);
    sl__op_exec.thread_fini(NULL);
    ASSERT_STR_EQ(sl__op_exec.name, "exec");
    ASSERT_TRUE(sl__op_exec.flags & SL_OP_TRANSFORMS);
}

static void test_output_collected(void) {
    static const char *const argv[] = {"tr", "a-z", "A-Z", NULL};
    const sl__op_config cfg = {.argv = argv};
    exec_run r = {.input = "say \"hi\"\n", .input_len = 9, .no_out = true};
    run_once(&cfg, &r);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_TRUE(strstr(r.result, "\"output\":\"SAY \\\"HI\\\"\\n\"") != NULL);
    ASSERT_UINT_EQ(r.result_len, strlen(r.result));
    ASSERT_UINT_EQ(r.bytes_out, 9);
    free(r.w.data);

    static const char *const argv_true[] = {"true", NULL};
    const sl__op_config cfg_true = {.argv = argv_true};
    r = (exec_run){.input = "ignored", .input_len = 7, .no_out = true};
    run_once(&cfg_true, &r);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_TRUE(strstr(r.result, "\"output\":\"\"") != NULL);
    free(r.w.data);

    /* A failing command leaves no output member. */
    const sl__op_config fails = SHELL("echo partial; exit 2");
    r = (exec_run){.input = "", .input_len = 0, .no_out = true};
    run_once(&fails, &r);
    ASSERT_INT_EQ(r.rc, SL_ECHILD);
    ASSERT_TRUE(strstr(r.result, "output") == NULL);
    free(r.w.data);
}

static void test_output_overflow(void) {
    /* Endless output with nowhere to go: fails as soon as it passes the cap, and the child is killed. */
    static const char *const argv_yes[] = {"yes", NULL};
    const sl__op_config cfg_yes = {.argv = argv_yes};
    exec_run r = {.input = "", .input_len = 0, .no_out = true, .result_cap = 256};
    run_once(&cfg_yes, &r);
    ASSERT_INT_EQ(r.rc, SL_ETOOBIG);
    ASSERT_TRUE(starts_with(r.error, "command output exceeds "));
    ASSERT_TRUE(strstr(r.error, " bytes; give a destination instead of -") != NULL);
    ASSERT_TRUE(r.bytes_out <= 256 + 256 * KIB);
    free(r.w.data);

    /* Raw output that fits but not once escaped (each control byte becomes \u0001). */
    const sl__op_config ctl = SHELL("head -c 200 /dev/zero | tr '\\0' '\\1'");
    r = (exec_run){.input = "", .input_len = 0, .no_out = true, .result_cap = 256};
    run_once(&ctl, &r);
    ASSERT_INT_EQ(r.rc, SL_ETOOBIG);
    ASSERT_TRUE(strstr(r.error, "JSON-escaped") != NULL);
    free(r.w.data);

    /* A small result buffer that is still large enough. */
    const sl__op_config small = SHELL("printf 0123456789");
    r = (exec_run){.input = "", .input_len = 0, .no_out = true, .result_cap = 32};
    run_once(&small, &r);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_TRUE(strstr(r.result, "\"output\":\"0123456789\"") != NULL);
    free(r.w.data);
    assert_no_children();
}

static void test_writer_fails(void) {
    int fds = count_fds();
    static const char *const argv_yes[] = {"yes", NULL};
    const sl__op_config cfg_yes = {.argv = argv_yes};
    exec_run r = {.input = "", .input_len = 0, .out_cap = MIB};
    run_once(&cfg_yes, &r);
    ASSERT_INT_EQ(r.rc, SL_ENOSPC);
    ASSERT_TRUE(starts_with(r.error, "cannot write the output: "));
    ASSERT_TRUE(r.seconds < 10);
    free(r.w.data);

    unsigned char *in = pattern(10 * MIB, 5);
    r = (exec_run){.input = in, .input_len = 10 * MIB, .out_cap = MIB};
    run_once(&cfg_cat, &r);
    ASSERT_INT_EQ(r.rc, SL_ENOSPC);
    ASSERT_TRUE(r.bytes_in < 10 * MIB);
    free(r.w.data);
    free(in);
    ASSERT_INT_EQ(count_fds(), fds);
    assert_no_children();
}

static void test_reader_fails(void) {
    int fds = count_fds();
    unsigned char *in = pattern(4 * MIB, 6);
    /* cat would wait for more input forever if it were not killed. */
    exec_run r = {.input = in, .input_len = 4 * MIB, .out_cap = 8 * MIB, .fail_at = (int)MIB};
    run_once(&cfg_cat, &r);
    ASSERT_INT_EQ(r.rc, SL_EIO);
    ASSERT_STR_EQ(r.error, "cannot read the object: input/output error");
    ASSERT_TRUE(r.bytes_in <= MIB);
    free(r.w.data);
    free(in);
    ASSERT_INT_EQ(count_fds(), fds);
    assert_no_children();
}

typedef struct aborter {
    atomic_bool *flag;
    unsigned delay_ms;
} aborter;

static void *abort_later(void *arg) {
    aborter *a = arg;
    struct timespec ts = {a->delay_ms / 1000, (long)(a->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(a->flag, true);
    return NULL;
}

static void run_aborted(const sl__op_config *cfg, exec_run *r) {
    atomic_bool flag = false;
    aborter a = {.flag = &flag, .delay_ms = 300};
    pthread_t th;
    ASSERT_INT_EQ(pthread_create(&th, NULL, abort_later, &a), 0);
    r->abort = &flag;
    run_once(cfg, r);
    pthread_join(th, NULL);
    r->abort = NULL;
}

static void test_abort(void) {
    int fds = count_fds();
    static const char *const argv_sleep[] = {"sleep", "30", NULL};
    const sl__op_config cfg_sleep = {.argv = argv_sleep};
    exec_run r = {.input = "", .input_len = 0, .out_cap = 10};
    run_aborted(&cfg_sleep, &r);
    ASSERT_INT_EQ(r.rc, SL_ECANCELED);
    ASSERT_TRUE(r.seconds >= 0.25 && r.seconds < 1.9);
    free(r.w.data);

    /* Busy talking when the abort comes, and not reading its input. */
    unsigned char *in = pattern(MIB, 7);
    const sl__op_config stream = SHELL("while :; do echo tick; sleep 0.01; done");
    r = (exec_run){.input = in, .input_len = MIB, .out_cap = MIB};
    run_aborted(&stream, &r);
    ASSERT_INT_EQ(r.rc, SL_ECANCELED);
    ASSERT_TRUE(r.seconds < 1.9);
    free(r.w.data);
    free(in);

    /* A child that has closed its pipes but keeps running. */
    const sl__op_config detached = SHELL("exec <&- >&- 2>&-; exec sleep 30");
    r = (exec_run){.input = "", .input_len = 0, .out_cap = 10};
    run_aborted(&detached, &r);
    ASSERT_INT_EQ(r.rc, SL_ECANCELED);
    ASSERT_TRUE(r.seconds < 1.9);
    free(r.w.data);

    /* Ignores SIGTERM: killed after the grace period. */
    const sl__op_config stubborn = SHELL("trap '' TERM; exec sleep 30");
    r = (exec_run){.input = "", .input_len = 0, .out_cap = 10};
    run_aborted(&stubborn, &r);
    ASSERT_INT_EQ(r.rc, SL_ECANCELED);
    ASSERT_TRUE(r.seconds >= 2.2 && r.seconds < 6);
    ASSERT_TRUE(strstr(r.error, "aborted") != NULL);
    free(r.w.data);
    ASSERT_INT_EQ(count_fds(), fds);
    assert_no_children();
}

/* ---- a command's exit ends its object ---- */

static char s_pidfile[64];

/* The pid a command wrote into s_pidfile (its background job's), 0 if none. */
static pid_t read_pidfile(void) {
    FILE *f = fopen(s_pidfile, "r");
    int pid = 0;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    unlink(s_pidfile);
    return (pid_t)pid;
}

/* Running, not a zombie waiting for a parent (an orphan's new parent may never reap it). */
static bool process_alive(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

/* A SIGKILL takes effect a moment after kill() returns: waits up to 5 s for the process to go. */
static bool process_gone(pid_t pid) {
    for (int i = 0; i < 500; i++) {
        if (!process_alive(pid))
            return true;
        usleep(10000);
    }
    return false;
}

static void kill_left(pid_t pid) {
    if (pid > 0)
        kill(pid, SIGKILL);
}

/* The command exits at once but leaves a background job holding its stdout: the object ends S_EXIT_DRAIN_MS (1 s)
 * after the exit, not when the job ends, and fails saying so; the job, in the command's process group, is stopped.
 * With a --timeout longer than that, the message is not "timed out": the command did not time out. */
static void test_background_job_holds_stdout(void) {
    int fds = count_fds();
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "cat; sleep 30 & echo $! >%s; echo bg", s_pidfile);
    const sl__op_config cfg = SHELL(cmd);
    const sl__op_config cfg_timeout = {.use_shell = true, .command = cmd, .timeout_ms = 20000};
    const sl__op_config *cfgs[] = {&cfg, &cfg_timeout};
    for (size_t i = 0; i < 2; i++) {
        exec_run r = {.input = "payload", .input_len = 7, .out_cap = 100};
        run_once(cfgs[i], &r);
        pid_t bg = read_pidfile();
        ASSERT_TRUE(bg > 0);
        ASSERT_INT_EQ(r.rc, SL_ECHILD);
        ASSERT_TRUE(starts_with(r.error, "command exited with status 0 but left a process holding its stdout open "
                                         "(still open 1 s after the exit): the output may be incomplete"));
        /* 1 s after the exit; far less than the job's 30 s or the 20 s limit, however loaded the machine. */
        ASSERT_TRUE(r.seconds >= 0.9 && r.seconds < 10);
        ASSERT_TRUE(process_gone(bg));
        kill_left(bg);
        free(r.w.data);
    }
    ASSERT_INT_EQ(count_fds(), fds);
    assert_no_children();
}

/* A job that left the command's process group (setsid) cannot be stopped with it, and the message still says what
 * happened, where a --timeout used to report "timed out" although the command had exited 0 at once. */
static void test_detached_job_holds_stdout(void) {
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "cat; setsid sh -c 'echo $$ >%s; exec sleep 30' & echo bg", s_pidfile);
    const sl__op_config cfg = {.use_shell = true, .command = cmd, .timeout_ms = 20000};
    exec_run r = {.input = "payload", .input_len = 7, .out_cap = 100};
    run_once(&cfg, &r);
    pid_t bg = 0;
    for (int i = 0; i < 100 && !(bg = read_pidfile()); i++)
        usleep(20000);
    ASSERT_TRUE(bg > 0);
    kill_left(bg);
    ASSERT_INT_EQ(r.rc, SL_ECHILD);
    ASSERT_TRUE(strstr(r.error, "timed out") == NULL);
    ASSERT_TRUE(starts_with(r.error, "command exited with status 0 but left a process holding its stdout open"));
    ASSERT_TRUE(r.seconds >= 0.9 && r.seconds < 15); /* 1 s after the exit, not the 20 s limit */
    free(r.w.data);
    assert_no_children();
}

/* Only stderr held open by what the command left running: the output is complete (its stdout ended), so the object
 * is done 1 s after the exit, and the job (it holds no output of ours) is left alone. */
static void test_background_job_holds_stderr(void) {
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "cat; sleep 30 >/dev/null & echo $! >%s; echo bg", s_pidfile);
    const sl__op_config cfg = SHELL(cmd);
    exec_run r = {.input = "payload", .input_len = 7, .out_cap = 100};
    run_once(&cfg, &r);
    pid_t bg = read_pidfile();
    ASSERT_TRUE(bg > 0);
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_STR_EQ(r.error, "");
    ASSERT_UINT_EQ(r.w.len, 10);
    ASSERT_MEM_EQ(r.w.data, "payloadbg\n", 10);
    ASSERT_TRUE(r.seconds >= 0.9 && r.seconds < 10);
    ASSERT_TRUE(process_alive(bg));
    kill_left(bg);
    free(r.w.data);

    /* A failing command whose stderr is held: its status and what it said by then. */
    snprintf(cmd, sizeof(cmd), "sleep 30 >/dev/null & echo $! >%s; echo broken >&2; exit 4", s_pidfile);
    const sl__op_config cfg_fail = SHELL(cmd);
    r = (exec_run){.input = "payload", .input_len = 7, .out_cap = 100};
    run_once(&cfg_fail, &r);
    kill_left(read_pidfile());
    ASSERT_INT_EQ(r.rc, SL_ECHILD);
    ASSERT_STR_EQ(r.error, "command exited with status 4: broken");
    free(r.w.data);
    assert_no_children();
}

/* The command writes 60,000 bytes (they fit in the pipe) and exits at once; the destination takes 20 ms per write of
 * at most 500 bytes, so reading them takes over two seconds after the exit: the bound on the end of stdout starts once
 * what was written before the exit has been read, and the output is whole. */
static void test_exit_with_output_unread(void) {
    const sl__op_config cfg = SHELL("head -c 60000 /dev/zero | tr '\\0' x");
    exec_run r = {.input = "", .input_len = 0, .out_cap = 70000, .buf_size = 1000, .write_delay_ms = 20};
    run_once(&cfg, &r);
    ASSERT_STR_EQ(r.error, "");
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_UINT_EQ(r.w.len, 60000);
    ASSERT_TRUE(r.w.writes >= 120);
    ASSERT_TRUE(r.seconds > 2);
    free(r.w.data);
    assert_no_children();
}

/* The command exits without reading its input while something it left running holds its stdin open (and reads
 * none of it): the exit ends the object; its input is not fed to a pipe nobody will read. */
static void test_background_job_holds_stdin(void) {
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "exec 3<&0; sleep 30 <&3 >/dev/null 2>&1 3<&- & echo $! >%s; exit 0", s_pidfile);
    const sl__op_config cfg = SHELL(cmd);
    unsigned char *in = pattern(20 * MIB, 11);
    exec_run r = {.input = in, .input_len = 20 * MIB, .out_cap = 100};
    run_once(&cfg, &r);
    kill_left(read_pidfile());
    ASSERT_INT_EQ(r.rc, 0);
    ASSERT_UINT_EQ(r.w.len, 0);
    ASSERT_TRUE(r.bytes_in < 20 * MIB);
    ASSERT_TRUE(r.seconds < 10);
    ASSERT_FALSE(sigpipe_pending());
    free(r.w.data);
    free(in);
    assert_no_children();
}

/* One state, 200 objects through every path: nothing may accumulate. */
static void test_many_objects_one_state(void) {
    int fds = count_fds();
    const sl__op_config cfg = SHELL("case \"$SLUICE_KEY\" in *3) echo three >&2; exit 3;; *7) kill -TERM $$;; "
                                    "*9) true;; *) cat;; esac");
    void *st = state_new(&cfg);
    unsigned char *in = pattern(64 * KIB, 8);
    for (int i = 0; i < 200; i++) {
        char key[32];
        snprintf(key, sizeof(key), "obj-%03d", i);
        exec_run r = {.input = in, .input_len = 64 * KIB, .out_cap = (i % 20 == 5) ? 1000 : 128 * KIB, .key = key};
        run_on(st, &r);
        switch (i % 10) {
        case 3:
            ASSERT_INT_EQ(r.rc, SL_ECHILD);
            ASSERT_STR_EQ(r.error, "command exited with status 3: three");
            break;
        case 7:
            ASSERT_INT_EQ(r.rc, SL_ECHILD);
            ASSERT_STR_EQ(r.error, "command killed by signal SIGTERM");
            break;
        case 9:
            ASSERT_INT_EQ(r.rc, 0);
            ASSERT_UINT_EQ(r.w.len, 0);
            break;
        default:
            if (i % 20 == 5) {
                ASSERT_INT_EQ(r.rc, SL_ENOSPC);
            } else {
                ASSERT_INT_EQ(r.rc, 0);
                ASSERT_UINT_EQ(r.w.len, 64 * KIB);
                ASSERT_MEM_EQ(r.w.data, in, 64 * KIB);
            }
        }
        free(r.w.data);
    }
    sl__op_exec.thread_fini(st);
    free(in);

    static const char *const argv[] = {"sluice-no-such-command-7f3a", NULL};
    const sl__op_config missing = {.argv = argv};
    st = state_new(&missing);
    for (int i = 0; i < 50; i++) {
        exec_run r = {.input = "x", .input_len = 1, .out_cap = 10};
        run_on(st, &r);
        ASSERT_INT_EQ(r.rc, SL_ECHILD);
        free(r.w.data);
    }
    sl__op_exec.thread_fini(st);
    ASSERT_INT_EQ(count_fds(), fds);
    assert_no_children();
}

typedef struct worker {
    unsigned id;
    int failures;
} worker;

/* If another thread's child inherited this child's stdin write end, cat would never see EOF: a hang, caught by
 * the alarm. */
static void *concurrent_worker(void *arg) {
    worker *w = arg; /* no ASSERT_* here: the check counter is not atomic */
    void *st = NULL;
    if (sl__op_exec.thread_init(&cfg_cat, &st) < 0) {
        w->failures++;
        return NULL;
    }
    for (unsigned i = 0; i < 50; i++) {
        size_t n = 2 * MIB + (size_t)i * 4099;
        unsigned char *in = pattern(n, w->id * 1000 + i);
        exec_run *r = calloc(1, sizeof(*r));
        *r = (exec_run){.input = in, .input_len = n, .out_cap = n, .max_chunk = 100000};
        run_on(st, r);
        if (r->rc != 0 || r->w.len != n || memcmp(r->w.data, in, n) != 0)
            w->failures++;
        free(r->w.data);
        free(r);
        free(in);
    }
    sl__op_exec.thread_fini(st);
    return NULL;
}

static void test_concurrent_threads(void) {
    int fds = count_fds();
    pthread_t th[4];
    worker w[4];
    for (unsigned i = 0; i < 4; i++) {
        w[i] = (worker){.id = i};
        ASSERT_INT_EQ(pthread_create(&th[i], NULL, concurrent_worker, &w[i]), 0);
    }
    for (unsigned i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ASSERT_INT_EQ(w[i].failures, 0);
    }
    ASSERT_INT_EQ(count_fds(), fds);
    assert_no_children();
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test timed out (a child or a pipe is stuck)\n";
    ssize_t rc = write(2, msg, sizeof(msg) - 1);
    (void)rc;
    _exit(1);
}

#define RUN_TIMED(fn, seconds)                                                                                         \
    do {                                                                                                               \
        alarm(seconds);                                                                                                \
        RUN_TEST(fn);                                                                                                  \
        alarm(0);                                                                                                      \
    } while (0)

int main(void) {
    /* As the engine does for its workers; threads created below inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGALRM, on_alarm);

    RUN_TIMED(test_bad_config, 10);
    RUN_TIMED(test_cat_identity, 60);
    RUN_TIMED(test_tr_uppercase, 10);
    RUN_TIMED(test_exit_status_and_stderr, 10);
    RUN_TIMED(test_killed_by_signal, 10);
    RUN_TIMED(test_stderr_bounded, 20);
    RUN_TIMED(test_child_ignores_input, 30);
    RUN_TIMED(test_sigpipe_not_blocked_by_caller, 30);
    RUN_TIMED(test_child_signal_state, 10);
    RUN_TIMED(test_output_before_input_no_deadlock, 60);
    RUN_TIMED(test_environment, 10);
    RUN_TIMED(test_stdio_closed, 10);
    RUN_TIMED(test_command_not_found, 10);
    RUN_TIMED(test_output_collected, 10);
    RUN_TIMED(test_output_overflow, 20);
    RUN_TIMED(test_writer_fails, 20);
    RUN_TIMED(test_reader_fails, 20);
    RUN_TIMED(test_abort, 30);
    snprintf(s_pidfile, sizeof(s_pidfile), "/tmp/sl-test-op-exec-%d.pid", (int)getpid());
    RUN_TIMED(test_background_job_holds_stdout, 40);
    RUN_TIMED(test_detached_job_holds_stdout, 40);
    RUN_TIMED(test_background_job_holds_stderr, 40);
    RUN_TIMED(test_background_job_holds_stdin, 40);
    RUN_TIMED(test_exit_with_output_unread, 40);
    RUN_TIMED(test_many_objects_one_state, 60);
    RUN_TIMED(test_concurrent_threads, 120);
    TEST_DONE();
}
