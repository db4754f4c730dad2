// Which strategies the running kernel can carry, from its probe, and why not.
//
//   StrategySupport support(zcio::probe());
//   if (!support.supported(Strategy::zc_fixed)) throw SetupError(support.missing(Strategy::zc_fixed), 0);
#pragma once

#include "zcio/probe.hpp"
#include "zcio/strategy.hpp"

#include <string>

namespace zcio::detail {

class StrategySupport {
public:
    explicit StrategySupport(const KernelFeatures& kernel) noexcept;
    bool supported(Strategy s) const noexcept { return supported_[index_of(s)]; }
    // "strategy zc needs send_zc, which this kernel lacks (why); this kernel can run: plain, ..."
    std::string missing(Strategy s) const;
    // The probe's feature name a strategy needs ("" for plain and auto, which always run).
    static const char* feature(Strategy s) noexcept;

private:
    const KernelFeatures& kernel_;
    bool supported_[strategy_count] = {};
};

}  // namespace zcio::detail
