// Locked memory for zero-copy sends: the limit, the exemption, and a trial charge that sends nothing.
#include "pinned_memory.hpp"

#include "zcio/unique_fd.hpp"

#include <liburing.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <limits>

namespace zcio {
namespace {

constexpr std::uint64_t unlimited = std::numeric_limits<std::uint64_t>::max();

bool has_effective_cap_ipc_lock() {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capget, &hdr, data) != 0) return false;
    return (data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective & CAP_TO_MASK(CAP_IPC_LOCK)) != 0;
}

// The initial user namespace maps every uid to itself: "0 0 4294967295". Unreadable: assume it.
bool in_initial_user_namespace() {
    std::ifstream in("/proc/self/uid_map");
    unsigned long inner = 1, outer = 1, count = 0;
    if (!in) return true;
    return (in >> inner >> outer >> count) && inner == 0 && outer == 0 && count == 4294967295UL;
}

// Reaps the trial's completion and, when one is due, its notification (the charge goes with it).
// Returns the request's result, or 0 when nothing came within the deadline (nothing is known).
int reap_trial(io_uring* ring) {
    int res = 0;
    bool completed = false, notif_due = false;
    for (int waits = 0; waits < 50 && (!completed || notif_due); ++waits) {
        __kernel_timespec ts{0, 10'000'000};
        io_uring_cqe* cqe = nullptr;
        if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) != 0) continue;
        if (cqe->flags & IORING_CQE_F_NOTIF) {
            notif_due = false;
        } else {
            completed = true;
            res = cqe->res;
            notif_due = (cqe->flags & IORING_CQE_F_MORE) != 0;
        }
        io_uring_cqe_seen(ring, cqe);
    }
    return completed ? res : 0;
}

}  // namespace

std::uint64_t memlock_limit() noexcept {
    rlimit rl{};
    if (::getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return unlimited;
    return rl.rlim_cur;
}

bool memlock_exempt(std::string* why_not) {
    const bool cap = has_effective_cap_ipc_lock();
    const bool init_ns = in_initial_user_namespace();
    if (why_not && !cap)
        *why_not = "no CAP_IPC_LOCK: registered memory counts against RLIMIT_MEMLOCK (" +
                   memory_size_text(memlock_limit()) + ")";
    else if (why_not && !init_ns)
        *why_not = "CAP_IPC_LOCK only inside a user namespace; io_uring checks the initial one";
    return cap && init_ns;
}

std::string memory_size_text(std::uint64_t v) {
    if (v == unlimited) return "unlimited";
    if (v >= (1ULL << 30) && v % (1ULL << 30) == 0) return std::to_string(v >> 30) + " GiB";
    if (v >= (1ULL << 20) && v % (1ULL << 20) == 0) return std::to_string(v >> 20) + " MiB";
    if (v >= (1ULL << 10) && v % (1ULL << 10) == 0) return std::to_string(v >> 10) + " KiB";
    return std::to_string(v) + " B";
}

std::size_t pinned_send_charge(std::size_t bytes) noexcept {
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return (bytes / page + 2) * page;
}

int try_pinned_charge(std::size_t bytes) {
    if (bytes == 0 || memlock_limit() == unlimited || memlock_exempt()) return 0;
    // The request's length is 32 bits; a larger bound is refused anyway by any realistic limit.
    const std::size_t len = std::min<std::size_t>(bytes, 1u << 30);
    io_uring ring{};
    if (const int r = io_uring_queue_init(2, &ring, 0); r < 0) return r;  // -ENOMEM: not even a ring fits
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const int sock_err = sock ? 0 : -errno;
    // Address space only, never touched: the kernel checks the range and charges it, then UDP refuses
    // the datagram (EMSGSIZE above 64 KiB, EDESTADDRREQ on an unconnected socket) before reading it.
    void* range = ::mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    const int map_err = range == MAP_FAILED ? -errno : 0;
    int res = sock_err ? sock_err : map_err;
    if (res == 0) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        io_uring_prep_send_zc(sqe, sock.get(), range, static_cast<unsigned>(len), 0, 0);
        const int submitted = io_uring_submit(&ring);
        res = submitted == 1 ? reap_trial(&ring) : submitted < 0 ? submitted : -EIO;
        if (submitted == 1 && res != -ENOMEM) res = 0;  // charged: UDP's own refusal does not matter
    }
    io_uring_queue_exit(&ring);  // cancels a request that never answered before its memory goes
    if (range != MAP_FAILED) ::munmap(range, len);
    return res;
}

std::string pinned_send_advice() {
    const std::uint64_t limit = memlock_limit();
    const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    return "Zero-copy from memory that is not registered pins each send's pages, and for a process without "
           "CAP_IPC_LOCK the kernel charges them (" +
           std::to_string(page >> 10) +
           " KiB per page plus two pages a "
           "send, while it is in flight) to RLIMIT_MEMLOCK (" +
           memory_size_text(limit) +
           " here, shared by every "
           "process of uid " +
           std::to_string(::getuid()) +
           "), refusing sends past it with ENOMEM. Fix: raise the "
           "limit (`ulimit -l`, memlock in /etc/security/limits.conf, LimitMEMLOCK= in a systemd unit) or grant "
           "CAP_IPC_LOCK; or send from a registered BufferArena with zc-fixed (charged once, at registration)";
}

}  // namespace zcio
