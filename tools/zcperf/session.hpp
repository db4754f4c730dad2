// A zcperf test from either end, speaking iperf3's protocol (control.hpp): the client (connects,
// sends or receives, gathers both ends' figures; against zcperf or a stock iperf3 server), the
// server (one test at a time, for zcperf or stock iperf3 clients), send-only runs (no server:
// sinks), and an in-process loopback server for `--target loopback`.
#pragma once

#include "control.hpp"
#include "data_phase.hpp"
#include "options.hpp"
#include "report.hpp"

#include <zcio/unique_fd.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace zcperf {

struct ClientSetup {
    std::string host;
    std::uint16_t port = 5201;
    int family = 0;
    TestParams params;
    RunSettings run;
    std::string target = "remote";
};

// One test against a zcperf or iperf3 server. Throws Error when the test cannot run (connection,
// refusal, a peer that is not iperf3, a silent peer); stream failures are in the record.
TestRecord run_client_test(const ClientSetup& setup);

// Sends on already-connected sockets (one stream each) without a server: the sender's figures only.
// With destinations (--fanout), the sockets are unconnected and each sends to all of them in turn.
TestRecord run_send_only(std::vector<zcio::UniqueFd>& fds, const TestParams& params, const RunSettings& run,
                         std::string target, std::span<const SocketAddress> to = {});

struct ServerSettings {
    RunSettings run;
    // The most one test may make the server allocate (send arenas, receive buffers); a larger
    // request is refused with a message that says so (--server-max-memory).
    std::size_t max_memory = 256u << 20;
    bool json = false;  // the server's own output is JSON (-J): --get-server-output sends that
    FileParams file;    // -F: the file it writes what it receives to, or sends with -R
};

class FrontDesk;

// Serves tests on a listening socket, one at a time; the front desk answers everyone else.
class Server {
public:
    Server(int listen_fd, ServerSettings settings);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    // Waits for a client and serves one test. nullopt if `idle_stop` (or Ctrl-C) came first.
    // Throws Error when the test fails; the client is told why when it can be.
    std::optional<TestRecord> serve_one(const std::atomic<bool>& idle_stop);

private:
    int listen_fd_;
    ServerSettings settings_;
    std::unique_ptr<FrontDesk> desk_;
};

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
