/* The computations built into rill-worker. */
#ifndef RILL_WORKER_BUILTINS_H
#define RILL_WORKER_BUILTINS_H

#include <rill/rill.h>

#define BUILTIN_PASSTHROUGH_ID 1u
#define BUILTIN_COUNT_ID 2u

/* Registers `passthrough` (id 1: every message to `sink` unchanged) and `count` (id 2: a
 * counter per key; emits comp id 2, the key and the running count as decimal text to
 * `sink` every count_every messages of a key (0 = never), and for every key whose count
 * changed since its last emission on each flush and at shutdown). sink < 0: nothing is
 * emitted, the computations only do their work. Returns 0 or a RILL_E* code. */
int builtins_register(rill_worker_t *w, int sink, uint64_t count_every);

#endif
