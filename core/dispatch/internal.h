/* Between the files of dispatch: dispatch.c routes and batches, managed.c runs managed
 * computations (docs/state.md). */
#ifndef RILL_CORE_DISPATCH_INTERNAL_H
#define RILL_CORE_DISPATCH_INTERNAL_H

#include "dispatch/dispatch.h"

/* Calls c's batch callback with v[0..n) (a managed one with its values), and counts. */
void rill__dispatch_call(rill__dispatch_t *d, const rill__comp_t *c, const rill_msg_t *v, size_t n);
/* Frames for an unregistered computation: counted, dead-lettered when configured. */
void rill__dispatch_unknown(rill__dispatch_t *d, const rill_msg_t *v, size_t n);

/* A managed computation's batch: frames of groups another member owns are forwarded,
 * those of groups waiting for their state held back, the rest run. */
void rill__dispatch_call_managed(rill__dispatch_t *d, const rill__comp_t *c, const rill_msg_t *v,
                                 size_t n);
/* A chunk of a key group's state from a member, or handed over by another loop. */
void rill__dispatch_chunk(rill__dispatch_t *d, const rill_msg_t *m);
/* A chunk a retiring link handed back: to whom it is for now. */
void rill__dispatch_rechunk(rill__dispatch_t *d, const rill_msg_t *m);

#endif
