// Where a sending thread's payload comes from, and how many distinct buffers it cycles through:
// its working set, which decides whether a copying send reads its bytes from the cache or from
// memory (at 60000 B, one buffer against 32 in rotation moves `plain` by ~10-20 % here).
//
// Warm, the default (working_set 0): the copying strategies (plain, copy) send one buffer again
// and again, as a minimal send() loop or iperf3 does. A plain send is done with the bytes when
// send() returns and io_uring's copy has taken them by its completion; the payload never changes,
// so sending it again before the engine's (deferred) release reads nothing stale. Every other
// strategy takes slabs from the arena, whose LIFO free list hands out the slab released last: its
// working set is what it keeps in flight (up to the 8 MiB in-flight bound per stream).
//
// --working-set BYTES: every strategy cycles through ceil(BYTES / length) buffers (never fewer
// than it keeps in flight) in FIFO order: a released buffer goes to the back of the line, so
// every strategy reads cold payload alike. --verify fills each send with its stream offset, so it
// never reuses a buffer before its release.
//
//   PayloadBuffers buffers(ring, spec, sockets, threads);
//   zcio::Buffer b = buffers.next();      // empty: every buffer is in flight; wait for releases
//   engine.send(sock, std::move(b), zcio::Storage{[&](zcio::Release&& r) { buffers.recycle(std::move(r.buffer)); }});
#pragma once

#include "stream.hpp"

#include <zcio/buffer_arena.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace zcperf {

// Buffers of `length` bytes that a working set of `working_set` bytes holds (at least one).
std::size_t working_set_buffers(std::size_t working_set, std::size_t length) noexcept;

// What a strategy's working set is under `spec`, for help texts and the sweep's header.
std::string describe_working_set(zcio::Strategy strategy, const SendSpec& spec);

class PayloadBuffers {
public:
    // Throws zcio::SetupError when no arena can be made (zc-fixed needs registered memory; the
    // others fall back to plain memory when registration is refused).
    PayloadBuffers(zcio::Ring& ring, const SendSpec& spec, std::size_t sockets, std::size_t threads);

    zcio::Buffer next() noexcept;
    // A release's buffer: to the back of the line (working set), else home to the arena.
    void recycle(zcio::Buffer&& b) noexcept;
    // Buffers this source can have in flight at once.
    std::size_t capacity() const noexcept;
    bool reuses_one() const noexcept { return static_cast<bool>(warm_); }

private:
    std::unique_ptr<zcio::BufferArena> arena_;
    std::size_t length_;
    zcio::Buffer warm_;                 // the one buffer a copying strategy resends (warm mode)
    std::vector<zcio::Buffer> line_;    // working-set mode: a FIFO of free buffers, sized once
    std::size_t head_ = 0, count_ = 0;  // the line's front and how many it holds
};

}  // namespace zcperf
