#include "send_stream.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "net_fixtures.hpp"

namespace zcio::test {

using namespace std::chrono_literals;

const char* name(ModelKind m) {
    return m == ModelKind::two_step ? "two_step" : m == ModelKind::storage ? "storage" : "group";
}

PieceSender::PieceSender(SendEngine& engine, SocketId sock, ModelKind model)
    : engine_(engine), sock_(sock), model_(model), t_(std::make_unique<Tally>()) {
    Tally* t = t_.get();
    group_ = std::make_unique<NotifGroup>([t](const GroupResult& g) {
        t->releases += g.sends;
        t->bytes += g.bytes;
        t->errors += g.errors;
        t->zero_copy += g.zero_copy;
        t->copied += g.copied;
        ++t->sent_events;  // one group event
    });
}

void PieceSender::send(Buffer&& b) {
    Tally* tp = t_.get();
    switch (model_) {
    case ModelKind::two_step:
        engine_.send(sock_, std::move(b),
                     TwoStep{[tp](const SendResult&) { ++tp->sent_events; },
                             [tp](Release&& r) {
                                 ++tp->releases;
                                 if (tp->sent_events < tp->releases) ++tp->sent_before_release_violations;
                                 tp->bytes += r.bytes;
                                 tp->errors += r.error != 0;
                                 tp->zero_copy += r.usage == Usage::zero_copy;
                                 tp->copied += r.usage == Usage::copied;
                             }});
        break;
    case ModelKind::storage:
        engine_.send(sock_, std::move(b), Storage{[tp](Release&& r) {
                         ++tp->releases;
                         tp->bytes += r.bytes;
                         tp->errors += r.error != 0;
                         tp->zero_copy += r.usage == Usage::zero_copy;
                         tp->copied += r.usage == Usage::copied;
                         EXPECT_TRUE(r.buffer) << "the buffer must come back in the release";
                     }});
        break;
    case ModelKind::group:
        engine_.send(sock_, std::move(b), *group_);
        ++group_sends_;
        if (group_sends_ % 64 == 0) {  // close a group every 64 sends, wait for its one event
            engine_.flush(*group_);
            while (group_->pending() > 0 || group_->flushed()) {
                if (engine_.run(true, 1s) == -ETIME) break;
                if (group_->pending() == 0 && tp->releases == group_sends_) break;
            }
        }
        break;
    }
}

Tally PieceSender::finish() {
    if (model_ == ModelKind::group) engine_.flush(*group_);
    EXPECT_EQ(engine_.drain(30s), 0) << "every send must be released";
    return *t_;
}

Tally stream_through(SendEngine& engine, const PieceSource& source, SocketId sock, ModelKind model, std::uint64_t total,
                     std::size_t max_piece, std::uint32_t seed) {
    PieceSender tx(engine, sock, model);
    std::mt19937 rng(seed);
    // Mostly small-to-medium, sometimes the largest piece: covers 1 B and max_piece.
    std::uniform_int_distribution<std::size_t> pick(1, max_piece);
    std::uint64_t offset = 0;
    while (offset < total) {
        std::size_t n = pick(rng);
        if (rng() % 16 == 0) n = max_piece;
        n = static_cast<std::size_t>(std::min<std::uint64_t>(n, total - offset));
        Buffer b = source(n, offset);
        while (!b) {
            engine.run(true, 100ms);
            b = source(n, offset);
        }
        n = std::min(n, b.size());
        b.resize(n);
        fill_pattern(b.span(), offset);
        offset += n;
        tx.send(std::move(b));
    }
    return tx.finish();
}

Tally stream_through(SendEngine& engine, BufferArena& arena, SocketId sock, ModelKind model, std::uint64_t total,
                     std::size_t max_piece, std::uint32_t seed) {
    return stream_through(
        engine, [&arena](std::size_t, std::uint64_t) { return arena.take(); }, sock, model, total,
        std::min(max_piece, arena.slab_size()), seed);
}

std::vector<StrategyModel> all_combinations() {
    std::vector<StrategyModel> v;
    for (auto s : all_strategies)
        for (auto m : {ModelKind::two_step, ModelKind::storage, ModelKind::group}) v.push_back({s, m});
    return v;
}

std::string strategy_name(Strategy s) {
    std::string n = to_string(s);
    std::replace(n.begin(), n.end(), '-', '_');
    return n;
}

std::string case_name(const StrategyModel& c) { return strategy_name(c.strategy) + "_" + name(c.model); }

}  // namespace zcio::test
