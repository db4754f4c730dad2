// The strategy table: names, parsing, and which kernel feature each needs.
#include "strategy_support.hpp"
#include "zcio/send_counters.hpp"

namespace zcio {

const char* to_string(Strategy s) noexcept {
    switch (s) {
    case Strategy::plain: return "plain";
    case Strategy::copy: return "copy";
    case Strategy::msg_zerocopy: return "msg-zerocopy";
    case Strategy::zc: return "zc";
    case Strategy::zc_fixed: return "zc-fixed";
    case Strategy::sendmsg_zc: return "sendmsg-zc";
    case Strategy::automatic: return "auto";
    }
    return "?";
}

std::optional<Strategy> parse_strategy(std::string_view name) noexcept {
    for (Strategy s : all_strategies)
        if (name == to_string(s)) return s;
    return std::nullopt;
}

const char* to_string(Usage u) noexcept {
    switch (u) {
    case Usage::zero_copy: return "zero-copy";
    case Usage::copied: return "copied";
    case Usage::not_reported: return "not-reported";
    }
    return "?";
}

Counters& Counters::operator+=(const Counters& o) noexcept {
    sends += o.sends;
    bytes += o.bytes;
    requests += o.requests;
    short_sends += o.short_sends;
    notifications += o.notifications;
    zero_copy += o.zero_copy;
    copied += o.copied;
    not_reported += o.not_reported;
    errors += o.errors;
    fallbacks += o.fallbacks;
    auto_to_copy += o.auto_to_copy;
    auto_to_zc += o.auto_to_zc;
    auto_probes += o.auto_probes;
    auto_kept_zc += o.auto_kept_zc;
    auto_small += o.auto_small;
    waits += o.waits;
    stray_cqes += o.stray_cqes;
    stray_notifications += o.stray_notifications;
    inflight_underflows += o.inflight_underflows;
    for (std::size_t i = 0; i < strategy_count; ++i) by_strategy[i] += o.by_strategy[i];
    return *this;
}

namespace detail {

const char* StrategySupport::feature(Strategy s) noexcept {
    switch (s) {
    case Strategy::copy: return "op_send";
    case Strategy::msg_zerocopy: return "msg_zerocopy";
    case Strategy::zc: return "send_zc";
    case Strategy::zc_fixed: return "send_zc_fixed";
    case Strategy::sendmsg_zc: return "sendmsg_zc";
    case Strategy::plain:
    case Strategy::automatic: return "";
    }
    return "";
}

StrategySupport::StrategySupport(const KernelFeatures& kernel) noexcept : kernel_(kernel) {
    supported_[index_of(Strategy::plain)] = true;
    supported_[index_of(Strategy::copy)] = kernel.op_send;
    supported_[index_of(Strategy::msg_zerocopy)] = kernel.msg_zerocopy;
    supported_[index_of(Strategy::zc)] = kernel.send_zc;
    supported_[index_of(Strategy::zc_fixed)] = kernel.send_zc_fixed;
    supported_[index_of(Strategy::sendmsg_zc)] = kernel.sendmsg_zc;
    supported_[index_of(Strategy::automatic)] = true;
}

std::string StrategySupport::missing(Strategy s) const {
    std::string msg = std::string("strategy ") + to_string(s) + " needs " + feature(s) + ", which this kernel lacks (" +
                      kernel_.why(feature(s)) + ")";
    std::string ok;
    for (Strategy t : all_strategies)
        if (supported(t)) ok += std::string(ok.empty() ? "" : ", ") + to_string(t);
    return msg + "; this kernel can run: " + ok;
}

}  // namespace detail
}  // namespace zcio
