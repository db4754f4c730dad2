#include "zcio/receiver.hpp"

#include "epoll_receiver.hpp"
#include "uring_receiver.hpp"
#include "zcio/error.hpp"

namespace zcio {

namespace {
constexpr std::string_view strategy_names[] = {"plain", "multishot", "bundle", "zcrx", "auto"};
}

std::string_view to_string(RecvStrategy s) noexcept { return strategy_names[static_cast<unsigned>(s)]; }

std::optional<RecvStrategy> parse_recv_strategy(std::string_view name) noexcept {
    for (unsigned i = 0; i < std::size(strategy_names); ++i)
        if (name == strategy_names[i]) return static_cast<RecvStrategy>(i);
    return std::nullopt;
}

int Receiver::poll(std::chrono::nanoseconds timeout, std::vector<RecvEvent>& out) {
    RecvHandler saved = std::move(handler_);
    handler_ = [&out](RecvEvent&& ev) { out.push_back(std::move(ev)); };
    const int n = poll(timeout);
    handler_ = std::move(saved);
    return n;
}

void Receiver::deliver(RecvEvent&& ev) {
    if (ev.result > 0) {
        counters_.bytes += static_cast<std::uint64_t>(ev.result);
        ++counters_.buffers;
    } else if (ev.result == 0) {
        ++counters_.eofs;
    } else {
        ++counters_.errors;
    }
    ++delivered_;
    // Completions can be reaped outside poll() (a full SQ makes Ring::sqe() reap): keep them, in
    // order, for the next poll rather than lose them.
    if (handler_ && backlog_.empty()) handler_(std::move(ev));
    else backlog_.push_back(std::move(ev));
}

int Receiver::drain_backlog() {
    if (!handler_) return 0;
    int n = 0;
    for (auto& ev : backlog_) {
        handler_(std::move(ev));
        ++n;
    }
    backlog_.clear();
    return n;
}

void Receiver::note_fallback(std::string reason) {
    ++counters_.fallbacks;
    if (!fallback_reason_.empty()) fallback_reason_ += "; ";
    fallback_reason_ += reason;
}

std::unique_ptr<Receiver> make_receiver(const ReceiverOptions& options) {
    if (options.strategy == RecvStrategy::plain) return std::make_unique<EpollReceiver>(options);
    if (options.strategy != RecvStrategy::automatic) return std::make_unique<UringReceiver>(options);
    try {
        return std::make_unique<UringReceiver>(options);
    } catch (const SetupError& e) {
        // No io_uring or no buffer rings (pre-5.19): the epoll loop works everywhere.
        auto rx = std::make_unique<EpollReceiver>(options);
        rx->fell_back(std::string("io_uring receive unavailable: ") + e.what() + "; using plain epoll + recv");
        return rx;
    }
}

}  // namespace zcio
