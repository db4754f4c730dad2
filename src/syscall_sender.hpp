// The syscall strategies behind the engine's interface: `plain` (send(2), the baseline everyone
// has) and `msg_zerocopy` (send(2) with MSG_ZEROCOPY; the kernel's notices arrive on the socket's
// error queue, which a POLLERR request on the ring tells the loop to read).
//
// A syscall send is over when send() returns (plain: its release is queued for the loop) or when
// the error queue says the kernel is done with its pages (msg_zerocopy).
//
//   SyscallSender syscalls(core, ring);
//   if (syscalls.send(sock, op) == SyscallSender::done) ready.push_back(&op);
#pragma once

#include "send_op.hpp"
#include "send_socket.hpp"
#include "zcio/ring.hpp"

namespace zcio::detail {

class SendCore;

class SyscallSender {
public:
    SyscallSender(SendCore& core, Ring& ring) noexcept : core_(core), ring_(ring) {}

    enum Outcome { done, notice_pending };
    // Sends the op's buffer whole (stream: continuing short sends; datagram: one call); on a
    // MSG_ZEROCOPY ENOBUFS (optmem used up by unacknowledged sends) copies the rest instead.
    Outcome send(SendSocket& s, Op& op);
    // Reads every notice on the socket's error queue and releases the ops they cover.
    void drain_errqueue(SendSocket& s);
    // Asks the ring to say when the socket's error queue has notices (once per drain).
    void arm_poll(SendSocket& s);
    static void on_poll(Completion* c, const io_uring_cqe& cqe);

private:
    // ::send() until the whole buffer is in (stream) or one datagram went; 0 or -errno.
    template <typename OnCall>
    int send_rest(SendSocket& s, Op& op, int flags, OnCall on_call);

    SendCore& core_;
    Ring& ring_;
};

}  // namespace zcio::detail
