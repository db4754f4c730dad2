#include "payload_buffers.hpp"

#include <zcio/error.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace zcperf {

namespace {

constexpr std::size_t max_working_set_buffers = 1u << 16;

bool copies(zcio::Strategy s) noexcept { return s == zcio::Strategy::plain || s == zcio::Strategy::copy; }

// One buffer serves every send only while its bytes never change. Stamped datagrams change each
// send: plain's send() has taken them when it returns, but io_uring's copy takes them when the ring
// submits, after the batch's later stamps (every send of a batch would carry its last sequence).
bool warm_reuse(const SendSpec& spec) noexcept {
    const bool payload_changes = spec.verify || (spec.udp_header && spec.strategy == zcio::Strategy::copy);
    return spec.working_set == 0 && copies(spec.strategy) && !payload_changes;
}

std::unique_ptr<zcio::BufferArena> make_arena(zcio::Ring& ring, zcio::Strategy strategy, zcio::ArenaOptions ao) {
    try {
        return std::make_unique<zcio::BufferArena>(ring, ao);
    } catch (const zcio::SetupError&) {
        // Registration can fail for lack of locked memory (non-root, RLIMIT_MEMLOCK). Only
        // zc-fixed needs registered memory; the others run from plain pages, as most programs do.
        if (strategy == zcio::Strategy::zc_fixed) throw;
        ao.register_buffers = false;
        return std::make_unique<zcio::BufferArena>(ao);
    }
}

}  // namespace

std::size_t working_set_buffers(std::size_t working_set, std::size_t length) noexcept {
    if (length == 0) return 1;
    return std::clamp<std::size_t>((working_set + length - 1) / length, 1, max_working_set_buffers);
}

std::string describe_working_set(zcio::Strategy strategy, const SendSpec& spec) {
    const std::size_t in_flight = plan_arena(spec.length).slab_count;
    if (spec.working_set > 0) {
        const std::size_t n = std::max(working_set_buffers(spec.working_set, spec.length), in_flight);
        return fmt::format("{} x {} B cycled in order ({:.1f} MiB)", n, spec.length,
                           static_cast<double>(n * spec.length) / (1 << 20));
    }
    SendSpec as = spec;
    as.strategy = strategy;
    if (warm_reuse(as)) return fmt::format("one {} B buffer, reused at once", spec.length);
    return fmt::format("the buffers in flight, up to {} x {} B", in_flight, spec.length);
}

PayloadBuffers::PayloadBuffers(zcio::Ring& ring, const SendSpec& spec, std::size_t sockets, std::size_t threads)
    : length_(spec.length) {
    const ArenaPlan plan = plan_arena(spec.length, sockets, threads);
    zcio::ArenaOptions ao{.slab_size = plan.slab_size, .slab_count = plan.slab_count};
    if (spec.working_set > 0)
        ao.slab_count = std::max(working_set_buffers(spec.working_set, spec.length), plan.slab_count);
    else if (warm_reuse(spec)) ao.slab_count = 1;
    arena_ = make_arena(ring, spec.strategy, ao);
    if (warm_reuse(spec)) {
        warm_ = arena_->take();
        warm_.resize(spec.length);
    } else if (spec.working_set > 0) {
        // Every slab joins the line now, in the arena's order; from here on a slab goes round it.
        line_.reserve(arena_->slab_count());
        while (zcio::Buffer b = arena_->take()) line_.push_back(std::move(b));
        count_ = line_.size();
    }
}

zcio::Buffer PayloadBuffers::next() noexcept {
    if (warm_) return zcio::Buffer::borrow({warm_.data(), length_});
    if (count_ > 0) {
        zcio::Buffer b = std::move(line_[head_]);
        head_ = (head_ + 1) % line_.size();
        --count_;
        b.resize(length_);
        return b;
    }
    zcio::Buffer b = arena_->take();  // warm zero-copy; or a line's buffer a handler let go home
    b.resize(length_);
    return b;
}

void PayloadBuffers::recycle(zcio::Buffer&& b) noexcept {
    if (line_.empty() || !b || count_ == line_.size()) {
        zcio::Buffer home = std::move(b);  // dropped here: back to its arena (LIFO: taken next)
        return;
    }
    line_[(head_ + count_) % line_.size()] = std::move(b);
    ++count_;
}

std::size_t PayloadBuffers::capacity() const noexcept { return warm_ ? SIZE_MAX : arena_->slab_count(); }

}  // namespace zcperf
