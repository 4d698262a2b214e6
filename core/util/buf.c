#include "util/buf.h"

#include <stdlib.h>
#include <string.h>

#include "rill/rill.h"

int rill__buf_reserve(rill__buf_t *b, size_t n, size_t max)
{
    if (b->len + n <= b->cap)
        return 0;
    if (b->len + n > max)
        return RILL_EFULL;
    size_t cap = b->cap ? b->cap : 64 * 1024;
    while (cap < b->len + n)
        cap *= 2;
    if (cap > max)
        cap = max;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return RILL_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

void rill__buf_free(rill__buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void rill__buf_consume(rill__buf_t *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
