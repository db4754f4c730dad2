#include "zcio/ring.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "uring_compat.hpp"
#include "zcio/error.hpp"

namespace {

struct Nop : zcio::Completion {
    int res = -1;
    int calls = 0;
};

void prep_nop(zcio::Ring& ring, Nop& op) {
    op.fn = [](zcio::Completion* c, const io_uring_cqe& cqe) {
        auto* self = static_cast<Nop*>(c);
        self->res = cqe.res;
        ++self->calls;
    };
    io_uring_sqe* sqe = ring.sqe();
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, &op);
}

TEST(Ring, DispatchesEachCompletionToItsOwner) {
    zcio::Ring ring;
    Nop a, b;
    prep_nop(ring, a);
    prep_nop(ring, b);
    EXPECT_EQ(ring.run(2), 2);
    EXPECT_EQ(a.calls, 1);
    EXPECT_EQ(b.calls, 1);
    EXPECT_EQ(a.res, 0);
}

TEST(Ring, UsesDeferredTaskRunWhereTheKernelAllowsIt) {
    zcio::Ring ring;
    // This kernel (6.18) accepts SINGLE_ISSUER|DEFER_TASKRUN; older ones fall back and say why.
    if (!ring.defer_taskrun()) GTEST_SKIP() << "kernel refused DEFER_TASKRUN: " << ring.describe();
    EXPECT_NE(ring.setup_flags() & IORING_SETUP_SINGLE_ISSUER, 0U);
    EXPECT_NE(ring.describe().find("DEFER_TASKRUN"), std::string::npos) << ring.describe();
    EXPECT_EQ(ring.cq_entries(), 8 * ring.sq_entries());
}

TEST(Ring, SqeNeverReturnsNullWhenTheQueueIsFull) {
    zcio::Ring ring({.sq_entries = 4, .cq_entries = 64});
    std::vector<Nop> ops(20);
    for (auto& op : ops) prep_nop(ring, op);  // more than the SQ holds: sqe() submits as it goes
    int seen = 0;
    while (seen < 20) {
        int n = ring.run(1);
        ASSERT_GT(n, 0);
        seen += n;
    }
    for (auto& op : ops) EXPECT_EQ(op.calls, 1);
}

TEST(Ring, CqOverflowLosesNoCompletion) {
    // A CQ of 16 and 64 NOPs in flight: the kernel parks the excess in its overflow list, and run()
    // must keep coming back until every completion has been dispatched exactly once.
    zcio::Ring ring({.sq_entries = 16, .cq_entries = 16});
    std::vector<Nop> ops(64);
    for (auto& op : ops) prep_nop(ring, op);  // sqe() submits each full SQ; nothing is reaped
    ASSERT_GE(ring.submit(), 0);
    int seen = 0;
    for (int i = 0; i < 100 && seen < 64; ++i) seen += ring.run(1);
    EXPECT_EQ(seen, 64);
    for (auto& op : ops) EXPECT_EQ(op.calls, 1);
    EXPECT_GT(ring.cq_overflows(), 0U);
}

TEST(Ring, RejectsACompletionQueueSmallerThanTheSubmissionQueue) {
    try {
        zcio::Ring ring({.sq_entries = 64, .cq_entries = 8});
        FAIL() << "a CQ smaller than the SQ was accepted";
    } catch (const zcio::SetupError& e) {
        EXPECT_NE(std::string(e.what()).find("cq_entries >= sq_entries"), std::string::npos) << e.what();
    }
}

TEST(Ring, RunTimesOutWhenNothingCompletes) {
    zcio::Ring ring;
    EXPECT_EQ(ring.run(1, std::chrono::milliseconds(20)), -ETIME);
}

TEST(Ring, RunWaitsNoLongerThanItsTimeoutWhenFewerCompletionsArrive) {
    // Two asked for, one comes: at the timeout the kernel returns 0 (a CQE is there). liburing
    // 2.3's submit_and_wait_timeout then waits again with the whole timeout; run() must not.
    zcio::Ring ring;
    Nop a;
    prep_nop(ring, a);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(ring.run(2, std::chrono::milliseconds(300)), 1);
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(a.calls, 1);
    EXPECT_GE(took, std::chrono::milliseconds(250));
    EXPECT_LT(took, std::chrono::milliseconds(500)) << "the wait was started again after its timeout";
}

// A registered file carries a request (IOSQE_FIXED_FILE with its slot); slots are reused lowest
// first; a full table says -ENFILE; and the table's reference goes with unregister_file().
TEST(Ring, RegisteredFilesCarryRequestsAndTheirSlotsAreReused) {
    zcio::Ring ring({.file_slots = 2});
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    const int a = ring.register_file(sv[0]);
    ASSERT_EQ(a, 0) << "this kernel has sparse file tables (5.19+)";
    EXPECT_EQ(ring.register_file(sv[1]), 1);
    EXPECT_EQ(ring.register_file(sv[1]), -ENFILE);

    Nop op;
    op.fn = [](zcio::Completion* c, const io_uring_cqe& cqe) {
        static_cast<Nop*>(c)->res = cqe.res;
        ++static_cast<Nop*>(c)->calls;
    };
    const char msg[] = "through slot 0";
    io_uring_sqe* sqe = ring.sqe();
    io_uring_prep_send(sqe, a, msg, sizeof msg, 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data(sqe, &op);
    ASSERT_EQ(ring.run(1, std::chrono::seconds(5)), 1);
    EXPECT_EQ(op.res, static_cast<int>(sizeof msg));
    char got[64] = {};
    EXPECT_EQ(::recv(sv[1], got, sizeof got, MSG_DONTWAIT), static_cast<ssize_t>(sizeof msg));
    EXPECT_STREQ(got, msg);

    // The table keeps sv[0] alive after close(); unregistering lets it go (the peer sees EOF...
    // for a datagram pair: the peer's send then fails with ECONNREFUSED).
    ::close(sv[0]);
    EXPECT_EQ(::send(sv[1], "x", 1, MSG_DONTWAIT), 1) << "the table's reference kept the socket open";
    ring.unregister_file(a);
    EXPECT_EQ(::send(sv[1], "x", 1, MSG_DONTWAIT), -1) << "unregistering dropped the last reference";
    EXPECT_EQ(ring.register_file(sv[1]), 0) << "the freed slot is reused";
    ::close(sv[1]);
}

TEST(Ring, NoFileTableWhenNoneIsAskedFor) {
    zcio::Ring ring({.file_slots = 0});
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    EXPECT_LT(ring.register_file(sv[0]), 0);
    ::close(sv[0]);
    ::close(sv[1]);
}

}  // namespace
