// What a SendEngine holds, and the send path's steps. The public SendEngine forwards here.
//
// The path of one send, top to bottom (src/send_engine.cpp): accept() takes an op slot and the
// buffer and queues it on its socket; pump() turns queued ops into SQEs (one linked chain per
// stream socket at a time, so the byte stream stays in order); on_cqe() takes the request's
// result (continue a short send, re-issue a broken chain, record an error) and the notification
// (the usage report); release() hands the buffer back through the completion model, and the op
// goes back to the pool. The syscall strategies (src/syscall_sender.cpp) join at release().
//
// User handlers run through call(): one that throws leaves the engine consistent (the
// completion's bookkeeping goes on as if it had returned), and its exception is kept until the
// public call that dispatched it ends: after the ring's walk, with the CQ head moved past every
// CQE it handled (TigerBeetle's "callbacks after the walk", for exceptions).
#pragma once

#include "auto_policy.hpp"
#include "send_op.hpp"
#include "send_socket.hpp"
#include "strategy_support.hpp"
#include "syscall_sender.hpp"
#include "zcio/send_engine.hpp"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <vector>

namespace zcio::detail {

class SendCore {
public:
    SendCore(Ring& ring, const EngineOptions& options);
    ~SendCore() { shutdown(); }
    SendCore(const SendCore&) = delete;
    SendCore& operator=(const SendCore&) = delete;

    // ---- send(): accept ---------------------------------------------------------------------
    // Handlers by reference: moved once, into the op. `more`: the rest of a gathered send (null
    // for a single buffer). Inlined into each public send(): one call per send, and the model's
    // constants fold away.
    [[gnu::always_inline]] inline void accept(SocketId id, Buffer&& buffer, Model model, SentHandler&& on_sent,
                                              ReleaseHandler&& on_release, NotifGroup* group,
                                              const SendOptions& options, BufferChain* more = nullptr,
                                              const FileRead* read = nullptr);
    void accept_chain(SocketId id, BufferChain&& chain, Model model, SentHandler&& on_sent, ReleaseHandler&& on_release,
                      NotifGroup* group);
    void accept_read(SocketId id, Buffer&& buffer, const FileRead& read, ReleaseHandler&& on_release);
    void flush(NotifGroup& group);

    // ---- the loop ---------------------------------------------------------------------------
    int run(bool wait, std::chrono::nanoseconds timeout);
    int drain(std::chrono::nanoseconds timeout);
    bool idle() const noexcept { return ops_.in_use() == 0 && ready_.empty() && due_groups_.empty(); }

    // ---- sockets (src/send_engine_sockets.cpp) ------------------------------------------------
    SocketId add_socket(int fd, const SocketOptions& options);
    int remove_socket(SocketId id);
    int set_strategy(SocketId id, Strategy strategy);
    SendSocket& socket(SocketId id) const {  // throws SetupError for an unknown id
        if (id < sockets_.size() && sockets_[id]) [[likely]]
            return *sockets_[id];
        unknown_socket(id);
    }
    void shutdown() noexcept;  // the destructor's work

    // ---- file reads linked ahead of a send (src/send_engine_file.cpp) --------------------------
    void attach_read(Op& op, const FileRead& read) noexcept;
    void prep_read(SendSocket& s, Op& op);
    static void on_read_cqe(Completion* c, const io_uring_cqe& cqe);
    void on_read(Op& op, const io_uring_cqe& cqe);
    void send_cancelled_after_read(Op& op) noexcept;

    // ---- completion -------------------------------------------------------------------------
    static void on_cqe(Completion* c, const io_uring_cqe& cqe);
    void release(Op& op);
    SyscallSender& syscalls() noexcept { return syscalls_; }
    // At the end of each public call: throws what a handler threw meanwhile. Not while a handler
    // or the ring's walk is on the stack (a handler that calls send() is not the one to get it):
    // the outermost call throws it.
    void rethrow() {
        if (deferred_) [[unlikely]]
            throw_deferred();
    }

    // ---- for tests that craft completions (tests/test_send_invariants.cpp) --------------------
    // An op made to look like a zero-copy send of `bytes` whose request is in the kernel (none is).
    Op& test_inflight_op(SocketId id, std::size_t bytes);

    // ---- figures ----------------------------------------------------------------------------
    std::size_t inflight() const noexcept { return inflight_; }
    std::uint32_t ops_in_use() const noexcept { return ops_.in_use(); }
    Counters totals() const noexcept;
    std::string fallback_reason() const;
    Ring& ring() noexcept { return ring_; }

private:
    Strategy choose(SendSocket& s, const Buffer& b, const SendOptions& options) {
        const Strategy want = options.strategy && !is_syscall(*options.strategy) ? *options.strategy : s.strategy;
        if (want == Strategy::automatic) return auto_.choose(s.auto_state, b, ring_.id(), s.counters);
        // zc_fixed needs the buffer in this ring's table; plain memory goes as zc (and says so).
        if (want == Strategy::zc_fixed && !b.registered_with(ring_.id())) [[unlikely]] {
            ++s.counters.fallbacks;
            return Strategy::zc;
        }
        return want;
    }
    [[noreturn, gnu::cold]] static void unknown_socket(SocketId id);
    [[gnu::noinline]] Op* wait_for_op(SendSocket& s, int& refused);
    [[gnu::cold, gnu::noinline]] void refuse(SendSocket& s, int err, Buffer&& buffer, SentHandler& on_sent,
                                             ReleaseHandler& on_release, NotifGroup* group, BufferChain* more);

    // submission
    void pump(SendSocket& s);
    bool room_for(const SendSocket& s, const Op& op) const noexcept {
        // A single send larger than the bound must still go: the bound is on what waits behind it.
        if (op.f.counted) return true;
        const std::size_t n = op.total - op.done;
        return (s.inflight == 0 || s.inflight + n <= s.max_inflight) &&
               (inflight_ == 0 || inflight_ + n <= opt_.max_inflight_bytes);
    }
    // In-flight bytes, in one place: counted once when an op first goes out, uncounted at its
    // release (which is final: the op's flags are reset when it is taken again).
    void count_inflight(SendSocket& s, Op& op) noexcept {
        if (op.f.counted) return;
        op.f.counted = true;
        s.inflight += op.total;
        inflight_ += op.total;
    }
    void uncount_inflight(SendSocket& s, Op& op) noexcept {
        if (!op.f.counted) return;
        if (s.inflight < op.total || inflight_ < op.total) [[unlikely]]
            return inflight_underflow(s, op);
        s.inflight -= op.total;
        inflight_ -= op.total;
    }
    [[gnu::cold, gnu::noinline]] void inflight_underflow(SendSocket& s, Op& op) noexcept;
    [[gnu::always_inline]] inline void prep(SendSocket& s, Op& op, bool link);  // one SQE: the hot path
    bool needs_msghdr(const Op& op) const noexcept;
    void prep_msghdr(SendSocket& s, Op& op, io_uring_sqe* sqe, int flags);
    [[gnu::cold, gnu::noinline]] static int address(const SendSocket& s, Op& op, const SendOptions& options) noexcept;
    void cancel_all(const SendSocket& s);

    // completion
    [[gnu::noinline]] void on_request(Op& op, const io_uring_cqe& cqe);  // keeps on_cqe small
    void on_notification(Op& op, const io_uring_cqe& cqe);
    void maybe_release(Op& op) {
        if (op.settled()) release(op);
    }
    void fire_sent(Op& op) {
        if (op.model == Model::two_step && op.on_sent) [[unlikely]]
            fire_sent_now(op);
    }
    [[gnu::noinline]] void fire_sent_now(Op& op);
    void fire_group(NotifGroup& g);
    void fail_socket(SendSocket& s, int err);
    void pump_held_back(const SendSocket& released);
    int dispatch_ready();

    // user handlers
    template <typename F>
    void call(F&& f) noexcept {
        ++handler_depth_;
        try {
            f();
        } catch (...) {
            defer(std::current_exception());
        }
        --handler_depth_;
    }
    void defer(std::exception_ptr e) noexcept;
    static void report_unthrown(const std::exception_ptr& e, const char* why) noexcept;
    void throw_deferred();

    // shutdown
    bool park_if_kernel_holds_ops() noexcept;

    Ring& ring_;
    EngineOptions opt_;
    const KernelFeatures& kernel_;
    StrategySupport support_;
    AutoPolicy auto_;
    SyscallSender syscalls_;
    OpPool ops_;
    std::vector<std::unique_ptr<SendSocket>> sockets_;
    std::size_t inflight_ = 0;
    Counters counters_;                    // engine-wide events, and sockets already removed
    OpQueue ready_;                        // syscall sends done, to be released from run()
    std::vector<NotifGroup*> due_groups_;  // flushed with nothing pending: fire from run()
    bool held_back_ = false;               // a pump() stopped at a bound with sends still queued
    std::exception_ptr deferred_;          // what a handler threw, until it can be thrown
    std::uint32_t handler_depth_ = 0;      // > 0 while a handler runs (it may call us again)
    bool pinning_refused_ = false;         // auto copied a send the kernel would not charge (ENOMEM)
};

}  // namespace zcio::detail
