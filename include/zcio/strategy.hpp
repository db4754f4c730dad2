// Strategy: every way zcio can send a buffer, and Usage: what the kernel really did with it.
//
// The table of names, parsing and properties lives here and nowhere else: code that needs one
// entry per strategy (a counter each, a column each) sizes it with strategy_count.
//
//   auto s = zcio::parse_strategy("zc-fixed");          // nullopt for an unknown name
//   if (s && zcio::is_zero_copy(*s)) std::puts(zcio::to_string(*s));
//   std::uint64_t per_strategy[zcio::strategy_count] = {};
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>

namespace zcio {

// plain        blocking send(2)                              the baseline everyone has
// copy         IORING_OP_SEND                                io_uring, kernel copies
// msg_zerocopy send(2) + MSG_ZEROCOPY, error-queue notices   the classic zero-copy
// zc           IORING_OP_SEND_ZC                             pages pinned per request
// zc_fixed     SEND_ZC + IORING_RECVSEND_FIXED_BUF           registered arena: no pinning
// sendmsg_zc   IORING_OP_SENDMSG_ZC (+ fixed where allowed)  the msghdr form
// automatic    copy below a size threshold, zero-copy above; a socket whose sends the kernel
//              reports as copied (loopback) switches to copy and re-probes now and then.
enum class Strategy : std::uint8_t { plain, copy, msg_zerocopy, zc, zc_fixed, sendmsg_zc, automatic };
inline constexpr Strategy all_strategies[] = {Strategy::plain,    Strategy::copy,     Strategy::msg_zerocopy,
                                              Strategy::zc,       Strategy::zc_fixed, Strategy::sendmsg_zc,
                                              Strategy::automatic};
inline constexpr std::size_t strategy_count = std::size(all_strategies);
constexpr std::size_t index_of(Strategy s) noexcept { return static_cast<std::size_t>(s); }

const char* to_string(Strategy s) noexcept;  // "zc-fixed", "auto", ...
std::optional<Strategy> parse_strategy(std::string_view name) noexcept;
// msg_zerocopy, zc, zc_fixed, sendmsg_zc: the kernel sends from the caller's pages.
constexpr bool is_zero_copy(Strategy s) noexcept {
    return s == Strategy::msg_zerocopy || s == Strategy::zc || s == Strategy::zc_fixed || s == Strategy::sendmsg_zc;
}
// plain, msg_zerocopy: a system call per send, outside the ring.
constexpr bool is_syscall(Strategy s) noexcept { return s == Strategy::plain || s == Strategy::msg_zerocopy; }

// What the kernel really did with the pages of one send.
enum class Usage : std::uint8_t {
    zero_copy,     // the notification said the pages went out as they were
    copied,        // a copy strategy, or the notification said the kernel copied (loopback, veth...)
    not_reported,  // zero-copy without a usage report (old kernel), or the send failed before
};
const char* to_string(Usage u) noexcept;

}  // namespace zcio
