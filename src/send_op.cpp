#include "send_op.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>

#include <cstring>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace zcio::detail {

void Op::build_msghdr() noexcept {
    std::size_t skip = done, n = 0;
    auto add = [&](Buffer& b) {
        if (skip >= b.size()) {
            skip -= b.size();
            return;
        }
        iov[n++] = {b.data() + skip, b.size() - skip};
        skip = 0;
    };
    add(buffer);
    for (Buffer& b : more) add(b);
    msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    if (!f.addressed) return;
    if (to_len) {
        msg.msg_name = &to;
        msg.msg_namelen = to_len;
    }
    if (gso_size) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof gso_size);
        std::memcpy(CMSG_DATA(cm), &gso_size, sizeof gso_size);
    }
}

void OpQueue::insert_by_seq(Op* op) noexcept {
    if (!head || op->seq < head->seq) {
        op->next = head;
        head = op;
        if (!tail) tail = op;
        ++size;
        return;
    }
    Op* at = head;
    while (at->next && at->next->seq < op->seq) at = at->next;
    op->next = at->next;
    at->next = op;
    if (tail == at) tail = op;
    ++size;
}

OpPool::OpPool(std::uint32_t count, Completion::Fn on_cqe, SendCore* core)
    // From make_unique, not make_shared: libstdc++ 12's make_shared<T[]>(n) copies one
    // value-initialised element n times, and an Op owns move-only things.
    : ops_(std::make_unique<Op[]>(count)), count_(count) {
    for (std::uint32_t i = count; i-- > 0;) {
        Op& op = ops_[i];
        op.fn = on_cqe;
        op.core = core;
        op.next = free_;
        free_ = &op;
    }
}

}  // namespace zcio::detail
