// The data half of a test, from either end: this end's sending streams on at most one thread per
// core (ring + engine each), its receiving streams on one thread through one zcio::Receiver, and
// the reporting thread (the caller) ticking intervals, the progress line and liveness. The client
// and the server drive it from their own state machines (client.cpp, server.cpp).
//
//   DataPhase data(streams, params, run, Clock::now());
//   while (!data.senders_done()) { if (auto why = data.tick()) fail(*why); ... }
//   data.stop_sending(); data.stop_receiving(); SideReport mine = data.report();
#pragma once

#include "control.hpp"
#include "cpu.hpp"
#include "report.hpp"
#include "stream.hpp"

#include <zcio/unique_fd.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace zcperf {

using Clock = std::chrono::steady_clock;

// How the local half reports while it runs.
struct RunSettings {
    double interval = 0;           // seconds between interval records (0: none)
    bool print_intervals = false;  // print them as they happen (text mode)
    bool progress = false;         // live line on stderr
    // Called once every data connection is up, before the clocks start (text mode prints them).
    std::function<void(const TestRecord&)> on_connected;
    // How this end receives when the test does not say (TestParams::recv): the server's --recv.
    zcio::RecvStrategy recv = zcio::RecvStrategy::automatic;
    // A peer silent this long (no data to receive, no progress sending, no word on the control
    // connection from a zcperf peer) ends the test (iperf3's --rcv-timeout).
    std::chrono::milliseconds rcv_timeout{4000};
    bool verbose = false;  // -V
    // Sending ends this much before the test's time: a stock iperf3 receiver counts only until its
    // own timer fires, so what is still queued then would be sent but never counted.
    std::chrono::milliseconds stop_sending_early{0};
};

// One data connection of this end: the fd, iperf3's stream id, and which way the data goes.
struct LocalStream {
    zcio::UniqueFd fd;
    int id = 0;
    bool sender = false;
    std::span<const SocketAddress> to = {};  // --fanout: an unconnected socket's destinations
};

class DataPhase {
public:
    DataPhase(std::vector<LocalStream>& streams, const TestParams& p, const RunSettings& rs, Clock::time_point start,
              std::vector<IntervalRecord>& intervals);
    ~DataPhase();  // stops and joins whatever still runs
    DataPhase(const DataPhase&) = delete;
    DataPhase& operator=(const DataPhase&) = delete;

    // Intervals, progress, liveness. Returns why the test must end now (a silent peer), if so.
    std::optional<std::string> tick();
    // How long the caller may wait before the next tick().
    std::chrono::milliseconds wait_hint() const;

    bool senders_done() const;    // every sending stream finished (time, budget, error, stop)
    bool receivers_done() const;  // every receiving stream ended (TCP: EOF)
    bool has_senders() const noexcept { return !send_.empty(); }
    bool has_receivers() const noexcept { return !recv_.empty(); }
    // Bytes received so far on the stream `id` (0 if it is not a receiving stream).
    std::uint64_t received(int id) const;
    // Time since the last data arrived on any receiving stream.
    Clock::duration receive_silence() const;
    // Waits until every sending TCP stream's data has left this host (acknowledged), at most `limit`:
    // a stock iperf3 receiver stops counting at TEST_END, so the end waits for the data to arrive.
    void wait_sent_acknowledged(std::chrono::milliseconds limit) const;

    void stop_sending();    // no send after this returns; joins the sending threads
    void stop_receiving();  // joins the receiving thread
    SideReport report();    // after both stops: this end's figures, in stream id order

private:
    void start_senders(const TestParams& p);
    void start_file_senders(double seconds);
    void start_receiver(const TestParams& p, const RunSettings& rs);
    void record_interval(double from, double to);

    const TestParams& p_;
    const RunSettings& rs_;
    Clock::time_point start_;
    std::vector<IntervalRecord>& intervals_;
    std::vector<LocalStream>& streams_;
    std::vector<std::size_t> send_, recv_;           // indexes into streams_
    std::vector<std::vector<StreamSocket>> shares_;  // per sending thread; alive while it runs
    std::vector<StreamSocket> recv_sockets_;
    std::vector<Live> lives_;  // per stream
    std::vector<std::uint64_t> last_interval_bytes_, omitted_;
    bool omit_taken_ = false;
    SendBudget budget_;
    std::atomic<bool> stop_send_{false}, stop_recv_{false};
    std::vector<std::vector<StreamReport>> send_results_;
    std::vector<StreamReport> recv_results_;
    RecvReport receive_;
    std::vector<std::thread> send_threads_;
    std::thread recv_thread_;
    int peak_threads_ = 0;
    std::size_t send_thread_count_ = 0;
    CpuSnapshot cpu0_;
    // Liveness of the sending side: when its byte count last moved.
    std::uint64_t last_sent_total_ = 0;
    Clock::time_point last_send_progress_;
    // Progress line
    bool progress_ = false, drawn_ = false;
    double last_progress_ = 0;
};

// Threads of this process right now (/proc/self/task): what -P costs in threads.
int process_thread_count();

}  // namespace zcperf
