/* rill version macros. See rill_version() in rill.h for the library's runtime version. */
#ifndef RILL_VERSION_H
#define RILL_VERSION_H

#define RILL_VERSION_MAJOR 0
#define RILL_VERSION_MINOR 1
#define RILL_VERSION_PATCH 0

/* (major << 16) | (minor << 8) | patch, comparable with rill_version(). */
#define RILL_VERSION_HEX                                                                           \
    ((RILL_VERSION_MAJOR << 16) | (RILL_VERSION_MINOR << 8) | RILL_VERSION_PATCH)

#endif /* RILL_VERSION_H */
