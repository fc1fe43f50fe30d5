/* A transforming test plugin (tests/cli/plugin.sh): writes each object's bytes upper-cased (ASCII) through the
 * output stream. With DST "-" there is no output stream: it reports "bytes_out" instead. No state. */
#include <sluice/plugin.h>

static int upper_process(void *st, sl_task *task) {
    (void)st;
    size_t cap;
    unsigned char *buf = sl_task_buffer(task, &cap);
    uint64_t total = 0;
    for (;;) {
        int64_t n = sl_task_read(task, buf, cap);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        for (int64_t i = 0; i < n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z')
                buf[i] = (unsigned char)(buf[i] - 'a' + 'A');
        total += (uint64_t)n;
        if (sl_task_has_output(task)) {
            int rc = sl_task_write(task, buf, (size_t)n);
            if (rc < 0)
                return rc;
        }
    }
    return sl_task_has_output(task) ? 0 : sl_task_result_uint(task, "bytes_out", total);
}

SL_PLUGIN_EXPORT const sl_op sluice_plugin = {
    .abi_version = SL_OP_ABI_VERSION,
    .flags = SL_OP_TRANSFORMS,
    .name = "upper",
    .version = "1",
    .process = upper_process,
};
