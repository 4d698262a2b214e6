/* Fixed limits shared by the configuration and the modules sized by it. */
#ifndef RILL_CORE_LIMITS_H
#define RILL_CORE_LIMITS_H

#define RILL_MAX_THREADS 64
#define RILL_MAX_LISTENERS 16
#define RILL_MAX_SINKS 16

/* The largest max_frame a configuration accepts (rill_config_set_max_frame). The peer
 * listener decodes with it, so a frame one member accepted is never refused by the
 * member it is forwarded to, whatever their max_frame settings. */
#define RILL_MAX_FRAME_LIMIT (1u << 30)

#endif
