// How zcperf says that a receiver did not get the strategy it was asked for. By default in one
// line, wherever a receive is reported: what runs instead and why, and where to read more
// (`zcperf --features`). The NIC set-up zcrx needs (header split, flow steering, a queue out of
// RSS) only when zcrx was asked for by name, once per process, on stderr of the receiving end
// (where the ethtool commands must run), naming this test's flow type and port.
//
//   if (auto line = fallback_line(report); !line.empty()) fmt::print("{}\n", line);
//   advise_zcrx_setup(report, fd, "eth0");   // after the receiver is made, on one of its sockets
#pragma once

#include "results.hpp"

#include <string>

namespace zcperf {

// "zcio receive fell back: zcrx unavailable on lo: EOPNOTSUPP (...); using bundle buffer ring
// (more: zcperf --features)", or "" when the receiver runs what was asked for.
std::string fallback_line(const RecvReport& r);

// When `r` asked for zcrx and fell back: prints, once per process, what `interface` lacks and the
// commands that set a NIC up for the flow `fd` receives (tcp4 for IPv4 and v4-mapped addresses,
// tcp6 for IPv6; its local port).
void advise_zcrx_setup(const RecvReport& r, int fd, const std::string& interface);

}  // namespace zcperf
