#include "zcio/buffer_arena.hpp"

#include "anonymous_mapping.hpp"
#include "pinned_memory.hpp"
#include "zcio/error.hpp"
#include "zcio/ring.hpp"

#include <sys/mman.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

namespace zcio {
namespace {

constexpr std::size_t huge_page = 2u << 20;
// The kernel refuses a single registered buffer larger than 1 GiB; bigger arenas use several
// table entries, each a whole number of slabs so no slab straddles two.
constexpr std::size_t max_registered_entry = 1u << 30;
constexpr std::byte poison_byte{0xDB};

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

std::string mib(std::size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

}  // namespace

const char* to_string(PageKind k) noexcept {
    switch (k) {
    case PageKind::huge_2m: return "2 MiB huge pages";
    case PageKind::transparent_huge: return "transparent huge pages (madvise)";
    case PageKind::normal: return "4 KiB pages";
    }
    return "?";
}

namespace {
// Pools kept for good because the kernel may still read a quarantined slab. Listed (not just
// dropped) so leak checkers see them as deliberately kept, not lost; the list itself is never
// destroyed, or it would be gone before the leak check at exit.
std::mutex kept_pools_mutex;
std::vector<const void*>& kept_pools() {
    static auto* pools = new std::vector<const void*>;  // NOLINT: intentionally immortal
    return *pools;
}
}  // namespace

struct BufferArena::Pool : BufferHome {
    AnonymousMapping mapping;  // unmapped after the destructor's body unregistered it
    std::byte* base = nullptr;
    std::size_t mapped = 0;
    std::size_t slab_size = 0;
    std::size_t slab_count = 0;
    std::size_t slabs_per_entry = 0;
    PageKind pages = PageKind::normal;
    bool registered = false;
    bool poison = false;
    bool orphaned = false;  // the arena is gone; free the pool when the last buffer returns
    io_uring* ring = nullptr;
    std::weak_ptr<const void> ring_alive;  // the Ring may go first: then its exit dropped the table
    // A stack of free slot numbers, sized once for every slab: giving one back never allocates,
    // so there is no growth path on the hot path at all.
    std::unique_ptr<std::uint32_t[]> free_slots;
    std::size_t free_count = 0;
    bool all_home() const noexcept { return free_count == slab_count; }
    std::byte* slab(std::uint32_t slot) const noexcept { return base + std::size_t{slot} * slab_size; }
    ArenaStats stats;

    ~Pool() {
        if (registered && !ring_alive.expired()) io_uring_unregister_buffers(ring);
    }

    static void back(BufferHome* home, std::uint32_t slot) noexcept {
        auto* p = static_cast<Pool*>(home);
        ++p->stats.returned;
        if (p->poison) std::memset(p->slab(slot), std::to_integer<int>(poison_byte), p->slab_size);
        p->free_slots[p->free_count++] = slot;
        p->free_if_last();
    }

    static void quarantine_slot(BufferHome* home, std::uint32_t) noexcept {
        auto* p = static_cast<Pool*>(home);
        if (p->stats.quarantined++ == 0) {
            std::lock_guard lock(kept_pools_mutex);
            kept_pools().push_back(p);  // this pool may now outlive every handle to it, on purpose
        }
    }

    // The debug canary, out of take()'s way: a slab must come back exactly as back() poisoned it.
    [[gnu::noinline]] void check_poison(std::uint32_t slot) noexcept {
        const std::byte* data = slab(slot);
        const std::byte* end = data + slab_size;
        if (std::find_if(data, end, [](std::byte b) { return b != poison_byte; }) != end) {
            ++stats.poison_violations;
            std::fprintf(stderr, "zcio: buffer slab %u was written after it was released\n", slot);
        }
    }

    // An orphaned pool goes with its last buffer; never while a quarantined slab may be read.
    void free_if_last() noexcept {
        if (orphaned && stats.quarantined == 0 && all_home()) {
            std::unique_ptr<Pool> last_one_out(this);
        }
    }
};

BufferArena::BufferArena(const ArenaOptions& options) : BufferArena(nullptr, options) {}
BufferArena::BufferArena(Ring& ring, const ArenaOptions& options) : BufferArena(&ring, options) {}

BufferArena::BufferArena(Ring* ring, const ArenaOptions& options) : pool_(std::make_unique<Pool>()) {
    const bool want_registration = options.register_buffers && ring != nullptr;
    if (options.slab_size == 0 || options.slab_count == 0)
        throw SetupError("BufferArena: slab_size and slab_count must be > 0", 0);
    if (options.slab_size > max_registered_entry)
        throw SetupError("BufferArena: slab_size " + mib(options.slab_size) + " is over 1 GiB", 0,
                         "the kernel registers at most 1 GiB per buffer: use smaller slabs");
    if (options.slab_count > (std::size_t{1} << 24) || options.slab_size > (std::size_t{1} << 40) / options.slab_count)
        throw SetupError("BufferArena: " + std::to_string(options.slab_count) + " slabs of " +
                             std::to_string(options.slab_size) + " bytes is absurd",
                         0, "ask for at most 1 TiB in at most 16M slabs");

    Pool& p = *pool_;
    p.give_back = &Pool::back;
    p.quarantine = &Pool::quarantine_slot;
    p.slab_size = options.slab_size;
    p.slab_count = options.slab_count;
    p.poison = options.poison;
    const std::size_t bytes = options.slab_size * options.slab_count;

    // 1. Memory: explicit huge pages, else THP, else normal pages.
    if (options.huge_pages && bytes >= huge_page) {
        p.mapping = AnonymousMapping::try_map(round_up(bytes, huge_page), MAP_HUGETLB | MAP_POPULATE);
        if (p.mapping) p.pages = PageKind::huge_2m;
    }
    if (!p.mapping) {
        const std::size_t size = AnonymousMapping::round_to_pages(bytes);
        p.mapping = AnonymousMapping::try_map(size, 0);
        if (!p.mapping)
            throw SetupError("BufferArena: mmap of " + mib(size) + " failed", errno,
                             "ask for a smaller arena (slab_size x slab_count)");
        if (options.huge_pages && ::madvise(p.mapping.data(), size, MADV_HUGEPAGE) == 0)
            p.pages = PageKind::transparent_huge;
    }
    p.base = p.mapping.bytes();
    p.mapped = p.mapping.size();
    if (p.poison) std::memset(p.base, std::to_integer<int>(poison_byte), p.mapped);

    // 2. Registration: one table entry per <= 1 GiB run of whole slabs.
    p.slabs_per_entry = std::max<std::size_t>(1, max_registered_entry / p.slab_size);
    if (want_registration) {
        std::vector<iovec> iov;
        for (std::size_t first = 0; first < p.slab_count; first += p.slabs_per_entry) {
            const std::size_t n = std::min(p.slabs_per_entry, p.slab_count - first);
            iov.push_back({p.base + first * p.slab_size, n * p.slab_size});
        }
        const int r = io_uring_register_buffers(ring->native(), iov.data(), static_cast<unsigned>(iov.size()));
        if (r < 0) {
            std::string hint;
            if (r == -ENOMEM)  // exact sizes: a small limit in whole MiB reads "0 MiB"
                hint = "registering pins " + memory_size_text(bytes) + " but RLIMIT_MEMLOCK is " +
                       memory_size_text(memlock_limit()) + " (shared by every process of uid " +
                       std::to_string(::getuid()) +
                       "): raise it (`ulimit -l unlimited`, or memlock in "
                       "/etc/security/limits.conf) or grant CAP_IPC_LOCK, or ask for a smaller arena";
            else if (r == -EBUSY) hint = "this ring already has a fixed-buffer table: use one arena per ring";
            else if (r == -EOVERFLOW || r == -EINVAL)
                hint = "the kernel refused the layout: use slabs of at most 1 GiB";
            throw SetupError("BufferArena: registering " + memory_size_text(bytes) + " as fixed buffers failed", r,
                             hint);
        }
        p.registered = true;
        p.ring = ring->native();
        p.ring_alive = ring->lifetime();
        p.registered_with = ring->id();
    }

    p.free_slots = std::make_unique<std::uint32_t[]>(p.slab_count);
    for (std::size_t i = p.slab_count; i-- > 0;) p.free_slots[p.free_count++] = static_cast<std::uint32_t>(i);
}

BufferArena::~BufferArena() {
    if (!pool_->all_home()) {
        // A buffer is still out (a release to come, or the caller kept one). Its handle points at
        // the pool, so the pool stays until the last one is back; the kernel may still read it.
        pool_->orphaned = true;
        (void)pool_.release();
    }
}

Buffer BufferArena::hand_out(std::uint32_t slot) noexcept {
    Pool& p = *pool_;
    ++p.stats.taken;
    // Nearly every arena is one table entry (<= 1 GiB): no division for it on the hot path.
    int index = -1;
    if (p.registered) index = p.slab_count <= p.slabs_per_entry ? 0 : static_cast<int>(slot / p.slabs_per_entry);
    return Buffer(&p, slot, p.slab(slot), p.slab_size, index);
}

Buffer BufferArena::take() noexcept {
    Pool& p = *pool_;
    if (p.free_count == 0 || p.poison) [[unlikely]]
        return take_slow();
    return hand_out(p.free_slots[--p.free_count]);
}

// Exhausted (counted), or the debug canary is on (checked before the slab goes out).
Buffer BufferArena::take_slow() noexcept {
    Pool& p = *pool_;
    if (p.free_count == 0) {
        ++p.stats.exhausted;
        return {};
    }
    const std::uint32_t slot = p.free_slots[--p.free_count];
    p.check_poison(slot);
    return hand_out(slot);
}

std::size_t BufferArena::slab_size() const noexcept { return pool_->slab_size; }
std::size_t BufferArena::slab_count() const noexcept { return pool_->slab_count; }
std::size_t BufferArena::available() const noexcept { return pool_->free_count; }
bool BufferArena::registered() const noexcept { return pool_->registered; }
PageKind BufferArena::page_kind() const noexcept { return pool_->pages; }
const ArenaStats& BufferArena::stats() const noexcept { return pool_->stats; }

std::string BufferArena::describe() const {
    return std::to_string(slab_count()) + " x " + std::to_string(slab_size()) + " B (" + mib(pool_->mapped) + ", " +
           to_string(page_kind()) + ", " + (registered() ? "registered" : "not registered") + ")";
}

}  // namespace zcio
