// One send, from send() to its release: the operation object, its queue, and the pool they live
// in (allocated once, at engine start; no allocation per send).
//
// The Op is the Completion its SQEs point at, and owns everything the kernel may still touch
// (the buffers, the msghdr and iovecs of a SENDMSG_ZC) until its last CQE, so nothing it hands
// the kernel can die first.
//
//   OpPool pool(4096, &SendCore::on_cqe, &core);
//   Op* op = pool.take();            // null: every slot in use (send() then drives the loop)
//   ...                              // queued, prepared, completed
//   pool.put(op);                    // after its release
#pragma once

#include "zcio/buffer.hpp"
#include "zcio/ring.hpp"
#include "zcio/send_completion.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace zcio {
class NotifGroup;
}

namespace zcio::detail {

class SendCore;
struct SendSocket;

enum class Model : std::uint8_t { two_step, storage, group };

struct Op;

// A file read linked ahead of the op's send (src/send_engine_file.cpp): its own CQE, its own record.
struct LinkedRead : Completion {
    enum class State : std::uint8_t { pending, inflight, done };
    Op* op = nullptr;
    int fd = -1;
    bool fixed_file = false;
    bool send_cancelled = false;  // the send's -ECANCELED came before this read's CQE
    State state = State::pending;
    std::uint32_t length = 0;
    std::uint64_t offset = 0;
};

// What every send touches comes first (three cache lines); the gather and MSG_ZEROCOPY state last.
struct Op : Completion {
    SendCore* core = nullptr;
    Op* next = nullptr;          // free list, socket queue, or ready list: an op is on at most one
    SendSocket* sock = nullptr;  // null: the op is free (a CQE for it is stray)
    std::uint64_t seq = 0;       // order of send() calls on the socket
    Buffer buffer;
    std::size_t total = 0;  // bytes to send: buffer + more
    std::size_t done = 0;   // bytes accepted so far
    int error = 0;
    Strategy used = Strategy::copy;
    Model model = Model::storage;
    bool has_read = false;  // a LinkedRead goes ahead of the send (`read`, below)
    // Per-send state, reset with one store when the op is taken.
    struct Flags {
        bool request_inflight = false;
        bool request_done = false;  // no more requests will be issued for this op
        bool counted = false;       // its bytes are in the in-flight totals
        bool copied = false, zero_copy = false, reported = false;
        bool addressed = false;  // its own destination or GSO size (to, to_len, gso_size)
        std::uint16_t notifs_pending = 0;
    } f;
    NotifGroup* group = nullptr;
    ReleaseHandler on_release;
    SentHandler on_sent;
    BufferChain more;                              // a gathered send's other buffers
    std::uint64_t zc_id_first = 0, zc_id_end = 0;  // msg_zerocopy: the error-queue ids it used
    msghdr msg{};
    iovec iov[BufferChain::capacity]{};
    // A per-send destination and GSO size (f.addressed), kept here until the kernel is done.
    sockaddr_storage to{};
    socklen_t to_len = 0;        // 0: the socket's peer
    std::uint16_t gso_size = 0;  // 0: the socket's
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(std::uint16_t))]{};

    // The msghdr form of this send in `msg`: one iovec per buffer from `done` on, and, when the
    // send has them, its destination and a UDP_SEGMENT control message.
    void build_msghdr() noexcept;
    LinkedRead read;  // when has_read

    // Released once its request is over, every notification it will get has come, and no read
    // of it is in the kernel.
    bool settled() const noexcept {
        return f.request_done && f.notifs_pending == 0 && !f.request_inflight &&
               !(has_read && read.state == LinkedRead::State::inflight);
    }
};

// FIFO, intrusive through Op::next.
struct OpQueue {
    Op* head = nullptr;
    Op* tail = nullptr;
    std::size_t size = 0;
    bool empty() const noexcept { return head == nullptr; }
    void push_back(Op* op) noexcept {
        op->next = nullptr;
        if (tail) tail->next = op;
        else head = op;
        tail = op;
        ++size;
    }
    Op* pop_front() noexcept {
        Op* op = head;
        head = op->next;
        if (!head) tail = nullptr;
        op->next = nullptr;
        --size;
        return op;
    }
    // Puts an op back in send() order (it came back from a short send or a broken chain).
    void insert_by_seq(Op* op) noexcept;
};

class OpPool {
public:
    // Every op dispatches its CQEs to `on_cqe` with `core`. Throws std::bad_alloc.
    OpPool(std::uint32_t count, Completion::Fn on_cqe, SendCore* core);
    OpPool(const OpPool&) = delete;
    OpPool& operator=(const OpPool&) = delete;

    Op* take() noexcept {
        Op* op = free_;
        if (!op) return nullptr;
        free_ = op->next;
        ++in_use_;
        return op;
    }
    // After the op's release, which moved the buffers out and ran (so emptied) on_sent: what is
    // left to drop is the release handler. (on_sent is not touched: a storage send never loads
    // its cache line.)
    void put(Op* op) noexcept {
        op->on_release.reset();
        op->sock = nullptr;  // a CQE for a free slot is then recognised as stray
        op->next = free_;
        free_ = op;
        --in_use_;
    }
    std::uint32_t in_use() const noexcept { return in_use_; }
    std::uint32_t size() const noexcept { return count_; }
    Op& operator[](std::uint32_t i) noexcept { return ops_[i]; }
    // The ops' memory, for Ring::keep_until_exit when the kernel may still post CQEs naming them.
    std::shared_ptr<Op[]> memory() const noexcept { return ops_; }

private:
    std::shared_ptr<Op[]> ops_;
    Op* free_ = nullptr;
    std::uint32_t in_use_ = 0;
    std::uint32_t count_ = 0;
};

}  // namespace zcio::detail
