/* io_uring_probe [NAME] — for the shell tests, which start rill-worker processes: exits 77
 * and prints "NAME: skipped: io_uring unavailable: ..." when io_uring_setup fails here with
 * ENOSYS or EPERM, 0 otherwise. The same check as the C tests (t_require_io_uring in
 * harness.h); seccomp filters, the sysctl and a container's policy apply to the workers the
 * script starts just as to this process. */
#include "harness.h"

int main(int argc, char **argv)
{
    t_require_io_uring(argc > 1 ? argv[1] : "io_uring_probe");
    return 0;
}
