#include "file_transfer.hpp"

#include "cpu.hpp"
#include "file_hash.hpp"
#include "net.hpp"

#include <zcio/buffer_arena.hpp>
#include <zcio/error.hpp>
#include <zcio/file.hpp>
#include <zcio/file_receiver.hpp>
#include <zcio/file_sender.hpp>
#include <zcio/ring.hpp>
#include <zcio/send_engine.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>
#include <vector>

namespace zcperf {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A send() call per piece: the test's end and its stop are looked at between pieces, and the live
// byte count moves (the data phase's liveness check reads it). A piece lasts about piece_time at
// the rate the last one went, within [16 chunks, max_piece]: large against what read-zc keeps in
// flight (32 x chunk) on a fast path, short enough on a slow link.
constexpr std::uint64_t max_piece = 32u << 20;
constexpr double piece_time = 0.1;  // seconds
constexpr std::uint32_t send_depth = 32;
constexpr std::size_t recv_slab = 64u << 10;
constexpr std::size_t recv_slabs = 128;  // recv-write-fixed's ring takes 64 of them

std::size_t page_round_up(std::size_t n) { return (n + 4095) & ~std::size_t{4095}; }

// The syscall strategies block in their calls; a server's data sockets come non-blocking.
void make_blocking(int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK)) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

// After the file could not be written: the rest of the stream is taken and dropped, so the test
// runs to its end and both ends' reports (with this error) reach the user.
void discard_rest(int fd) {
    std::vector<char> sink(64u << 10);
    for (;;) {
        const ssize_t n = ::recv(fd, sink.data(), sink.size(), 0);
        if (n == 0 || (n < 0 && errno != EINTR)) return;
    }
}

// -l is the bytes per read and send; O_DIRECT reads whole blocks.
std::size_t send_chunk(const TestParams& p) {
    if (!p.file.direct) return p.length;
    const std::size_t a = zcio::File::direct_alignment;
    return std::max(a, p.length / a * a);
}

void add_piece(FileReport& f, const zcio::FileSendReport& r) {
    if (f.why.empty()) f.why = r.why;
    f.used = zcio::to_string(r.used);
    f.direct = r.direct;
    f.chunk = r.chunk;
    f.bytes += r.bytes_sent;
    f.bytes_read += r.bytes_read;
    f.read_requests += r.read_requests;
    f.syscalls += r.syscalls;
    f.sends += r.sends;
    f.zero_copy += r.zero_copy;
    f.copied += r.copied;
}

// Sends until the test's end; returns the error in words, or empty.
std::string send_pieces(const StreamSocket& sock, const TestParams& p, const zcio::File& file,
                        Clock::time_point deadline, const std::atomic<bool>& stop, std::chrono::milliseconds stall,
                        FileReport& f, std::optional<zcio::Counters>& counters) {
    const std::size_t chunk = send_chunk(p);
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = page_round_up(chunk), .slab_count = 2 * send_depth});
    zcio::SendEngine engine(ring, zcio::EngineOptions{.shutdown_timeout = 1000ms});
    zcio::FileSender tx(engine, arena, sock.fd);
    zcio::FileSendOptions o;
    o.strategy = p.file.send.value_or(zcio::FileSendStrategy::automatic);
    o.chunk = chunk;
    o.depth = send_depth;
    o.stall_timeout = stall;
    std::uint64_t piece = 16 * chunk;
    auto& interrupted = stop_requested();
    std::string error;
    std::uint64_t at = 0;
    while (!stop.load() && !interrupted.load() && Clock::now() < deadline && (p.bytes == 0 || f.bytes < p.bytes)) {
        if (at == 0) ++f.passes;
        std::uint64_t n = std::min(piece, f.file_size - at);
        if (p.bytes) n = std::min(n, p.bytes - f.bytes);
        const zcio::FileSendReport r = tx.send(file, {at, n}, o);
        add_piece(f, r);
        sock.live->bytes.store(f.bytes, std::memory_order_relaxed);
        if (r.error) {
            error = r.message.empty() ? zcio::errno_string(r.error) : r.message;
            break;
        }
        if (r.bytes_sent == 0) {
            error = fmt::format("nothing sent from byte {} of {}", at, f.path);
            break;
        }
        at += r.bytes_sent;
        if (at >= f.file_size) at = 0;
        if (r.seconds > 0) {
            const auto next = static_cast<std::uint64_t>(static_cast<double>(r.bytes_sent) / r.seconds * piece_time);
            piece = std::clamp<std::uint64_t>(next / chunk * chunk, 16 * chunk,
                                              std::max<std::uint64_t>(max_piece, 16 * chunk));
        }
    }
    if (f.used == "read-zc") counters = engine.counters(tx.socket_id());
    return error;
}

// The end of a file stream: --verify's hash of this end's bytes read back from its file (`period`:
// the sender's file size, which its stream repeats; 0: the receiver's file as written), the report.
StreamReport finish_stream(const StreamSocket& sock, bool verify, std::uint64_t period, FileReport f,
                           StreamReport rep) {
    if (verify && rep.error.empty()) {
        const FileHash h = hash_file_stream(f.path, period, f.bytes);
        f.hash = h.value;
        f.hashed_bytes = f.bytes;
        if (!h.error.empty()) rep.error = "--verify: " + h.error;
    }
    rep.file = std::move(f);
    sock.live->bytes.store(rep.bytes, std::memory_order_relaxed);
    sock.live->finished.store(true);
    return rep;
}

}  // namespace

StreamReport run_file_sender(const StreamSocket& sock, const TestParams& p, double seconds,
                             const std::atomic<bool>& stop, std::chrono::milliseconds stall) {
    StreamReport rep;
    rep.id = sock.id;
    rep.sender = true;
    FileReport f;
    f.path = p.file.path;
    f.requested = zcio::to_string(p.file.send.value_or(zcio::FileSendStrategy::automatic));
    const double cpu0 = thread_cpu_seconds();
    const auto t0 = Clock::now();
    make_blocking(sock.fd);
    try {
        const zcio::File file = zcio::File::open(p.file.path, {.direct = p.file.direct});
        const std::int64_t size = file.size();
        if (size <= 0) throw zcio::SetupError("-F " + p.file.path + ": the file is empty", 0, "nothing to send");
        f.file_size = static_cast<std::uint64_t>(size);
        const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
        if (auto why = send_pieces(sock, p, file, deadline, stop, stall, f, rep.counters); !why.empty())
            rep.error = "sending " + p.file.path + ": " + why;
    } catch (const std::exception& e) {  // zcio::SetupError (open, ring, arena), bad_alloc
        rep.error = e.what();
    }
    rep.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    rep.thread_cpu_seconds = thread_cpu_seconds() - cpu0;
    rep.bytes = f.bytes;
    rep.strategy = f.used.empty() ? f.requested : f.used;
    return finish_stream(sock, p.file.verify, f.file_size, std::move(f), std::move(rep));
}

namespace {

// The bytes the application has taken from a TCP socket so far (what arrived, less what waits).
std::uint64_t consumed(int fd) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 0;
    int queued = 0;
    if (::ioctl(fd, SIOCINQ, &queued) != 0) queued = 0;
    return info.tcpi_bytes_received -
           std::min<std::uint64_t>(info.tcpi_bytes_received, static_cast<std::uint64_t>(queued));
}

// FileReceiver runs its loop to the end: a watcher publishes its progress, as the socket sees it,
// for the intervals, the progress line and the silence check.
class ReceiveWatch {
public:
    ReceiveWatch(const StreamSocket& sock, Clock::time_point start)
        : sock_(sock), base_(consumed(sock.fd)), last_(start) {
        thread_ = std::thread([this] {
            std::uint64_t seen = 0;
            while (!done_.load()) {
                const std::uint64_t now_bytes = consumed(sock_.fd) - base_;
                if (now_bytes != seen) {
                    seen = now_bytes;
                    const auto now = Clock::now();
                    last_ns_.store(now.time_since_epoch().count());
                    sock_.live->last_data_ns.store(now.time_since_epoch().count(), std::memory_order_relaxed);
                    sock_.live->bytes.store(seen, std::memory_order_relaxed);
                }
                std::this_thread::sleep_for(10ms);
            }
        });
    }
    ~ReceiveWatch() { stop(); }
    ReceiveWatch(const ReceiveWatch&) = delete;
    ReceiveWatch& operator=(const ReceiveWatch&) = delete;
    void stop() {
        done_ = true;
        if (thread_.joinable()) thread_.join();
    }
    Clock::time_point last_data() const {
        const auto ns = last_ns_.load();
        return ns ? Clock::time_point(Clock::duration(ns)) : last_;
    }

private:
    const StreamSocket& sock_;
    std::uint64_t base_;  // what was read before the data (a server's stream: iperf3's cookie)
    Clock::time_point last_;
    std::atomic<std::int64_t> last_ns_{0};
    std::atomic<bool> done_{false};
    std::thread thread_;
};

}  // namespace

StreamReport run_file_receiver(const StreamSocket& sock, const TestParams& p, Clock::time_point start) {
    StreamReport rep;
    rep.id = sock.id;
    FileReport f;
    f.path = p.file.path;
    const auto strategy = p.file.recv.value_or(zcio::FileRecvStrategy::recv_write_fixed);
    f.requested = f.used = zcio::to_string(strategy);
    const double cpu0 = thread_cpu_seconds();
    make_blocking(sock.fd);
    ReceiveWatch watch(sock, start);
    try {
        const zcio::File out = zcio::File::open(p.file.path, {.write = true, .create = true, .truncate = true});
        zcio::Ring ring;
        zcio::BufferArena arena(ring, {.slab_size = recv_slab, .slab_count = recv_slabs});
        zcio::FileReceiver rx(ring, arena);
        zcio::FileRecvOptions o;
        o.strategy = strategy;
        o.stall_timeout = std::chrono::hours(24);  // the data phase judges silence (--rcv-timeout)
        const zcio::FileRecvReport r = rx.receive(sock.fd, out, o);
        f.bytes = r.bytes_written;
        f.write_requests = r.write_requests;
        f.syscalls = r.syscalls;
        f.chunk = recv_slab;
        rep.bytes = r.bytes_received;
        rep.packets = r.recv_completions;
        if (r.error) rep.error = "writing " + p.file.path + ": " + r.message;
    } catch (const std::exception& e) {
        rep.error = e.what();
    }
    if (!rep.error.empty()) discard_rest(sock.fd);
    watch.stop();
    rep.seconds = std::max(0.0, std::chrono::duration<double>(watch.last_data() - start).count());
    rep.thread_cpu_seconds = thread_cpu_seconds() - cpu0;
    return finish_stream(sock, p.file.verify, 0, std::move(f), std::move(rep));
}

std::string file_test_unsupported(const TestParams& p) {
    if (p.udp) return "-F sends over TCP: iperf3's UDP header would overwrite the file's first bytes in every datagram";
    if (p.bidir) return "-F moves a file one way: not with --bidir";
    if (p.streams != 1) return "-F moves one file over one stream: -P 1";
    return {};
}

std::string check_file_to_send(const std::string& path, bool direct, std::uint64_t& size) {
    try {
        const zcio::File f = zcio::File::open(path, {.direct = direct});
        const std::int64_t n = f.size();
        if (n < 0) return fmt::format("-F {}: fstat failed: {}", path, zcio::errno_string(static_cast<int>(-n)));
        if (n == 0) return fmt::format("-F {}: the file is empty: nothing to send", path);
        size = static_cast<std::uint64_t>(n);
        return {};
    } catch (const zcio::SetupError& e) {
        return fmt::format("-F {}: {}", path, e.what());
    }
}

std::string check_file_to_write(const std::string& path) {
    try {
        (void)zcio::File::open(path, {.write = true, .create = true});
        return {};
    } catch (const zcio::SetupError& e) {
        return fmt::format("-F {}: {}", path, e.what());
    }
}

std::string apply_server_file(TestParams& p, const FileParams& mine, std::vector<std::string>& notes) {
    if (!mine.active()) {
        if (p.file.verify)
            return "--verify over -F: this server has no -F FILE to write to (or, with -R, to send from): start it "
                   "with -F";
        if (p.file.once)
            notes.push_back(
                "the client asked for the server's file (-R -F), but this server has no -F: it sends its "
                "pattern for the test's time");
        return {};
    }
    if (auto why = file_test_unsupported(p); !why.empty()) {
        if (p.file.verify) return "--verify over -F: " + why;
        notes.push_back(fmt::format("-F {} is not used for this test: {}", mine.path, why));
        return {};
    }
    p.file.path = mine.path;
    p.file.direct = mine.direct && p.reverse;
    if (!p.file.send) p.file.send = mine.send;
    if (!p.file.recv) p.file.recv = mine.recv;
    if (!p.reverse) return check_file_to_write(mine.path);
    std::uint64_t size = 0;
    if (auto why = check_file_to_send(mine.path, p.file.direct, size); !why.empty()) return "the server's " + why;
    if (p.file.once) {
        p.duration = 0;
        p.bytes = size;
    }
    return {};
}

void apply_server_hello_file(TestParams& p, bool peer_is_zcperf, std::uint64_t file_once_bytes,
                             std::vector<std::string>& notes) {
    if (!p.file.active()) return;
    if (!peer_is_zcperf && p.file.verify)
        throw Error("--verify over -F needs a zcperf server: a stock iperf3 server cannot hash what it handles");
    if (!p.file.once) return;
    if (file_once_bytes) {
        p.duration = 0;
        p.bytes = file_once_bytes;
        return;
    }
    notes.push_back(fmt::format("the server sends {} for the test's time (it has no -F of its own), and {} holds it",
                                peer_is_zcperf ? "its pattern" : "iperf3's pattern", p.file.path));
}

std::string file_verify_mismatch(const TestRecord& r) {
    if (!r.params.file.verify) return {};
    const SideReport* snd = r.sender_side();
    const SideReport* rcv = r.receiver_side();
    if (!snd || !rcv) return "--verify: one end's report is missing";
    for (const auto& s : snd->streams) {
        if (!s.sender) continue;
        const auto it =
            std::find_if(rcv->streams.begin(), rcv->streams.end(), [&](const StreamReport& x) { return x.id == s.id; });
        if (it == rcv->streams.end()) return fmt::format("--verify: no receiving report for stream {}", s.id);
        if (!s.file || s.file->hash.empty() || !it->file || it->file->hash.empty()) {
            if (!s.error.empty() || !it->error.empty()) continue;  // the stream's own error says why
            return fmt::format("--verify: stream {}: the {} end did not hash its file", s.id,
                               !s.file || s.file->hash.empty() ? "sending" : "receiving");
        }
        const FileReport &a = *s.file, &b = *it->file;
        if (a.hash != b.hash || a.hashed_bytes != b.hashed_bytes)
            return fmt::format(
                "--verify failed on stream {}: CRC32C of the {} bytes sent from {} ({}) differs from that of the {} "
                "bytes written to {} ({}): the source changed while it was sent, or the copy does not hold what "
                "arrived",
                s.id, a.hashed_bytes, a.path, a.hash, b.hashed_bytes, b.path, b.hash);
    }
    return {};
}

}  // namespace zcperf
