// api_cxx_test: rill.h compiles as C++ (extern "C", no C-only constructs) and a subset of
// api_test works from C++: versions, error names, config misuse, registry, lifecycle.
#include <rill/rill.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "harness.h"

namespace
{

struct Counter {
    int releases;
};

extern "C" int nop_batch(uintptr_t, unsigned, const rill_msg_t *, size_t, rill_emitter_t *)
{
    return 0;
}

extern "C" void count_release(uintptr_t ctx)
{
    reinterpret_cast<Counter *>(ctx)->releases++;
}

int version()
{
    ASSERT_EQ(rill_version(), RILL_VERSION_HEX);
    ASSERT_TRUE(rill_version_string() != nullptr);
    ASSERT_EQ(RILL_VERSION_HEX >> 16, RILL_VERSION_MAJOR);
    return 0;
}

int errors()
{
    ASSERT_STR_EQ(rill_err_name(RILL_EINVAL), "RILL_EINVAL");
    ASSERT_STR_EQ(rill_strerror(RILL_EINVAL), "invalid argument");
    ASSERT_STR_EQ(rill_err_name(RILL_ENOENT), "RILL_ENOENT");
    ASSERT_STR_EQ(rill_err_name(-ECONNRESET), "ECONNRESET");
    ASSERT_STR_EQ(rill_err_name(-40000), "UNKNOWN");
    const char *s = rill_strerror(-40000);
    ASSERT_TRUE(s != nullptr && s[0] != '\0');
    return 0;
}

int config_and_registry()
{
    rill_config_t *cfg = rill_config_new();
    ASSERT_TRUE(cfg != nullptr);
    ASSERT_EQ(rill_config_set_threads(cfg, 0), RILL_ERANGE);
    ASSERT_EQ(rill_config_set_threads(nullptr, 1), RILL_EINVAL);
    ASSERT_EQ(rill_config_add_listener(cfg, "not an address", RILL_FRAMING_RILL, 0, 0, 0),
              RILL_EADDR);
    ASSERT_EQ(rill_config_set_threads(cfg, 2), 0);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0), 0);

    rill_worker_t *w = nullptr;
    ASSERT_EQ(rill_worker_new(&w, cfg), 0);
    rill_config_destroy(cfg);
    ASSERT_TRUE(w != nullptr);
    ASSERT_EQ(rill_worker_threads(w), 2u);
    ASSERT_GT(rill_worker_listener_port(w, 0), 0);

    Counter a = {0}, b = {0};
    rill_comp_ops_t ops = {nop_batch, nullptr, count_release};
    ASSERT_EQ(rill_comp_register(w, 1, "one", &ops, reinterpret_cast<uintptr_t>(&a)), 0);
    ASSERT_EQ(rill_comp_register(w, 1, "dup", &ops, reinterpret_cast<uintptr_t>(&b)), RILL_EEXIST);
    ASSERT_EQ(rill_comp_unregister(w, 2), RILL_ENOENT);

    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_EQ(st.msgs_in, 0u);

    ASSERT_EQ(rill_worker_start(w), 0);
    ASSERT_EQ(rill_worker_start(w), RILL_ESTATE);
    ASSERT_EQ(rill_worker_stop(w), 0);
    rill_worker_destroy(w);
    ASSERT_EQ(a.releases, 1);
    ASSERT_EQ(b.releases, 0);
    return 0;
}

const t_case_t cases[] = {
    {"version", version},
    {"errors", errors},
    {"config_and_registry", config_and_registry},
    {nullptr, nullptr},
};

} // namespace

int main(int argc, char **argv)
{
    t_require_io_uring("api_cxx_test");
    return t_run("api_cxx_test", cases, argc, argv);
}
