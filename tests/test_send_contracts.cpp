// The engine's contracts with the code around it: a handler that throws leaves the ring and the
// engine consistent (its exception comes out of the public call, after the CQ head moved), and the
// invariants only a bug can break abort a debug build and are counted in a release build, each
// shown with a crafted completion.
#include "invariant.hpp"
#include "send_core.hpp"
#include "uring_compat.hpp"
#include "zcio/buffer_arena.hpp"
#include "zcio/error.hpp"
#include "zcio/send_engine.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <stdexcept>
#include <vector>

#include "net_fixtures.hpp"

namespace {

using namespace std::chrono_literals;

struct Boom : std::runtime_error {
    Boom() : std::runtime_error("handler says no") {}
};

// ---- handlers that throw ---------------------------------------------------------------------------

// A bare Ring: a completion whose fn throws. The ring must move its CQ head past that CQE (so it is
// not handed out twice), let the exception out, and dispatch the CQEs behind it on the next run.
TEST(RingContract, ACompletionThatThrowsIsPassedOnceAndTheRestFollow) {
    zcio::Ring ring;
    struct Counted : zcio::Completion {
        int calls = 0;
        bool throws = false;
    } ops[5];
    for (auto& op : ops) {
        op.fn = [](zcio::Completion* c, const io_uring_cqe&) {
            auto& self = *static_cast<Counted*>(c);
            ++self.calls;
            if (self.throws) throw Boom();
        };
    }
    ops[2].throws = true;
    for (auto& op : ops) {
        io_uring_sqe* sqe = ring.sqe();
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, &op);
    }
    ASSERT_EQ(ring.submit(), 5);
    // All five are posted before we look (NOPs complete inline, or at the first wait).
    EXPECT_THROW(ring.run(5, 1s), Boom);
    EXPECT_FALSE(ring.dispatching()) << "the ring left its walk";
    EXPECT_EQ(io_uring_cq_ready(ring.native()), 2u) << "head moved past the three it handled";
    EXPECT_EQ(ring.run(), 2);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(ops[i].calls, 1) << "CQE " << i << " dispatched exactly once";
}

// Many zero-copy sends in flight; a few of their release handlers throw. Each exception comes out
// of the run() that dispatched it; every buffer still comes back exactly once, the engine's
// counts stay exact, and nothing is stray.
TEST(SendContract, ReleaseHandlersThatThrowLeaveTheEngineConsistent) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 16 << 10, .slab_count = 64});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::udp_loopback_pair();
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    constexpr int sends = 48;
    int releases = 0, thrown = 0;
    for (int i = 0; i < sends; ++i) {
        zcio::Buffer b = arena.take();
        b.resize(1000);
        engine.send(sock, std::move(b), zcio::Storage{[&releases, i](zcio::Release&& r) {
                        ++releases;
                        EXPECT_TRUE(r.buffer);
                        if (i % 10 == 3) throw Boom();
                    }});
    }
    for (int spins = 0; engine.ops_in_use() > 0 && spins < 1000; ++spins) {
        try {
            engine.run(true, 100ms);
        } catch (const Boom&) {
            ++thrown;
        }
    }
    EXPECT_EQ(engine.ops_in_use(), 0u);
    EXPECT_EQ(releases, sends) << "every buffer back exactly once";
    EXPECT_GE(thrown, 1) << "an exception comes out of run()";
    EXPECT_LE(thrown, 5) << "at most one per throwing handler";
    EXPECT_EQ(engine.inflight_bytes(), 0u);
    EXPECT_EQ(arena.available(), arena.slab_count()) << "no buffer lost";
    const auto c = engine.counters();
    EXPECT_EQ(c.stray_cqes + c.stray_notifications + c.inflight_underflows, 0u);
    // And the engine goes on: a send after the storm completes normally.
    int later = 0;
    engine.send(sock, arena.take(), zcio::Storage{[&](zcio::Release&& r) { later += r.error == 0; }});
    EXPECT_EQ(engine.drain(5s), 0);
    EXPECT_EQ(later, 1);
}

// A TwoStep on_sent that throws, a group handler that throws, and a plain (syscall) send's
// release that throws: each exception reaches the caller, and the rest of each send still happens.
TEST(SendContract, EveryHandlerKindMayThrow) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 16 << 10, .slab_count = 16});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::udp_loopback_pair();
    const auto zc = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    auto pair2 = zcio::test::udp_loopback_pair();
    const auto plain = engine.add_socket(pair2.sender.get(), {.strategy = zcio::Strategy::plain});
    auto drain_counting = [&] {
        int thrown = 0;
        for (int spins = 0; spins < 100; ++spins) {
            try {
                if (engine.drain(5s) == 0) break;
            } catch (const Boom&) {
                ++thrown;
            }
        }
        return thrown;
    };

    bool released = false;
    engine.send(zc, arena.take(),
                zcio::TwoStep{[](const zcio::SendResult&) { throw Boom(); },
                              [&](zcio::Release&& r) { released = r.error == 0 && r.buffer; }});
    EXPECT_EQ(drain_counting(), 1);
    EXPECT_TRUE(released) << "the release still comes after on_sent threw";

    zcio::NotifGroup group([](const zcio::GroupResult&) { throw Boom(); });
    for (int i = 0; i < 4; ++i) engine.send(zc, arena.take(), group);
    engine.flush(group);
    EXPECT_EQ(drain_counting(), 1);
    EXPECT_EQ(group.pending(), 0u);

    int plain_releases = 0;
    // The plain send happens inside send(); its release runs from the next run().
    engine.send(plain, arena.take(), zcio::Storage{[&](zcio::Release&&) {
                    ++plain_releases;
                    throw Boom();
                }});
    EXPECT_EQ(drain_counting(), 1);
    EXPECT_EQ(plain_releases, 1);
    EXPECT_EQ(engine.ops_in_use(), 0u);
    EXPECT_EQ(arena.available(), arena.slab_count());
}

// remove_socket() waits for the kernel to give back the socket's buffers, but not forever: a
// peer that never reads keeps the pages of a loopback TCP stream. At shutdown_timeout it says
// -ETIMEDOUT and leaves the socket added and failed; once the peer reads, it goes.
TEST(SendContract, RemoveSocketHasADeadline) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 64 << 10, .slab_count = 64});
    zcio::SendEngine engine(ring, {.shutdown_timeout = 300ms});
    auto pair = zcio::test::tcp_loopback_pair(64 << 10);
    zcio::test::StreamChecker checker(std::move(pair.receiver), /*pause_after=*/0);  // not reading
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    int releases = 0;
    for (int i = 0; i < 32; ++i) {
        zcio::Buffer b = arena.take();
        zcio::test::fill_pattern(b.span(), std::uint64_t(i) * b.size());
        engine.send(sock, std::move(b), zcio::Storage{[&](zcio::Release&&) { ++releases; }});
    }
    engine.run(false);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(engine.remove_socket(sock), -ETIMEDOUT);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
    EXPECT_NO_THROW(engine.strategy(sock)) << "still added";
    int refused = 0;
    engine.send(sock, arena.take(), zcio::Storage{[&](zcio::Release&& r) { refused = r.error; }});
    engine.run(false);
    EXPECT_EQ(refused, -ECANCELED) << "a failed socket takes no new sends";
    checker.resume();  // the peer reads: the kernel lets go of the pages
    int r = -ETIMEDOUT;
    for (int i = 0; i < 20 && r == -ETIMEDOUT; ++i) r = engine.remove_socket(sock);
    EXPECT_EQ(r, 0);
    EXPECT_EQ(releases, 32) << "every buffer back exactly once";
    EXPECT_THROW(engine.strategy(sock), zcio::SetupError) << "removed";
    EXPECT_EQ(arena.available(), arena.slab_count());
    ::shutdown(pair.sender.get(), SHUT_WR);  // EOF: the checker's thread ends
    checker.join();
    EXPECT_EQ(checker.first_mismatch(), UINT64_MAX);
}

// ---- invariants, by crafted completions ------------------------------------------------------------

// Runs `breaks` against a fresh engine core; in a debug build the first broken invariant aborts
// with `message`, in a release build it is counted in `field` and the core goes on.
template <typename Breaks>
void expect_invariant(Breaks breaks, std::uint64_t zcio::Counters::*field, const char* message) {
    auto scenario = [&] {
        zcio::Ring ring;
        zcio::detail::SendCore core(ring, {});
        auto pair = zcio::test::udp_loopback_pair();
        const auto sock = core.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc});
        breaks(core, sock);
        return core.totals().*field;
    };
    if (zcio::detail::aborts_on_broken_invariant()) {
        EXPECT_DEATH(scenario(), message);
    } else {
        EXPECT_EQ(scenario(), 1u) << "counted once, and the engine went on";
    }
}

io_uring_cqe cqe_for(const zcio::detail::Op& op, int res, unsigned flags) {
    io_uring_cqe cqe{};
    cqe.user_data = reinterpret_cast<std::uintptr_t>(&op);
    cqe.res = res;
    cqe.flags = flags;
    return cqe;
}

TEST(SendInvariant, ACqeForAFreeOperationIsStray) {
    expect_invariant(
        [](zcio::detail::SendCore& core, zcio::SocketId sock) {
            // A send that completes normally (request with F_MORE, then its notification)...
            zcio::detail::Op& op = core.test_inflight_op(sock, 100);
            zcio::detail::SendCore::on_cqe(&op, cqe_for(op, 100, IORING_CQE_F_MORE));
            zcio::detail::SendCore::on_cqe(&op, cqe_for(op, 0, IORING_CQE_F_NOTIF));
            EXPECT_EQ(core.ops_in_use(), 0u);
            // ... and then one more CQE naming it, delivered by the kernel (a NOP carrying its address).
            io_uring_sqe* sqe = core.ring().sqe();
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data(sqe, &op);
            core.ring().run(1, 1s);
        },
        &zcio::Counters::stray_cqes, "a CQE for a send operation that is not in use");
}

TEST(SendInvariant, ASecondRequestCqeForOneRequestIsStray) {
    expect_invariant(
        [](zcio::detail::SendCore& core, zcio::SocketId sock) {
            zcio::detail::Op& op = core.test_inflight_op(sock, 100);
            zcio::detail::SendCore::on_cqe(&op, cqe_for(op, 100, IORING_CQE_F_MORE));
            zcio::detail::SendCore::on_cqe(&op, cqe_for(op, 100, IORING_CQE_F_MORE));  // again
            zcio::detail::SendCore::on_cqe(&op, cqe_for(op, 0, IORING_CQE_F_NOTIF));
            EXPECT_EQ(core.ops_in_use(), 0u) << "the real notification still releases it";
        },
        &zcio::Counters::stray_cqes, "a request CQE for an operation with no request in flight");
}

TEST(SendInvariant, ANotificationNoRequestAnnouncedIsStray) {
    expect_invariant(
        [](zcio::detail::SendCore& core, zcio::SocketId sock) {
            zcio::detail::Op& op = core.test_inflight_op(sock, 100);
            // A notification before the request's CQE said one would come (no F_MORE yet).
            zcio::detail::SendCore::on_cqe(&op, cqe_for(op, 0, IORING_CQE_F_NOTIF));
            zcio::detail::SendCore::on_cqe(&op, cqe_for(op, 100, 0));  // the request, copy-like
            EXPECT_EQ(core.ops_in_use(), 0u);
        },
        &zcio::Counters::stray_notifications, "a notification no request announced");
}

TEST(SendInvariant, InflightBytesNeverGoBelowZero) {
    expect_invariant(
        [](zcio::detail::SendCore& core, zcio::SocketId sock) {
            zcio::detail::Op& op = core.test_inflight_op(sock, 100);
            core.socket(sock).inflight = 40;  // a bookkeeping bug elsewhere lost 60 bytes
            zcio::detail::SendCore::on_cqe(&op, cqe_for(op, 100, 0));
            EXPECT_EQ(core.socket(sock).inflight, 0u) << "clamped, not wrapped";
        },
        &zcio::Counters::inflight_underflows, "in-flight bytes would go below zero");
}

}  // namespace
