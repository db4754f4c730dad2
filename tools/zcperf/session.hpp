// A zcperf test from either end: the client (connects, sends or receives, gathers both ends'
// figures), the server (serves tests one at a time), send-only runs (no server: sinks), and an
// in-process loopback server for `--target loopback`.
#pragma once

#include "control.hpp"
#include "options.hpp"
#include "report.hpp"

#include <zcio/unique_fd.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <mutex>
#include <thread>
#include <vector>

namespace zcperf {

// How the local half reports while it runs.
struct RunSettings {
    double interval = 0;          // seconds between interval records (0: none)
    bool print_intervals = false; // print them as they happen (text mode)
    bool progress = false;        // live line on stderr
    // Called once every data connection is up, before the clocks start (text mode prints them).
    std::function<void(const TestRecord&)> on_connected;
    // How this end receives when the test does not say (TestParams::recv): the server's --recv.
    zcio::RecvStrategy recv = zcio::RecvStrategy::automatic;
};

struct ClientSetup {
    std::string host;
    std::uint16_t port = 5201;
    int family = 0;
    TestParams params;
    RunSettings run;
    std::string target = "remote";
};

// One test against a zcperf server. Throws Error when the test cannot run (connection, refusal);
// stream failures are in the record (stream_errors()).
TestRecord run_client_test(const ClientSetup& setup);

// Sends on already-connected sockets (one stream each) without a server: the sender's figures only.
TestRecord run_send_only(std::vector<zcio::UniqueFd>& fds, const TestParams& params, const RunSettings& run, std::string target);

// Waits for a client on `listen_fd` and serves one test. nullopt if `idle_stop` (or Ctrl-C) came
// first. Throws Error when the test fails; the client is told why when it can be. `carry` passes a
// client that connected as the test ended on to the next call (start with an empty one).
std::optional<TestRecord> serve_one(int listen_fd, zcio::UniqueFd& carry, const RunSettings& run,
                                    const std::atomic<bool>& idle_stop);

// The command-line front-ends. Return the exit code.
int run_server(const Options& o);
// The test parameters a client sends the server for these options.
TestParams client_params(const Options& o);
int run_client(const Options& o);

// A server on 127.0.0.1 (or ::1), any free port, serving tests in a thread until destroyed.
class LoopbackServer {
public:
    explicit LoopbackServer(int family);
    ~LoopbackServer();
    LoopbackServer(const LoopbackServer&) = delete;
    LoopbackServer& operator=(const LoopbackServer&) = delete;
    std::uint16_t port() const noexcept { return port_; }
    std::string host() const { return host_; }
    // The last error a served test ended with (empty if none).
    std::string last_error() const;

private:
    zcio::UniqueFd listen_;
    std::uint16_t port_ = 0;
    std::string host_;
    std::atomic<bool> stop_{false};
    mutable std::mutex mutex_;
    std::string last_error_;
    std::thread thread_;
};

}  // namespace zcperf
