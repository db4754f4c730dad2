// The probe against the real kernel. Facts measured on the reference kernel (6.18, see
// /work/shared/kernel-api.md) are asserted where the running kernel is new enough for them, and skipped
// with the probe's own reason where it is not. Two tests ask the kernel themselves, without the
// probe, and compare.
#include "zcio/probe.hpp"

#include <gtest/gtest.h>

#include "uring_compat.hpp"
#include "zcio/error.hpp"
#include "zcio/ring.hpp"
#include "zcio/unique_fd.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using zcio::KernelFeatures;

// Running kernel >= major.minor?
bool kernel_at_least(int major, int minor) {
    utsname u{};
    if (::uname(&u) != 0) return false;
    int ma = 0, mi = 0;
    if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
    return ma > major || (ma == major && mi >= minor);
}

#define SKIP_BELOW(major, minor)                                                                              \
    do {                                                                                                      \
        if (!kernel_at_least(major, minor))                                                                   \
            GTEST_SKIP() << "kernel " << zcio::probe().kernel_release << " is older than " #major "." #minor; \
    } while (0)

#define EXPECT_FEATURE(field) EXPECT_TRUE(k.field) << #field ": " << k.why(#field)

struct NamedBool {
    const char* name;
    bool KernelFeatures::*member;
};

// Written out here, independently of probe.cpp's table, so a field the report forgets shows up.
const NamedBool all_bools[] = {
    {"io_uring", &KernelFeatures::io_uring},
    {"op_send", &KernelFeatures::op_send},
    {"op_recv", &KernelFeatures::op_recv},
    {"op_sendmsg", &KernelFeatures::op_sendmsg},
    {"send_zc", &KernelFeatures::send_zc},
    {"sendmsg_zc", &KernelFeatures::sendmsg_zc},
    {"recv_zc", &KernelFeatures::recv_zc},
    {"read_multishot", &KernelFeatures::read_multishot},
    {"provide_buffers", &KernelFeatures::provide_buffers},
    {"single_issuer", &KernelFeatures::single_issuer},
    {"defer_taskrun", &KernelFeatures::defer_taskrun},
    {"coop_taskrun", &KernelFeatures::coop_taskrun},
    {"cqe32", &KernelFeatures::cqe32},
    {"cqe_mixed", &KernelFeatures::cqe_mixed},
    {"no_sqarray", &KernelFeatures::no_sqarray},
    {"submit_all", &KernelFeatures::submit_all},
    {"registered_ring_fd", &KernelFeatures::registered_ring_fd},
    {"zc_report_usage", &KernelFeatures::zc_report_usage},
    {"send_zc_fixed", &KernelFeatures::send_zc_fixed},
    {"sendmsg_zc_fixed", &KernelFeatures::sendmsg_zc_fixed},
    {"msg_zerocopy", &KernelFeatures::msg_zerocopy},
    {"send_to_address", &KernelFeatures::send_to_address},
    {"recvsend_bundle", &KernelFeatures::recvsend_bundle},
    {"pbuf_ring", &KernelFeatures::pbuf_ring},
    {"pbuf_ring_incremental", &KernelFeatures::pbuf_ring_incremental},
    {"query_interface", &KernelFeatures::query_interface},
    {"zcrx_query", &KernelFeatures::zcrx_query},
    {"memlock_exempt", &KernelFeatures::memlock_exempt},
};
const char* const all_values[] = {
    "kernel_release",        "last_op",           "ring_features",
    "query_request_opcodes", "query_setup_flags", "zcrx_query_result",
    "memlock_limit",         "nr_hugepages",      "thp_mode",
};

// The report's line for `name` ("  name ..... value"), or "" if there is none.
std::string report_line(const std::string& report, const std::string& name) {
    std::istringstream in(report);
    for (std::string l; std::getline(in, l);)
        if (l.rfind("  " + name + " .", 0) == 0) return l;
    return {};
}

int count_fds() {
    int n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) return -1;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n - 1;  // the directory's own fd
}

int count_io_uring_fds() {
    int n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) return -1;
    while (dirent* e = ::readdir(d)) {
        char target[256] = {};
        const std::string path = std::string("/proc/self/fd/") + e->d_name;
        if (::readlink(path.c_str(), target, sizeof target - 1) > 0 && std::strstr(target, "io_uring")) ++n;
    }
    ::closedir(d);
    return n;
}

// ---- the measured facts of the reference kernel ----------------------------------------------------

TEST(ProbeFacts, IoUringIsAvailable) {
    const auto& k = zcio::probe();
    if (!k.io_uring) GTEST_SKIP() << "no io_uring here: " << k.why("io_uring");
    EXPECT_GT(k.last_op, 0U);
    EXPECT_NE(k.ring_features, 0U);
}

TEST(ProbeFacts, ZeroCopySendOpcodes) {
    const auto& k = zcio::probe();
    if (k.last_op < zcio::abi::op_sendmsg_zc)
        GTEST_SKIP() << "last_op " << k.last_op << " < 48 (SENDMSG_ZC): kernel before 6.1";
    EXPECT_FEATURE(op_send);
    EXPECT_FEATURE(op_recv);
    EXPECT_FEATURE(op_sendmsg);
    EXPECT_FEATURE(send_zc);
    EXPECT_FEATURE(sendmsg_zc);
    EXPECT_FEATURE(provide_buffers);
}

TEST(ProbeFacts, ReceiveOpcodes) {
    const auto& k = zcio::probe();
    if (k.last_op < zcio::abi::op_recv_zc)
        GTEST_SKIP() << "last_op " << k.last_op << " < 58 (RECV_ZC): kernel before 6.15";
    EXPECT_FEATURE(recv_zc);
    EXPECT_FEATURE(read_multishot);
}

TEST(ProbeFacts, ReportUsageSaysCopiedOverLoopback) {
    SKIP_BELOW(6, 2);
    const auto& k = zcio::probe();
    if (!k.send_zc) GTEST_SKIP() << "no SEND_ZC: " << k.why("send_zc");
    EXPECT_FEATURE(zc_report_usage);
}

TEST(ProbeFacts, FixedBuffersForSendAndSendmsg) {
    const auto& k = zcio::probe();
    if (!k.send_zc) GTEST_SKIP() << "no SEND_ZC: " << k.why("send_zc");
    EXPECT_FEATURE(send_zc_fixed);
    // Vectored registered buffers came with READV_FIXED/WRITEV_FIXED (opcodes 60, 61: Linux 6.15).
    if (k.last_op < zcio::abi::op_writev_fixed)
        GTEST_SKIP() << "last_op " << k.last_op << ": no vectored registered buffers; sendmsg_zc_fixed says "
                     << k.why("sendmsg_zc_fixed");
    EXPECT_FEATURE(sendmsg_zc_fixed);
}

TEST(ProbeFacts, MsgZerocopy) {
    const auto& k = zcio::probe();
    EXPECT_FEATURE(msg_zerocopy);
}

TEST(ProbeFacts, BundlesAndBufferRings) {
    SKIP_BELOW(6, 12);
    const auto& k = zcio::probe();
    EXPECT_FEATURE(recvsend_bundle);
    EXPECT_NE(k.ring_features & IORING_FEAT_RECVSEND_BUNDLE, 0U);
    EXPECT_FEATURE(pbuf_ring);
    EXPECT_FEATURE(pbuf_ring_incremental);
}

TEST(ProbeFacts, RingSetUpFlags) {
    SKIP_BELOW(6, 6);
    const auto& k = zcio::probe();
    EXPECT_FEATURE(single_issuer);
    EXPECT_FEATURE(defer_taskrun);
    EXPECT_FEATURE(coop_taskrun);
    EXPECT_FEATURE(cqe32);
    EXPECT_FEATURE(no_sqarray);
    EXPECT_FEATURE(submit_all);
    EXPECT_FEATURE(registered_ring_fd);
    if (!kernel_at_least(6, 18)) GTEST_SKIP() << "CQE_MIXED came with 6.18: " << k.why("cqe_mixed");
    EXPECT_FEATURE(cqe_mixed);
}

TEST(ProbeFacts, QueryInterface) {
    const auto& k = zcio::probe();
    if (!k.query_interface) {
        // Older kernels refuse IORING_REGISTER_QUERY; the probe must have fallen back, and said so.
        EXPECT_NE(k.why("query_interface"), "supported");
        EXPECT_FALSE(k.zcrx_query);
        GTEST_SKIP() << "no query interface: " << k.why("query_interface");
    }
    EXPECT_EQ(k.query_request_opcodes, k.last_op + 1) << "query and IORING_REGISTER_PROBE disagree";
    EXPECT_EQ(k.zcrx_query, k.zcrx_query_result == 0);
    if (!k.zcrx_query) {
        EXPECT_NE(k.why("zcrx_query").find(zcio::errno_string(k.zcrx_query_result)), std::string::npos);
    }
    if (kernel_at_least(6, 18) && !kernel_at_least(6, 19)) {
        // Measured on 6.18: op 1 is not there yet.
        EXPECT_EQ(k.zcrx_query_result, -EOPNOTSUPP);
        EXPECT_EQ(k.ring_features, 0x3ffffU);
        EXPECT_EQ(k.query_setup_flags, 0x7ffffU);
    }
}

TEST(ProbeFacts, Memory) {
    const auto& k = zcio::probe();
    rlimit rl{};
    ASSERT_EQ(::getrlimit(RLIMIT_MEMLOCK, &rl), 0);
    EXPECT_EQ(k.memlock_limit, rl.rlim_cur == RLIM_INFINITY ? std::numeric_limits<std::uint64_t>::max() : rl.rlim_cur);
    std::ifstream hp("/proc/sys/vm/nr_hugepages");
    unsigned long n = 0;
    if (hp >> n) {
        EXPECT_EQ(k.nr_hugepages, n);
    }
    if (std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled")) {
        EXPECT_TRUE(k.thp_mode == "always" || k.thp_mode == "madvise" || k.thp_mode == "never") << k.thp_mode;
    }
    if (::geteuid() == 0) {
        EXPECT_FEATURE(memlock_exempt);
    }
}

// ---- the report and why() ---------------------------------------------------------------------------

TEST(ProbeReport, HasALineForEveryField) {
    const std::string r = zcio::probe().report();
    for (const auto& b : all_bools) {
        EXPECT_NE(report_line(r, b.name), "") << "no line for " << b.name << "\n" << r;
    }
    for (const char* v : all_values) {
        EXPECT_NE(report_line(r, v), "") << "no line for " << v << "\n" << r;
    }
    for (const char* group :
         {"\nring set-up\n", "\nzero-copy send\n", "\nreceive\n", "\nmemory\n", "\nwhat this means for zcio\n"}) {
        EXPECT_NE(r.find(group), std::string::npos) << group;
    }
}

TEST(ProbeReport, SaysNoWithAReasonWhereAFlagIsFalse) {
    const auto& k = zcio::probe();
    const std::string r = k.report();
    for (const auto& b : all_bools) {
        const std::string l = report_line(r, b.name);
        if (k.*b.member) {
            EXPECT_EQ(l.substr(l.size() - 4), " yes") << l;
            EXPECT_EQ(k.why(b.name), "supported");
        } else {
            const std::string why = k.why(b.name);
            EXPECT_NE(why, "supported") << b.name;
            EXPECT_FALSE(why.empty()) << b.name;
            EXPECT_NE(l.find("... no: " + why), std::string::npos) << l;
        }
    }
    EXPECT_NE(k.why("no_such_feature").find("unknown"), std::string::npos);
}

TEST(ProbeReport, SaysWhatThisMeans) {
    const auto& k = zcio::probe();
    const std::string r = k.report();
    const std::string means = r.substr(r.find("what this means for zcio"));
    if (k.send_zc_fixed) {
        EXPECT_NE(means.find("zc-fixed"), std::string::npos) << means;
    }
    if (k.msg_zerocopy) {
        EXPECT_NE(means.find("msg-zerocopy"), std::string::npos) << means;
    }
    if (!k.memlock_exempt && k.memlock_limit != std::numeric_limits<std::uint64_t>::max()) {
        EXPECT_NE(means.find("ulimit -l"), std::string::npos) << means;
    }
    if (k.nr_hugepages == 0) {
        EXPECT_NE(means.find("sysctl vm.nr_hugepages="), std::string::npos) << means;
    }
    if (k.recv_zc) {
        EXPECT_NE(means.find("header split"), std::string::npos) << means;
    }
}

// An unprivileged process is not exempt from RLIMIT_MEMLOCK, and the report must tell it what to do.
TEST(ProbeReport, UnprivilegedProcessIsToldToRaiseTheMemlockLimit) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to drop to an unprivileged user";
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) ::_exit(10);
        const KernelFeatures k = zcio::probe_uncached();
        if (k.memlock_exempt) ::_exit(11);
        if (k.why("memlock_exempt").find("CAP_IPC_LOCK") == std::string::npos) ::_exit(12);
        if (k.memlock_limit != std::numeric_limits<std::uint64_t>::max() &&
            k.report().find("ulimit -l") == std::string::npos)
            ::_exit(13);
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "10: could not drop privileges, 11: still exempt, 12: reason lacks "
                                         "CAP_IPC_LOCK, 13: report lacks `ulimit -l`";
}

// ---- consistency --------------------------------------------------------------------------------

TEST(ProbeConsistency, ImpliedFeatures) {
    const auto& k = zcio::probe();
    if (k.send_zc_fixed) {
        EXPECT_TRUE(k.send_zc);
    }
    if (k.zc_report_usage) {
        EXPECT_TRUE(k.send_zc);
    }
    if (k.sendmsg_zc_fixed) {
        EXPECT_TRUE(k.sendmsg_zc);
    }
    if (k.send_to_address) {
        EXPECT_TRUE(k.op_send);
    }
    if (k.defer_taskrun) {
        EXPECT_TRUE(k.single_issuer);
    }
    if (k.pbuf_ring_incremental) {
        EXPECT_TRUE(k.pbuf_ring);
    }
    if (k.zcrx_query) {
        EXPECT_TRUE(k.query_interface);
    }
    EXPECT_EQ(k.recvsend_bundle, (k.ring_features & IORING_FEAT_RECVSEND_BUNDLE) != 0);
    if (k.send_zc) {
        EXPECT_GE(k.last_op, zcio::abi::op_send_zc);
    }
    if (k.recv_zc) {
        EXPECT_GE(k.last_op, zcio::abi::op_recv_zc);
    }
    if (!k.io_uring) {
        for (const auto& b : all_bools) {
            const std::string n = b.name;
            if (n != "msg_zerocopy" && n != "memlock_exempt" && n != "query_interface" && n != "zcrx_query") {
                EXPECT_FALSE(k.*b.member) << n << " without io_uring";
            }
        }
    }
    // What the query interface says the kernel knows, the trial set-ups must have accepted.
    if (k.query_interface) {
        const std::pair<bool KernelFeatures::*, unsigned> flags[] = {
            {&KernelFeatures::single_issuer, IORING_SETUP_SINGLE_ISSUER},
            {&KernelFeatures::cqe32, IORING_SETUP_CQE32},
            {&KernelFeatures::cqe_mixed, IORING_SETUP_CQE_MIXED},
            {&KernelFeatures::no_sqarray, IORING_SETUP_NO_SQARRAY},
            {&KernelFeatures::submit_all, IORING_SETUP_SUBMIT_ALL},
        };
        for (const auto& [member, flag] : flags) {
            EXPECT_EQ(k.*member, (k.query_setup_flags & flag) != 0) << "setup flag 0x" << std::hex << flag;
        }
    }
}

TEST(ProbeConsistency, ProbeCachesOneObjectAcrossThreads) {
    const KernelFeatures* seen[4] = {};
    std::vector<std::thread> threads;
    for (auto& s : seen) threads.emplace_back([&s] { s = &zcio::probe(); });
    for (auto& t : threads) t.join();
    for (const auto* s : seen) {
        EXPECT_EQ(s, &zcio::probe());
    }
}

TEST(ProbeConsistency, UncachedProbeAgreesWithTheCache) {
    const auto& a = zcio::probe();
    const KernelFeatures b = zcio::probe_uncached();
    EXPECT_EQ(a.report(), b.report());
    EXPECT_EQ(a.reasons, b.reasons);
}

TEST(ProbeConsistency, LeaksNoFdsOrRingsAndIsFast) {
    (void)zcio::probe();
    const int fds = count_fds(), rings = count_io_uring_fds();
    auto best = std::chrono::steady_clock::duration::max();
    for (int i = 0; i < 3; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        const KernelFeatures k = zcio::probe_uncached();
        best = std::min(best, std::chrono::steady_clock::now() - t0);
    }
    EXPECT_EQ(count_fds(), fds);
    EXPECT_EQ(count_io_uring_fds(), rings);
    EXPECT_LT(best, std::chrono::milliseconds(100))
        << std::chrono::duration_cast<std::chrono::microseconds>(best).count() << " us";
}

// ---- the kernel, asked without the probe ---------------------------------------------------------

TEST(ProbeCrossCheck, DeferTaskrunNeedsSingleIssuer) {
    const auto& k = zcio::probe();
    if (!k.io_uring) GTEST_SKIP() << k.why("io_uring");
    auto setup = [](unsigned flags) {
        io_uring ring{};
        io_uring_params p{};
        p.flags = flags;
        const int r = io_uring_queue_init_params(4, &ring, &p);
        if (r == 0) io_uring_queue_exit(&ring);
        return r;
    };
    const int both = setup(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    EXPECT_EQ(both == 0, k.defer_taskrun) << zcio::errno_string(both) << " vs probe: " << k.why("defer_taskrun");
    if (!k.defer_taskrun) GTEST_SKIP() << "no DEFER_TASKRUN: " << k.why("defer_taskrun");
    // DEFER_TASKRUN alone is refused: it is not one of the combinations the probe reports.
    EXPECT_EQ(setup(IORING_SETUP_DEFER_TASKRUN), -EINVAL);
    // And zcio::Ring picks it.
    zcio::Ring ring;
    EXPECT_TRUE(ring.defer_taskrun()) << ring.describe();
}

// A SEND_ZC with REPORT_USAGE through zcio::Ring over loopback UDP: the data arrives, the result CQE
// has F_MORE, the notification follows and says COPIED, exactly when the probe says usage works.
TEST(ProbeCrossCheck, SendZcOverLoopbackMatchesTheProbe) {
    const auto& k = zcio::probe();
    if (!k.send_zc) GTEST_SKIP() << "no SEND_ZC: " << k.why("send_zc");

    zcio::UniqueFd rx(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    zcio::UniqueFd tx(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(rx && tx);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(::bind(rx.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
    ASSERT_EQ(::getsockname(rx.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
    ASSERT_EQ(::connect(tx.get(), reinterpret_cast<sockaddr*>(&a), len), 0);

    struct Send : zcio::Completion {
        int res = 1;
        bool more = false, notified = false;
        std::uint32_t notif = 0;
    } op;
    op.fn = [](zcio::Completion* c, const io_uring_cqe& cqe) {
        auto* s = static_cast<Send*>(c);
        if (cqe.flags & IORING_CQE_F_NOTIF) {
            s->notified = true;
            s->notif = static_cast<std::uint32_t>(cqe.res);
        } else {
            s->res = cqe.res;
            s->more = (cqe.flags & IORING_CQE_F_MORE) != 0;
        }
    };
    zcio::Ring ring({.sq_entries = 4});
    static const char payload[] = "cross-check: SEND_ZC by hand";
    io_uring_sqe* sqe = ring.sqe();
    io_uring_prep_send(sqe, tx.get(), payload, sizeof payload, 0);
    sqe->opcode = zcio::abi::op_send_zc;
    sqe->ioprio = IORING_SEND_ZC_REPORT_USAGE;
    io_uring_sqe_set_data(sqe, &op);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while ((op.res == 1 || (op.more && !op.notified)) && std::chrono::steady_clock::now() < deadline)
        ring.run(1, std::chrono::milliseconds(100));
    ASSERT_NE(op.res, 1) << "no completion within 2 s";

    if (op.res < 0) {
        EXPECT_FALSE(k.zc_report_usage) << "SEND_ZC by hand: " << zcio::errno_string(op.res);
        return;
    }
    EXPECT_EQ(op.res, static_cast<int>(sizeof payload));
    ASSERT_TRUE(op.more);
    ASSERT_TRUE(op.notified) << "no notification within 2 s";
    char got[64] = {};
    EXPECT_EQ(::recv(rx.get(), got, sizeof got, MSG_DONTWAIT), static_cast<ssize_t>(sizeof payload));
    EXPECT_STREQ(got, payload);
    const bool copied = (op.notif & IORING_NOTIF_USAGE_ZC_COPIED) != 0;
    EXPECT_EQ(copied, k.zc_report_usage) << "notification res 0x" << std::hex << op.notif
                                         << "; probe: " << k.why("zc_report_usage");
}

}  // namespace
