// The kernel probe: ask (opcode table, ring features, IORING_REGISTER_QUERY), then try (trial ring
// set-ups, trial zero-copy sends over loopback, trial registrations), and write down why for every
// "no". Everything it creates is closed before it returns; nothing leaves loopback.
#include "zcio/probe.hpp"

#include "pinned_memory.hpp"
#include "uring_compat.hpp"
#include "zcio/error.hpp"
#include "zcio/unique_fd.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif

namespace zcio {
namespace {

using std::chrono::steady_clock;

// A zero-copy send that has not completed (a broken kernel) must not hang the probe.
constexpr auto trial_timeout = std::chrono::milliseconds(500);
constexpr unsigned trial_len = 64;
// Read-only payload with static storage: even a send abandoned on timeout can only read live memory.
constexpr char trial_payload[trial_len] = "zcio probe: zero-copy trial send over loopback";

std::string hex(std::uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
}

// A ring for the probe's own trials, always torn down.
class TrialRing {
public:
    int init(unsigned entries, unsigned flags) {
        io_uring_params p{};
        p.flags = flags;
        const int r = io_uring_queue_init_params(entries, &ring_, &p);
        if (r == 0) {
            live_ = true;
            features_ = p.features;
        }
        return r;
    }
    ~TrialRing() {
        if (live_) io_uring_queue_exit(&ring_);
    }
    TrialRing() = default;
    TrialRing(const TrialRing&) = delete;
    TrialRing& operator=(const TrialRing&) = delete;

    io_uring* get() noexcept { return &ring_; }
    std::uint32_t features() const noexcept { return features_; }

private:
    io_uring ring_{};
    bool live_ = false;
    std::uint32_t features_ = 0;
};

// One page (or more) of anonymous memory, unmapped on scope exit.
class Mapping {
public:
    explicit Mapping(std::size_t len)
        : len_(len), p_(::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) {
        if (p_ == MAP_FAILED) err_ = errno;
    }
    ~Mapping() {
        if (p_ != MAP_FAILED) ::munmap(p_, len_);
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;

    explicit operator bool() const noexcept { return p_ != MAP_FAILED; }
    int error() const noexcept { return err_; }
    char* data() const noexcept { return static_cast<char*>(p_); }
    std::size_t size() const noexcept { return len_; }

private:
    std::size_t len_;
    void* p_;
    int err_ = 0;
};

// io_uring_setup and close: asks the kernel about a flag set without liburing's mmap (liburing 2.3
// sizes the SQ array itself, which NO_SQARRAY does away with).
// Without CAP_IPC_LOCK a ring's pages count against RLIMIT_MEMLOCK, and a closed ring gives them back
// only when its asynchronous teardown has run: under a tight limit the trial before this one can
// still hold the charge. ENOMEM is therefore retried a few times before it is believed.
int try_setup(unsigned flags) {
    int err = 0;
    for (int attempt = 0; attempt < 10; ++attempt) {
        if (attempt > 0) ::usleep(2000);
        io_uring_params p{};
        p.flags = flags;
        const long fd = ::syscall(__NR_io_uring_setup, 4U, &p);
        if (fd >= 0) {
            ::close(static_cast<int>(fd));
            return 0;
        }
        err = -errno;
        if (err != -ENOMEM) break;
    }
    return err;
}

// ENOMEM from io_uring, for a process without CAP_IPC_LOCK, is nearly always the memlock limit.
std::string memlock_hint(const KernelFeatures& k, int err) {
    if (err != -ENOMEM || k.memlock_exempt) return {};
    return " (io_uring charges rings, registered buffers and zero-copy sends to RLIMIT_MEMLOCK, " +
           memory_size_text(k.memlock_limit) + " here: raise `ulimit -l`)";
}

int query(std::uint32_t op, void* data, std::uint32_t size, abi::query_hdr& hdr) {
    hdr = {};
    hdr.query_op = op;
    hdr.query_data = reinterpret_cast<std::uintptr_t>(data);
    hdr.size = size;
    const long r = ::syscall(__NR_io_uring_register, -1, abi::reg_query, &hdr, 0U);
    return r < 0 ? -errno : 0;
}

// A connected pair of UDP sockets on 127.0.0.1.
struct UdpPair {
    UniqueFd tx, rx;
    int error = 0;
};

UdpPair udp_pair() {
    UdpPair p;
    p.rx.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    p.tx.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!p.rx || !p.tx) {
        p.error = errno;
        return p;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(p.rx.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::getsockname(p.rx.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
        ::connect(p.tx.get(), reinterpret_cast<sockaddr*>(&a), len) != 0)
        p.error = errno;
    return p;
}

// What one zero-copy send request produced: its result CQE and, when that had F_MORE, the
// notification.
struct ZcOutcome {
    int submit = 0;          // io_uring_submit's result when it was not 1
    bool completed = false;  // the request's CQE arrived
    int res = 0;
    bool more = false;  // IORING_CQE_F_MORE: a notification follows
    bool notified = false;
    std::uint32_t notif_res = 0;
    bool timed_out = false;
    int wait_error = 0;

    bool sent_all() const { return completed && res == static_cast<int>(trial_len) && (!more || notified); }
    // Why the send did not fully succeed, in words.
    std::string failure(std::string_view what) const {
        std::string s(what);
        if (submit != 0) return s + ": io_uring_submit returned " + errno_string(submit);
        if (wait_error != 0) return s + ": waiting for completions failed with " + errno_string(wait_error);
        if (!completed) return s + ": no completion within 500 ms";
        if (res < 0) return s + " failed with " + errno_string(res);
        if (res != static_cast<int>(trial_len))
            return s + " sent " + std::to_string(res) + " of " + std::to_string(trial_len) + " bytes";
        if (more && !notified) return s + ": the notification did not arrive within 500 ms";
        return s + ": ok";
    }
};

// Submits the one prepared SQE and reaps its CQE and notification, within trial_timeout.
ZcOutcome submit_and_reap(io_uring* ring) {
    ZcOutcome o;
    const int s = io_uring_submit(ring);
    if (s != 1) {
        o.submit = s < 0 ? s : -EIO;
        return o;
    }
    const auto deadline = steady_clock::now() + trial_timeout;
    while (!o.completed || (o.more && !o.notified)) {
        const auto left = deadline - steady_clock::now();
        if (left <= steady_clock::duration::zero()) {
            o.timed_out = true;
            break;
        }
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
        __kernel_timespec ts{};
        ts.tv_sec = ns / 1'000'000'000;
        ts.tv_nsec = ns % 1'000'000'000;
        io_uring_cqe* cqe = nullptr;
        const int r = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
        if (r == -ETIME || r == -EINTR) continue;
        if (r < 0) {
            o.wait_error = r;
            break;
        }
        const io_uring_cqe c = *cqe;
        io_uring_cqe_seen(ring, cqe);
        if (c.flags & IORING_CQE_F_NOTIF) {
            o.notified = true;
            o.notif_res = static_cast<std::uint32_t>(c.res);
        } else {
            o.completed = true;
            o.res = c.res;
            o.more = (c.flags & IORING_CQE_F_MORE) != 0;
        }
    }
    return o;
}

io_uring_sqe* prep_send_zc(io_uring* ring, int fd, const void* buf, unsigned zc_flags) {
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    io_uring_prep_send(sqe, fd, buf, trial_len, 0);
    sqe->opcode = abi::op_send_zc;
    sqe->ioprio = static_cast<std::uint16_t>(zc_flags);
    sqe->user_data = 1;
    return sqe;
}

// The field table: report(), why() and the final "every no has a reason" sweep walk it.
struct BoolField {
    const char* name;
    bool KernelFeatures::*member;
};

constexpr BoolField ring_bools[] = {
    {"io_uring", &KernelFeatures::io_uring},           {"query_interface", &KernelFeatures::query_interface},
    {"single_issuer", &KernelFeatures::single_issuer}, {"defer_taskrun", &KernelFeatures::defer_taskrun},
    {"coop_taskrun", &KernelFeatures::coop_taskrun},   {"cqe32", &KernelFeatures::cqe32},
    {"cqe_mixed", &KernelFeatures::cqe_mixed},         {"no_sqarray", &KernelFeatures::no_sqarray},
    {"submit_all", &KernelFeatures::submit_all},       {"registered_ring_fd", &KernelFeatures::registered_ring_fd},
};
constexpr BoolField send_bools[] = {
    {"op_send", &KernelFeatures::op_send},
    {"op_sendmsg", &KernelFeatures::op_sendmsg},
    {"send_zc", &KernelFeatures::send_zc},
    {"sendmsg_zc", &KernelFeatures::sendmsg_zc},
    {"zc_report_usage", &KernelFeatures::zc_report_usage},
    {"send_zc_fixed", &KernelFeatures::send_zc_fixed},
    {"sendmsg_zc_fixed", &KernelFeatures::sendmsg_zc_fixed},
    {"msg_zerocopy", &KernelFeatures::msg_zerocopy},
    {"send_to_address", &KernelFeatures::send_to_address},
};
constexpr BoolField recv_bools[] = {
    {"op_recv", &KernelFeatures::op_recv},
    {"read_multishot", &KernelFeatures::read_multishot},
    {"provide_buffers", &KernelFeatures::provide_buffers},
    {"recvsend_bundle", &KernelFeatures::recvsend_bundle},
    {"pbuf_ring", &KernelFeatures::pbuf_ring},
    {"pbuf_ring_incremental", &KernelFeatures::pbuf_ring_incremental},
    {"recv_zc", &KernelFeatures::recv_zc},
    {"zcrx_query", &KernelFeatures::zcrx_query},
};
constexpr BoolField memory_bools[] = {
    {"memlock_exempt", &KernelFeatures::memlock_exempt},
};

template <typename F>
void for_each_bool(F&& f) {
    for (const auto& b : ring_bools) f(b);
    for (const auto& b : send_bools) f(b);
    for (const auto& b : recv_bools) f(b);
    for (const auto& b : memory_bools) f(b);
}

constexpr std::string_view value_fields[] = {
    "kernel_release",        "last_op",           "ring_features",
    "query_request_opcodes", "query_setup_flags", "zcrx_query_result",
    "memlock_limit",         "nr_hugepages",      "thp_mode",
};

// ---- the probe, step by step ---------------------------------------------------------------------

void probe_opcodes(KernelFeatures& k, io_uring* ring) {
    io_uring_probe* p = io_uring_get_probe_ring(ring);
    struct Op {
        bool KernelFeatures::*member;
        const char* field;
        int op;
        const char* name;
    };
    const Op ops[] = {
        {&KernelFeatures::op_send, "op_send", IORING_OP_SEND, "SEND"},
        {&KernelFeatures::op_recv, "op_recv", IORING_OP_RECV, "RECV"},
        {&KernelFeatures::op_sendmsg, "op_sendmsg", IORING_OP_SENDMSG, "SENDMSG"},
        {&KernelFeatures::send_zc, "send_zc", abi::op_send_zc, "SEND_ZC"},
        {&KernelFeatures::sendmsg_zc, "sendmsg_zc", abi::op_sendmsg_zc, "SENDMSG_ZC"},
        {&KernelFeatures::recv_zc, "recv_zc", abi::op_recv_zc, "RECV_ZC"},
        {&KernelFeatures::read_multishot, "read_multishot", abi::op_read_multishot, "READ_MULTISHOT"},
        {&KernelFeatures::provide_buffers, "provide_buffers", IORING_OP_PROVIDE_BUFFERS, "PROVIDE_BUFFERS"},
    };
    if (p == nullptr) {
        for (const auto& o : ops)
            k.reasons[o.field] = "IORING_REGISTER_PROBE failed (kernel before 5.6?): the opcode table is unknown";
        return;
    }
    k.last_op = p->last_op;
    for (const auto& o : ops) {
        k.*o.member = io_uring_opcode_supported(p, o.op) != 0;
        if (k.*o.member) continue;
        k.reasons[o.field] = o.op > p->last_op
                                 ? "opcode " + std::to_string(o.op) + " (" + o.name +
                                       ") is past the kernel's last_op " + std::to_string(p->last_op)
                                 : "opcode " + std::to_string(o.op) + " (" + o.name + ") is known but not supported";
    }
    io_uring_free_probe(p);
}

void probe_query(KernelFeatures& k) {
    abi::query_opcode ops{};
    abi::query_hdr hdr{};
    int r = query(abi::query_opcodes, &ops, sizeof ops, hdr);
    if (r == 0 && hdr.result != 0) r = hdr.result;
    if (r != 0) {
        k.reasons["query_interface"] = "IORING_REGISTER_QUERY (35) refused with " + errno_string(r) +
                                       (r == -EINVAL ? ": kernel predates it; used IORING_REGISTER_PROBE "
                                                       "and trial set-ups instead"
                                                     : "");
        k.reasons["zcrx_query"] = "no IORING_REGISTER_QUERY to ask";
        return;
    }
    k.query_interface = true;
    k.query_request_opcodes = ops.nr_request_opcodes;
    k.query_setup_flags = ops.ring_setup_flags;

    unsigned char zcrx[64] = {};
    r = query(abi::query_zcrx, zcrx, sizeof zcrx, hdr);
    k.zcrx_query_result = r != 0 ? r : hdr.result;
    k.zcrx_query = k.zcrx_query_result == 0;
    if (!k.zcrx_query)
        k.reasons["zcrx_query"] = "query op 1 (zcrx) answered " + errno_string(k.zcrx_query_result) +
                                  ": this kernel cannot describe its zcrx limits";
}

void probe_setup_flags(KernelFeatures& k) {
    struct Trial {
        bool KernelFeatures::*member;
        const char* field;
        unsigned flags;
        const char* names;
    };
    const Trial trials[] = {
        {&KernelFeatures::single_issuer, "single_issuer", IORING_SETUP_SINGLE_ISSUER, "SINGLE_ISSUER"},
        {&KernelFeatures::defer_taskrun, "defer_taskrun", IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
         "SINGLE_ISSUER|DEFER_TASKRUN"},
        {&KernelFeatures::coop_taskrun, "coop_taskrun", IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
         "COOP_TASKRUN|TASKRUN_FLAG"},
        {&KernelFeatures::cqe32, "cqe32", IORING_SETUP_CQE32, "CQE32"},
        {&KernelFeatures::cqe_mixed, "cqe_mixed", IORING_SETUP_CQE_MIXED, "CQE_MIXED"},
        {&KernelFeatures::no_sqarray, "no_sqarray", IORING_SETUP_NO_SQARRAY, "NO_SQARRAY"},
        {&KernelFeatures::submit_all, "submit_all", IORING_SETUP_SUBMIT_ALL, "SUBMIT_ALL"},
    };
    for (const auto& t : trials) {
        const int r = try_setup(t.flags);
        k.*t.member = r == 0;
        if (r != 0)
            k.reasons[t.field] =
                std::string("io_uring_setup(") + t.names + ") refused with " + errno_string(r) + memlock_hint(k, r);
    }
}

void probe_send_zc(KernelFeatures& k, io_uring* ring) {
    if (!k.send_zc) {
        k.reasons["zc_report_usage"] = k.reasons["send_zc_fixed"] = "no SEND_ZC: " + k.reasons["send_zc"];
    }
    if (!k.sendmsg_zc) k.reasons["sendmsg_zc_fixed"] = "no SENDMSG_ZC: " + k.reasons["sendmsg_zc"];
    if (!k.send_zc && !k.sendmsg_zc) return;

    UdpPair udp = udp_pair();
    if (udp.error != 0) {
        const std::string why = "loopback UDP socket pair failed: " + errno_string(udp.error);
        for (const char* f : {"zc_report_usage", "send_zc_fixed", "sendmsg_zc_fixed"}) k.reasons.try_emplace(f, why);
        return;
    }

    if (k.send_zc) {
        // Over loopback the receiver copies the pages, so a notification that reports usage at all
        // must say COPIED: that tells "reporting works" apart from "flag ignored".
        prep_send_zc(ring, udp.tx.get(), trial_payload, IORING_SEND_ZC_REPORT_USAGE);
        const ZcOutcome o = submit_and_reap(ring);
        if (!o.sent_all()) {
            k.reasons["zc_report_usage"] =
                o.failure("SEND_ZC with IORING_SEND_ZC_REPORT_USAGE") +
                (o.res == -EINVAL ? " (the flag is unknown before Linux 6.2)" : memlock_hint(k, o.res));
        } else if (!o.more) {
            k.reasons["zc_report_usage"] = "SEND_ZC completed without IORING_CQE_F_MORE: no notification to read";
        } else if ((o.notif_res & IORING_NOTIF_USAGE_ZC_COPIED) == 0) {
            k.reasons["zc_report_usage"] = "notification res " + hex(o.notif_res) +
                                           " lacks IORING_NOTIF_USAGE_ZC_COPIED over loopback, where the "
                                           "kernel always copies: usage is not reported";
        } else {
            k.zc_report_usage = true;
        }
    }

    // A small registered buffer for the FIXED_BUF trials. Registration pins (and, without
    // CAP_IPC_LOCK, accounts) one page: well inside any memlock limit.
    Mapping fixed(4096);
    int reg = fixed ? 0 : -fixed.error();
    if (reg == 0) {
        std::memcpy(fixed.data(), trial_payload, trial_len);
        std::memcpy(fixed.data() + 1024, trial_payload, trial_len);
        iovec iov{fixed.data(), fixed.size()};
        reg = io_uring_register_buffers(ring, &iov, 1);
    }
    if (reg != 0) {
        const std::string why =
            "could not register a 4 KiB buffer to try it: " + errno_string(reg) + memlock_hint(k, reg);
        if (k.send_zc) k.reasons["send_zc_fixed"] = why;
        if (k.sendmsg_zc) k.reasons["sendmsg_zc_fixed"] = why;
        return;
    }

    if (k.send_zc) {
        io_uring_sqe* sqe = prep_send_zc(ring, udp.tx.get(), fixed.data(), IORING_RECVSEND_FIXED_BUF);
        sqe->buf_index = 0;
        const ZcOutcome o = submit_and_reap(ring);
        k.send_zc_fixed = o.sent_all();
        if (!k.send_zc_fixed)
            k.reasons["send_zc_fixed"] = o.failure("SEND_ZC with IORING_RECVSEND_FIXED_BUF") + memlock_hint(k, o.res);
    }

    if (k.sendmsg_zc) {
        // msghdr and iovec are copied in at submission, so the stack is fine for them.
        iovec iov[2] = {{fixed.data(), trial_len / 2}, {fixed.data() + 1024 + trial_len / 2, trial_len / 2}};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = 2;
        io_uring_sqe* sqe = io_uring_get_sqe(ring);
        io_uring_prep_sendmsg(sqe, udp.tx.get(), &msg, 0);
        sqe->opcode = abi::op_sendmsg_zc;
        sqe->ioprio = static_cast<std::uint16_t>(IORING_RECVSEND_FIXED_BUF);
        sqe->buf_index = 0;
        sqe->user_data = 1;
        const ZcOutcome o = submit_and_reap(ring);
        k.sendmsg_zc_fixed = o.sent_all();
        if (!k.sendmsg_zc_fixed)
            k.reasons["sendmsg_zc_fixed"] =
                o.failure("SENDMSG_ZC with IORING_RECVSEND_FIXED_BUF and iovecs in a registered buffer") +
                (o.res == -EINVAL ? " (vectored registered buffers came with Linux 6.15)" : memlock_hint(k, o.res));
    }
    io_uring_unregister_buffers(ring);
}

// IORING_OP_SEND with a destination, from an unconnected socket: the datagram must arrive there.
void probe_send_to_address(KernelFeatures& k, io_uring* ring) {
    if (!k.op_send) {
        k.reasons["send_to_address"] = "no IORING_OP_SEND: " + k.reasons["op_send"];
        return;
    }
    UdpPair udp = udp_pair();
    UniqueFd tx(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in to{};
    socklen_t len = sizeof to;
    if (udp.error != 0 || !tx || ::getsockname(udp.rx.get(), reinterpret_cast<sockaddr*>(&to), &len) != 0) {
        k.reasons["send_to_address"] = "loopback UDP sockets failed: " + errno_string(udp.error ? udp.error : errno);
        return;
    }
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    io_uring_prep_send(sqe, tx.get(), trial_payload, trial_len, 0);
    io_uring_prep_send_set_addr(sqe, reinterpret_cast<const sockaddr*>(&to), static_cast<std::uint16_t>(len));
    sqe->user_data = 1;
    const ZcOutcome o = submit_and_reap(ring);
    char got[trial_len + 1];
    const ssize_t n = ::recv(udp.rx.get(), got, sizeof got, MSG_DONTWAIT);
    k.send_to_address = o.sent_all() && n == static_cast<ssize_t>(trial_len);
    if (!k.send_to_address)
        k.reasons["send_to_address"] =
            o.sent_all() ? "SEND with a destination reported success, but nothing arrived"
                         : o.failure("SEND with a destination (addr2)") +
                               (o.res == -EINVAL ? " (this kernel's SEND takes no destination; SEND_ZC does)" : "");
}

void probe_msg_zerocopy(KernelFeatures& k) {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) {
        k.reasons["msg_zerocopy"] = "TCP socket failed: " + errno_string(errno);
        return;
    }
    const int one = 1;
    k.msg_zerocopy = ::setsockopt(s.get(), SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) == 0;
    if (!k.msg_zerocopy)
        k.reasons["msg_zerocopy"] = "setsockopt(SO_ZEROCOPY) on TCP refused with " + errno_string(errno);
}

void probe_pbuf_rings(KernelFeatures& k, io_uring* ring) {
    struct Trial {
        bool KernelFeatures::*member;
        const char* field;
        std::uint16_t bgid;
        std::uint16_t flags;
        const char* what;
    };
    const Trial trials[] = {
        {&KernelFeatures::pbuf_ring, "pbuf_ring", 0, 0, "IORING_REGISTER_PBUF_RING"},
        {&KernelFeatures::pbuf_ring_incremental, "pbuf_ring_incremental", 1, abi::pbuf_ring_inc,
         "IORING_REGISTER_PBUF_RING with IOU_PBUF_RING_INC"},
    };
    for (const auto& t : trials) {
        Mapping mem(4096);  // 8 entries of 16 bytes; the kernel wants page alignment
        if (!mem) {
            k.reasons[t.field] = std::string("mmap for ") + t.what + " failed: " + errno_string(mem.error());
            continue;
        }
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uintptr_t>(mem.data());
        reg.ring_entries = 8;
        reg.bgid = t.bgid;
        reg.pad = t.flags;  // io_uring_buf_reg.flags in the kernel's header
        const int r = io_uring_register_buf_ring(ring, &reg, 0);
        k.*t.member = r == 0;
        if (r == 0) {
            io_uring_unregister_buf_ring(ring, t.bgid);
        } else {
            k.reasons[t.field] =
                std::string(t.what) + " refused with " + errno_string(r) +
                (t.flags != 0 && r == -EINVAL ? " (incremental rings came with Linux 6.12)" : memlock_hint(k, r));
        }
    }
}

std::string read_first_line(const char* path, int& err) {
    std::ifstream in(path);
    std::string line;
    if (!in || !std::getline(in, line)) {
        err = errno != 0 ? errno : ENOENT;
        return {};
    }
    err = 0;
    return line;
}

// io_uring charges registered memory to RLIMIT_MEMLOCK unless the process is exempt (pinned_memory.hpp).
void probe_memory(KernelFeatures& k) {
    k.memlock_limit = memlock_limit();
    std::string why_not;
    k.memlock_exempt = memlock_exempt(&why_not);
    if (!k.memlock_exempt) k.reasons["memlock_exempt"] = why_not;

    int err = 0;
    const std::string hp = read_first_line("/proc/sys/vm/nr_hugepages", err);
    if (err != 0) k.reasons["nr_hugepages"] = "/proc/sys/vm/nr_hugepages unreadable: " + errno_string(err);
    else k.nr_hugepages = std::strtoul(hp.c_str(), nullptr, 10);
    if (err == 0 && k.nr_hugepages == 0) k.reasons["nr_hugepages"] = "none reserved: MAP_HUGETLB fails with ENOMEM";

    const std::string thp = read_first_line("/sys/kernel/mm/transparent_hugepage/enabled", err);
    const auto open = thp.find('['), close = thp.find(']');
    if (err != 0)
        k.reasons["thp_mode"] = "/sys/kernel/mm/transparent_hugepage/enabled unreadable: " + errno_string(err);
    else if (open == std::string::npos || close == std::string::npos || close < open)
        k.reasons["thp_mode"] = "unexpected contents: \"" + thp + "\"";
    else k.thp_mode = thp.substr(open + 1, close - open - 1);
    if (k.thp_mode == "never") k.reasons["thp_mode"] = "transparent huge pages are off";
}

// ---- the report ----------------------------------------------------------------------------------

void line(std::ostringstream& out, std::string_view name, const std::string& value) {
    constexpr std::size_t width = 26;
    out << "  " << name << ' ';
    const std::size_t used = name.size() + 1;
    out << std::string(used + 3 < width ? width - used : 3, '.') << ' ' << value << '\n';
}

void bool_line(std::ostringstream& out, const KernelFeatures& k, const BoolField& f) {
    line(out, f.name, k.*f.member ? std::string("yes") : "no: " + k.why(f.name));
}

std::string with_reason(const KernelFeatures& k, const char* name, std::string value) {
    auto it = k.reasons.find(name);
    return it == k.reasons.end() ? value : value + " (" + it->second + ")";
}

}  // namespace

std::string KernelFeatures::why(const std::string& feature) const {
    if (auto it = reasons.find(feature); it != reasons.end()) return it->second;
    bool known = false;
    for_each_bool([&](const BoolField& f) { known |= feature == f.name; });
    for (auto v : value_fields) known |= feature == v;
    if (!known) return "unknown feature \"" + feature + "\"";
    return "supported";
}

std::string KernelFeatures::report() const {
    std::ostringstream out;
    out << "zcio: what this kernel supports (Linux " << kernel_release << ")\n";
    line(out, "kernel_release", kernel_release);

    out << "\nring set-up\n";
    bool_line(out, *this, ring_bools[0]);
    line(out, "last_op", std::to_string(last_op));
    line(out, "ring_features", hex(ring_features));
    bool_line(out, *this, ring_bools[1]);
    line(out, "query_request_opcodes", query_interface ? std::to_string(query_request_opcodes) : "not asked");
    line(out, "query_setup_flags", query_interface ? hex(query_setup_flags) : "not asked");
    for (std::size_t i = 2; i < std::size(ring_bools); ++i) bool_line(out, *this, ring_bools[i]);

    out << "\nzero-copy send\n";
    for (const auto& f : send_bools) bool_line(out, *this, f);

    out << "\nreceive\n";
    for (const auto& f : recv_bools) bool_line(out, *this, f);
    line(out, "zcrx_query_result",
         !query_interface         ? "not asked"
         : zcrx_query_result == 0 ? "0"
                                  : errno_string(zcrx_query_result));

    out << "\nmemory\n";
    line(out, "memlock_limit", memory_size_text(memlock_limit));
    for (const auto& f : memory_bools) bool_line(out, *this, f);
    line(out, "nr_hugepages", with_reason(*this, "nr_hugepages", std::to_string(nr_hugepages)));
    line(out, "thp_mode", with_reason(*this, "thp_mode", thp_mode.empty() ? "unknown" : thp_mode));

    out << "\nwhat this means for zcio\n";
    if (!io_uring) {
        out << "  - no io_uring (" << why("io_uring") << "): only plain send() and MSG_ZEROCOPY"
            << (msg_zerocopy ? " work" : " (also unavailable)") << ".\n";
    } else {
        std::string strategies = "copy";
        if (send_zc) strategies += ", zc";
        if (send_zc_fixed) strategies += ", zc-fixed";
        if (sendmsg_zc) strategies += ", sendmsg-zc";
        if (sendmsg_zc_fixed) strategies += ", sendmsg-zc-fixed";
        if (msg_zerocopy) strategies += ", msg-zerocopy";
        out << "  - send strategies that will work: " << strategies << ".\n";
        if (!send_zc) out << "  - no io_uring zero-copy send: Linux 6.0+ is needed for SEND_ZC.\n";
        if (send_zc)
            out << (zc_report_usage
                        ? "  - notifications say when the kernel copied, so zcio can switch a socket back to copy\n"
                          "    where zero-copy does not happen (loopback, veth, most local delivery).\n"
                        : "  - notifications do not report copies: zcio cannot tell zero-copy from copy; measure.\n");
        out << "  - rings: "
            << (defer_taskrun  ? "SINGLE_ISSUER|DEFER_TASKRUN (completions run in the ring's own thread)"
                : coop_taskrun ? "COOP_TASKRUN|TASKRUN_FLAG (no DEFER_TASKRUN)"
                               : "plain set-up (no task-run flags)")
            << (registered_ring_fd ? ", registered ring fd" : "") << ".\n";
        out << "  - receive: "
            << (pbuf_ring ? std::string("buffer rings") + (recvsend_bundle ? " with bundles" : "") +
                                (pbuf_ring_incremental ? " and incremental consumption" : "")
                          : std::string("no buffer rings; plain RECV into the caller's buffers"))
            << ".\n";
        out << "  - zcrx (RECV_ZC): "
            << (recv_zc ? "the kernel has it, but it needs a NIC with header split and flow steering;\n"
                          "    lo and veth cannot (registration fails with EOPNOTSUPP)"
                        : "not in this kernel (" + why("recv_zc") + ")")
            << ".\n";
    }
    if (memlock_exempt || memlock_limit == std::numeric_limits<std::uint64_t>::max()) {
        out << "  - registered memory: no limit (" << (memlock_exempt ? "CAP_IPC_LOCK" : "RLIMIT_MEMLOCK unlimited")
            << ").\n";
    } else {
        out << "  - registered arenas and buffer rings above " << memory_size_text(memlock_limit)
            << " in total will fail with ENOMEM:\n"
               "    raise the limit (`ulimit -l <KiB>`, memlock in /etc/security/limits.conf, LimitMEMLOCK=\n"
               "    in a systemd unit) or grant CAP_IPC_LOCK.\n";
    }
    if (nr_hugepages > 0) {
        out << "  - " << nr_hugepages << " huge pages reserved: hugepage-backed arenas can be used.\n";
    } else {
        out << "  - no huge pages reserved: hugepage-backed arenas fail with ENOMEM; reserve some with\n"
               "    `sysctl vm.nr_hugepages=N` (N pages of Hugepagesize, see /proc/meminfo).";
        out << (thp_mode == "always" || thp_mode == "madvise"
                    ? "\n    Meanwhile THP (" + thp_mode + ") can back arenas via madvise(MADV_HUGEPAGE).\n"
                    : std::string("\n"));
    }
    return out.str();
}

KernelFeatures probe_uncached() {
    KernelFeatures k;
    utsname u{};
    if (::uname(&u) == 0) k.kernel_release = u.release;

    probe_query(k);   // needs no ring
    probe_memory(k);  // needs no ring
    probe_msg_zerocopy(k);

    TrialRing ring;
    const int r = ring.init(8, 0);
    k.io_uring = r == 0;
    if (!k.io_uring) {
        std::string why = "io_uring_queue_init failed with " + errno_string(r);
        int err = 0;
        const std::string disabled = read_first_line("/proc/sys/kernel/io_uring_disabled", err);
        if (r == -EPERM && err == 0) why += " (kernel.io_uring_disabled = " + disabled + ")";
        why += memlock_hint(k, r);
        k.reasons["io_uring"] = why;
    } else {
        k.ring_features = ring.features();
        probe_opcodes(k, ring.get());
        probe_setup_flags(k);
        // Registered first, so the trial sends below also go through the registered fd.
        const int rr = io_uring_register_ring_fd(ring.get());
        k.registered_ring_fd = rr == 1;
        if (!k.registered_ring_fd)
            k.reasons["registered_ring_fd"] =
                "IORING_REGISTER_RING_FDS refused with " + errno_string(rr < 0 ? rr : -EIO);
        k.recvsend_bundle = (k.ring_features & IORING_FEAT_RECVSEND_BUNDLE) != 0;
        if (!k.recvsend_bundle)
            k.reasons["recvsend_bundle"] = "IORING_FEAT_RECVSEND_BUNDLE not in features " + hex(k.ring_features);
        probe_send_zc(k, ring.get());
        probe_send_to_address(k, ring.get());
        probe_pbuf_rings(k, ring.get());
    }

    // Every "no" carries a reason; whatever a failed earlier step kept us from trying says so.
    for_each_bool([&](const BoolField& f) {
        if (!(k.*f.member)) k.reasons.try_emplace(f.name, k.io_uring ? "not tried" : "not tried: no io_uring");
    });
    return k;
}

const KernelFeatures& probe() {
    static const KernelFeatures k = probe_uncached();
    return k;
}

}  // namespace zcio
