#include "zcio/relay.hpp"

#include "multishot_recv.hpp"
#include "zcio/error.hpp"
#include "zcio/probe.hpp"

namespace zcio {

Relay::Relay(SendEngine& engine, BufferArena& arena, int from_fd, int to_fd, const RelayOptions& options)
    : engine_(engine),
      opt_(options),
      rx_(engine.ring(), arena, {.group_id = options.buffer_group, .buffer_count = options.buffers}),
      recv_(std::make_unique<detail::MultishotRecv>(engine.ring(), rx_, from_fd)),
      to_(engine.add_socket(to_fd, {.strategy = probe().send_zc_fixed ? Strategy::zc_fixed : Strategy::automatic})) {}

Relay::~Relay() {
    recv_->cancel();
    for (int i = 0; i < 100 && recv_->armed(); ++i) engine_.run(true, std::chrono::milliseconds(10));
    rep_ = nullptr;
    engine_.remove_socket(to_);
    for (Buffer& b : recv_->received()) rx_.recycle(std::move(b));
}

void Relay::forward(Buffer&& b, RelayReport& rep) {
    if (!b) return;
    rep.bytes_received += b.size();
    if (rep.error) {
        rx_.recycle(std::move(b));  // after an error nothing more goes out
        return;
    }
    ++inflight_;
    ++rep.buffers;
    engine_.send(to_, std::move(b), Storage{[this](Release r) {
                     --inflight_;
                     if (rep_) {
                         rep_->bytes_sent += r.bytes;
                         if (r.usage == Usage::zero_copy) ++rep_->zero_copy;
                         else if (r.usage == Usage::copied) ++rep_->copied;
                         if (r.error && !rep_->error) {
                             rep_->error = r.error;
                             rep_->message = "sending on: " + errno_string(r.error);
                         }
                     }
                     rx_.recycle(std::move(r.buffer));  // back in the receive ring, exactly once
                 }});
}

RelayReport Relay::run() {
    RelayReport rep;
    rep_ = &rep;
    const auto t0 = std::chrono::steady_clock::now();
    auto progress = t0;
    std::uint64_t moved = 0;
    detail::MultishotRecv& recv = *recv_;
    for (;;) {
        const bool stopping = recv.over() || rep.error != 0;
        if (!stopping && rx_.held() < rx_.buffer_count()) recv.arm();
        for (Buffer& b : recv.received()) forward(std::move(b), rep);
        recv.received().clear();
        if (recv.error() && !rep.error) {
            rep.error = recv.error();
            rep.message = "receiving: " + errno_string(recv.error());
        }
        if ((recv.over() || rep.error) && inflight_ == 0 && !recv.armed()) break;
        if ((recv.over() || rep.error) && recv.armed()) recv.cancel();
        if (rep.bytes_received + rep.bytes_sent != moved) {
            moved = rep.bytes_received + rep.bytes_sent;
            progress = std::chrono::steady_clock::now();
        } else if (!rep.error && std::chrono::steady_clock::now() - progress > opt_.stall_timeout) {
            rep.error = -ETIMEDOUT;
            rep.message = "nothing moved for the stall timeout";
            break;  // buffers stuck in the kernel come back when ~Relay removes the socket
        }
        engine_.run(true, std::chrono::milliseconds(100));
    }
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rep_ = nullptr;
    return rep;
}

}  // namespace zcio
