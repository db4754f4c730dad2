// The server's front desk: one thread that accepts every connection at once and reads what each
// sends without ever blocking on one, so slow or idle clients never stall the listener.
//
// A new connection must send its 37-byte cookie and then, after PARAM_EXCHANGE, its parameters
// frame, each within `handshake` time; at most `max_pending` connections wait at once (the oldest
// is dropped for a newer one). The first connection to complete its parameters while the server is
// idle becomes the next test (next_test()); others completing meanwhile are told ACCESS_DENIED
// (iperf3's "busy"). While a test creates its streams, connections bearing its cookie are its data
// streams (next_stream()); while it runs, every new connection is told ACCESS_DENIED at once.
//
//   FrontDesk desk(listener.get());
//   auto arrival = desk.next_test(stop);            // control fd + cookie + params JSON
//   desk.expect_streams(arrival->cookie);  ...  desk.next_stream(100ms);
//   desk.running();  ...  desk.idle();
#pragma once

#include "net.hpp"

#include <zcio/unique_fd.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace zcperf {

struct Arrival {
    zcio::UniqueFd fd;
    std::string cookie;  // 37 bytes, as received
    std::string params;  // the parameters frame's JSON
};

struct DataConnection {
    zcio::UniqueFd fd;
    std::uint64_t order = 0;  // accept order: iperf3 numbers streams in the order they connect
};

class FrontDesk {
public:
    explicit FrontDesk(int listen_fd, Millis handshake = Millis(5000), std::size_t max_pending = 128);
    ~FrontDesk();
    FrontDesk(const FrontDesk&) = delete;
    FrontDesk& operator=(const FrontDesk&) = delete;

    // Waits for the next test; nullopt when `stop` (or Ctrl-C) came first.
    std::optional<Arrival> next_test(const std::atomic<bool>& stop);
    void expect_streams(const std::string& cookie);
    std::optional<DataConnection> next_stream(Millis wait);
    void running();
    void idle();

    // Connections refused as busy and dropped (slow, idle, malformed) so far.
    std::uint64_t refused() const noexcept { return refused_.load(); }
    std::uint64_t dropped() const noexcept { return dropped_.load(); }

private:
    enum class Phase { idle, claimed, creating, running };
    struct Pending;
    void loop();
    void accept_all(std::deque<Pending>& pending);
    // Reads what `c` sent; false when it is finished with (handed over, refused or dropped).
    bool advance(Pending& c);
    void deny(zcio::UniqueFd fd);

    int listen_fd_;
    Millis handshake_;
    std::size_t max_pending_;
    std::mutex mutex_;
    std::condition_variable cv_;
    Phase phase_ = Phase::idle;
    std::string cookie_;
    std::optional<Arrival> arrival_;
    std::deque<DataConnection> streams_;
    std::uint64_t next_order_ = 0;
    std::atomic<std::uint64_t> refused_{0}, dropped_{0};
    std::atomic<bool> stop_{false};
    std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace zcperf
