// BufferArena: one mapping, registered once as fixed buffers, carved into equal slabs.
//
// Registering pins the pages and builds their DMA-able description once; afterwards a send with
// IORING_RECVSEND_FIXED_BUF does no page-table walk, no pinning and no refcounting per request —
// the talk's "registered buffers" win. The mapping uses 2 MiB huge pages when the system has them
// (vm.nr_hugepages), else asks for transparent huge pages, else plain pages, and says which.
//
//   zcio::BufferArena arena(ring, {.slab_size = 64 << 10, .slab_count = 512});
//   zcio::Buffer b = arena.take();            // empty if every slab is out (backpressure)
//   ...send it; it comes back to the arena when the release drops it.
#pragma once

#include "zcio/buffer.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace zcio {

class Ring;

struct ArenaOptions {
    std::size_t slab_size = 64 * 1024;
    std::size_t slab_count = 256;
    bool huge_pages = true;        // try MAP_HUGETLB, then MADV_HUGEPAGE
    bool register_buffers = true;  // false: plain memory (sends pin pages per request)
    // Debug canary: fill a slab with a pattern when it comes back and check the pattern when it is
    // handed out again. A mismatch means something wrote to a buffer it no longer owned.
    bool poison = false;
};

enum class PageKind { huge_2m, transparent_huge, normal };
const char* to_string(PageKind k) noexcept;

struct ArenaStats {
    std::uint64_t taken = 0;              // handed out
    std::uint64_t returned = 0;           // came back
    std::uint64_t exhausted = 0;          // take() found no free slab
    std::uint64_t poison_violations = 0;  // canary found a write after release
    std::uint64_t quarantined = 0;        // never coming back: the kernel may still read them
};

class BufferArena {
public:
    // Throws SetupError with what to change (size, `ulimit -l`, vm.nr_hugepages) on failure.
    BufferArena(Ring& ring, const ArenaOptions& options);
    // An arena of plain memory, not registered with any ring.
    explicit BufferArena(const ArenaOptions& options);
    ~BufferArena();
    BufferArena(const BufferArena&) = delete;
    BufferArena& operator=(const BufferArena&) = delete;

    // A whole slab, size() == slab_size(). Empty Buffer when none is free.
    Buffer take() noexcept;

    std::size_t slab_size() const noexcept;
    std::size_t slab_count() const noexcept;
    std::size_t available() const noexcept;  // slabs free right now
    std::size_t outstanding() const noexcept { return slab_count() - available(); }
    bool registered() const noexcept;
    PageKind page_kind() const noexcept;
    const ArenaStats& stats() const noexcept;
    std::string describe() const;

private:
    BufferArena(Ring* ring, const ArenaOptions& options);
    Buffer take_slow() noexcept;
    [[gnu::always_inline]] inline Buffer hand_out(std::uint32_t slot) noexcept;
    struct Pool;
    // The pool outlives the arena if buffers are still out when it goes (a release still to come):
    // the last buffer back then frees it. No handle ever points at freed memory.
    std::unique_ptr<Pool> pool_;
};

}  // namespace zcio
