// Ring: one io_uring instance, set up with the best flags the kernel allows, and its event loop.
//
// Every SQE zcio submits carries a pointer to a Completion (an intrusive record embedded in the
// operation that owns the request); run() dispatches each CQE through that record's function
// pointer: no allocation, no virtual call, no lookup table. One Ring per thread; nothing is global.
//
//   zcio::Ring ring;                                  // SINGLE_ISSUER|DEFER_TASKRUN where allowed
//   struct Nop : zcio::Completion { int res = 1; } op;
//   op.fn = [](zcio::Completion* c, const io_uring_cqe& cqe) { static_cast<Nop*>(c)->res = cqe.res; };
//   io_uring_prep_nop(ring.sqe()); io_uring_sqe_set_data(..., &op);
//   ring.run(1);                                      // submits, waits for one CQE, dispatches it
#pragma once

#include <liburing.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace zcio {

// The intrusive completion record. A CQE whose user_data is 0 is ignored (cancel requests, etc.).
// An fn that throws: run() moves the CQ head past that CQE and lets the exception out; the CQEs
// behind it are dispatched by the next run(). (SendEngine's own handlers never throw through
// here: the engine holds their exceptions until its bookkeeping is done; see send_completion.hpp.)
struct Completion {
    using Fn = void (*)(Completion* self, const io_uring_cqe& cqe);
    Fn fn = nullptr;
};

struct RingOptions {
    unsigned sq_entries = 256;
    // 0: 8 × sq_entries. A zero-copy send posts two CQEs (result + notification) and notifications
    // can lag by a whole socket buffer, so the CQ needs far more room than the SQ.
    unsigned cq_entries = 0;
    bool single_issuer = true;     // SINGLE_ISSUER|DEFER_TASKRUN, else COOP_TASKRUN, else plain
    bool cqe32 = false;            // 32-byte CQEs (zcrx needs them)
    bool register_ring_fd = true;  // saves an fget/fput per io_uring_enter
    // Slots in the ring's table of registered files (made on first register_file(); at most
    // RLIMIT_NOFILE). A request on a registered file skips the kernel's fget/fput per request.
    unsigned file_slots = 1024;
};

class Ring {
public:
    explicit Ring(const RingOptions& options = {});
    ~Ring();
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    io_uring* native() noexcept { return &ring_; }
    // Unique in the process for its lifetime, never reused (buffers name their ring by it).
    std::uint64_t id() const noexcept { return id_; }
    unsigned setup_flags() const noexcept { return ring_.flags; }
    unsigned features() const noexcept { return features_; }
    unsigned sq_entries() const noexcept { return ring_.sq.ring_entries; }
    unsigned cq_entries() const noexcept { return ring_.cq.ring_entries; }
    bool ring_fd_registered() const noexcept { return ring_fd_registered_; }
    bool defer_taskrun() const noexcept;
    // True while run() is calling completion handlers (which must not wait on this ring).
    bool dispatching() const noexcept { return in_dispatch_; }
    // "SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL, sq 256, cq 2048, registered fd" and why a fallback.
    std::string describe() const;

    // A free SQE; submits what is queued when the SQ is full, so it never returns null.
    io_uring_sqe* sqe() {
        io_uring_sqe* s = io_uring_get_sqe(&ring_);
        return s ? s : sqe_after_submit();
    }
    // Makes room for `n` SQEs that must reach the kernel in one submission (a link chain split
    // across two submissions is two independent chains). Submits what is queued if needed.
    // Returns how many fit now: n, or fewer if n exceeds the SQ.
    unsigned reserve(unsigned n);
    // Submits queued SQEs. Returns how many, or -errno.
    int submit();
    // Submits, then dispatches every ready CQE; waits for at least `wait_nr` first (0: no wait),
    // at most `timeout` (zero: no limit). Returns CQEs dispatched, or -ETIME on timeout, or -errno.
    int run(unsigned wait_nr = 0, std::chrono::nanoseconds timeout = std::chrono::nanoseconds::zero());

    // Puts `fd` in the ring's file table: the slot (use it as the SQE's fd, with IOSQE_FIXED_FILE),
    // or -errno (no table on this kernel, or every slot taken: use the plain fd). The table holds
    // its own reference to the file until unregister_file(slot) or the ring's end. Throws only
    // std::bad_alloc (the slot stack, on first use).
    int register_file(int fd);
    void unregister_file(int slot) noexcept;

    // Times the CQ overflowed into the kernel's backlog (no CQE was lost: the kernel keeps them).
    std::uint64_t cq_overflows() const noexcept { return cq_overflows_; }
    // Requests in flight that still own memory when their owner must go (see SendEngine's
    // destructor) are parked here; the ring outlives every CQE that could point into them.
    void keep_until_exit(std::shared_ptr<void> storage) { parked_.push_back(std::move(storage)); }
    // Expires when the ring is destroyed: registrations that may outlive it (an arena's buffer
    // table) check it before touching the ring again.
    std::weak_ptr<const void> lifetime() const noexcept { return alive_; }

private:
    int dispatch_ready();
    io_uring_sqe* sqe_after_submit();
    int wait_once(unsigned wait_nr, std::chrono::nanoseconds timeout);

    io_uring ring_{};
    unsigned features_ = 0;
    bool ring_fd_registered_ = false;
    bool in_dispatch_ = false;
    std::string fallback_reason_;
    std::uint64_t cq_overflows_ = 0;
    unsigned file_slots_ = 0;           // table size asked for (0: none wanted)
    int file_table_ = 0;                // 0: not made yet, 1: made, -errno: the kernel refused
    std::vector<int> free_file_slots_;  // a stack, lowest slot on top
    std::vector<std::shared_ptr<void>> parked_;
    std::shared_ptr<const void> alive_ = std::make_shared<int>(0);
    std::uint64_t id_;
};

}  // namespace zcio
