/* core/state: one group's table (against a reference model), a loop's state (the values
 * handed to a batch stay where they were put, also when the batch makes a table grow), and
 * standby changes that mix groups in one chunk (state/handoff.h). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "util/key_group.h"
#include "state/handoff.h"
#include "state/state.h"

#define NKEYS 4000

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random gets and zeroings of 4000 keys against an array model; scans see exactly the
 * keys whose value is not zero, and rebuilds (which drop zero values) lose nothing else. */
static int table_model(void)
{
    const uint32_t vsize = 13, stride = rill__state_stride(vsize);
    ASSERT_EQ(stride, 24u);
    rill__state_table_t t = {0};
    static uint64_t model[NKEYS]; /* value's first 8 bytes; 0 = absent */
    uint64_t seed = 88172645463325252ull;
    for (int round = 0; round < 200000; round++) {
        uint64_t key = rnd(&seed) % NKEYS * 0x10001; /* spread, not sequential */
        uint64_t i = key / 0x10001;
        ASSERT_EQ(rill__state_table_reserve(&t, stride, vsize, 1, 0), 0);
        uint8_t *v = rill__state_table_get(&t, stride, key);
        ASSERT_EQ((uintptr_t)v % 8, 0u);
        uint64_t have;
        memcpy(&have, v, 8);
        ASSERT_U64_EQ(have, model[i]);
        uint64_t next = rnd(&seed) % 4 == 0 ? 0 : rnd(&seed) | 1;
        memcpy(v, &next, 8);
        v[12] = (uint8_t)next; /* the last byte of the value is its own */
        model[i] = next;
    }
    ASSERT_U64_GE(t.cap, 16u);
    size_t live = 0;
    for (size_t i = 0; i < NKEYS; i++)
        live += model[i] != 0;
    size_t seen = 0;
    uint32_t pos = 0;
    uint64_t key;
    void *value;
    while (rill__state_table_next(&t, stride, vsize, &pos, &key, &value)) {
        uint64_t have;
        memcpy(&have, value, 8);
        ASSERT_U64_EQ(key % 0x10001, 0u);
        ASSERT_U64_EQ(have, model[key / 0x10001]);
        ASSERT_TRUE(have != 0);
        seen++;
    }
    ASSERT_U64_EQ(seen, live);
    for (size_t i = 0; i < NKEYS; i++) {
        uint8_t *v = rill__state_table_find(&t, stride, i * 0x10001);
        if (model[i])
            ASSERT_TRUE(v && memcmp(v, &model[i], 8) == 0);
    }
    /* A rebuild for more room than the table has drops the zero values and keeps the rest. */
    ASSERT_EQ(rill__state_table_reserve(&t, stride, vsize, t.cap, 0), 0);
    ASSERT_U64_EQ(t.used, live);
    rill__state_table_free(&t);
    return 0;
}

/* A batch of 256 new keys of one group: the group's table is rebuilt several times while
 * the batch's values are resolved, and every value handed out is still the key's. */
static int prepare_stable(void)
{
    const unsigned groups = 64, loops = 2;
    rill__state_t *s = rill__state_new(loops, 8);
    ASSERT_TRUE(s != NULL);
    rill_msg_t msgs[RILL_STATE_BATCH_MAX];
    void *values[RILL_STATE_BATCH_MAX];
    size_t n = 0;
    for (uint64_t k = 1; n < RILL_STATE_BATCH_MAX; k++)
        if (rill__key_group(k, groups) == 5)
            msgs[n++] = (rill_msg_t){.key = k};
    /* Each key twice in a row: the second message shares the first one's value. */
    rill_msg_t twice[RILL_STATE_BATCH_MAX];
    for (size_t i = 0; i < RILL_STATE_BATCH_MAX; i++)
        twice[i] = msgs[i / 2];
    ASSERT_EQ(rill__state_prepare(s, 1, groups, twice, RILL_STATE_BATCH_MAX, values), 0);
    for (size_t i = 0; i < RILL_STATE_BATCH_MAX; i += 2)
        ASSERT_TRUE(values[i] == values[i + 1]);
    for (size_t i = 0; i < RILL_STATE_BATCH_MAX; i += 2)
        *(uint64_t *)values[i] += twice[i].key * 3;
    ASSERT_EQ(rill__state_prepare(s, 1, groups, msgs, RILL_STATE_BATCH_MAX, values), 0);
    for (size_t i = 0; i < RILL_STATE_BATCH_MAX; i++) {
        uint64_t have = *(uint64_t *)values[i];
        ASSERT_U64_EQ(have, i < RILL_STATE_BATCH_MAX / 2 ? msgs[i].key * 3 : 0);
    }
    /* Loop 0 has none of it. */
    uint64_t cursor = 0, keys[7];
    void *vals[7];
    ASSERT_EQ(rill__state_scan(s, 0, &cursor, keys, vals, 7), 0);
    /* A scan in pieces of 7 returns each key once. */
    cursor = 0;
    size_t total = 0;
    int got;
    while ((got = rill__state_scan(s, 1, &cursor, keys, vals, 7)) > 0) {
        for (int i = 0; i < got; i++)
            ASSERT_U64_EQ(*(uint64_t *)vals[i], keys[i] * 3);
        total += (size_t)got;
    }
    ASSERT_U64_EQ(total, RILL_STATE_BATCH_MAX / 2);
    ASSERT_EQ(rill__state_scan(s, 1, &cursor, keys, vals, 7), 0);
    ASSERT_U64_GE(rill__state_bytes(s), RILL_STATE_BATCH_MAX * 16u);

    /* Another number of groups: the loop's keys are filed again and keep their values. */
    ASSERT_EQ(rill__state_prepare(s, 1, 4096, msgs, 1, values), 0);
    ASSERT_U64_EQ(*(uint64_t *)values[0], msgs[0].key * 3);
    ASSERT_EQ(s->loops[1].groups, 4096u);
    rill__state_free(s);
    return 0;
}

/* Chunks collected by out_collect: each payload copied, in order. */
typedef struct collected {
    uint8_t *p[64];
    uint32_t len[64];
    unsigned n;
} collected_t;

static int out_collect(void *ctx, const uint8_t *payload, uint32_t len)
{
    collected_t *c = ctx;
    if (c->n == 64)
        return RILL_ENOMEM;
    c->p[c->n] = malloc(len);
    if (!c->p[c->n])
        return RILL_ENOMEM;
    memcpy(c->p[c->n], payload, len);
    c->len[c->n++] = len;
    return 0;
}

/* Standby changes of keys of many groups travel in chunks that mix groups
 * (RILL_CHUNK_MULTI): each key lands in its own group's table on the receiver, a key
 * without a value arrives as zero (gone), and what breaks the layout is refused. */
static int standby_changes(void)
{
    const unsigned groups = 64;
    rill__state_t *a = rill__state_new(1, 8), *b = rill__state_new(1, 8);
    ASSERT_TRUE(a && b);
    rill_msg_t msgs[200];
    void *values[200];
    uint64_t keys[203];
    for (unsigned i = 0; i < 200; i++) {
        msgs[i] = (rill_msg_t){.key = 1000 + i * 7919u};
        keys[i] = msgs[i].key;
    }
    ASSERT_EQ(rill__state_prepare(a, 0, groups, msgs, 200, values), 0);
    for (unsigned i = 0; i < 200; i++)
        *(uint64_t *)values[i] = msgs[i].key * 3;
    /* b holds a value for three keys that a no longer has: the changes say they are gone. */
    for (unsigned i = 0; i < 3; i++)
        msgs[i] = (rill_msg_t){.key = 5 + i};
    ASSERT_EQ(rill__state_prepare(b, 0, groups, msgs, 3, values), 0);
    for (unsigned i = 0; i < 3; i++) {
        *(uint64_t *)values[i] = 99;
        keys[200 + i] = 5 + i;
    }
    collected_t c = {.n = 0};
    uint32_t max = RILL_CHUNK_HDR + 16u * 30u; /* 30 entries a chunk: 7 chunks */
    ASSERT_EQ(rill__state_send_keys(a, 0, 9, groups, keys, 203, max, 3, out_collect, &c), 203);
    ASSERT_EQ(c.n, 7u);
    unsigned mixed = 0;
    for (unsigned i = 0; i < c.n; i++) {
        rill__chunk_t ch;
        ASSERT_EQ(rill__chunk_parse(c.p[i], c.len[i], &ch), 0);
        ASSERT_EQ(ch.flags, RILL_CHUNK_STANDBY | RILL_CHUNK_MULTI);
        ASSERT_EQ(ch.comp_id, 9u);
        uint64_t first, last;
        memcpy(&first, ch.entries, 8);
        memcpy(&last, ch.entries + (size_t)(ch.n - 1) * 16, 8);
        ASSERT_EQ(ch.group, rill__key_group(first, groups));
        mixed += rill__key_group(last, groups) != ch.group;
        ASSERT_EQ(rill__state_install(b, 0, groups, &ch), 0);
    }
    ASSERT_GT(mixed, 0u);
    /* b has exactly a's values now. */
    uint64_t cursor = 0, got_keys[16];
    void *vals[16];
    size_t total = 0;
    int got;
    while ((got = rill__state_scan(b, 0, &cursor, got_keys, vals, 16)) > 0) {
        for (int i = 0; i < got; i++) {
            ASSERT_TRUE(got_keys[i] >= 1000);
            ASSERT_U64_EQ(*(uint64_t *)vals[i], got_keys[i] * 3);
        }
        total += (size_t)got;
    }
    ASSERT_U64_EQ(total, 200);

    /* The same entries without the flag are one group's: refused. */
    rill__chunk_t ch;
    ASSERT_EQ(rill__chunk_parse(c.p[0], c.len[0], &ch), 0);
    ch.flags = RILL_CHUNK_STANDBY;
    ASSERT_EQ(rill__state_install(b, 0, groups, &ch), RILL_EINVAL);
    /* MULTI is for standby changes only: not without STANDBY, never on a BEGIN or END. */
    c.p[0][1] = RILL_CHUNK_MULTI;
    ASSERT_EQ(rill__chunk_parse(c.p[0], c.len[0], &ch), RILL_EINVAL);
    uint8_t end[RILL_CHUNK_HDR];
    rill__chunk_mark(end, RILL_CHUNK_STANDBY | RILL_CHUNK_END | RILL_CHUNK_MULTI, 1, groups, 3);
    ASSERT_EQ(rill__chunk_parse(end, sizeof end, &ch), RILL_EINVAL);
    for (unsigned i = 0; i < c.n; i++)
        free(c.p[i]);
    rill__state_free(a);
    rill__state_free(b);
    return 0;
}

int main(int argc, char **argv)
{
    static const t_case_t cases[] = {
        {"table_model", table_model},
        {"prepare_stable", prepare_stable},
        {"standby_changes", standby_changes},
        {NULL, NULL},
    };
    return t_run("state_table", cases, argc, argv);
}
