// The `auto` strategy's policy: zero-copy as a measured decision, per socket, never a blind flag
// (folly's setZeroCopyEnableFunc and its COPIED switch-off, with the talk's usage reports).
//
// choose(): copy below a size threshold (zero-copy costs per operation and pays only from
// ~8-16 KB here); zero-copy above it, with the registered form when the buffer is registered.
// learn(): a socket whose zero-copy sends the kernel reports as copied (loopback, veth, a device
// without scatter-gather) switches to copy after a streak, and re-probes now and then.
//
//   AutoPolicy policy(options, support);
//   Strategy s = policy.choose(sock.auto_state, buffer, ring.id(), counters);
//   policy.learn(sock.auto_state, outcome, counters);     // at each release of an auto send
#pragma once

#include "zcio/buffer.hpp"
#include "zcio/send_counters.hpp"
#include "zcio/strategy.hpp"

#include <cstddef>
#include <cstdint>

namespace zcio::detail {

class StrategySupport;

// Per socket.
struct AutoState {
    bool copy_mode = false;       // the kernel copied our zero-copy sends: copy, re-probe later
    std::uint32_t copied_streak = 0;
    std::uint32_t since_probe = 0;
};

// What one release of a zero-copy send taught.
struct AutoOutcome {
    bool reported = false;  // a usage report came
    bool copied = false;    // ... and said the kernel copied
    bool failed = false;
};

class AutoPolicy {
public:
    struct Options {
        std::size_t threshold = 8192;
        std::uint32_t copied_streak = 4;
        std::uint32_t reprobe_every = 4096;
    };
    AutoPolicy(const Options& o, const StrategySupport& support) noexcept : opt_(o), support_(support) {}

    Strategy choose(AutoState& st, const Buffer& b, std::uint64_t ring_id, Counters& c) const noexcept;
    void learn(AutoState& st, const AutoOutcome& o, Counters& c) const noexcept;
    // The kernel would not pin this socket's pages (ENOMEM: RLIMIT_MEMLOCK without CAP_IPC_LOCK):
    // copy from now on, and try zero-copy again at the next re-probe.
    void pinning_refused(AutoState& st, Counters& c) const noexcept {
        ++c.fallbacks;
        st.copy_mode = true;
        st.since_probe = 0;
    }

private:
    Options opt_;
    const StrategySupport& support_;
};

}  // namespace zcio::detail
