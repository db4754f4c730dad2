#include "syscall_sender.hpp"

#include "send_core.hpp"

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

namespace zcio::detail {

SyscallSender::Outcome SyscallSender::send(SendSocket& s, Op& op) {
    ++s.counters.requests;
    ++s.counters.by_strategy[index_of(op.used)];
    if (op.used == Strategy::msg_zerocopy) {
        // Each successful call takes the next id of the socket's zero-copy notification counter.
        op.zc_id_first = s.errq.next_id;
        op.error = send_rest(s, op, MSG_ZEROCOPY, [&s] { ++s.errq.next_id; });
        op.zc_id_end = s.errq.next_id;
        if (op.error == -ENOBUFS) {
            // optmem_max is used up by unacknowledged zero-copy sends: copy the rest instead.
            ++s.counters.fallbacks;
            op.used = Strategy::plain;
            op.error = send_rest(s, op, 0, [] {});
        }
    } else {
        op.error = send_rest(s, op, 0, [] {});
    }
    op.f.request_done = true;
    if (op.used == Strategy::plain) op.f.copied = true;
    s.counters.bytes += op.done;
    if (op.error && s.stream && !s.failed) s.failed = op.error;
    if (op.zc_id_end == op.zc_id_first) return done;
    // The notice comes on the socket's error queue; a poll on it (one SQE per drain, not a
    // recvmsg per send) tells the loop when to read it. The kernel merges ranges meanwhile.
    s.errq.waiting.push_back(&op);
    arm_poll(s);
    return notice_pending;
}

template <typename OnCall>
int SyscallSender::send_rest(SendSocket& s, Op& op, int flags, OnCall on_call) {
    while (op.done < op.buffer.size()) {
        ssize_t n;
        if (op.f.addressed) {  // a datagram with its own destination or GSO size: sendmsg(2)
            op.build_msghdr();
            n = ::sendmsg(s.fd, &op.msg, flags | MSG_NOSIGNAL);
        } else {
            n = ::send(s.fd, op.buffer.data() + op.done, op.buffer.size() - op.done, flags | MSG_NOSIGNAL);
        }
        if (n >= 0) {
            op.done += static_cast<std::size_t>(n);
            on_call();
            if (!s.stream) break;  // a datagram goes whole or not at all
            if (op.done < op.buffer.size()) ++s.counters.short_sends;
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {  // a non-blocking socket: wait for room, as a blocking one would
            pollfd p{s.fd, POLLOUT, 0};
            ::poll(&p, 1, 1000);
            continue;
        }
        return -errno;
    }
    return 0;
}

void SyscallSender::drain_errqueue(SendSocket& s) {
    for (;;) {
        char control[128];
        msghdr msg{};
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        if (::recvmsg(s.fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;  // EAGAIN: none yet
        for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                  (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
                continue;
            sock_extended_err ee;
            std::memcpy(&ee, CMSG_DATA(cm), sizeof ee);
            if (ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY) continue;
            // Ids [ee_info, ee_data] are done (32-bit, wrapping): release every op they cover.
            ++s.counters.notifications;
            const bool copied = (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) != 0;
            const std::uint32_t hi = ee.ee_data;
            while (!s.errq.waiting.empty()) {
                Op* op = s.errq.waiting.head;
                const auto last = static_cast<std::uint32_t>(op->zc_id_end - 1);
                if (static_cast<std::int32_t>(last - hi) > 0) break;  // not covered yet
                s.errq.waiting.pop_front();
                op->f.reported = true;
                (copied ? op->f.copied : op->f.zero_copy) = true;
                core_.release(*op);
            }
        }
    }
}

void SyscallSender::arm_poll(SendSocket& s) {
    if (s.errq.poll.armed) return;
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_poll_add(sqe, s.fd, POLLERR);
    io_uring_sqe_set_data(sqe, &s.errq.poll);
    s.errq.poll.armed = true;
}

void SyscallSender::on_poll(Completion* c, const io_uring_cqe&) {
    auto& p = *static_cast<ErrQueueState::Poll*>(c);
    SendSocket& s = *p.sock;
    SyscallSender& self = s.core->syscalls();
    p.armed = false;
    self.drain_errqueue(s);
    if (!s.errq.waiting.empty()) self.arm_poll(s);
}

}  // namespace zcio::detail
