/* core/cluster/fence: when a member holds its managed key groups back. Fenced a sixth of
 * the session timeout after the connection was lost (never before, never when it is not a
 * member), at once on an expiry; lifted when the same session reconnects, and after an
 * expiry only by a view of the new session that has the member in it. */
#include "cluster/fence.h"
#include "harness.h"

#define MS 1000000ull

static int after_a_sixth(void)
{
    rill__fence_t f = {0};
    uint64_t lost = 5000 * MS; /* the connection was lost at 5 s; timeout 6 s */
    ASSERT_EQ(rill__fence_disconnected(&f, 1, lost, 6000, lost + 999 * MS), 0);
    ASSERT_EQ(rill__fence_on(&f), 0);
    ASSERT_EQ(rill__fence_disconnected(&f, 1, lost, 6000, lost + 1000 * MS), 1);
    ASSERT_EQ(rill__fence_on(&f), 1);
    ASSERT_EQ(rill__fence_disconnected(&f, 1, lost, 6000, lost + 2000 * MS), 0); /* once */
    ASSERT_U64_EQ(atomic_load(&f.count), 1);
    ASSERT_EQ(rill__fence_view(&f, 1), 0); /* a view of the same session lifts nothing */
    ASSERT_EQ(rill__fence_on(&f), 1);
    ASSERT_EQ(rill__fence_connected(&f), 1);
    ASSERT_EQ(rill__fence_on(&f), 0);
    ASSERT_EQ(rill__fence_connected(&f), 0);
    return 0;
}

static int not_a_member(void)
{
    rill__fence_t f = {0};
    ASSERT_EQ(rill__fence_disconnected(&f, 0, 1, 6000, 60000 * MS), 0);
    ASSERT_EQ(rill__fence_disconnected(&f, 1, 0, 6000, 60000 * MS), 0); /* never connected */
    ASSERT_EQ(rill__fence_expired(&f, 0), 0);
    ASSERT_EQ(rill__fence_on(&f), 0);
    ASSERT_U64_EQ(atomic_load(&f.count), 0);
    return 0;
}

static int expiry_waits_for_a_new_view(void)
{
    rill__fence_t f = {0};
    ASSERT_EQ(rill__fence_expired(&f, 1), 1);
    ASSERT_EQ(rill__fence_on(&f), 1);
    ASSERT_EQ(rill__fence_connected(&f), 0); /* the new session is up: not enough */
    ASSERT_EQ(rill__fence_on(&f), 1);
    ASSERT_EQ(rill__fence_view(&f, 0), 0); /* a view without this member: not yet */
    ASSERT_EQ(rill__fence_on(&f), 1);
    ASSERT_EQ(rill__fence_view(&f, 1), 1);
    ASSERT_EQ(rill__fence_on(&f), 0);
    /* a lost connection while already fenced by the expiry counts once */
    ASSERT_EQ(rill__fence_disconnected(&f, 1, 1, 600, 1000 * MS), 1);
    ASSERT_EQ(rill__fence_expired(&f, 1), 0);
    ASSERT_U64_EQ(atomic_load(&f.count), 2);
    ASSERT_EQ(rill__fence_view(&f, 1), 1);
    return 0;
}

int main(int argc, char **argv)
{
    static const t_case_t cases[] = {
        {"after_a_sixth", after_a_sixth},
        {"not_a_member", not_a_member},
        {"expiry_waits_for_a_new_view", expiry_waits_for_a_new_view},
        {NULL, NULL},
    };
    return t_run("fence", cases, argc, argv);
}
