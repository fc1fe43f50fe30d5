/* A test plugin built "against another ABI version" (tests/cli/plugin.sh): sluice must refuse it (exit 2) before
 * calling any of its functions, which would crash if it did. */
#include <sluice/plugin.h>

#include <stdlib.h>

static int never(void *st, sl_task *task) {
    (void)st;
    (void)task;
    abort();
}

SL_PLUGIN_EXPORT const sl_op sluice_plugin = {
    .abi_version = SL_OP_ABI_VERSION + 1,
    .name = "future",
    .process = never,
};
