// The floor a copying send is held against: the least code that sends, as a minimal send() loop
// or iperf3 does: one connected socket, one buffer (or, with a working set, a rotation of them),
// send() until the time is up. No engine, no ring, no handler: what `plain` costs on top of the
// system call is the difference.
//
//   StreamReport r = run_send_loop(fd, {.length = 60000, .duration = 0.4});
//   // r.bytes, r.seconds, r.thread_cpu_seconds; r.counters->sends (every send reported copied)
#pragma once

#include "results.hpp"

#include <cstddef>

namespace zcperf {

struct SendLoopSpec {
    std::size_t length = 60000;   // bytes per send()
    double duration = 1;          // seconds
    std::size_t working_set = 0;  // bytes to cycle through; 0: one buffer, reused at once
};

// Sends on `fd` (connected) in the calling thread until spec.duration or stop_requested(). Never
// throws: a failure is in the report's `error`.
StreamReport run_send_loop(int fd, const SendLoopSpec& spec);

}  // namespace zcperf
