// Completion handlers live inside the operation slot (no allocation per send): a handler that
// captures more than the slot holds is rejected at compile time, not silently heap-allocated.
// expect: handler captures too much
#include "zcio/send_engine.hpp"

#include <array>

void misuse(zcio::SendEngine& engine, zcio::SocketId sock, zcio::Buffer&& buf) {
    std::array<char, 256> state{};
    engine.send(sock, std::move(buf), zcio::Storage{[state](zcio::Release&&) { (void)state; }});
}
