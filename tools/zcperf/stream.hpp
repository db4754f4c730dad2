// One stream of a test: a thread that sends through its own Ring + BufferArena + SendEngine (one
// ring per thread, nothing shared), or a thread that receives and counts.
//
// The sender pipelines: it keeps taking slabs from a registered arena and handing them to the
// engine, and only waits when every slab is in flight; a slab comes back when its release arrives.
//
//   Live live;
//   std::thread t([&] { report = run_sender(fd.get(), 1, {.strategy = zcio::Strategy::zc_fixed,
//                                                         .length = 60000, .duration = 2}, live); });
#pragma once

#include "results.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>

namespace zcperf {

struct SendSpec {
    zcio::Strategy strategy = zcio::Strategy::automatic;
    CompletionModel completion = CompletionModel::storage;
    std::size_t length = 128 * 1024;  // bytes per send
    std::uint16_t udp_gso = 0;
    double duration = 10;             // seconds of sending; the drain comes after
};

// What another thread may read while a stream runs (interval reports, the progress line).
struct Live {
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<bool> finished{false};
};

// Sends on `fd` (a connected TCP or UDP socket) for spec.duration or until stop_requested().
// Never throws: a set-up failure (strategy the kernel lacks, memory) is in the report's `error`.
StreamReport run_sender(int fd, int id, const SendSpec& spec, Live& live);

// Receives on `fd` until EOF (TCP), an error, or `stop` (UDP's end, or Ctrl-C).
// `start` is when the test began; `seconds` runs from there to the last data (or EOF).
StreamReport run_receiver(int fd, int id, bool udp, const std::atomic<bool>& stop, Live& live,
                          std::chrono::steady_clock::time_point start);

// How the arena for `length`-byte sends is sized: enough slabs to fill the in-flight bound,
// within what this process may lock.
struct ArenaPlan {
    std::size_t slab_size = 0, slab_count = 0;
};
ArenaPlan plan_arena(std::size_t length);

}  // namespace zcperf
