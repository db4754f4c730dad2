#include "auto_policy.hpp"

#include "strategy_support.hpp"

#include <time.h>

#include <algorithm>

namespace zcio::detail {

namespace {

double thread_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

AutoPolicy::AutoPolicy(const Options& o, const StrategySupport& support) noexcept : opt_(o), support_(support) {
    if (!opt_.cpu_seconds) opt_.cpu_seconds = &thread_cpu_seconds;
    opt_.window = std::max<std::uint32_t>(opt_.window, 1);
}

Strategy AutoPolicy::choose(AutoState& st, const Buffer& b, std::uint64_t ring_id, Counters& c) const noexcept {
    const Strategy zc =
        b.registered_with(ring_id) && support_.supported(Strategy::zc_fixed) ? Strategy::zc_fixed : Strategy::zc;
    if (!support_.supported(zc)) return Strategy::copy;  // no zero-copy send here at all
    if (b.size() < opt_.threshold) {
        ++c.auto_small;
        return Strategy::copy;
    }
    switch (st.mode) {
    case AutoState::Mode::zero_copy: ++st.since_decision; return zc;
    case AutoState::Mode::copy:
        if (++st.since_decision >= st.reprobe_after) start_measuring(st, c);
        if (st.mode == AutoState::Mode::copy) return Strategy::copy;
        break;
    default: break;
    }
    // A measurement window: this send counts toward it.
    if (st.window_sends == 0) st.window_cpu0 = opt_.cpu_seconds();
    const Strategy use = st.mode == AutoState::Mode::measure_zc ? zc : Strategy::copy;
    ++st.window_sends;
    st.window_bytes += b.size();
    if (st.window_sends >= opt_.window) close_window(st, c);
    return use;
}

void AutoPolicy::start_measuring(AutoState& st, Counters& c) const noexcept {
    st.mode = AutoState::Mode::measure_copy;
    st.window_sends = 0;
    st.window_bytes = 0;
    st.copied_streak = 0;
    ++c.auto_probes;
}

void AutoPolicy::close_window(AutoState& st, Counters& c) const noexcept {
    const double cost =
        (opt_.cpu_seconds() - st.window_cpu0) / static_cast<double>(std::max<std::uint64_t>(st.window_bytes, 1));
    st.window_sends = 0;
    st.window_bytes = 0;
    if (st.mode == AutoState::Mode::measure_copy) {
        st.copy_cost = cost;
        st.mode = AutoState::Mode::measure_zc;
        return;
    }
    // Zero-copy pins pages and waits for notifications: it stays only if it is clearly cheaper.
    const bool keep_zc = cost < st.copy_cost * (1 - opt_.margin);
    const bool same = st.decided && st.kept_zc == keep_zc;
    st.reprobe_after = same ? std::min<std::uint64_t>(st.reprobe_after * 2, std::uint64_t{opt_.reprobe_every} * 64)
                            : opt_.reprobe_every;
    if (keep_zc) {
        ++c.auto_kept_zc;
        if (st.decided && !st.kept_zc) ++c.auto_to_zc;
    } else if (!st.decided || st.kept_zc) {
        ++c.auto_to_copy;
    }
    st.mode = keep_zc ? AutoState::Mode::zero_copy : AutoState::Mode::copy;
    st.kept_zc = keep_zc;
    st.decided = true;
    st.since_decision = 0;
    st.copied_streak = 0;
}

void AutoPolicy::learn(AutoState& st, const AutoOutcome& o, Counters& c) const noexcept {
    if (!o.reported || o.failed || st.mode != AutoState::Mode::zero_copy) return;
    if (!o.copied) {
        st.copied_streak = 0;
        return;
    }
    // The kernel copies: measure whether zero-copy still pays for this thread (again, only once
    // the last decision has held for reprobe_after sends).
    if (st.decided && st.since_decision < st.reprobe_after) return;
    if (++st.copied_streak >= opt_.copied_streak) start_measuring(st, c);
}

void AutoPolicy::pinning_refused(AutoState& st, Counters& c) const noexcept {
    ++c.fallbacks;
    st.mode = AutoState::Mode::copy;
    st.decided = true;
    st.kept_zc = false;
    st.since_decision = 0;
    st.reprobe_after = opt_.reprobe_every;
}

}  // namespace zcio::detail
