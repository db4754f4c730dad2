// Driving a SendEngine the way the stream tests do: pieces of patterned bytes sent through one
// completion model, every release summed, and the strategy x model matrix the tests run over.
//
//   PieceSender tx(engine, sock, ModelKind::storage);
//   tx.send(std::move(buf));                      // any number of times
//   Tally t = tx.finish();                         // flushes the group, drains, sums the releases
#pragma once

#include "zcio/buffer_arena.hpp"
#include "zcio/send_engine.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace zcio::test {

enum class ModelKind { two_step, storage, group };
const char* name(ModelKind m);

// What every release told us, summed.
struct Tally {
    std::uint64_t releases = 0, sent_events = 0, bytes = 0, errors = 0, zero_copy = 0, copied = 0;
    std::uint64_t sent_before_release_violations = 0;
};

// Sends buffers through one completion model; a group is closed every 64 sends and waited for.
class PieceSender {
public:
    PieceSender(SendEngine& engine, SocketId sock, ModelKind model);
    void send(Buffer&& b);
    Tally finish();  // closes the last group and drains: every release is in the tally
    const Tally& tally() const { return *t_; }

private:
    SendEngine& engine_;
    SocketId sock_;
    ModelKind model_;
    std::unique_ptr<Tally> t_;  // at a fixed address: the handlers point to it
    std::unique_ptr<NotifGroup> group_;
    std::uint64_t group_sends_ = 0;
};

// Where a piece's memory comes from: a buffer of at least `n` bytes for stream offset `offset`,
// or an empty one for "none free now" (the loop runs and it is asked again).
using PieceSource = std::function<Buffer(std::size_t n, std::uint64_t offset)>;

// Sends `total` patterned bytes in random-size pieces (1 B .. max_piece, sometimes max_piece) with
// many in flight, through one completion model; returns when every buffer is back.
Tally stream_through(SendEngine& engine, const PieceSource& source, SocketId sock, ModelKind model, std::uint64_t total,
                     std::size_t max_piece, std::uint32_t seed);
// The same, each piece a slab of `arena`.
Tally stream_through(SendEngine& engine, BufferArena& arena, SocketId sock, ModelKind model, std::uint64_t total,
                     std::size_t max_piece, std::uint32_t seed);

struct StrategyModel {
    Strategy strategy;
    ModelKind model;
};
// Every strategy with every completion model.
std::vector<StrategyModel> all_combinations();
// "zc_fixed" (a gtest name: no dashes), and "zc_fixed_storage".
std::string strategy_name(Strategy s);
std::string case_name(const StrategyModel& c);

}  // namespace zcio::test
