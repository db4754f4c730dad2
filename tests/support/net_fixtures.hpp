// Real sockets for tests: loopback TCP/UDP pairs, a patterned byte stream, and a receiver thread
// that checks every byte it gets against the pattern.
#pragma once

#include "zcio/unique_fd.hpp"

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <thread>
#include <utility>

namespace zcio::test {

// The byte at stream offset `off`: position-dependent, so a reordered, duplicated or lost chunk
// shows up as a mismatch at a known offset.
inline std::uint8_t pattern_byte(std::uint64_t off) {
    std::uint64_t x = off * 0x9E3779B97F4A7C15ull;
    return static_cast<std::uint8_t>((x >> 56) ^ (off >> 12));
}
void fill_pattern(std::span<std::byte> out, std::uint64_t stream_offset);

struct SocketPair {
    UniqueFd sender;
    UniqueFd receiver;
};
// Over 127.0.0.1, or ::1 with family AF_INET6.
SocketPair tcp_loopback_pair(int rcvbuf = 0, int family = AF_INET);
SocketPair udp_loopback_pair(int family = AF_INET);

// Reads a TCP stream to EOF (or error) on its own thread and checks it against pattern_byte().
class StreamChecker {
public:
    // `read_delay_bytes`: stop reading after this many bytes until resume() (backpressure tests).
    explicit StreamChecker(UniqueFd fd, std::uint64_t pause_after = UINT64_MAX);
    ~StreamChecker();
    void resume() { paused_.store(false); }
    // Aborts the connection with RST (SO_LINGER 0) once `after` bytes have arrived.
    void reset_after(std::uint64_t after) { reset_after_.store(after); }
    void join();
    std::uint64_t bytes() const { return bytes_.load(); }
    // Offset of the first wrong byte, or UINT64_MAX.
    std::uint64_t first_mismatch() const { return mismatch_.load(); }
    int error() const { return error_.load(); }

private:
    void loop();
    UniqueFd fd_;
    std::atomic<std::uint64_t> bytes_{0};
    std::atomic<std::uint64_t> mismatch_{UINT64_MAX};
    std::atomic<std::uint64_t> pause_after_;
    std::atomic<std::uint64_t> reset_after_{UINT64_MAX};
    std::atomic<bool> paused_{true};
    std::atomic<int> error_{0};
    std::thread thread_;
};

bool running_as_root();

}  // namespace zcio::test
