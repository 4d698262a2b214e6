/* The service manager's readiness protocol (systemd's sd_notify, Type=notify): datagrams
 * "READY=1", "STOPPING=1", "STATUS=..." to the unix socket named by $NOTIFY_SOCKET. Our own
 * few lines instead of libsystemd: one sendto per state change, and nothing at all when
 * the variable is unset (not under a service manager). */
#ifndef RILL_WORKER_NOTIFY_H
#define RILL_WORKER_NOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=serving") if $NOTIFY_SOCKET is set. Returns 1 when
 * sent, 0 when there is no socket to tell, -1 on failure (logged as a warning; never
 * fatal: the worker serves whether or not the manager heard it). */
int notify_service(const char *state);

#endif
