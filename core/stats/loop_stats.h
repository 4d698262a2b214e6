/* Per-loop counters: written only by their loop's thread (RILL_STAT_ADD/SET), read by
 * stats snapshots from any thread. One uint64_t per LOOPS row of the counter table
 * (stats/counters.h), generated from it. */
#ifndef RILL_CORE_LOOP_STATS_H
#define RILL_CORE_LOOP_STATS_H

#include <stdint.h>

#include "stats/counters.h"

#define RILL__LOOP_STAT_LOOPS_(name) uint64_t name;
#define RILL__LOOP_STAT_CLUSTER_(name)
#define RILL__LOOP_STAT_REGISTRY_(name)
#define RILL__LOOP_STAT_(name, kind, source, line, metric, help) RILL__LOOP_STAT_##source##_(name)
typedef struct rill__loop_stats {
    RILL__COUNTERS(RILL__LOOP_STAT_)
} rill__loop_stats_t;
#undef RILL__LOOP_STAT_
#undef RILL__LOOP_STAT_CLUSTER_
#undef RILL__LOOP_STAT_REGISTRY_
#undef RILL__LOOP_STAT_LOOPS_

#endif
