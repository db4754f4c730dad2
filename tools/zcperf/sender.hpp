// One sending thread of a test (run_senders, stream.hpp): its own Ring, BufferArena (through
// PayloadBuffers) and SendEngine, the sockets it multiplexes and, in the group model, their
// notification groups. The thread's life is a loop of batches, then a drain, then the reports:
//
//   Sender s(sockets, spec, threads, Clock::now());  // throws zcio::SetupError: strategy, memory
//   s.send_until_done();       // batches until time, -n/-k, stop or every stream failed
//   s.drain();                 // what is still in flight comes home
//   s.report(reports);         // bytes, counters, errors per stream
//   s.remove_sockets();
//
// A batch hands up to `batch` sends to the engine, round robin over the sockets; a socket sits a
// turn out when its stream failed, -b holds it, or (group model) all its groups are in flight. The
// thread waits in the engine only when nothing could be sent. Each send's payload is filled in one
// place (fill_payload): a payload source other than the pattern plugs in there. A socket with
// destinations (--fanout) sends to each in turn, the GSO size given with every send.
#pragma once

#include "payload_buffers.hpp"
#include "stream.hpp"

#include <zcio/notif_group.hpp>
#include <zcio/ring.hpp>
#include <zcio/send_engine.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace zcperf {

class Sender {
public:
    using Clock = std::chrono::steady_clock;

    // `threads`: sending threads of this process now (they share the locked-memory budget);
    // `start`: when the test began (spec.duration and -b count from there).
    Sender(const std::vector<StreamSocket>& sockets, const SendSpec& spec, int threads, Clock::time_point start);
    Sender(const Sender&) = delete;
    Sender& operator=(const Sender&) = delete;

    void send_until_done();
    void drain();
    // Fills each stream's bytes, packets, counters and error (reports[i] is sockets[i]'s).
    void report(std::vector<StreamReport>& reports);
    void remove_sockets();

private:
    // One socket's view of its releases: the handlers capture only a pointer to it, so it lives
    // at a fixed address (a vector sized once).
    struct Stream {
        bool is_tcp = false;
        int fatal = 0;        // first error that ends a TCP stream
        int first_error = 0;  // first error of any kind (UDP goes on: ENOBUFS, ECONNREFUSED)
        std::uint64_t releases = 0;
        std::uint64_t queued = 0;           // stream offset of the next send (--verify, -b)
        std::uint64_t udp_seq = 0;          // UDP: the last datagram's sequence number (iperf3's header)
        PayloadBuffers* buffers = nullptr;  // where a released buffer goes next
        // Where each send goes, in turn: {} (the socket's peer), or one destination and GSO size
        // each (--fanout).
        std::vector<zcio::SendOptions> routes;
        std::size_t route = 0;
        // Group model: which of its groups are in flight, the one open now and its sends.
        std::vector<bool> group_busy;
        std::size_t open_group = 0;
        std::uint32_t in_group = 0;
        bool group_open = false;

        void on_error(int e);
        void on_release(zcio::Release&& r);
    };
    // Why a socket sits a turn out, or that it sends.
    enum class Turn { send, failed, throttled, no_group };
    // What one batch found.
    struct Batch {
        bool starved = false;     // it stopped for want of a slab, or no socket could send
        bool all_failed = false;  // every stream has failed
        bool throttled = false;   // every socket was held back by -b
    };

    void add_sockets();
    void make_groups();
    Batch send_batch(double elapsed);
    Turn turn_of(std::size_t i, double elapsed);
    bool open_group(std::size_t i);
    void fill_payload(std::size_t i, std::span<std::byte> payload);
    void send(std::size_t i, zcio::Buffer&& b);
    void wait_for_room(const Batch& batch);
    void fail_all(int error);
    void close_open_groups();
    void publish();
    bool told_to_stop() const;

    const std::vector<StreamSocket>& sockets_;
    const SendSpec& spec_;
    const std::size_t n_;
    const std::size_t groups_per_socket_;
    std::vector<Stream> streams_;
    zcio::Ring ring_;
    PayloadBuffers buffers_;
    zcio::SendEngine engine_;
    std::vector<zcio::SocketId> socks_;
    std::vector<std::unique_ptr<zcio::NotifGroup>> groups_;  // groups_per_socket_ per socket
    const Clock::time_point start_, deadline_;
    Clock::time_point last_publish_;
    std::size_t batch_ = 1;
    std::size_t next_ = 0;  // the socket whose turn is next
    bool budget_done_ = false;
    bool drained_ = false, aborted_ = false;
};

}  // namespace zcperf
