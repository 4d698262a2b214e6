/* When a member is fenced (fence.h). */
#include "cluster/fence.h"

static int fence(rill__fence_t *f)
{
    if (atomic_load_explicit(&f->on, memory_order_relaxed))
        return 0;
    atomic_fetch_add_explicit(&f->count, 1, memory_order_relaxed);
    atomic_store_explicit(&f->on, 1, memory_order_release);
    return 1;
}

static int lift(rill__fence_t *f)
{
    if (!atomic_load_explicit(&f->on, memory_order_relaxed))
        return 0;
    atomic_store_explicit(&f->on, 0, memory_order_release);
    return 1;
}

int rill__fence_disconnected(rill__fence_t *f, int member, uint64_t disconnected_at,
                             unsigned session_ms, uint64_t now)
{
    uint64_t after = (uint64_t)session_ms * 1000000u / RILL_FENCE_AFTER_DIV;
    if (!member || !disconnected_at || now < disconnected_at || now - disconnected_at < after)
        return 0;
    return fence(f);
}

int rill__fence_expired(rill__fence_t *f, int member)
{
    if (!member)
        return 0;
    f->session_lost = 1;
    return fence(f);
}

int rill__fence_connected(rill__fence_t *f)
{
    return f->session_lost ? 0 : lift(f);
}

int rill__fence_view(rill__fence_t *f, int self_in)
{
    if (!f->session_lost || !self_in)
        return 0;
    f->session_lost = 0;
    return lift(f);
}
