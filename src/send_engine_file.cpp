// File reads linked ahead of a send: SendEngine::read_and_send() (zcio/file_read.hpp).
//
// The op's read goes out right before its send, IOSQE_IO_LINK between them (prep_read(), called
// from prep()), so READ_FIXED and SEND_ZC of the same registered buffer leave in one submission.
// The read has its own CQE (LinkedRead is a second Completion inside the Op). A read that comes
// back short fails the link: the kernel cancels the send (its notification still comes: the
// engine already waits for it), and the op is sent again with what was read, or ends at EOF.
// On a stream socket the pairs form the socket's chain (READ, SEND, READ, SEND...), so the byte
// stream stays in file order; a read counts in the chain's in-flight requests like a send.
#include "send_core.hpp"

#include "invariant.hpp"
#include "zcio/error.hpp"

#include <algorithm>
#include <cerrno>

namespace zcio {

using detail::LinkedRead;

void SendEngine::read_and_send(SocketId id, Buffer&& buffer, const FileRead& read, Storage h) {
    if (read.length > buffer.capacity() || read.length < buffer.size()) {
        // A programming error of the caller's, refused as a value like every send error.
        core_->socket(id);  // an unknown id throws first, as send() does
        if (h.on_complete)
            h.on_complete(Release{-EINVAL, 0, Usage::not_reported, Strategy::copy, std::move(buffer), {}});
        return;
    }
    core_->accept_read(id, std::move(buffer), read, std::move(h.on_complete));
    core_->rethrow();
}

namespace detail {

void SendCore::attach_read(Op& op, const FileRead& read) noexcept {
    LinkedRead& rd = op.read;
    rd.fn = &SendCore::on_read_cqe;
    rd.op = &op;
    rd.fd = read.fd;
    rd.fixed_file = read.fixed_file;
    rd.offset = read.offset;
    rd.length = read.length;
    rd.state = LinkedRead::State::pending;
    rd.send_cancelled = false;
    op.sock->sqes_per_op = 2;  // its chains need room for the reads too (pump())
}

// The read SQE, linked to the send SQE prep() writes next. Nothing to do once the read is done
// (a send continued after a short send, or re-sent after a short read).
void SendCore::prep_read(SendSocket& s, Op& op) {
    LinkedRead& rd = op.read;
    if (rd.state != LinkedRead::State::pending) return;
    // Both in one submission: split, the send would run on its own, before the read. (A stream
    // chain's room was reserved for two SQEs per op by pump(): then this submits nothing.)
    ring_.reserve(2);
    io_uring_sqe* sqe = ring_.sqe();
    if (op.buffer.registered_with(ring_.id()))
        io_uring_prep_read_fixed(sqe, rd.fd, op.buffer.data(), rd.length, rd.offset, op.buffer.buf_index());
    else io_uring_prep_read(sqe, rd.fd, op.buffer.data(), rd.length, rd.offset);
    sqe->flags |= IOSQE_IO_LINK;
    if (rd.fixed_file) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data(sqe, &rd);
    rd.state = LinkedRead::State::inflight;
    ++s.chain_inflight;
}

void SendCore::on_read_cqe(Completion* c, const io_uring_cqe& cqe) {
    auto* rd = static_cast<LinkedRead*>(c);
    Op& op = *rd->op;
    if (!op.sock || !op.has_read || rd->state != LinkedRead::State::inflight) [[unlikely]] {
        ZCIO_INVARIANT(false, op.core->counters_.stray_cqes, "a read CQE for an operation with no read in flight");
        return;
    }
    op.core->on_read(op, cqe);
}

void SendCore::on_read(Op& op, const io_uring_cqe& cqe) {
    SendSocket& s = *op.sock;
    LinkedRead& rd = op.read;
    ZCIO_INVARIANT(s.chain_inflight > 0, s.counters.inflight_underflows, "a read CQE with no request in flight");
    if (s.chain_inflight > 0) --s.chain_inflight;
    const int res = cqe.res;
    if (res == -ECANCELED && !op.error) {
        rd.state = LinkedRead::State::pending;  // the chain broke ahead of it: read again, with the send
    } else if (res < 0) {
        rd.state = LinkedRead::State::done;
        if (!op.error) op.error = res;  // the send is cancelled; this is what the release says
    } else {
        rd.state = LinkedRead::State::done;
        if (static_cast<std::uint32_t>(res) < rd.length) {
            // Short: EOF, or the file shrank. Only what was read may go out.
            const std::size_t read = static_cast<std::size_t>(res);
            if (read < op.total) {
                if (op.f.counted) {
                    const std::size_t less = op.total - read;
                    s.inflight -= std::min(s.inflight, less);
                    inflight_ -= std::min(inflight_, less);
                }
                op.total = read;
                op.buffer.resize(read);
            }
        }
    }
    if (rd.send_cancelled) {  // the send's -ECANCELED came first and waited for this
        rd.send_cancelled = false;
        if (op.error) {
            op.f.request_done = true;
            if (s.stream && !s.failed) s.failed = op.error;
        } else {
            send_cancelled_after_read(op);
        }
    }
    if (op.f.request_done) {
        fire_sent(op);
        maybe_release(op);  // the send may have ended first (a failed stream) and waited for this
    }
    if (s.chain_inflight == 0 && s.can_pump()) pump(s);
}

// The send was cancelled because the link broke: at its own read (short: send what was read, or
// nothing at EOF) or ahead of it (read and send again). A read still in flight decides later.
void SendCore::send_cancelled_after_read(Op& op) noexcept {
    if (op.read.state == LinkedRead::State::inflight) {
        op.read.send_cancelled = true;
        return;
    }
    if (op.done < op.total) op.sock->queue.insert_by_seq(&op);
    else op.f.request_done = true;  // EOF: nothing was read, so nothing is sent
}

}  // namespace detail
}  // namespace zcio
