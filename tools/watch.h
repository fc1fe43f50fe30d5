/* `sluice watch -- CMD ARGS...`: run a command, record its process tree's memory, judge the curve. */
#ifndef SLUICE_TOOLS_WATCH_H
#define SLUICE_TOOLS_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* argv: what follows "watch" on the command line. Returns the exit status for sluice: CMD's own (128 + N when a
 * signal N killed it), 2 for a usage error, 126/127 when CMD cannot be run / is not found. */
int sl_cli_watch(int argc, char **argv);
/* Writes the usage text of `sluice watch` to out. */
void sl_cli_watch_help(FILE *out);

#endif
