#include "zcio/ring.hpp"

#include "uring_compat.hpp"
#include "zcio/error.hpp"

#include <sys/resource.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

namespace zcio {
namespace {

struct FlagName {
    unsigned flag;
    const char* name;
};

constexpr FlagName setup_flag_names[] = {
    {IORING_SETUP_SQPOLL, "SQPOLL"},
    {IORING_SETUP_CQSIZE, "CQSIZE"},
    {IORING_SETUP_SUBMIT_ALL, "SUBMIT_ALL"},
    {IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"},
    {IORING_SETUP_TASKRUN_FLAG, "TASKRUN_FLAG"},
    {IORING_SETUP_CQE32, "CQE32"},
    {IORING_SETUP_SINGLE_ISSUER, "SINGLE_ISSUER"},
    {IORING_SETUP_DEFER_TASKRUN, "DEFER_TASKRUN"},
};

}  // namespace

namespace {
std::atomic<std::uint64_t> next_ring_id{1};
}

Ring::Ring(const RingOptions& options)
    : file_slots_(options.file_slots), id_(next_ring_id.fetch_add(1, std::memory_order_relaxed)) {
    const unsigned cq = options.cq_entries ? options.cq_entries : options.sq_entries * 8;
    if (options.sq_entries == 0 || cq < options.sq_entries)
        throw SetupError(
            "bad RingOptions: sq_entries " + std::to_string(options.sq_entries) + ", cq_entries " + std::to_string(cq),
            0, "sq_entries must be > 0 and cq_entries >= sq_entries (0 picks 8 x sq)");
    const unsigned base = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | (options.cqe32 ? IORING_SETUP_CQE32 : 0U);
    // Best first. DEFER_TASKRUN runs completion work only when we ask for events, in our thread:
    // fewer interrupts of the hot loop. It requires SINGLE_ISSUER (we are: one ring per thread).
    const unsigned attempts[] = {
        options.single_issuer ? base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN : base,
        base | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        base,
    };
    int err = 0;
    for (unsigned flags : attempts) {
        io_uring_params p{};
        p.flags = flags;
        p.cq_entries = cq;
        err = io_uring_queue_init_params(options.sq_entries, &ring_, &p);
        if (err == 0) {
            features_ = p.features;
            break;
        }
        if (!fallback_reason_.empty()) fallback_reason_ += "; ";
        fallback_reason_ += "flags 0x" +
                            [&] {
                                char b[16];
                                std::snprintf(b, sizeof b, "%x", flags);
                                return std::string(b);
                            }() +
                            " refused with " + errno_string(err);
        if (err != -EINVAL) break;  // only EINVAL means "flag unknown"; anything else is real
    }
    if (err != 0) {
        throw SetupError("io_uring_queue_init_params failed", err,
                         err == -ENOMEM  ? "lower sq_entries/cq_entries or raise `ulimit -l`"
                         : err == -EPERM ? "io_uring may be disabled: check /proc/sys/kernel/io_uring_disabled"
                                         : "check that the kernel has io_uring (5.19+ for zero-copy send)");
    }
    if (options.register_ring_fd) ring_fd_registered_ = io_uring_register_ring_fd(&ring_) == 1;
}

int Ring::register_file(int fd) {
    if (file_table_ == 0) {
        // One sparse table, sized once: growing it would mean unregistering files in use. The
        // slot stack is allocated first, so a failed allocation leaves no half-made table.
        rlimit lim{};
        unsigned n = file_slots_;
        if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < n) n = static_cast<unsigned>(lim.rlim_cur);
        free_file_slots_.reserve(n);
        const int r = n ? io_uring_register_files_sparse(&ring_, n) : -ENOTSUP;
        file_table_ = r < 0 ? r : 1;
        if (r >= 0)
            for (unsigned i = n; i-- > 0;) free_file_slots_.push_back(static_cast<int>(i));
    }
    if (file_table_ < 0) return file_table_;
    if (free_file_slots_.empty()) return -ENFILE;
    const int slot = free_file_slots_.back();
    const int r = io_uring_register_files_update(&ring_, static_cast<unsigned>(slot), &fd, 1);
    if (r < 0) return r;
    if (r != 1) return -EIO;
    free_file_slots_.pop_back();
    return slot;
}

void Ring::unregister_file(int slot) noexcept {
    if (slot < 0 || file_table_ != 1) return;
    // Requests still using the file keep it (the kernel defers the put until they are done).
    int none = -1;
    io_uring_register_files_update(&ring_, static_cast<unsigned>(slot), &none, 1);
    free_file_slots_.push_back(slot);
}

Ring::~Ring() {
    alive_.reset();  // before anything else: arenas must stop using this ring from here on
    // io_uring_queue_exit waits for the kernel to drop every request; parked storage goes after it.
    io_uring_queue_exit(&ring_);
    parked_.clear();
}

bool Ring::defer_taskrun() const noexcept { return (ring_.flags & IORING_SETUP_DEFER_TASKRUN) != 0; }

std::string Ring::describe() const {
    std::string s;
    for (const auto& f : setup_flag_names) {
        if ((ring_.flags & f.flag) == 0 || f.flag == IORING_SETUP_CQSIZE) continue;
        if (!s.empty()) s += '|';
        s += f.name;
    }
    if (s.empty()) s = "no setup flags";
    s += ", sq " + std::to_string(sq_entries()) + ", cq " + std::to_string(cq_entries());
    s += ring_fd_registered_ ? ", registered ring fd" : ", ring fd not registered";
    if (!fallback_reason_.empty()) s += " (fell back: " + fallback_reason_ + ")";
    return s;
}

io_uring_sqe* Ring::sqe_after_submit() {
    io_uring_sqe* s = nullptr;
    while (s == nullptr) {
        // SQ full: hand what we have to the kernel. EBUSY means the CQ backlog must drain first.
        if (submit() == -EBUSY) dispatch_ready();
        s = io_uring_get_sqe(&ring_);
    }
    return s;
}

unsigned Ring::reserve(unsigned n) {
    if (n > sq_entries()) n = sq_entries();
    while (io_uring_sq_space_left(&ring_) < n) {
        if (submit() == -EBUSY) dispatch_ready();
    }
    return n;
}

int Ring::submit() {
    int r = io_uring_submit(&ring_);
    return r;
}

int Ring::run(unsigned wait_nr, std::chrono::nanoseconds timeout) {
    using Clock = std::chrono::steady_clock;
    const bool timed = wait_nr > 0 && timeout.count() > 0;
    // The timeout bounds the whole call: a wait that ends short of wait_nr (the kernel returns 0 at
    // the timeout once some CQEs are there) is not started again with the full timeout.
    const Clock::time_point deadline = timed ? Clock::now() + timeout : Clock::time_point{};
    int total = 0;
    for (;;) {
        const unsigned want = wait_nr > static_cast<unsigned>(total) ? wait_nr - static_cast<unsigned>(total) : 0;
        int r;
        if (want == 0) {
            // Submit and, with DEFER_TASKRUN, run the deferred work that posts CQEs.
            r = io_uring_submit_and_get_events(&ring_);
        } else if (timed) {
            const auto left = deadline - Clock::now();
            if (left.count() <= 0) return total > 0 ? total : -ETIME;
            r = wait_once(want, left);
        } else {
            r = io_uring_submit_and_wait(&ring_, want);
        }
        if (r < 0 && r != -EINTR && r != -EBUSY && r != -ETIME && r != -EAGAIN) return r;
        const int n = dispatch_ready();
        total += n;
        if (r == -ETIME && total == 0) return -ETIME;
        if (io_uring_cq_has_overflow(&ring_)) continue;  // backlog left: go back for it
        if (r == -EINTR || r == -EBUSY) continue;
        if (static_cast<unsigned>(total) >= wait_nr) return total;
        if (r == -ETIME) return total;
    }
}

// One io_uring_enter that waits at most `timeout` for `wait_nr` CQEs. liburing 2.3's
// io_uring_submit_and_wait_timeout cannot be used for wait_nr > 1: when the timeout ends a wait
// with fewer CQEs than asked, the kernel returns 0 (not -ETIME, since some are there) and liburing
// enters again with the whole timeout, so the wait lasts up to twice as long (found with strace:
// two 400 ms enters for one 400 ms poll).
int Ring::wait_once(unsigned wait_nr, std::chrono::nanoseconds timeout) {
    __kernel_timespec ts{};
    ts.tv_sec = static_cast<long long>(timeout.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long long>(timeout.count() % 1'000'000'000);
    if ((features_ & IORING_FEAT_EXT_ARG) == 0) {  // before 5.11: liburing's timeout SQE path
        io_uring_cqe* cqe = nullptr;
        return io_uring_submit_and_wait_timeout(&ring_, &cqe, wait_nr, &ts, nullptr);
    }
    if (io_uring_sq_ready(&ring_) > 0) {
        const int s = io_uring_submit(&ring_);
        if (s < 0) return s;
    }
    io_uring_getevents_arg arg{};
    arg.ts = reinterpret_cast<std::uintptr_t>(&ts);
    unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
    int fd = ring_.ring_fd;
    if (ring_fd_registered_) {
        flags |= IORING_ENTER_REGISTERED_RING;
        fd = ring_.enter_ring_fd;
    }
    return io_uring_enter2(static_cast<unsigned>(fd), 0, wait_nr, flags, reinterpret_cast<sigset_t*>(&arg), sizeof arg);
}

int Ring::dispatch_ready() {
    // A handler may submit new work (it gets SQEs from us) but must not re-enter run(): the CQEs it
    // would reap are the ones we are walking.
    if (in_dispatch_) return 0;
    in_dispatch_ = true;
    int n = 0;
    bool overflowed = false;
    for (int empty_flushes = 0;;) {
        // Walk every ready CQE in place and advance the head once per batch: one shared-memory
        // store instead of one per CQE, and no copy. The kernel never reuses a slot before we
        // advance past it, so handlers may read the CQE (and queue SQEs) while we hold it.
        // The tail is read once per batch (liburing 2.3's for_each re-reads it, and the CQE size,
        // per CQE); CQEs a handler's submission adds are picked up by the next batch.
        const unsigned head = *ring_.cq.khead;
        const unsigned tail = io_uring_smp_load_acquire(ring_.cq.ktail);
        const unsigned mask = ring_.cq.ring_mask;
        const unsigned shift = (ring_.flags & IORING_SETUP_CQE32) ? 1 : 0;
        for (unsigned h = head; h != tail; ++h) {
            const io_uring_cqe& cqe = ring_.cq.cqes[(h & mask) << shift];
            auto* target = reinterpret_cast<Completion*>(static_cast<std::uintptr_t>(cqe.user_data));
            if (!target) continue;
            try {
                target->fn(target, cqe);
            } catch (...) {
                // Its CQE was handled (as far as its owner got): move past it, so the next run()
                // neither hands it out twice nor skips the ones behind it, then let it out.
                io_uring_cq_advance(&ring_, h - head + 1);
                in_dispatch_ = false;
                if (overflowed) ++cq_overflows_;
                throw;
            }
        }
        const unsigned batch = tail - head;
        if (batch > 0) {
            io_uring_cq_advance(&ring_, batch);
            n += static_cast<int>(batch);
            continue;
        }
        // The kernel parks CQEs that do not fit in its overflow list (IORING_FEAT_NODROP) and sets
        // this flag; entering with GETEVENTS flushes the backlog into the room we just made.
        // Nothing is lost, but an overflow means the CQ is too small for the load: count it.
        if (!io_uring_cq_has_overflow(&ring_) || ++empty_flushes > 2) break;
        overflowed = true;
        io_uring_get_events(&ring_);
    }
    if (overflowed) ++cq_overflows_;
    in_dispatch_ = false;
    return n;
}

}  // namespace zcio
