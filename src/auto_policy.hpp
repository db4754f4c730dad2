// The `auto` strategy's policy: zero-copy as a measured decision, per socket, never a blind flag.
//
// choose(): copy below a size threshold (zero-copy costs per operation and pays only from ~8-16 KB
// here); zero-copy above it, registered when the buffer is. When the usage reports say the kernel
// copied anyway (loopback, veth, a device without scatter-gather), auto does not assume (folly
// switches off at the first COPIED): it measures. One window of sends copies, the next goes
// zero-copy, and the sending thread's CPU time per byte of each decides: zero-copy stays only if
// it is clearly cheaper for this thread (on loopback it is: the copy moves to the receiver's side;
// where the copy happens on the sending side, it is not). The decision is measured again now and
// then (after reprobe_every sends, doubling while it holds), so a route that changes is noticed.
//
//   AutoPolicy policy(options, support);
//   Strategy s = policy.choose(sock.auto_state, buffer, ring.id(), counters);   // per send
//   policy.learn(sock.auto_state, outcome, counters);    // at each release of an auto zero-copy send
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
    enum class Mode : std::uint8_t { zero_copy, copy, measure_copy, measure_zc };
    Mode mode = Mode::zero_copy;
    bool decided = false;              // a measurement has decided ...
    bool kept_zc = false;              // ... to keep zero-copy (else: to copy)
    std::uint32_t copied_streak = 0;   // COPIED reports in a row
    std::uint64_t since_decision = 0;  // sends since the last decision
    std::uint64_t reprobe_after = 0;   // sends before the next measurement (doubles while it holds)
    std::uint32_t window_sends = 0;    // the measurement window running now
    std::uint64_t window_bytes = 0;
    double window_cpu0 = 0;
    double copy_cost = 0;  // CPU seconds per byte of the copy window
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
        std::uint32_t copied_streak = 4;     // COPIED reports in a row that start a measurement
        std::uint32_t reprobe_every = 4096;  // sends before a decision is measured again (then x2, to x64)
        std::uint32_t window = 256;          // sends per measurement window
        double margin = 0.05;                // zero-copy must cost this much less to stay
        double (*cpu_seconds)() = nullptr;   // this thread's CPU clock (tests pass their own)
    };
    AutoPolicy(const Options& o, const StrategySupport& support) noexcept;

    Strategy choose(AutoState& st, const Buffer& b, std::uint64_t ring_id, Counters& c) const noexcept;
    void learn(AutoState& st, const AutoOutcome& o, Counters& c) const noexcept;
    // The kernel would not pin this socket's pages (ENOMEM: RLIMIT_MEMLOCK without CAP_IPC_LOCK):
    // copy from now on, and try zero-copy again when the decision is next measured.
    void pinning_refused(AutoState& st, Counters& c) const noexcept;

private:
    void start_measuring(AutoState& st, Counters& c) const noexcept;
    void close_window(AutoState& st, Counters& c) const noexcept;

    Options opt_;
    const StrategySupport& support_;
};

}  // namespace zcio::detail
