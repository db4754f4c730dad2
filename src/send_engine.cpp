// The send path, top to bottom: send() takes an operation slot and the buffer, queues it on its
// socket; pump() turns queued operations into SQEs (a linked chain per stream socket, so the byte
// stream stays in order); on_cqe() handles the request result (continue a short send, re-issue a
// broken chain, record an error) and the notification (usage report); release() hands the buffer
// back through the completion model. The syscall baselines (plain, msg_zerocopy) join at release().
#include "zcio/send_engine.hpp"

#include "pinned_memory.hpp"
#include "uring_compat.hpp"
#include "zcio/error.hpp"

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif
#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace zcio {

// ---- names ----------------------------------------------------------------------------------------

const char* to_string(Strategy s) noexcept {
    switch (s) {
    case Strategy::plain: return "plain";
    case Strategy::copy: return "copy";
    case Strategy::msg_zerocopy: return "msg-zerocopy";
    case Strategy::zc: return "zc";
    case Strategy::zc_fixed: return "zc-fixed";
    case Strategy::sendmsg_zc: return "sendmsg-zc";
    case Strategy::automatic: return "auto";
    }
    return "?";
}

std::optional<Strategy> parse_strategy(std::string_view name) noexcept {
    for (Strategy s : all_strategies)
        if (name == to_string(s)) return s;
    return std::nullopt;
}

bool is_zero_copy(Strategy s) noexcept {
    return s == Strategy::msg_zerocopy || s == Strategy::zc || s == Strategy::zc_fixed ||
           s == Strategy::sendmsg_zc;
}

const char* to_string(Usage u) noexcept {
    switch (u) {
    case Usage::zero_copy: return "zero-copy";
    case Usage::copied: return "copied";
    case Usage::not_reported: return "not-reported";
    }
    return "?";
}

Counters& Counters::operator+=(const Counters& o) noexcept {
    sends += o.sends;
    bytes += o.bytes;
    requests += o.requests;
    short_sends += o.short_sends;
    notifications += o.notifications;
    zero_copy += o.zero_copy;
    copied += o.copied;
    not_reported += o.not_reported;
    errors += o.errors;
    fallbacks += o.fallbacks;
    auto_to_copy += o.auto_to_copy;
    auto_to_zc += o.auto_to_zc;
    auto_probes += o.auto_probes;
    auto_small += o.auto_small;
    waits += o.waits;
    stray_cqes += o.stray_cqes;
    for (int i = 0; i < 7; ++i) by_strategy[i] += o.by_strategy[i];
    return *this;
}

namespace {

bool is_syscall_strategy(Strategy s) { return s == Strategy::plain || s == Strategy::msg_zerocopy; }

enum class Model : std::uint8_t { two_step, storage, group };

struct Socket;

// One send, from send() to release. Lives in the engine's slab of operations, allocated once.
// What every send touches comes first (three cache lines); the gather and MSG_ZEROCOPY state last.
struct Op : Completion {
    SendEngine::State* engine = nullptr;
    Op* next = nullptr;  // free list, socket queue, or ready list: an op is on at most one
    Socket* sock = nullptr;
    std::uint64_t seq = 0;             // order of send() calls on the socket
    Buffer buffer;
    std::size_t total = 0;             // bytes to send: buffer + more
    std::size_t done = 0;              // bytes accepted so far
    int error = 0;
    Strategy used = Strategy::copy;
    Model model = Model::storage;
    // Per-send state, reset with one store when the op is taken.
    struct Flags {
        bool request_inflight = false;
        bool request_done = false;     // no more requests will be issued for this op
        bool counted = false;          // its bytes are in the in-flight totals
        bool copied = false, zero_copy = false, reported = false;
        std::uint16_t notifs_pending = 0;
    } f;
    NotifGroup* group = nullptr;
    ReleaseHandler on_release;
    SentHandler on_sent;
    BufferChain more;                  // a gathered send's other buffers
    std::uint64_t zc_id_first = 0, zc_id_end = 0;  // msg_zerocopy: the error-queue ids it used
    msghdr msg{};
    iovec iov[BufferChain::capacity]{};
};

struct OpQueue {  // FIFO, intrusive
    Op* head = nullptr;
    Op* tail = nullptr;
    std::size_t size = 0;
    bool empty() const { return head == nullptr; }
    void push_back(Op* op) {
        op->next = nullptr;
        if (tail) tail->next = op; else head = op;
        tail = op;
        ++size;
    }
    Op* pop_front() {
        Op* op = head;
        head = op->next;
        if (!head) tail = nullptr;
        op->next = nullptr;
        --size;
        return op;
    }
    // Puts an op back in send() order (it came back from a short send or a broken chain).
    void insert_by_seq(Op* op) {
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
};

struct Socket {
    SendEngine::State* engine = nullptr;
    int fd = -1;
    int file = -1;                     // its slot in the ring's file table, or -1: the plain fd
    int sqe_fd() const { return file >= 0 ? file : fd; }
    bool live = false;
    bool stream = false;
    Strategy strategy = Strategy::automatic;
    std::size_t max_inflight = 0;
    std::size_t inflight = 0;
    std::uint64_t next_seq = 0;
    std::uint32_t chain_inflight = 0;  // stream: requests of the current chain still in the kernel
    std::uint32_t ops = 0;             // ops of this socket not yet released
    int failed = 0;                    // stream: first fatal error; later sends fail with it
    OpQueue queue;                     // accepted, not yet submitted
    Counters counters;
    // auto
    bool auto_copy_mode = false;
    std::uint32_t copied_streak = 0;
    std::uint32_t since_probe = 0;
    // msg_zerocopy
    bool so_zerocopy = false;
    std::uint64_t zc_next_id = 0;
    OpQueue zc_waiting;                // sent with MSG_ZEROCOPY, notice pending, id order
    struct ErrPoll : Completion {
        Socket* sock = nullptr;
        bool armed = false;
    } errpoll;
};

}  // namespace

struct SendEngine::State {
    Ring& ring;
    EngineOptions opt;
    const KernelFeatures& kernel;
    std::shared_ptr<Op[]> ops;         // shared: parked on the ring if the kernel outlives us
    Op* free_ops = nullptr;
    std::uint32_t ops_in_use = 0;
    std::vector<std::unique_ptr<Socket>> sockets;
    std::size_t inflight = 0;
    Counters counters;
    OpQueue ready;                     // syscall sends done, to be released from run()
    std::vector<NotifGroup*> flushed_empty;  // flushed with nothing pending: fire from run()
    bool ring_is_ours_to_wait = true;
    bool held_back = false;            // a pump() stopped at a bound with sends still queued
    bool pinning_refused = false;      // auto copied a send the kernel would not charge (ENOMEM)

    bool supported[7] = {};  // by Strategy: can this kernel run it?

    State(Ring& r, const EngineOptions& o) : ring(r), opt(o), kernel(o.features ? *o.features : probe()) {
        supported[static_cast<int>(Strategy::plain)] = true;
        supported[static_cast<int>(Strategy::copy)] = kernel.op_send;
        supported[static_cast<int>(Strategy::msg_zerocopy)] = kernel.msg_zerocopy;
        supported[static_cast<int>(Strategy::zc)] = kernel.send_zc;
        supported[static_cast<int>(Strategy::zc_fixed)] = kernel.send_zc_fixed;
        supported[static_cast<int>(Strategy::sendmsg_zc)] = kernel.sendmsg_zc;
        supported[static_cast<int>(Strategy::automatic)] = true;
    }
    // Why `s` cannot run here, and what can.
    std::string missing(Strategy s) const {
        static constexpr const char* feature[] = {"", "op_send", "msg_zerocopy", "send_zc", "send_zc_fixed",
                                                  "sendmsg_zc", ""};
        std::string msg = std::string("strategy ") + to_string(s) + " needs " + feature[static_cast<int>(s)] +
                          ", which this kernel lacks (" + kernel.why(feature[static_cast<int>(s)]) + ")";
        std::string ok;
        for (Strategy t : all_strategies)
            if (supported[static_cast<int>(t)]) ok += std::string(ok.empty() ? "" : ", ") + to_string(t);
        return msg + "; this kernel can run: " + ok;
    }

    // ---- operation slots ------------------------------------------------------------------
    Op* take_op() {
        Op* op = free_ops;
        if (!op) return nullptr;
        free_ops = op->next;
        ++ops_in_use;
        return op;
    }
    // After release(), which moved the buffers out and ran (so emptied) on_sent: what is left to
    // drop is the release handler. (on_sent is not touched: a storage send never loads its line.)
    void put_op(Op* op) {
        op->on_release.reset();
        op->sock = nullptr;  // a CQE for a free slot is then recognised as stray
        op->next = free_ops;
        free_ops = op;
        --ops_in_use;
    }

    Socket& socket(SocketId id) const {
        if (id >= sockets.size() || !sockets[id] || !sockets[id]->live)
            throw SetupError("SendEngine: unknown socket id " + std::to_string(id), 0,
                             "use the id add_socket() returned, before remove_socket()");
        return *sockets[id];
    }

    // ---- send(): accept --------------------------------------------------------------------
    // Handlers by reference: moved once, into the op. `more`: the rest of a gathered send (null for
    // a single buffer). Inlined into each public send(): one call per send, and the model's
    // constants fold away.
    [[gnu::always_inline]] inline void accept(SocketId id, Buffer&& buffer, Model model, SentHandler&& on_sent,
                                              ReleaseHandler&& on_release, NotifGroup* group,
                                              std::optional<Strategy> override, BufferChain* more = nullptr);
    void accept_chain(SocketId id, BufferChain&& chain, Model model, SentHandler&& on_sent,
                      ReleaseHandler&& on_release, NotifGroup* group);
    Strategy choose(Socket& s, const Buffer& b, std::optional<Strategy> override);
    [[gnu::noinline]] Op* wait_for_op(Socket& s, int& refused);
    [[gnu::cold, gnu::noinline]] void refuse(Socket& s, int err, Buffer&& buffer, SentHandler& on_sent,
                                             ReleaseHandler& on_release, NotifGroup* group, BufferChain* more);

    // ---- submission ---------------------------------------------------------------------------
    void pump(Socket& s);
    bool room_for(const Socket& s, const Op& op) const {
        const std::size_t n = op.total - op.done;
        // A single send larger than the bound must still go: the bound is on what waits behind it.
        if (op.f.counted) return true;
        const bool socket_idle = s.inflight == 0, engine_idle = inflight == 0;
        return (socket_idle || s.inflight + n <= s.max_inflight) &&
               (engine_idle || inflight + n <= opt.max_inflight_bytes);
    }
    [[gnu::always_inline]] inline void prep(Socket& s, Op& op, bool link);  // one SQE: the hot path, inlined
    void syscall_send(Socket& s, Op& op);
    // ::send() until the whole buffer is in (stream) or one datagram went; 0 or -errno.
    template <typename OnCall>
    int send_rest(Socket& s, Op& op, int flags, OnCall on_call);

    // ---- completion ---------------------------------------------------------------------------
    static void on_cqe(Completion* c, const io_uring_cqe& cqe);
    [[gnu::noinline]] void on_request(Op& op, const io_uring_cqe& cqe);  // keeps on_cqe small
    void on_notification(Op& op, const io_uring_cqe& cqe);
    void fail_socket(Socket& s, int err);
    // Cancels every request on the socket's file (by its table slot when it has one: that works
    // even after the caller closed the fd).
    void cancel_all(const Socket& s) {
        io_uring_sqe* sqe = ring.sqe();
        if (s.file >= 0) io_uring_prep_cancel_fd(sqe, s.file, IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
        else io_uring_prep_cancel_fd(sqe, s.fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data(sqe, nullptr);
    }
    void maybe_release(Op& op) {
        if (op.f.request_done && op.f.notifs_pending == 0 && !op.f.request_inflight) release(op);
    }
    void release(Op& op);
    void auto_learn(Socket& s, const Op& op);
    void drain_errqueue(Socket& s);
    void arm_errpoll(Socket& s);
    static void on_errpoll(Completion* c, const io_uring_cqe& cqe);
    int dispatch_ready();
    void fire_group(NotifGroup& g);
    // A send joins the group's round; the first one after the round's event starts a new round.
    static void bind(NotifGroup& g) {
        if (g.fired_) new_round(g);
        ++g.pending_;
    }
    static void new_round(NotifGroup& g) {
        g.fired_ = g.flushed_ = false;
        g.result_ = {};
    }
    // One send's share of its group's result.
    static void tally(GroupResult& g, const Release& r) {
        ++g.sends;
        g.bytes += r.bytes;
        if (r.usage == Usage::zero_copy) ++g.zero_copy;
        if (r.usage == Usage::copied) ++g.copied;
        if (r.error) {
            ++g.errors;
            if (!g.first_error) g.first_error = r.error;
        }
    }
};

namespace {
using State = SendEngine::State;
}

// ---- construction ----------------------------------------------------------------------------------

SendEngine::SendEngine(Ring& ring, const EngineOptions& options) : s_(std::make_unique<State>(ring, options)) {
    if (options.max_ops == 0 || options.max_ops > (1u << 20))
        throw SetupError("SendEngine: max_ops must be 1..1048576", 0);
    if (options.max_chain == 0) throw SetupError("SendEngine: max_chain must be > 0", 0);
    if (ring.cq_entries() < 2 * ring.sq_entries())
        throw SetupError("SendEngine: the ring's CQ (" + std::to_string(ring.cq_entries()) +
                             ") is under twice its SQ", 0,
                         "every zero-copy send posts two CQEs: set RingOptions::cq_entries >= 2 x sq_entries");
    s_->ops = std::shared_ptr<Op[]>(new Op[options.max_ops]);  // NOLINT: shared_ptr<T[]> has no make_ before C++20 in libstdc++ 12
    for (std::uint32_t i = options.max_ops; i-- > 0;) {
        Op& op = s_->ops[i];
        op.fn = &State::on_cqe;
        op.engine = s_.get();
        op.next = s_->free_ops;
        s_->free_ops = &op;
    }
}

SendEngine::~SendEngine() {
    State& st = *s_;
    // Fail what never reached the kernel, cancel what did, then wait for every CQE that can
    // still point into our operations.
    for (auto& sp : st.sockets)
        if (sp && sp->live) {
            if (!sp->failed) sp->failed = -ECANCELED;
            st.fail_socket(*sp, sp->failed);
        }
    for (auto& sp : st.sockets) {
        if (!sp || !sp->live || (sp->chain_inflight == 0 && sp->ops == 0)) continue;
        st.cancel_all(*sp);
    }
    const auto deadline = std::chrono::steady_clock::now() + st.opt.shutdown_timeout;
    while ((st.ops_in_use > 0 || !st.ready.empty()) && std::chrono::steady_clock::now() < deadline) {
        st.dispatch_ready();
        for (auto& sp : st.sockets)
            if (sp && sp->live && !sp->zc_waiting.empty()) st.drain_errqueue(*sp);
        st.ring.run(1, std::chrono::milliseconds(10));
    }
    bool parked = st.ops_in_use > 0;
    for (auto& sp : st.sockets) parked |= sp && sp->errpoll.armed;
    if (!parked) {  // every request is done: the file table's references go with the engine
        for (auto& sp : st.sockets)
            if (sp && sp->live) st.ring.unregister_file(sp->file);
        return;
    }
    // The kernel still holds requests (a peer that never acknowledges keeps notifications
    // back) and so still reads their pages. Nothing can tell when it stops, so those buffers
    // never go home: they are quarantined (counted in the arena, never handed out again), and
    // their handlers hear -ETIMEDOUT with no buffer. The CQEs still to come name our
    // operations: keep that memory until the ring is gone, and make those CQEs harmless.
    for (std::uint32_t i = 0; i < st.opt.max_ops; ++i) {
        Op& op = st.ops[i];
        op.fn = [](Completion*, const io_uring_cqe&) {};
        if (!op.sock) continue;
        op.buffer.quarantine();
        for (Buffer& b : op.more) b.quarantine();
        op.more.clear();
        op.error = -ETIMEDOUT;
        op.f.request_done = true;
        op.f.request_inflight = false;
        op.f.notifs_pending = 0;
        op.f.reported = op.f.copied = op.f.zero_copy = false;
        st.release(op);  // handler (or group) told; the slot is not reused: the engine is going
    }
    for (auto& sp : st.sockets)
        if (sp) sp->errpoll.fn = [](Completion*, const io_uring_cqe&) {};
    st.ring.keep_until_exit(st.ops);
    std::shared_ptr<void> sockets_keep(
        new std::vector<std::unique_ptr<Socket>>(std::move(st.sockets)),  // NOLINT
        [](void* p) { delete static_cast<std::vector<std::unique_ptr<Socket>>*>(p); });
    st.ring.keep_until_exit(std::move(sockets_keep));
}

SocketId SendEngine::add_socket(int fd, const SocketOptions& options) {
    State& st = *s_;
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
        throw SetupError("SendEngine::add_socket: fd " + std::to_string(fd) + " is not a socket", errno);
    if (type != SOCK_STREAM && type != SOCK_DGRAM)
        throw SetupError("SendEngine::add_socket: only SOCK_STREAM and SOCK_DGRAM sockets are supported", 0);
    if (options.max_inflight_bytes == 0)
        throw SetupError("SendEngine::add_socket: max_inflight_bytes must be > 0", 0);
    if (!st.supported[static_cast<int>(options.strategy)])
        throw SetupError("SendEngine::add_socket: " + st.missing(options.strategy), 0,
                         "pick another --strategy, or `auto`, which adapts (see `zcperf --features`)");
    if (options.strategy == Strategy::zc || options.strategy == Strategy::sendmsg_zc) {
        // Fail now, not mid-run, when the kernel will not charge the pages this socket may keep in flight.
        const std::size_t bound = std::min(options.max_inflight_bytes, st.opt.max_inflight_bytes);
        if (try_pinned_charge(bound) == -ENOMEM)
            throw SetupError(std::string("SendEngine::add_socket: strategy ") + to_string(options.strategy) +
                                 " would pin up to " + memory_size_text(bound) + " in flight, which the kernel "
                                 "refuses to charge now (ENOMEM)", 0,
                             pinned_send_advice() + "; or use `auto` (copies what cannot be charged), or a "
                             "smaller max_inflight_bytes");
    }
    auto sock = std::make_unique<Socket>();
    sock->engine = &st;
    sock->fd = fd;
    sock->live = true;
    sock->stream = type == SOCK_STREAM;
    sock->strategy = options.strategy;
    sock->max_inflight = options.max_inflight_bytes;
    sock->errpoll.fn = &State::on_errpoll;
    sock->errpoll.sock = sock.get();
    if (options.udp_gso_size) {
        if (sock->stream) throw SetupError("SendEngine::add_socket: udp_gso_size on a TCP socket", 0);
        int gso = options.udp_gso_size;
        if (::setsockopt(fd, SOL_UDP, UDP_SEGMENT, &gso, sizeof gso) != 0)
            throw SetupError("SendEngine::add_socket: setsockopt(UDP_SEGMENT) failed", errno,
                             "UDP GSO needs Linux 4.18+ and a UDP socket");
    }
    if (options.strategy == Strategy::msg_zerocopy) {
        int one = 1;
        if (::setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) != 0)
            throw SetupError("SendEngine::add_socket: setsockopt(SO_ZEROCOPY) failed", errno,
                             "MSG_ZEROCOPY needs Linux 4.14+ (TCP) / 5.0+ (UDP)");
        sock->so_zerocopy = true;
    }
    // Last, when nothing above can throw: a registered file is released only by remove_socket().
    if (st.opt.register_files) sock->file = st.ring.register_file(fd);  // -errno: the plain fd serves
    for (SocketId id = 0; id < st.sockets.size(); ++id)
        if (!st.sockets[id]) {
            st.sockets[id] = std::move(sock);
            return id;
        }
    st.sockets.push_back(std::move(sock));
    return static_cast<SocketId>(st.sockets.size() - 1);
}

void SendEngine::remove_socket(SocketId id) {
    State& st = *s_;
    Socket& s = st.socket(id);
    if (st.ring.dispatching())
        throw SetupError("SendEngine::remove_socket called from a completion handler", 0,
                         "it waits for the socket's releases, which only the loop can deliver: call it "
                         "from outside the handlers");
    st.fail_socket(s, -ECANCELED);
    if (s.chain_inflight > 0 || s.errpoll.armed) st.cancel_all(s);
    while (s.ops > 0 || s.errpoll.armed) {
        if (!s.zc_waiting.empty()) st.drain_errqueue(s);
        if (run(true, std::chrono::milliseconds(100)) < 0 && s.ops > 0 && s.zc_waiting.empty()) continue;
    }
    st.ring.unregister_file(s.file);  // the table's reference goes: close() ends the socket again
    st.counters += s.counters;  // its history stays in the engine's totals
    st.sockets[id].reset();
}

int SendEngine::set_strategy(SocketId id, Strategy strategy) {
    Socket& s = s_->socket(id);
    if (is_syscall_strategy(strategy) != is_syscall_strategy(s.strategy) && s.ops > 0) return -EBUSY;
    if (strategy == Strategy::msg_zerocopy && !s.so_zerocopy) {
        int one = 1;
        if (::setsockopt(s.fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) != 0) return -errno;
        s.so_zerocopy = true;
    }
    s.strategy = strategy;
    return 0;
}

Strategy SendEngine::strategy(SocketId id) const { return s_->socket(id).strategy; }

// ---- send ------------------------------------------------------------------------------------------

void SendEngine::send(SocketId id, Buffer&& buffer, TwoStep h, std::optional<Strategy> override) {
    s_->accept(id, std::move(buffer), Model::two_step, std::move(h.on_sent), std::move(h.on_release), nullptr,
               override);
}
void SendEngine::send(SocketId id, Buffer&& buffer, Storage h, std::optional<Strategy> override) {
    SentHandler none;
    s_->accept(id, std::move(buffer), Model::storage, std::move(none), std::move(h.on_complete), nullptr, override);
}
void SendEngine::send(SocketId id, Buffer&& buffer, NotifGroup& group, std::optional<Strategy> override) {
    State::bind(group);
    SentHandler no_sent;
    ReleaseHandler no_release;
    s_->accept(id, std::move(buffer), Model::group, std::move(no_sent), std::move(no_release), &group, override);
}

void State::accept_chain(SocketId id, BufferChain&& chain, Model model, SentHandler&& on_sent,
                         ReleaseHandler&& on_release, NotifGroup* group) {
    Buffer head = chain.empty() ? Buffer{} : std::move(chain[0]);
    BufferChain rest;
    for (std::size_t i = 1; i < chain.size(); ++i) rest.push_back(std::move(chain[i]));
    chain.clear();
    accept(id, std::move(head), model, std::move(on_sent), std::move(on_release), group, std::nullopt, &rest);
}

void SendEngine::send(SocketId id, BufferChain&& buffers, TwoStep h) {
    s_->accept_chain(id, std::move(buffers), Model::two_step, std::move(h.on_sent), std::move(h.on_release),
                     nullptr);
}
void SendEngine::send(SocketId id, BufferChain&& buffers, Storage h) {
    SentHandler none;
    s_->accept_chain(id, std::move(buffers), Model::storage, std::move(none), std::move(h.on_complete), nullptr);
}
void SendEngine::send(SocketId id, BufferChain&& buffers, NotifGroup& group) {
    State::bind(group);
    SentHandler no_sent;
    ReleaseHandler no_release;
    s_->accept_chain(id, std::move(buffers), Model::group, std::move(no_sent), std::move(no_release), &group);
}

void SendEngine::flush(NotifGroup& group) {
    if (group.fired_) State::new_round(group);  // an empty round: its event says 0 sends
    if (group.flushed_) return;                  // already closed: its one event is on its way
    group.flushed_ = true;
    if (group.pending_ == 0) s_->flushed_empty.push_back(&group);
}

Strategy State::choose(Socket& s, const Buffer& b, std::optional<Strategy> override) {
    Strategy want = override && !is_syscall_strategy(*override) ? *override : s.strategy;
    if (want != Strategy::automatic) {
        // zc_fixed needs the buffer in this ring's table; plain memory goes as zc (and says so).
        if (want == Strategy::zc_fixed && !b.registered_with(ring.id())) {
            ++s.counters.fallbacks;
            return Strategy::zc;
        }
        return want;
    }
    const Strategy zc = b.registered_with(ring.id()) && supported[static_cast<int>(Strategy::zc_fixed)]
                            ? Strategy::zc_fixed
                            : Strategy::zc;
    if (!supported[static_cast<int>(zc)]) return Strategy::copy;  // no zero-copy send here at all
    if (b.size() < opt.auto_threshold) {
        ++s.counters.auto_small;
        return Strategy::copy;
    }
    if (s.auto_copy_mode) {
        if (++s.since_probe < opt.auto_reprobe_every) return Strategy::copy;
        s.since_probe = 0;
        ++s.counters.auto_probes;
    }
    return zc;
}

// Every slot is in use: drive the loop until a release frees one, but not from inside a
// completion handler (the CQEs being walked are ours) and not forever (a peer that never reads
// would hang us). Null: the send must be refused, for the reason left in `refused`.
Op* State::wait_for_op(Socket& s, int& refused) {
    if (ring.dispatching()) {
        refused = -ENOBUFS;
        return nullptr;
    }
    const auto deadline = std::chrono::steady_clock::now() + opt.send_wait_timeout;
    for (;;) {
        ++s.counters.waits;
        dispatch_ready();
        if (ring.run(1, std::chrono::milliseconds(100)) == -ETIME) {
            for (auto& sp : sockets)
                if (sp && sp->live && !sp->zc_waiting.empty()) drain_errqueue(*sp);
        }
        if (Op* op = take_op()) return op;
        if (std::chrono::steady_clock::now() >= deadline) {
            refused = -ETIMEDOUT;
            return nullptr;
        }
    }
}

// A send that got no slot: the buffer goes straight back, in the caller's hands, with the reason.
void State::refuse(Socket& s, int err, Buffer&& buffer, SentHandler& on_sent, ReleaseHandler& on_release,
                   NotifGroup* group, BufferChain* more) {
    ++s.counters.errors;
    Release r{err, 0, Usage::not_reported, s.strategy, std::move(buffer), {}};
    if (more) r.more = std::move(*more);
    if (group) {
        tally(group->result_, r);
        r.buffer.reset();
        r.more.clear();
        if (--group->pending_ == 0 && group->flushed_) flushed_empty.push_back(group);
    } else {
        if (on_sent) on_sent(SendResult{err});
        if (on_release) on_release(std::move(r));
    }
}

void State::accept(SocketId id, Buffer&& buffer, Model model, SentHandler&& on_sent, ReleaseHandler&& on_release,
                   NotifGroup* group, std::optional<Strategy> override, BufferChain* more) {
    Socket& s = socket(id);
    Op* op = take_op();
    if (!op) [[unlikely]] {
        int refused = 0;
        op = wait_for_op(s, refused);
        if (!op) {
            refuse(s, refused, std::move(buffer), on_sent, on_release, group, more);
            return;
        }
    }
    op->sock = &s;
    op->seq = s.next_seq++;
    op->model = model;
    if (on_sent) op->on_sent = std::move(on_sent);  // a free op's handlers are empty (release, put_op)
    if (on_release) op->on_release = std::move(on_release);
    op->group = group;
    op->done = 0;
    op->f = {};
    op->error = 0;
    op->used = more ? Strategy::sendmsg_zc : choose(s, buffer, override);
    op->buffer = std::move(buffer);
    op->total = op->buffer.size();
    if (more) {
        op->more = std::move(*more);
        op->total += op->more.bytes();
    }
    ++s.ops;
    ++s.counters.sends;

    if (!op->buffer || op->total == 0 || !supported[static_cast<int>(op->used)]) {
        // An empty handle is a caller bug; zero bytes is a no-op; an override this kernel lacks.
        op->error = !op->buffer ? -EINVAL : op->total == 0 ? 0 : -EOPNOTSUPP;
        op->f.request_done = true;
        ready.push_back(op);
        return;
    }
    if (s.failed) {
        op->error = s.failed;
        op->f.request_done = true;
        ready.push_back(op);
        return;
    }
    if (!s.stream && s.queue.empty() && !is_syscall_strategy(op->used) && room_for(s, *op)) {
        // The common datagram case: nothing queued ahead and room in the bounds: straight to an
        // SQE, without the queue round trip (no order to keep between datagrams).
        op->f.counted = true;
        s.inflight += op->total;
        inflight += op->total;
        prep(s, *op, false);
        return;
    }
    s.queue.push_back(op);
    pump(s);
}

// ---- submission ------------------------------------------------------------------------------------

void State::pump(Socket& s) {
    if (s.failed) {
        fail_socket(s, s.failed);
        return;
    }
    if (s.stream && s.chain_inflight > 0) return;  // the next chain waits for this one: order
    // A chain must reach the kernel in one submission: ring.sqe() submits when the SQ fills, and
    // the part after that would run as a second, unordered chain. Reserve the room up front.
    std::uint32_t chain_room = opt.max_chain;
    if (s.stream) {
        const auto queued = static_cast<unsigned>(std::min<std::size_t>(s.queue.size, opt.max_chain));
        if (queued > 1) chain_room = ring.reserve(queued);
    }
    std::uint32_t chained = 0;
    while (!s.queue.empty() && room_for(s, *s.queue.head)) {
        Op* op = s.queue.head;
        if (is_syscall_strategy(op->used)) {
            if (s.chain_inflight > 0) break;  // io_uring sends ahead of it must finish first
            s.queue.pop_front();
            if (!op->f.counted) {
                op->f.counted = true;
                s.inflight += op->total;
                inflight += op->total;
            }
            syscall_send(s, *op);
            continue;
        }
        s.queue.pop_front();
        if (!op->f.counted) {
            op->f.counted = true;
            s.inflight += op->total;
            inflight += op->total;
        }
        const bool more = s.stream && !s.queue.empty() && chained + 1 < chain_room &&
                          !is_syscall_strategy(s.queue.head->used) && room_for(s, *s.queue.head);
        prep(s, *op, s.stream && more);
        ++chained;
        if (s.stream && !more) break;
    }
    if (!s.queue.empty()) held_back = true;
}

void State::prep(Socket& s, Op& op, bool link) {
    io_uring_sqe* sqe = ring.sqe();
    const std::byte* data = op.buffer.data() + op.done;  // single-buffer strategies
    const std::size_t len = op.total - op.done;
    // MSG_WAITALL: on a stream socket the kernel keeps sending until all is queued, so a short
    // result means an error or a signal, and breaks the link chain behind it.
    const int flags = (s.stream ? MSG_WAITALL : 0) | MSG_NOSIGNAL;
    switch (op.used) {
    case Strategy::copy:
        io_uring_prep_send(sqe, s.sqe_fd(), data, len, flags);
        break;
    case Strategy::zc:
        io_uring_prep_send_zc(sqe, s.sqe_fd(), data, len, flags, IORING_SEND_ZC_REPORT_USAGE);
        break;
    case Strategy::zc_fixed:
        io_uring_prep_send_zc_fixed(sqe, s.sqe_fd(), data, len, flags, IORING_SEND_ZC_REPORT_USAGE,
                                    static_cast<unsigned>(op.buffer.buf_index()));
        break;
    case Strategy::sendmsg_zc: {
        // One iovec per buffer, skipping what a short send already took.
        std::size_t skip = op.done, n = 0;
        bool fixed = kernel.sendmsg_zc_fixed;
        const int index = op.buffer.buf_index();
        auto add = [&](Buffer& b) {
            fixed = fixed && b.registered_with(ring.id()) && b.buf_index() == index;
            if (skip >= b.size()) {
                skip -= b.size();
                return;
            }
            op.iov[n++] = {b.data() + skip, b.size() - skip};
            skip = 0;
        };
        add(op.buffer);
        for (Buffer& b : op.more) add(b);
        op.msg = {};
        op.msg.msg_iov = op.iov;
        op.msg.msg_iovlen = n;
        io_uring_prep_sendmsg_zc(sqe, s.sqe_fd(), &op.msg, static_cast<unsigned>(flags));
        sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
        if (fixed) {  // every iovec inside one registered buffer: no pinning per request
            sqe->ioprio |= IORING_RECVSEND_FIXED_BUF;
            sqe->buf_index = static_cast<std::uint16_t>(index);
        }
        break;
    }
    default:
        break;  // syscall strategies never get here
    }
    if (link) sqe->flags |= IOSQE_IO_LINK;
    if (s.file >= 0) sqe->flags |= IOSQE_FIXED_FILE;  // no fget/fput per request
    io_uring_sqe_set_data(sqe, &op);
    op.f.request_inflight = true;
    ++s.chain_inflight;
    ++s.counters.requests;
    ++s.counters.by_strategy[static_cast<int>(op.used)];
}

void State::syscall_send(Socket& s, Op& op) {
    ++s.counters.requests;
    ++s.counters.by_strategy[static_cast<int>(op.used)];
    if (op.used == Strategy::msg_zerocopy) {
        // Each successful call takes the next id of the socket's zero-copy notification counter.
        op.zc_id_first = s.zc_next_id;
        op.error = send_rest(s, op, MSG_ZEROCOPY, [&s] { ++s.zc_next_id; });
        op.zc_id_end = s.zc_next_id;
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
    if (op.zc_id_end > op.zc_id_first) {
        // The notice comes on the socket's error queue; a poll on it (one SQE per drain, not a
        // recvmsg per send) tells the loop when to read it. The kernel merges ranges meanwhile.
        s.zc_waiting.push_back(&op);
        arm_errpoll(s);
    } else {
        ready.push_back(&op);
    }
}

template <typename OnCall>
int State::send_rest(Socket& s, Op& op, int flags, OnCall on_call) {
    while (op.done < op.buffer.size()) {
        const ssize_t n =
            ::send(s.fd, op.buffer.data() + op.done, op.buffer.size() - op.done, flags | MSG_NOSIGNAL);
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

// ---- completion ------------------------------------------------------------------------------------

void State::on_cqe(Completion* c, const io_uring_cqe& cqe) {
    Op& op = *static_cast<Op*>(c);
    State& st = *op.engine;
    if (!op.sock) {  // a CQE for a free slot: a bookkeeping bug; count it rather than crash
        ++st.counters.stray_cqes;
        return;
    }
    if (cqe.flags & IORING_CQE_F_NOTIF) st.on_notification(op, cqe);
    else st.on_request(op, cqe);
}

void State::on_request(Op& op, const io_uring_cqe& cqe) {
    Socket& s = *op.sock;
    op.f.request_inflight = false;
    --s.chain_inflight;
    // F_MORE on a zero-copy request: a notification will follow (even for a failed send).
    const int res = cqe.res;
    if (cqe.flags & IORING_CQE_F_MORE) ++op.f.notifs_pending;
    // A zero-copy request cancelled because the link ahead of it failed completes with flags 0 on
    // 6.18, yet its notification still comes when the request is freed (the link-failure path
    // skips the hook that sets F_MORE). Wait for it, or the slot is reused under a live CQE. So does
    // a link member refused with ENOMEM at prep (RLIMIT_MEMLOCK): its notification was made first.
    else if ((res == -ECANCELED || res == -ENOMEM) && op.used != Strategy::copy) ++op.f.notifs_pending;
    if (res >= 0) {
        op.done += static_cast<std::size_t>(res);
        s.counters.bytes += static_cast<std::size_t>(res);
        if (op.done < op.total && s.stream && !s.failed) {
            // Short (a signal, or the peer's window for a non-blocking retry): continue it first.
            ++s.counters.short_sends;
            s.queue.insert_by_seq(&op);
        } else {
            op.f.request_done = true;
        }
    } else if (res == -ECANCELED && !s.failed) {
        // The link chain broke ahead of us (a short send); we were never issued. Go again, in order.
        s.queue.insert_by_seq(&op);
    } else if (res == -ENOMEM && s.strategy == Strategy::automatic && op.more.empty() &&
               (op.used == Strategy::zc || op.used == Strategy::sendmsg_zc)) {
        // Nothing sent: the kernel would not charge the pinned pages to RLIMIT_MEMLOCK (no
        // CAP_IPC_LOCK). auto copies this send, and the socket's next ones until a re-probe.
        op.used = Strategy::copy;
        ++s.counters.fallbacks;
        s.auto_copy_mode = true;
        s.since_probe = 0;
        pinning_refused = true;
        s.queue.insert_by_seq(&op);
    } else {
        op.error = res == -ECANCELED && s.failed ? s.failed : res;
        op.f.request_done = true;
        if (s.stream && !s.failed) s.failed = op.error;
    }
    if (op.f.request_done && op.model == Model::two_step && op.on_sent) {
        SentHandler h = std::move(op.on_sent);
        h(SendResult{op.error ? op.error : static_cast<int>(op.done)});
    }
    if (op.f.request_done) maybe_release(op);
    if (s.chain_inflight == 0) pump(s);
}

void State::on_notification(Op& op, const io_uring_cqe& cqe) {
    ++op.sock->counters.notifications;
    --op.f.notifs_pending;
    // With REPORT_USAGE the kernel sets the COPIED bit when it copied instead; res is otherwise 0.
    op.f.reported = true;
    if (static_cast<std::uint32_t>(cqe.res) & IORING_NOTIF_USAGE_ZC_COPIED) op.f.copied = true;
    else op.f.zero_copy = true;
    maybe_release(op);
}

void State::fail_socket(Socket& s, int err) {
    if (!s.failed) s.failed = err;
    while (!s.queue.empty()) {
        Op* op = s.queue.pop_front();
        op->error = err;
        op->f.request_done = true;
        if (op->model == Model::two_step && op->on_sent) {
            SentHandler h = std::move(op->on_sent);
            h(SendResult{err});
        }
        maybe_release(*op);
    }
}

void State::auto_learn(Socket& s, const Op& op) {
    if (s.strategy != Strategy::automatic || !is_zero_copy(op.used) || !op.f.reported || op.error) return;
    if (op.f.copied) {
        if (!s.auto_copy_mode && ++s.copied_streak >= opt.auto_copied_streak) {
            // The kernel copies anyway (loopback, a device without scatter-gather): pinning pages
            // and waiting for notifications only costs. Copy, and look again now and then.
            s.auto_copy_mode = true;
            s.since_probe = 0;
            ++s.counters.auto_to_copy;
        }
    } else {
        s.copied_streak = 0;
        if (s.auto_copy_mode) {
            s.auto_copy_mode = false;
            ++s.counters.auto_to_zc;
        }
    }
}

void State::release(Op& op) {
    Socket& s = *op.sock;
    if (op.model == Model::two_step && op.on_sent) {
        // Syscall strategies and refused sends have no separate "sent" event: it comes first here.
        SentHandler h = std::move(op.on_sent);
        h(SendResult{op.error ? op.error : static_cast<int>(op.done)});
    }
    if (op.f.counted) {
        s.inflight -= op.total;
        inflight -= op.total;
    }
    Usage usage = Usage::not_reported;
    if (op.used == Strategy::copy || op.used == Strategy::plain) usage = Usage::copied;
    else if (op.f.copied) usage = Usage::copied;  // any part copied counts as copied
    else if (op.f.zero_copy) usage = Usage::zero_copy;
    if (op.error) {
        ++s.counters.errors;
    }
    if (usage == Usage::zero_copy) ++s.counters.zero_copy;
    else if (usage == Usage::copied) ++s.counters.copied;
    else ++s.counters.not_reported;
    if (s.strategy == Strategy::automatic) auto_learn(s, op);

    Release r{op.error, op.done, usage, op.used, std::move(op.buffer), {}};
    if (op.used == Strategy::sendmsg_zc && !op.more.empty()) r.more = std::move(op.more);  // gathered
    --s.ops;
    if (op.model == Model::group) {
        NotifGroup* group = op.group;
        put_op(&op);
        tally(group->result_, r);
        r.buffer.reset();  // back to its arena now: the kernel is done with it
        r.more.clear();
        if (--group->pending_ == 0 && group->flushed_) fire_group(*group);
    } else {
        // Called in place (moving an InplaceFunction is an indirect call); the slot is freed right
        // after. The handler may send again: it gets another slot.
        if (op.on_release) op.on_release(std::move(r));
        put_op(&op);
    }
    if (!s.queue.empty() && (!s.stream || s.chain_inflight == 0)) pump(s);
    // The engine-wide bound may have held other sockets back.
    // Only when some pump() stopped at a bound: scanning every socket per release is O(sockets).
    if (held_back && inflight < opt.max_inflight_bytes) {
        held_back = false;  // each pump below sets it again if it is still held back
        for (std::size_t i = 0; i < sockets.size(); ++i) {  // by index: a handler may add sockets
            Socket* o = sockets[i].get();
            if (o && o->live && o != &s && !o->queue.empty() && (!o->stream || o->chain_inflight == 0)) pump(*o);
            else if (o && o->live && !o->queue.empty()) held_back = true;  // a stream chain still out
        }
    }
}

void State::fire_group(NotifGroup& g) {
    g.fired_ = true;
    GroupResult result = g.result_;
    g.result_ = {};
    g.on_flushed_(result);
}

// ---- MSG_ZEROCOPY notifications (the socket error queue) ------------------------------------------

void State::drain_errqueue(Socket& s) {
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
            while (!s.zc_waiting.empty()) {
                Op* op = s.zc_waiting.head;
                const auto last = static_cast<std::uint32_t>(op->zc_id_end - 1);
                if (static_cast<std::int32_t>(last - hi) > 0) break;  // not covered yet
                s.zc_waiting.pop_front();
                op->f.reported = true;
                (copied ? op->f.copied : op->f.zero_copy) = true;
                release(*op);
            }
        }
    }
}

void State::arm_errpoll(Socket& s) {
    if (s.errpoll.armed) return;
    io_uring_sqe* sqe = ring.sqe();
    io_uring_prep_poll_add(sqe, s.fd, POLLERR);
    io_uring_sqe_set_data(sqe, &s.errpoll);
    s.errpoll.armed = true;
}

void State::on_errpoll(Completion* c, const io_uring_cqe&) {
    auto& p = *static_cast<Socket::ErrPoll*>(c);
    Socket& s = *p.sock;
    p.armed = false;
    s.engine->drain_errqueue(s);
    if (!s.zc_waiting.empty()) s.engine->arm_errpoll(s);
}

// ---- the loop --------------------------------------------------------------------------------------

int State::dispatch_ready() {
    int n = 0;
    while (!ready.empty()) {
        release(*ready.pop_front());
        ++n;
    }
    while (!flushed_empty.empty()) {
        NotifGroup* g = flushed_empty.back();
        flushed_empty.pop_back();
        if (g->pending_ == 0 && g->flushed_ && !g->fired_) fire_group(*g);
        ++n;
    }
    return n;
}

int SendEngine::run(bool wait, std::chrono::nanoseconds timeout) {
    State& st = *s_;
    int n = st.dispatch_ready();
    const int r = st.ring.run(wait && n == 0 ? 1 : 0, timeout);
    if (r < 0) return n > 0 ? n : r;
    return n + r + st.dispatch_ready();
}

int SendEngine::drain(std::chrono::nanoseconds timeout) {
    State& st = *s_;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (st.ops_in_use > 0 || !st.ready.empty() || !st.flushed_empty.empty()) {
        const auto left = deadline - std::chrono::steady_clock::now();
        if (left <= std::chrono::nanoseconds::zero()) return -ETIME;
        const int r = run(true, std::min<std::chrono::nanoseconds>(left, std::chrono::milliseconds(100)));
        if (r < 0 && r != -ETIME) return r;
    }
    return 0;
}

std::size_t SendEngine::inflight_bytes() const noexcept { return s_->inflight; }
std::size_t SendEngine::inflight_bytes(SocketId id) const { return s_->socket(id).inflight; }
std::uint32_t SendEngine::ops_in_use() const noexcept { return s_->ops_in_use; }
Counters SendEngine::counters() const noexcept {
    // Kept per socket only (one increment on the hot path, not two) and summed here.
    Counters sum = s_->counters;  // engine-wide events, and sockets already removed
    for (const auto& sp : s_->sockets)
        if (sp) sum += sp->counters;
    return sum;
}
const Counters& SendEngine::counters(SocketId id) const { return s_->socket(id).counters; }
bool SendEngine::file_registered(SocketId id) const { return s_->socket(id).file >= 0; }
std::string SendEngine::fallback_reason() const {
    if (!s_->pinning_refused) return {};
    return "auto copied sends the kernel refused to pin (ENOMEM): " + pinned_send_advice();
}
Ring& SendEngine::ring() noexcept { return s_->ring; }

}  // namespace zcio
