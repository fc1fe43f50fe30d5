/* `sluice report PLACE`: the shard reports a job wrote with `--report PLACE/` merged (tools/report.c). */
#ifndef SLUICE_TOOLS_REPORT_H
#define SLUICE_TOOLS_REPORT_H

#include "sluice/sluice.h"

#include <stdbool.h>
#include <stdio.h>

/* Reads every shard-I-of-N.json in PLACE (a local directory, gs:// or s3:// prefix) — of N = want when want > 0, else
 * of the one N found there (reports of two different N: a usage error) — and writes the merged account to out (text,
 * or one JSON object with json). Returns the exit status: 0 every shard there and finished, no object failed; 1 every
 * shard there and finished, some objects failed; 2 reports of different shard counts without want; 3 shards missing
 * or unfinished (interrupted, stopped by an error), or no report at all, or PLACE cannot be read. Errors go to err. */
int sl_cli_report(const char *place, bool json, unsigned want, const sl_store_options *store_opts, FILE *out,
                  FILE *err);

#endif
