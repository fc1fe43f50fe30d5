/* Loading a plugin: a shared library that defines SL_PLUGIN_SYMBOL, an sl_op (sluice/plugin.h). */
#include "fail.h"
#include "task.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sl_plugin {
    void *handle;
    const sl_op *op;
};

int sl_plugin_open(const char *path, sl_plugin **out) {
    if (!out)
        return sl__fail(SL_EINVAL, "sl_plugin_open: NULL out");
    *out = NULL;
    if (!path || !path[0])
        return sl__fail(SL_EINVAL, "--plugin needs the path of a shared library");
    /* dlopen looks a name without '/' up in the library search path (LD_LIBRARY_PATH, ld.so.cache, /usr/lib), never in
     * the current directory: "libmyop.so" must mean the file the user sees, not a namesake elsewhere. */
    char local[PATH_MAX];
    const char *load = path;
    if (!strchr(path, '/')) {
        if (strlen(path) + 3 > sizeof(local))
            return sl__fail(SL_ENAMETOOLONG, "plugin %s: name too long", path);
        local[0] = '.';
        local[1] = '/';
        memcpy(local + 2, path, strlen(path) + 1);
        load = local;
    }
    /* Why a file cannot be loaded is clearer from open() than from dlerror(): a missing file, permissions, a
     * directory. */
    int fd = open(load, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return sl__fail(SL_ENOENT, "plugin %s: no such file", path);
        return sl__fail_errno(e, "plugin %s: cannot read it", path);
    }
    struct stat st;
    int src = fstat(fd, &st);
    close(fd);
    if (src == 0 && S_ISDIR(st.st_mode))
        return sl__fail(SL_EISDIR, "plugin %s: is a directory, not a shared library", path);
    dlerror();
    void *handle = dlopen(load, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        return sl__fail(SL_EIO, "plugin %s: cannot load it: %s", path, why ? why : "unknown dlopen error");
    }
    dlerror();
    const sl_op *op = dlsym(handle, SL_PLUGIN_SYMBOL);
    const char *why = dlerror();
    int rc;
    if (why || !op) {
        rc = sl__fail(SL_EINVAL, "plugin %s: not a sluice plugin: it defines no symbol %s (see sluice/plugin.h)", path,
                      SL_PLUGIN_SYMBOL);
        goto on_error;
    }
    char what[PATH_MAX + 16];
    snprintf(what, sizeof(what), "plugin %s", path);
    if ((rc = sl__op_check(op, what)) < 0)
        goto on_error;
    sl_plugin *p = calloc(1, sizeof(*p));
    if (!p) {
        rc = sl__fail(SL_ENOMEM, "out of memory");
        goto on_error;
    }
    p->handle = handle;
    p->op = op;
    *out = p;
    return 0;
on_error:
    dlclose(handle);
    return rc;
}

const sl_op *sl_plugin_op(const sl_plugin *plugin) {
    return plugin ? plugin->op : NULL;
}

void sl_plugin_close(sl_plugin *plugin) {
    if (!plugin)
        return;
    dlclose(plugin->handle);
    free(plugin);
}
