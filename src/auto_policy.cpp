#include "auto_policy.hpp"

#include "strategy_support.hpp"

namespace zcio::detail {

Strategy AutoPolicy::choose(AutoState& st, const Buffer& b, std::uint64_t ring_id, Counters& c) const noexcept {
    const Strategy zc =
        b.registered_with(ring_id) && support_.supported(Strategy::zc_fixed) ? Strategy::zc_fixed : Strategy::zc;
    if (!support_.supported(zc)) return Strategy::copy;  // no zero-copy send here at all
    if (b.size() < opt_.threshold) {
        ++c.auto_small;
        return Strategy::copy;
    }
    if (st.copy_mode) {
        if (++st.since_probe < opt_.reprobe_every) return Strategy::copy;
        st.since_probe = 0;
        ++c.auto_probes;
    }
    return zc;
}

void AutoPolicy::learn(AutoState& st, const AutoOutcome& o, Counters& c) const noexcept {
    if (!o.reported || o.failed) return;
    if (o.copied) {
        if (!st.copy_mode && ++st.copied_streak >= opt_.copied_streak) {
            // The kernel copies anyway: pinning pages and waiting for notifications only costs.
            // Copy, and look again now and then.
            st.copy_mode = true;
            st.since_probe = 0;
            ++c.auto_to_copy;
        }
        return;
    }
    st.copied_streak = 0;
    if (st.copy_mode) {
        st.copy_mode = false;
        ++c.auto_to_zc;
    }
}

}  // namespace zcio::detail
