/* Process trees from /proc: which processes descend from a pid, and what memory they hold. */
#ifndef SLUICE_PROC_TREE_H
#define SLUICE_PROC_TREE_H

#include "sluice/memwatch.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How descendants are found. AUTO: CHILDREN when the kernel has /proc/PID/task/TID/children, else SCAN. */
typedef enum sl__proc_walk {
    SL__PROC_WALK_AUTO = 0,
    SL__PROC_WALK_CHILDREN = 1, /* follow /proc/PID/task/TID/children from the root: cost grows with the tree */
    SL__PROC_WALK_SCAN = 2,     /* read the parent of every /proc/[0-9]+/stat once: cost grows with the system */
} sl__proc_walk;

/* Writes root (first) and its descendants into pids, at most cap of them. Returns how many were found (which may
 * exceed cap: only cap are written), 0 if root does not exist, or SL_ENOTSUP if `how` is CHILDREN and the kernel
 * lacks the children files. */
long sl__proc_tree_pids(pid_t root, sl__proc_walk how, pid_t *pids, size_t cap);

/* Memory of one process in bytes: PSS from /proc/PID/smaps_rollup when readable, else RSS from /proc/PID/statm.
 * *is_pss tells which (may be NULL). 0 if the process is gone or holds no memory (a zombie, a kernel thread). */
uint64_t sl__proc_mem(pid_t pid, int *is_pss);

#endif
