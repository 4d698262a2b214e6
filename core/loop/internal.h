/* Shared between the files of loop/ only. */
#ifndef RILL_CORE_LOOP_INTERNAL_H
#define RILL_CORE_LOOP_INTERNAL_H

#include "loop/loop.h"

/* Drain phases, in order (see drain.c). */
enum { PH_RUN, PH_CLOSING, PH_WAIT_CLOSED, PH_WAIT_FLUSHED, PH_SINKS, PH_DONE };

/* conn.c: source connections. */
void rill__conn_arm_accept(rill__loop_t *l, unsigned li);
void rill__conn_arm_recv(rill__loop_t *l, unsigned slot);

/* Whether c is read while the loop is paused for backpressure: a standby stream from
 * another member. Its frames add nothing to this loop's queues, and its sender waits for
 * their acknowledgements before it acknowledges the frames this loop forwarded to it: held
 * back, they would keep the queue that paused the loop full for good. */
static inline int rill__conn_unpaused(const rill__conn_t *c)
{
    return c->standby_in;
}
/* Arms the accepts left unarmed while this loop was ahead, if it no longer is. */
void rill__conn_resume_accepts(rill__loop_t *l);
void rill__conn_on_accept(rill__loop_t *l, const struct io_uring_cqe *cqe);
void rill__conn_on_recv(rill__loop_t *l, const struct io_uring_cqe *cqe);
/* Decodes and dispatches a received piece of connection slot. */
void rill__conn_on_data(rill__loop_t *l, unsigned slot, const uint8_t *data, size_t len);
/* What a recv result means for the connection, once its data has been processed. */
void rill__conn_recv_result(rill__loop_t *l, unsigned slot, int res);
/* Closes the connection (cancel first, close after the recv's last completion). */
void rill__conn_close(rill__loop_t *l, unsigned slot, int reason);
/* Closes connections stalled inside a frame for longer than idle_ms; due once per
 * rill__conn_sweep_interval. */
void rill__conn_sweep_idle(rill__loop_t *l, uint64_t now);
uint64_t rill__conn_sweep_interval(const rill_worker_t *w);
/* Publishes the loop's carried bytes (after shedding). */
void rill__conn_publish_carried(rill__loop_t *l);
/* End of an iteration: publishes the loop's carried bytes, then sheds carries if the
 * worker's total is over the budget (see conn.c). */
void rill__conn_settle_carries(rill__loop_t *l);

/* Takes fd, accepted by another loop on listener li, into a slot of this one (its
 * recv not armed yet). Returns the slot, or -1 (closed: the loop is stopping, or no
 * slot). */
int rill__conn_adopt(rill__loop_t *l, unsigned li, int fd);
/* Frees the connection once none of its operations is outstanding (closing). */
void rill__conn_maybe_finish(rill__loop_t *l, unsigned slot);

/* acked_in.c: acked sources and peer connections (HELLO / WELCOME / ACK / GOAWAY). */
/* Managed state's handoff (group_moves.c). After the loop adopted view v: sends the state
 * of the groups it no longer owns to their new owners and holds back the frames of the
 * groups new to it until their state arrives. refused[i]: member i of the view before
 * refuses connections (rill__links_refused): its process is gone. */
void rill__moves_adopt(rill__loop_t *l, const rill_view_t *v, const uint8_t *refused);
/* Replays the groups whose state arrived and gives up on those that waited too long; at
 * a point of the iteration outside every dispatch. */
void rill__moves_step(rill__loop_t *l, uint64_t now);
/* Whether the loop holds frames back for some group (it then polls for the deadline). */
static inline int rill__moves_waiting(const rill__loop_t *l)
{
    return l->dispatch.parked_groups != 0;
}
/* Tells the standby copies of the groups this loop owns what its batches changed since
 * the last call: before the links are serviced, so that they go out with the frames. */
void rill__moves_sync(rill__loop_t *l);

/* The member's fence (cluster/fence.h) as read at the start of this iteration, before its
 * view: while on, managed groups are held back and no wait for state runs out; when it
 * lifts, what it held back runs. */
void rill__moves_fence(rill__loop_t *l, int fenced, uint64_t now);
void rill__moves_free(rill__loop_t *l);

int rill__ackin_init(rill__loop_t *l);
void rill__ackin_free(rill__loop_t *l);
/* Takes the control frames out of n views decoded from connection slot and drops the
 * frames that already ran; returns the views left to dispatch (moved to the front), or
 * a RILL_E* error that closes the connection. Adds the data frames among the n to *data.
 * The first frame of a v1 connection decides whether it is acked. */
int rill__ackin_filter(rill__loop_t *l, unsigned slot, rill_msg_t *v, size_t n, uint64_t *data);
/* The connection closes: its stream stays, without it. */
void rill__ackin_detach(rill__loop_t *l, rill__conn_t *c);
/* A peer listener connection of a cluster with credentials: send CHALLENGE; the first
 * frame must then be a HELLO with a valid MAC over its nonce. */
void rill__ackin_challenge(rill__loop_t *l, unsigned slot);
/* The connection is done on this loop and its stream lives on another: queue it there. */
void rill__ackin_hand_over(rill__loop_t *l, rill__conn_t *c);
/* Takes the connections other loops handed to this one (once per iteration). */
void rill__ackin_adopt(rill__loop_t *l);
/* A RILL_OP_CONN_SEND completion. */
void rill__ackin_on_send(rill__loop_t *l, const struct io_uring_cqe *cqe);
/* Sends what acked connection slot owes its sender (WELCOME, ACK of what is safe,
 * GOAWAY), unless a send is in flight: its completion sends the rest. */
void rill__ackin_kick(rill__loop_t *l, unsigned slot);
/* The credit a WELCOME or ACK grants now: the source credit, or a larger share of the
 * credit pool while few acked connections are open. */
uint32_t rill__ackin_credit(rill_worker_t *w);
#define RILL_CREDIT_GRANT_MAX (1u << 30)
/* Drain: GOAWAY on acked connection slot, stop reading it. */
void rill__ackin_goaway(rill__loop_t *l, unsigned slot);
/* Drain: closes the leaving connections whose frames are all acknowledged (all of them
 * when late). */
void rill__ackin_close_settled(rill__loop_t *l, int late);

/* ack_barriers.c: when acked frames are safe. */
int rill__ackb_init(rill__loop_t *l);
void rill__ackb_free(rill__loop_t *l);
/* Frames of loop src's ring are about to run (begin) / ran (ran; handoff.in_frames
 * counts them per origin by then): they are acked inputs of this loop's RILL_ACK_LOOP
 * barriers. */
void rill__ackin_loop_begin(rill__loop_t *l);
void rill__ackin_loop_ran(rill__loop_t *l, unsigned src);
/* End of an iteration: barrier for what ran, completions, ACKs. */
void rill__ackin_step(rill__loop_t *l);
/* Frames the links handed back were routed again: pending barriers wait for them where
 * they went. */
void rill__ackin_rerouted(rill__loop_t *l);
/* Non-zero while a barrier waits for other loops: the loop then looks again every
 * RILL_ACK_POLL_NS. */
int rill__ackin_waiting(const rill__loop_t *l);
#define RILL_ACK_POLL_NS (1000ull * 1000ull)

/* backpressure.c */
/* Re-evaluates the watermarks of the links and handoff stages: sets paused/sink_paused. */
void rill__bp_update(rill__loop_t *l);
/* Keeps buffer bid (len bytes of connection slot) for later, behind anything held. */
void rill__bp_hold(rill__loop_t *l, unsigned slot, unsigned bid, unsigned len);
/* Processes held buffers while outputs allow, then re-arms the paused connections. */
void rill__bp_release(rill__loop_t *l);
/* The drain deadline passed with sources paused: gives the held data up (counted). */
void rill__bp_drop(rill__loop_t *l);

/* drain.c */
void rill__drain_step(rill__loop_t *l, uint64_t now);
/* The loop ends without draining (an error): counts it as drained for the others. */
void rill__drain_abandon(rill__loop_t *l);

#endif
