#include "send_loop.hpp"

#include "cpu.hpp"
#include "net.hpp"
#include "payload_buffers.hpp"

#include <zcio/buffer_arena.hpp>
#include <zcio/error.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

namespace zcperf {

StreamReport run_send_loop(int fd, const SendLoopSpec& spec) {
    StreamReport rep;
    rep.id = 1;
    rep.sender = true;
    rep.strategy = "send-loop";
    // Memory of the kind the engine's sender sends from: an arena's slabs (huge pages where the
    // kernel gives them), touched before the clock starts. Registration is not needed here.
    const std::size_t count = working_set_buffers(spec.working_set, spec.length);
    std::unique_ptr<zcio::BufferArena> arena;
    try {
        arena = std::make_unique<zcio::BufferArena>(
            zcio::ArenaOptions{.slab_size = spec.length, .slab_count = count, .register_buffers = false});
    } catch (const zcio::SetupError& e) {
        rep.error = e.what();
        return rep;
    }
    std::vector<zcio::Buffer> slabs;
    while (zcio::Buffer b = arena->take()) slabs.push_back(std::move(b));
    std::vector<std::byte*> payload;
    for (auto& b : slabs) {
        std::memset(b.data(), 0, spec.length);
        payload.push_back(b.data());
    }
    zcio::Counters c;
    int first_error = 0;
    const double cpu0 = thread_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    const auto deadline = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(spec.duration));
    std::size_t next = 0;
    auto& stop = stop_requested();
    do {
        for (int i = 0; i < 16; ++i) {  // the clock every 16 sends: ~1 % of a 1400-byte send
            const ssize_t n = ::send(fd, payload[next], spec.length, MSG_NOSIGNAL);
            if (n < 0 && errno != EINTR) {
                if (!first_error) first_error = errno;
                ++c.errors;
            } else if (n > 0) {
                ++c.sends;
                c.bytes += static_cast<std::uint64_t>(n);
            }
            if (++next == count) next = 0;
        }
    } while (std::chrono::steady_clock::now() < deadline && !stop.load(std::memory_order_relaxed));
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rep.thread_cpu_seconds = thread_cpu_seconds() - cpu0;
    c.requests = c.sends;
    c.copied = c.sends;  // send() copies; the release is the call's return
    rep.bytes = c.bytes;
    rep.counters = c;
    if (first_error && rep.bytes == 0) rep.error = "every send() failed: " + zcio::errno_string(first_error);
    return rep;
}

}  // namespace zcperf
