/* A test plugin (tests/cli/plugin.sh) that does what its arguments say, to drive every path of map --plugin:
 *   tag=V          each result gets "tag":"V" (an argument reaching thread_init)
 *   fail_init=MSG  thread_init fails with MSG (SL_EINVAL): the job must stop (exit 3)
 *   fail_key=K     process fails the object whose key is K (SL_EIO, "refusing K"); the others are done
 *   slow_ms=N      process sleeps N ms per object, checking sl_task_aborted every 10 ms (signal tests)
 * Any other key fails thread_init. Each result also has "bytes" (read through sl_task_read) and "crc32c_known". */
#include <sluice/plugin.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct state {
    const char *tag, *fail_key;
    long slow_ms;
} state;

static int probe_thread_init(const sl_op_config *config, void **out) {
    static const char *const known[] = {"tag=", "fail_init=", "fail_key=", "slow_ms="};
    for (size_t i = 0; i < sl_op_config_count(config); i++) {
        const char *arg = sl_op_config_arg(config, i);
        bool ok = false;
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            ok = ok || strncmp(arg, known[k], strlen(known[k])) == 0;
        if (!ok)
            return sl_op_fail(SL_EINVAL, "probe: unknown argument '%s'", arg);
    }
    const char *msg = sl_op_config_get(config, "fail_init");
    if (msg)
        return sl_op_fail(SL_EINVAL, "probe: %s", msg);
    state *s = calloc(1, sizeof(*s));
    if (!s)
        return sl_op_fail(SL_ENOMEM, "probe: out of memory");
    s->tag = sl_op_config_get(config, "tag");
    s->fail_key = sl_op_config_get(config, "fail_key");
    const char *slow = sl_op_config_get(config, "slow_ms");
    s->slow_ms = slow ? atol(slow) : 0;
    *out = s;
    return 0;
}

static int probe_process(void *st, sl_task *task) {
    state *s = st;
    const char *key = sl_task_key(task, NULL);
    if (s->fail_key && strcmp(key, s->fail_key) == 0)
        return sl_task_fail(task, SL_EIO, "refusing %s", key);
    for (long waited = 0; waited < s->slow_ms; waited += 10) {
        if (sl_task_aborted(task))
            return sl_task_fail(task, SL_ECANCELED, "probe: aborted");
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    size_t cap;
    unsigned char *buf = sl_task_buffer(task, &cap);
    uint64_t total = 0;
    int64_t n;
    while ((n = sl_task_read(task, buf, cap)) > 0)
        total += (uint64_t)n;
    if (n < 0)
        return (int)n;
    int rc = sl_task_result_uint(task, "bytes", total);
    if (rc == 0 && s->tag)
        rc = sl_task_result_string(task, "tag", s->tag, strlen(s->tag));
    return rc;
}

static void probe_thread_fini(void *st) {
    free(st);
}

SL_PLUGIN_EXPORT const sl_op sluice_plugin = {
    .abi_version = SL_OP_ABI_VERSION,
    .name = "probe",
    .version = "1",
    .thread_init = probe_thread_init,
    .process = probe_process,
    .thread_fini = probe_thread_fini,
};
