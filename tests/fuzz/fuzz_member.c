/* libFuzzer target: cluster member data as read from ZooKeeper (core/cluster/view.c).
 * Any bytes a znode may hold must be either rejected or parsed into a member whose
 * addresses (peer, and source when there is one) re-format and re-parse to the same
 * thing; views built from parsed members
 * must give every key an owner among them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/view.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rill__member_t m;
    if (rill__member_parse(&m, "m1", (const char *)data, size) < 0)
        return 0;
    if (strlen(m.addr) == 0 || strlen(m.addr) >= sizeof m.addr || strcmp(m.id, "m1") != 0)
        abort();

    /* What rill would publish for this address parses back to the same member. */
    char again[512];
    int n = rill__member_format(again, sizeof again, "m1", m.addr, m.source);
    if (n < 0)
        abort();
    rill__member_t m2;
    if (rill__member_parse(&m2, "m1", again, (size_t)n) < 0 || strcmp(m.addr, m2.addr) != 0 ||
        strcmp(m.source, m2.source) != 0 || memcmp(&m.sa, &m2.sa, sizeof m.sa) != 0)
        abort();

    rill_view_t *v = rill__view_alloc(2, 64);
    if (!v)
        return 0;
    v->n = 2;
    v->m[0] = m;
    v->m[1] = m2;
    strcpy(v->m[1].id, "m0");
    rill__view_finish(v, "m1");
    if (v->self != 1 || strcmp(v->m[0].id, "m0") != 0) /* sorted by id */
        abort();
    for (uint64_t key = 0; key < 64; key++) {
        int o = rill__view_owner(v, key * 0x9e3779b97f4a7c15ull + size);
        if (o < 0 || o > 1)
            abort();
    }
    free(v);
    return 0;
}
