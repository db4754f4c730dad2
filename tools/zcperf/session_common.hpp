// What the client and the server do alike around a test: data-socket options, connection records,
// the cookie, a peer's refusal, and the results exchange's bookkeeping.
#pragma once

#include "control.hpp"
#include "data_phase.hpp"
#include "net.hpp"
#include "report.hpp"

#include <string>
#include <vector>

namespace zcperf {

// 36 characters of iperf3's alphabet and the NUL: what every connection of a test opens with.
std::string make_cookie();
// -w, -N and a send timeout (a plain blocking send must not wait forever for a vanished peer).
void apply_data_socket_options(int fd, const TestParams& p);
Connection describe_connection(int id, int fd);
// After SERVER_ERROR: iperf3's error number and errno, and a zcperf server's own message.
std::string read_server_error(ControlChannel& ctl);
// Says why the peer refused: iperf3's SERVER_ERROR + numbers, and our message for a zcperf peer.
void send_refusal(ControlChannel& ctl, int i_errno, const std::string& message, bool zcperf_peer);
// Sends ZCPERF_ALIVE once a second to a zcperf peer; true when the peer has been silent too long.
bool heartbeat(ControlChannel& ctl, Clock::time_point& last_sent, const RunSettings& rs);
// Which way each stream goes, in the order both ends create them (iperf3: the client's sending
// streams first). `client`: from the client's side.
std::vector<bool> stream_roles(const TestParams& p, bool client);

}  // namespace zcperf
