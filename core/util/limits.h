/* Fixed limits shared by the configuration and the modules sized by it. */
#ifndef RILL_CORE_LIMITS_H
#define RILL_CORE_LIMITS_H

#define RILL_MAX_THREADS 64
#define RILL_MAX_LISTENERS 16
#define RILL_MAX_SINKS 16

/* Member hops of a chain of computations whose acknowledgements wait for the next hop
 * (docs/delivery.md). A frame's depth is the number of member hops it made: a member
 * sends what frames of depth d forward or emit on its depth-(d + 1) link to the owner,
 * and a frame's barrier waits only on links one depth deeper than the frame, so waits
 * always go deeper and members never wait on each other in a circle. What a frame of the
 * last depth sends to a member travels on a last-depth link and is not waited for. */
#define RILL_PEER_DEPTHS 3

/* The link to a member that carries the standby copies of managed state (docs/state.md)
 * and nothing else of a chain: a frame's barriers wait on it at every depth but the last,
 * and the frames of its stream wait on no member (they emit nothing), so no wait comes
 * back around through it either. Its HELLO names this depth. */
#define RILL_STANDBY_DEPTH (RILL_PEER_DEPTHS + 1)

/* The largest max_frame a configuration accepts (rill_config_set_max_frame). The peer
 * listener decodes with it, so a frame one member accepted is never refused by the
 * member it is forwarded to, whatever their max_frame settings. */
#define RILL_MAX_FRAME_LIMIT (1u << 30)

/* Managed state's handoff (docs/state.md): how long a new owner holds a key group's
 * frames back waiting for its state before it runs them without it (and counts the
 * group in state_lost_groups), the bytes of frames a loop holds back at most before it
 * gives up waiting in the same way, and the largest chunk a group's state is sent in. */
#define RILL_HANDOFF_WAIT_MS 5000u
/* A group whose owner is gone and whose standby copy this member holds waits this long
 * for the state a leaving owner sends (it has all of it) before the copy takes over (the
 * owner crashed). */
#define RILL_STANDBY_WAIT_MS 1000u
#define RILL_PARK_MAX_BYTES (256u << 20)
#define RILL_CHUNK_MAX (64u << 10)

#endif
