// Counters: what a SendEngine did, per socket and in total — the numbers behind every claim.
//
//   const zcio::Counters c = engine.counters();
//   std::printf("%llu of %llu releases zero-copy\n", c.zero_copy, c.zero_copy + c.copied);
//   c.by_strategy[zcio::index_of(zcio::Strategy::zc_fixed)];   // requests that used zc-fixed
#pragma once

#include "zcio/strategy.hpp"

#include <cstdint>

namespace zcio {

struct Counters {
    std::uint64_t sends = 0;          // send() calls accepted
    std::uint64_t bytes = 0;          // bytes the kernel accepted
    std::uint64_t requests = 0;       // SQEs / syscalls issued (continuations included)
    std::uint64_t short_sends = 0;    // partial sends that were continued
    std::uint64_t notifications = 0;  // notification CQEs / error-queue notices
    std::uint64_t zero_copy = 0;      // releases the kernel reported as zero-copy
    std::uint64_t copied = 0;         // releases that were copied (reported, or a copy strategy)
    std::uint64_t not_reported = 0;
    std::uint64_t errors = 0;     // releases with an error
    std::uint64_t fallbacks = 0;  // a strategy replaced by another (e.g. ENOBUFS -> copy)
    // auto, when the kernel reports copies: it measures a copy window against a zero-copy window
    // (this thread's CPU per byte) and keeps the cheaper.
    std::uint64_t auto_probes = 0;   // auto: measurements started
    std::uint64_t auto_to_copy = 0;  // auto: a measurement switched the socket to copy
    std::uint64_t auto_kept_zc = 0;  // auto: a measurement kept zero-copy although the kernel copies
    std::uint64_t auto_to_zc = 0;    // auto: a later measurement moved a copying socket back to zero-copy
    std::uint64_t auto_small = 0;    // auto: sends below the threshold, copied by choice
    std::uint64_t waits = 0;         // send() had to drive the loop for a free slot
    // Broken invariants: each can only come from a bug (zcio's or the kernel's). A debug build
    // aborts at the first, with what broke; a release build counts it here and goes on.
    std::uint64_t stray_cqes = 0;                    // a request CQE for no live operation
    std::uint64_t stray_notifications = 0;           // a notification for an operation that expected none
    std::uint64_t inflight_underflows = 0;           // in-flight bytes or requests would go below zero
    std::uint64_t by_strategy[strategy_count] = {};  // requests per Strategy actually used

    Counters& operator+=(const Counters& o) noexcept;
};

}  // namespace zcio
