/* sluice: run one job over every object under a bucket or a directory.
 *
 * Umbrella header: includes the whole public API. Every public function returns 0 or a positive count on success
 * and a negative SL_E* code on failure (sluice/error.h), with a one-line explanation in sl_last_error(). */
#ifndef SLUICE_SLUICE_H
#define SLUICE_SLUICE_H

#include "sluice/error.h"
#include "sluice/glob.h"
#include "sluice/store.h"
#include "sluice/job.h"
#include "sluice/outfile.h"
#include "sluice/plugin.h"

#endif
