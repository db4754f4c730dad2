// Invariants that only a bug can break (zcio's, or the kernel's): a CQE for an operation that is
// not in flight, a notification nobody expects, a count going below zero. A debug build aborts at
// the first, saying what broke, so the bug is found where it happens; a release build counts it
// (Counters) and goes on, because a server should not die of bookkeeping it can survive.
//
//   ZCIO_INVARIANT(op.f.notifs_pending > 0, counters.stray_notifications, "notification unexpected");
#pragma once

#include <cstdint>

namespace zcio::detail {

// Counts the break; aborts with `what` when aborts_on_broken_invariant().
[[gnu::cold, gnu::noinline]] void invariant_broken(std::uint64_t& counter, const char* what) noexcept;
// True in a debug build of the library (tests ask, rather than guess from their own NDEBUG).
bool aborts_on_broken_invariant() noexcept;

}  // namespace zcio::detail

#define ZCIO_INVARIANT(cond, counter, what)                      \
    do {                                                         \
        if (!(cond)) [[unlikely]]                                \
            ::zcio::detail::invariant_broken((counter), (what)); \
    } while (0)
