/* rill_strerror / rill_err_name: one table for rill's codes, the C library for errno; and
 * the library's version (rill_features is in worker.c, beside the parts it reports). */
#include <errno.h>
#include <string.h>

#include "rill/rill.h"

/* errno names rill's callers meet in practice (socket and io_uring failures). */
/* clang-format off */
#define RILL_ERRNO_NAMES(X)                                                                        \
    X(EPERM) X(ENOENT) X(EINTR) X(EIO) X(EBADF) X(EAGAIN) X(ENOMEM) X(EACCES) X(EFAULT)           \
    X(EBUSY) X(EEXIST) X(EINVAL) X(EMFILE) X(ENFILE) X(ENOSPC) X(EPIPE) X(ERANGE) X(ENOSYS)       \
    X(EOPNOTSUPP) X(EADDRINUSE) X(EADDRNOTAVAIL) X(ENETUNREACH) X(ECONNABORTED) X(ECONNRESET)     \
    X(ENOBUFS) X(ENOTCONN) X(ETIMEDOUT) X(ECONNREFUSED) X(EHOSTUNREACH) X(EALREADY)               \
    X(EINPROGRESS) X(ECANCELED)
/* clang-format on */

const char *rill_strerror(int err)
{
    switch (err) {
#define RILL_ERR_TEXT_(name, value, text)                                                          \
    case RILL_##name:                                                                              \
        return text;
        RILL_ERRNO_MAP(RILL_ERR_TEXT_)
#undef RILL_ERR_TEXT_
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return err >= 0 ? "success" : "unknown error";
}

const char *rill_err_name(int err)
{
    switch (err) {
#define RILL_ERR_NAME_(name, value, text)                                                          \
    case RILL_##name:                                                                              \
        return "RILL_" #name;
        RILL_ERRNO_MAP(RILL_ERR_NAME_)
#undef RILL_ERR_NAME_
    default:
        break;
    }
    if (err >= 0)
        return "OK";
    switch (-err) {
#define RILL_ERRNO_NAME_(e)                                                                        \
    case e:                                                                                        \
        return #e;
        RILL_ERRNO_NAMES(RILL_ERRNO_NAME_)
#undef RILL_ERRNO_NAME_
    default:
        return "UNKNOWN";
    }
}

unsigned rill_version(void)
{
    return RILL_VERSION_HEX;
}

#define RILL_STR2_(x) #x
#define RILL_STR_(x) RILL_STR2_(x)
const char *rill_version_string(void)
{
    return RILL_STR_(RILL_VERSION_MAJOR) "." RILL_STR_(RILL_VERSION_MINOR) "." RILL_STR_(
        RILL_VERSION_PATCH);
}
