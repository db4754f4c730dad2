// MultishotRecv: one armed multishot receive on a socket, drawing buffers from an ArenaRecvRing;
// what it receives waits in arrival order until the owner takes it, after the ring's walk (the
// owner may then write or send it: nothing runs inside the CQE handler but bookkeeping).
// Shared by FileReceiver (recv-write-fixed) and Relay.
#pragma once

#include "uring_compat.hpp"
#include "zcio/arena_recv_ring.hpp"
#include "zcio/ring.hpp"

#include <cerrno>
#include <cstddef>
#include <vector>

namespace zcio::detail {

class MultishotRecv : public Completion {
public:
    MultishotRecv(Ring& ring, ArenaRecvRing& buffers, int fd) : ring_(ring), buffers_(buffers), fd_(fd) {
        fn = &MultishotRecv::on_cqe;
        received_.reserve(buffers.buffer_count() + 1);  // never more out than the ring holds
    }
    MultishotRecv(const MultishotRecv&) = delete;
    MultishotRecv& operator=(const MultishotRecv&) = delete;

    // Arms the receive unless it is armed or over. A ring that ran dry (ENOBUFS) re-arms here.
    void arm() {
        if (armed_ || over()) return;
        io_uring_sqe* sqe = ring_.sqe();
        io_uring_prep_recv(sqe, fd_, nullptr, 0, 0);
        sqe->ioprio |= IORING_RECV_MULTISHOT;
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = buffers_.group_id();
        io_uring_sqe_set_data(sqe, this);
        armed_ = true;
        ++arms_;
    }
    // Cancels an armed receive (its last CQE still comes: wait until armed() is false).
    void cancel() {
        if (!armed_) return;
        io_uring_sqe* sqe = ring_.sqe();
        io_uring_prep_cancel(sqe, this, 0);
        io_uring_sqe_set_data(sqe, nullptr);
    }

    bool armed() const noexcept { return armed_; }
    bool eof() const noexcept { return eof_; }
    int error() const noexcept { return error_; }
    bool over() const noexcept { return eof_ || error_ != 0; }
    std::uint64_t completions() const noexcept { return completions_; }
    std::uint64_t arms() const noexcept { return arms_; }
    std::uint64_t starved() const noexcept { return starved_; }
    // What arrived since the last call, in order; the caller moves the buffers out.
    std::vector<Buffer>& received() noexcept { return received_; }

private:
    static void on_cqe(Completion* c, const io_uring_cqe& cqe) {
        auto& r = *static_cast<MultishotRecv*>(c);
        ++r.completions_;
        if ((cqe.flags & IORING_CQE_F_MORE) == 0) r.armed_ = false;
        if (cqe.res > 0) r.received_.push_back(r.buffers_.take(cqe));
        else if (cqe.res == 0) r.eof_ = true;
        else if (cqe.res == -ENOBUFS) ++r.starved_;  // every buffer is out: arm() again when some return
        else if (cqe.res != -ECANCELED) r.error_ = cqe.res;
    }

    Ring& ring_;
    ArenaRecvRing& buffers_;
    int fd_;
    bool armed_ = false, eof_ = false;
    int error_ = 0;
    std::uint64_t completions_ = 0, arms_ = 0, starved_ = 0;
    std::vector<Buffer> received_;
};

}  // namespace zcio::detail
