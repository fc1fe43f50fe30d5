/* --metrics-addr: a running job's metrics for Prometheus (tools/metrics.c). */
#ifndef SLUICE_TOOLS_METRICS_H
#define SLUICE_TOOLS_METRICS_H

#include "sluice/sluice.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct sl_cli_metrics sl_cli_metrics;

/* "HOST:PORT" (IPv4 or localhost; an empty HOST or 0.0.0.0: every interface) into out. 0, or -1 when malformed. */
int sl_cli_metrics_parse_addr(const char *addr, struct sockaddr_in *out);
/* Serves GET /metrics for job at addr from now on (the job must outlive sl_cli_metrics_stop); every series carries the
 * labels command, shard and shards. Returns 0; 2 for a malformed address, 3 when it cannot listen there, with the
 * one-line reason in err. */
int sl_cli_metrics_start(const char *addr, const sl_job *job, const char *command, unsigned shard_index,
                         unsigned shard_count, sl_cli_metrics **out, char *err, size_t cap);
/* The job has ended: sluice_running reads 0 from now on. NULL ok. */
void sl_cli_metrics_finished(sl_cli_metrics *m);
/* Stops serving and frees. NULL ok. */
void sl_cli_metrics_stop(sl_cli_metrics *m);

#endif
