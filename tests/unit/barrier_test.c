/* core/barrier: barriers complete in order once every output's acknowledged figure
 * reaches their snapshot; unsealed ones wait for their floor; a full ring or FIFO only
 * ever delays an acknowledgement. */
#include "barrier/barrier.h"
#include "harness.h"

static int in_order(void)
{
    rill__barriers_t b;
    ASSERT_EQ(rill__barriers_init(&b, 2, 8), 0);
    uint64_t s1[2] = {10, 0}, s2[2] = {20, 5}, s3[2] = {30, 5};
    ASSERT_U64_EQ(rill__barriers_take(&b, s1, 1, 100), 1);
    ASSERT_U64_EQ(rill__barriers_take(&b, s2, 1, 200), 2);
    ASSERT_U64_EQ(rill__barriers_take(&b, s3, 1, 300), 3);
    uint64_t wait = 0, count = 0;
    uint64_t safe[2] = {25, 4}; /* the first output is past barrier 2, the second is not */
    ASSERT_U64_EQ(rill__barriers_complete(&b, safe, 1000, &wait, &count), 1);
    ASSERT_U64_EQ(count, 1);
    ASSERT_U64_EQ(wait, 900);
    safe[1] = 5;
    ASSERT_U64_EQ(rill__barriers_complete(&b, safe, 1000, &wait, &count), 2);
    ASSERT_TRUE(rill__barriers_pending(&b));
    safe[0] = 30;
    ASSERT_U64_EQ(rill__barriers_complete(&b, safe, 1000, &wait, &count), 3);
    ASSERT_TRUE(!rill__barriers_pending(&b));
    ASSERT_U64_EQ(count, 3);
    ASSERT_U64_EQ(wait, 900 + 800 + 700);
    rill__barriers_free(&b);
    return 0;
}

static int unsealed_waits_for_floor(void)
{
    rill__barriers_t b;
    ASSERT_EQ(rill__barriers_init(&b, 2, 8), 0);
    uint64_t own[2] = {10, 0};
    ASSERT_U64_EQ(rill__barriers_take(&b, own, 0, 0), 1);
    uint64_t w = 0, c = 0, safe[2] = {100, 100};
    ASSERT_U64_EQ(rill__barriers_complete(&b, safe, 0, &w, &c), 0); /* not sealed */
    ASSERT_TRUE(rill__barriers_unsealed(&b));
    uint64_t floor[2] = {5, 50}; /* raises the second figure, keeps the higher first one */
    rill__barriers_seal_all(&b, floor);
    ASSERT_TRUE(!rill__barriers_unsealed(&b));
    safe[0] = 10;
    safe[1] = 49;
    ASSERT_U64_EQ(rill__barriers_complete(&b, safe, 0, &w, &c), 0);
    safe[0] = 9;
    safe[1] = 50;
    ASSERT_U64_EQ(rill__barriers_complete(&b, safe, 0, &w, &c), 0);
    safe[0] = 10;
    ASSERT_U64_EQ(rill__barriers_complete(&b, safe, 0, &w, &c), 1);
    rill__barriers_free(&b);
    return 0;
}

static int full_ring_widens_newest(void)
{
    rill__barriers_t b;
    ASSERT_EQ(rill__barriers_init(&b, 1, 2), 0);
    uint64_t s[1] = {1};
    ASSERT_U64_EQ(rill__barriers_take(&b, s, 1, 0), 1);
    s[0] = 2;
    ASSERT_U64_EQ(rill__barriers_take(&b, s, 1, 0), 2);
    s[0] = 7;
    ASSERT_U64_EQ(rill__barriers_take(&b, s, 1, 0), 2); /* full: barrier 2 now needs 7 */
    uint64_t w = 0, c = 0, safe[1] = {6};
    ASSERT_U64_EQ(rill__barriers_complete(&b, safe, 0, &w, &c), 1);
    safe[0] = 7;
    ASSERT_U64_EQ(rill__barriers_complete(&b, safe, 0, &w, &c), 2);
    /* Room again: ids go on. */
    ASSERT_U64_EQ(rill__barriers_take(&b, s, 1, 0), 3);
    rill__barriers_free(&b);
    return 0;
}

static int ackq(void)
{
    rill__ackq_t q;
    rill__ackq_reset(&q, 4);
    ASSERT_TRUE(!rill__ackq_busy(&q));
    q.processed = 10;
    ASSERT_TRUE(rill__ackq_unnoted(&q));
    rill__ackq_note(&q, 1);
    q.processed = 20;
    rill__ackq_note(&q, 2);
    rill__ackq_note(&q, 3); /* nothing new ran: no entry */
    ASSERT_EQ(q.n, 2);
    ASSERT_EQ(rill__ackq_advance(&q, 0), 0);
    ASSERT_U64_EQ(q.safe, 4);
    ASSERT_EQ(rill__ackq_advance(&q, 1), 1);
    ASSERT_U64_EQ(q.safe, 10);
    ASSERT_EQ(rill__ackq_advance(&q, 5), 1);
    ASSERT_U64_EQ(q.safe, 20);
    ASSERT_TRUE(!rill__ackq_busy(&q));

    /* A full FIFO moves its newest entry forward: later, never earlier. */
    for (uint64_t id = 10; id < 10 + RILL_ACKQ_LEN; id++) {
        q.processed += 1;
        rill__ackq_note(&q, id);
    }
    ASSERT_EQ(q.n, RILL_ACKQ_LEN);
    q.processed += 100;
    rill__ackq_note(&q, 99);
    ASSERT_EQ(q.n, RILL_ACKQ_LEN);
    ASSERT_EQ(rill__ackq_advance(&q, 10 + RILL_ACKQ_LEN - 1), 1);
    ASSERT_U64_EQ(q.safe, 20 + RILL_ACKQ_LEN - 1); /* the moved entry still waits */
    ASSERT_EQ(rill__ackq_advance(&q, 99), 1);
    ASSERT_U64_EQ(q.safe, q.processed);
    return 0;
}

int main(int argc, char **argv)
{
    static const t_case_t cases[] = {
        {"in_order", in_order},
        {"unsealed_waits_for_floor", unsealed_waits_for_floor},
        {"full_ring_widens_newest", full_ring_widens_newest},
        {"ackq", ackq},
        {NULL, NULL},
    };
    return t_run("barrier", cases, argc, argv);
}
