// The streams of a test, from either end. Sending: a thread sends on several sockets through its
// own Ring + BufferArena + SendEngine (one ring per thread, nothing shared; zcperf runs at most
// one sending thread per core, so -P 256 is 256 connections, not 256 threads). Receiving: one
// thread takes every stream's data through one zcio::Receiver (zcio::make_receiver).
//
// The sender pipelines (sender.hpp): it keeps taking slabs from a registered arena and handing
// them to the engine, round-robin over its sockets, and only waits when every slab is in flight; a
// slab comes back when its release arrives.
//
//   std::vector<Live> live(2);
//   auto reports = run_senders({{fd1, 1, &live[0]}, {fd2, 2, &live[1]}},
//                              {.strategy = zcio::Strategy::zc_fixed, .length = 60000, .duration = 2});
#pragma once

#include "net.hpp"
#include "results.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace zcperf {

// -n / -k: what every sending thread of a test may still send, taken one send at a time (the last
// send may overshoot, as iperf3's does).
struct SendBudget {
    std::atomic<std::int64_t> bytes{INT64_MAX};
    std::atomic<std::int64_t> blocks{INT64_MAX};
    bool take(std::size_t length) noexcept {
        if (blocks.fetch_sub(1, std::memory_order_relaxed) <= 0) return false;
        return bytes.fetch_sub(static_cast<std::int64_t>(length), std::memory_order_relaxed) > 0;
    }
};

struct SendSpec {
    zcio::Strategy strategy = zcio::Strategy::automatic;
    CompletionModel completion = CompletionModel::storage;
    std::size_t length = 128 * 1024;  // bytes per send
    std::uint16_t udp_gso = 0;
    double duration = 10;                     // seconds of sending; the drain comes after
    bool verify = false;                      // fill each send with the stream-offset pattern (payload.hpp)
    std::size_t working_set = 0;              // bytes of payload to cycle through; 0: warm (payload_buffers.hpp)
    std::uint64_t bitrate = 0;                // bits/s per stream (iperf3 -b); 0: as fast as it goes
    SendBudget* budget = nullptr;             // -n / -k, shared by the test's sending threads
    const std::atomic<bool>* stop = nullptr;  // the test's own end (peer gone, told to end)
    bool udp_header = false;                  // UDP: iperf3's datagram header in every datagram (udp_header.hpp)
    bool udp64 = false;                       // ... with 64-bit sequence numbers
};

// What another thread may read while a stream runs (interval reports, the progress line).
struct Live {
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<bool> finished{false};
    std::atomic<std::int64_t> last_data_ns{0};  // receiver: steady-clock time of the last data
};

struct StreamSocket {
    int fd = -1;  // a connected TCP or UDP socket, or an unconnected UDP socket (see `to`)
    int id = 0;   // 1..N, the same on both ends
    Live* live = nullptr;
    // --fanout: an unconnected UDP socket's destinations, sent to round robin, each send with its
    // address and the spec's GSO size (zcio::SendOptions). Empty: the socket's peer.
    std::span<const SocketAddress> to = {};
};

// Sends on every socket, in the calling thread, for spec.duration or until stop_requested().
// Never throws: a set-up failure (strategy the kernel lacks, memory) is in each report's `error`.
// Each report's thread_cpu_seconds is the thread's CPU divided evenly among its sockets.
std::vector<StreamReport> run_senders(const std::vector<StreamSocket>& sockets, const SendSpec& spec);

// Receives on every socket, in the calling thread, through zcio::make_receiver(strategy): until
// EOF on each (TCP), an error, or `stop` (UDP's end, or Ctrl-C). `start` is when the test began;
// a stream's `seconds` run from there to its last data (or EOF). `receive` gets the receiver's
// account; a set-up failure is in every report's `error`. `verify`: check every byte against the
// stream-offset pattern (payload.hpp); the first difference is the stream's error.
// `udp64`: the datagrams carry 64-bit sequence numbers (UDP accounting: udp_header.hpp).
std::vector<StreamReport> run_receivers(const std::vector<StreamSocket>& sockets, bool udp, zcio::RecvStrategy strategy,
                                        const std::atomic<bool>& stop, std::chrono::steady_clock::time_point start,
                                        RecvReport& receive, bool verify = false, bool udp64 = false);

// How the arena of one sending thread is sized for `length`-byte sends on `sockets` sockets:
// enough slabs to fill the in-flight bound, within what this process (`threads` senders) may lock.
struct ArenaPlan {
    std::size_t slab_size = 0, slab_count = 0;
};
ArenaPlan plan_arena(std::size_t length, std::size_t sockets = 1, std::size_t threads = 1);

// The receiver zcperf builds for `strategy` on these sockets (buffer sizes by protocol and count).
zcio::ReceiverOptions receiver_options(zcio::RecvStrategy strategy, bool udp, std::size_t sockets,
                                       const std::string& interface);

}  // namespace zcperf
