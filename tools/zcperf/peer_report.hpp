// The other end's results, checked against the test before anything of them is used: the same
// stream ids as this end's, each once, the opposite role, and byte counts the test could have
// moved (a receiver cannot report more than was sent; nothing beyond ~800 Gbit/s of wall time).
//
//   if (auto why = match_peer_report(peer.report, mine, params, elapsed_seconds); !why.empty()) fail(why);
#pragma once

#include "control.hpp"

#include <string>

namespace zcperf {

// Fills in each peer stream's `sender` flag (a stock iperf3 peer does not send it). Returns why
// the report does not fit the test, or empty.
std::string match_peer_report(SideReport& peer, const SideReport& mine, const TestParams& p, double elapsed_seconds);

// An upper bound of what one test makes this end allocate (send arenas, receive buffers, per
// stream state), as planned by stream.cpp for these parameters.
std::size_t estimate_test_memory(const TestParams& p, bool server, zcio::RecvStrategy server_recv);

}  // namespace zcperf
