/* Single-producer single-consumer byte ring between two loop threads.
 *
 * One ring per ordered pair of loops carries v1 frames from the loop that received them
 * to the loop that owns their key. The producer appends bytes, the consumer reads them in
 * at most two contiguous spans and decodes them like a socket stream (a frame may wrap),
 * so neither side copies per message beyond the single append. Head and tail sit on
 * separate cache lines; each side caches the other's index and reloads it only when the
 * cached value says the ring is full or empty. */
#ifndef RILL_CORE_SPSC_H
#define RILL_CORE_SPSC_H

#include <stddef.h>
#include <stdint.h>

typedef struct rill__spsc {
    _Alignas(64) uint64_t tail; /* written by the producer */
    uint64_t head_cache;        /* producer's last view of head */
    _Alignas(64) uint64_t head; /* written by the consumer */
    uint64_t tail_cache;        /* consumer's last view of tail */
    _Alignas(64) uint8_t *buf;
    size_t cap; /* power of two */
} rill__spsc_t;

/* cap is rounded up to a power of two. Returns 0 or RILL_ENOMEM. */
int rill__spsc_init(rill__spsc_t *r, size_t cap);
void rill__spsc_free(rill__spsc_t *r);

/* Producer: appends up to n bytes of p; returns how many fit (0..n). */
size_t rill__spsc_push(rill__spsc_t *r, const void *p, size_t n);

/* Consumer: returns the length of the next contiguous readable span and points *p at it
 * (0 when empty). Release what was read with rill__spsc_consume. */
size_t rill__spsc_peek(rill__spsc_t *r, const uint8_t **p);
void rill__spsc_consume(rill__spsc_t *r, size_t n);

/* Either side: bytes currently in the ring (a snapshot). */
size_t rill__spsc_used(const rill__spsc_t *r);

#endif
