/* Counters written by one thread and read by any: relaxed atomic load + store compile to
 * plain moves on x86 (no locked instruction), yet a concurrent snapshot is race-free. */
#ifndef RILL_CORE_STAT_H
#define RILL_CORE_STAT_H

#include <stdint.h>

#define RILL_STAT_ADD(field, n)                                                                    \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define RILL_STAT_SUB(field, n)                                                                    \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) - (n), __ATOMIC_RELAXED)
#define RILL_STAT_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)
#define RILL_STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

#endif
