// bench_file: every way Linux moves a file's bytes to a socket (zcio::FileSender's strategies),
// side by side with minimal hand-written loops, and socket -> file (zcio::FileReceiver).
//
// file -> socket: UDP datagrams of 61440 B into the sink namespace (veth, `pfifo limit 0`, MTU
// 65535: every packet crosses the transmit path and is dropped, so zero-copy stays zero-copy),
// from a file on the disk warm in the page cache (and the same file with O_DIRECT). One iteration
// sends the whole file. socket -> file: loopback TCP from a thread sending memory, written to a
// file on the disk. Cases are repeated and randomly interleaved (Google Benchmark's
// --benchmark_enable_random_interleaving), so drifting machine noise hits every case alike.
//
//   sudo build/bench/bench_file --table                   # ~2-3 min; Markdown ratios at the end
//   ZCIO_BENCH_FILE=/work/big.dat ZCIO_BENCH_MIB=1024 build/bench/bench_file --table
//
// Rows: file/<strategy>, file/sendfile-loop (sendfile(2) per datagram, nothing else),
// crc/<strategy> (a CRC32C hook reads every byte), crc/pread-crc-send-loop (pread + CRC + send(2)),
// direct/<strategy> (O_DIRECT), direct/raw-read (READ_FIXED O_DIRECT into the same arena, no
// network: the storage's own rate), recv/<strategy>.
#include "bench_meter.hpp"
#include "zcio/buffer_arena.hpp"
#include "zcio/error.hpp"
#include "zcio/file.hpp"
#include "zcio/file_receiver.hpp"
#include "zcio/file_sender.hpp"
#include "zcio/ring.hpp"
#include "zcio/send_engine.hpp"
#include "zcio/sink_namespace.hpp"

#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <liburing.h>
#include <nmmintrin.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t datagram = 61440;
constexpr std::size_t slab = 64 << 10;
constexpr std::uint32_t depth = 32;

std::unique_ptr<zcio::SinkNamespace> g_sink;
std::string g_path;
std::uint64_t g_size = 0;
std::uint64_t g_recv_bytes = 256u << 20;

zcio::UniqueFd sink_socket() {
    zcio::UniqueFd fd = g_sink->socket(zcio::SinkNamespace::tx, SOCK_DGRAM);
    const sockaddr_in to = g_sink->address(zcio::SinkNamespace::rx, 9);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
        std::perror("bench_file: connect");
        std::exit(1);
    }
    return fd;
}

// CRC32C with the SSE4.2 instruction: a hook that reads every byte at memory speed.
[[gnu::target("sse4.2")]] std::uint32_t crc32c(std::uint32_t crc, const std::byte* p, std::size_t n) {
    std::uint64_t c = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
    }
    for (; n > 0; ++p, --n) c = _mm_crc32_u8(static_cast<std::uint32_t>(c), std::to_integer<std::uint8_t>(*p));
    return ~static_cast<std::uint32_t>(c);
}
volatile std::uint32_t g_crc_sink;

void finish(benchmark::State& state, std::uint64_t bytes_per_iteration) {
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes_per_iteration));
}

// ---- zcio::FileSender ------------------------------------------------------------------------------

void bm_sender(benchmark::State& state, zcio::FileSendStrategy strategy, bool crc, bool direct) {
    zcio::UniqueFd sock = sink_socket();
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = slab, .slab_count = depth * 2});
    zcio::SendEngine engine(ring);
    zcio::FileSender tx(engine, arena, sock.get());
    const zcio::File f = zcio::File::open(g_path, {.direct = direct});
    zcio::FileSendOptions o{.strategy = strategy, .chunk = datagram, .depth = depth};
    std::uint32_t crc_value = 0;
    if (crc)
        o.hook = [&crc_value](std::span<std::byte> b, std::uint64_t) {
            crc_value = crc32c(crc_value, b.data(), b.size());
            return 0;
        };
    zcio::FileSendReport last;
    for (auto _ : state) {
        last = tx.send(f, {}, o);
        if (last.error) {
            state.SkipWithError(last.message.c_str());
            return;
        }
    }
    g_crc_sink = crc_value;
    finish(state, g_size);
    const double rel = static_cast<double>(last.zero_copy + last.copied);
    state.counters["zc_share"] = rel > 0 ? static_cast<double>(last.zero_copy) / rel : 0;
    state.SetLabel(std::string("used ") + zcio::to_string(last.used));
}

// ---- minimal hand-written loops -------------------------------------------------------------------

void bm_sendfile_loop(benchmark::State& state) {
    zcio::UniqueFd sock = sink_socket();
    zcio::UniqueFd fd(::open(g_path.c_str(), O_RDONLY));
    for (auto _ : state) {
        off_t off = 0;
        while (static_cast<std::uint64_t>(off) < g_size) {
            const auto n = std::min<std::uint64_t>(datagram, g_size - static_cast<std::uint64_t>(off));
            if (::sendfile(sock.get(), fd.get(), &off, n) <= 0) return state.SkipWithError("sendfile failed");
        }
    }
    finish(state, g_size);
}

void bm_pread_crc_send_loop(benchmark::State& state) {
    zcio::UniqueFd sock = sink_socket();
    zcio::UniqueFd fd(::open(g_path.c_str(), O_RDONLY));
    std::vector<std::byte> buf(slab);
    std::uint32_t crc = 0;
    for (auto _ : state) {
        for (std::uint64_t off = 0; off < g_size;) {
            const auto n = std::min<std::uint64_t>(datagram, g_size - off);
            if (::pread(fd.get(), buf.data(), n, static_cast<off_t>(off)) != static_cast<ssize_t>(n))
                return state.SkipWithError("pread failed");
            crc = crc32c(crc, buf.data(), n);
            if (::send(sock.get(), buf.data(), n, 0) < 0) return state.SkipWithError("send failed");
            off += n;
        }
    }
    g_crc_sink = crc;
    finish(state, g_size);
}

// The storage's own rate: O_DIRECT READ_FIXED into the same kind of arena, `depth` in flight.
void bm_raw_direct_read(benchmark::State& state) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = slab, .slab_count = depth * 2});
    const zcio::File f = zcio::File::open(g_path, {.direct = true});
    std::vector<zcio::Buffer> bufs;
    for (std::uint32_t i = 0; i < depth; ++i) bufs.push_back(arena.take());
    struct Read : zcio::Completion {
        int res = 0;
        bool done = true;
    };
    std::vector<Read> reads(depth);
    for (Read& r : reads)
        r.fn = [](zcio::Completion* c, const io_uring_cqe& cqe) {
            static_cast<Read*>(c)->res = cqe.res;
            static_cast<Read*>(c)->done = true;
        };
    for (auto _ : state) {
        std::uint64_t next = 0, got = 0;
        while (got < g_size) {
            for (std::uint32_t i = 0; i < depth && next < g_size; ++i) {
                if (!reads[i].done) continue;
                if (reads[i].res > 0) got += static_cast<std::uint64_t>(reads[i].res), reads[i].res = 0;
                const auto n = static_cast<unsigned>(std::min<std::uint64_t>(datagram, g_size - next));
                io_uring_sqe* sqe = ring.sqe();
                io_uring_prep_read_fixed(sqe, f.fd(), bufs[i].data(), (n + 4095) & ~4095u, next, bufs[i].buf_index());
                io_uring_sqe_set_data(sqe, &reads[i]);
                reads[i].done = false;
                next += n;
            }
            ring.run(1);
            if (next >= g_size) {
                for (Read& r : reads) {
                    while (!r.done) ring.run(1);
                    if (r.res > 0) got += static_cast<std::uint64_t>(r.res), r.res = 0;
                }
            }
        }
    }
    finish(state, g_size);
}

// ---- zcio::FileReceiver: loopback TCP from a thread sending memory ----------------------------------

void bm_receiver(benchmark::State& state, zcio::FileRecvStrategy strategy) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = slab, .slab_count = 128});
    zcio::FileReceiver rx(ring, arena);
    const std::string out_path = g_path + ".recv";
    const zcio::File out = zcio::File::open(out_path, {.write = true, .create = true});
    std::vector<char> payload(256 << 10, 'z');
    for (auto _ : state) {
        zcio::UniqueFd listener(::socket(AF_INET, SOCK_STREAM, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        ::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(listener.get(), 1);
        ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len);
        std::thread sender([&] {
            zcio::UniqueFd s(::socket(AF_INET, SOCK_STREAM, 0));
            ::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
            for (std::uint64_t sent = 0; sent < g_recv_bytes;) {
                const ssize_t n = ::send(s.get(), payload.data(), payload.size(), MSG_NOSIGNAL);
                if (n <= 0) return;
                sent += static_cast<std::uint64_t>(n);
            }
        });
        zcio::UniqueFd conn(::accept(listener.get(), nullptr, nullptr));
        const auto r = rx.receive(conn.get(), out, {.strategy = strategy});
        sender.join();
        if (r.error || r.bytes_written < g_recv_bytes) return state.SkipWithError(r.message.c_str());
    }
    finish(state, g_recv_bytes);
}

// ---- the file, and --table ---------------------------------------------------------------------------

void make_file() {
    struct stat st {};
    if (::stat(g_path.c_str(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) != g_size) {
        std::printf("bench_file: writing %s (%llu MiB)\n", g_path.c_str(),
                    static_cast<unsigned long long>(g_size >> 20));
        zcio::UniqueFd fd(::open(g_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
        std::vector<unsigned char> chunk(1 << 20);
        for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<unsigned char>(i * 131 + 7);
        for (std::uint64_t at = 0; at < g_size; at += chunk.size())
            if (::write(fd.get(), chunk.data(), chunk.size()) < 0) std::exit(1);
        ::fsync(fd.get());
    }
    // Warm: every page in the page cache.
    zcio::UniqueFd fd(::open(g_path.c_str(), O_RDONLY));
    std::vector<char> buf(1 << 20);
    while (::read(fd.get(), buf.data(), buf.size()) > 0) {}
}

using bench::median;

class TableReporter : public benchmark::ConsoleReporter {
public:
    std::map<std::string, std::vector<double>> bps;  // per repetition

    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs)
            if (!r.error_occurred && r.run_type == Run::RT_Iteration) {
                auto it = r.counters.find("bytes_per_second");
                if (it != r.counters.end()) bps[r.run_name.function_name].push_back(it->second.value);
            }
        ConsoleReporter::ReportRuns(runs);
    }
    double get(const std::string& name) const {
        auto it = bps.find(name);
        return it == bps.end() ? 0 : median(it->second);
    }
    void ratio(const char* what, const std::string& a, const std::string& b, double target) const {
        const double x = get(a), y = get(b);
        if (x <= 0 || y <= 0) return;
        std::printf("| %s | %s %.0f / %s %.0f | **%.2f** | %.2f | %s |\n", what, a.c_str(), x / 1e6, b.c_str(), y / 1e6,
                    x / y, target, x / y >= target ? "met" : "missed");
    }
    void print_table() const {
        std::printf("\n### bench_file: medians of the repetitions, MB/s, ratios\n\n");
        std::printf("| target | cases (MB/s) | ratio | target | |\n|---|---|---|---|---|\n");
        ratio("read-zc vs read-send", "file/read-zc", "file/read-send", 1.5);
        ratio("sendfile vs a minimal sendfile(2) loop", "file/sendfile", "file/sendfile-loop", 0.95);
        const std::string best = get("file/sendfile") >= get("file/read-zc") ? "file/sendfile" : "file/read-zc";
        ratio("auto vs the best, cached file", "file/auto", best, 0.95);
        ratio("CRC hook: read-zc vs pread+CRC+send loop", "crc/read-zc", "crc/pread-crc-send-loop", 1.25);
        ratio("CRC hook: read-zc vs read-send (library)", "crc/read-zc", "crc/read-send", 1.25);
        ratio("CRC hook: auto vs read-zc", "crc/auto", "crc/read-zc", 0.95);
        ratio("O_DIRECT read-zc vs raw O_DIRECT read", "direct/read-zc", "direct/raw-read", 0.9);
        ratio("O_DIRECT auto vs read-zc", "direct/auto", "direct/read-zc", 0.95);
        ratio("recv-write-fixed vs recv-write", "recv/recv-write-fixed", "recv/recv-write", 1.0);
        ratio("splice (recv) vs recv-write", "recv/splice", "recv/recv-write", 0);
        std::fflush(stdout);
    }
};

void register_all() {
    using S = zcio::FileSendStrategy;
    std::vector<benchmark::internal::Benchmark*> b;
    for (S s : zcio::all_file_send_strategies)
        b.push_back(benchmark::RegisterBenchmark((std::string("file/") + zcio::to_string(s)).c_str(), bm_sender, s,
                                                 false, false));
    b.push_back(benchmark::RegisterBenchmark("file/sendfile-loop", bm_sendfile_loop));
    for (S s : {S::read_send, S::read_zc, S::automatic})
        b.push_back(benchmark::RegisterBenchmark((std::string("crc/") + zcio::to_string(s)).c_str(), bm_sender, s, true,
                                                 false));
    b.push_back(benchmark::RegisterBenchmark("crc/pread-crc-send-loop", bm_pread_crc_send_loop));
    for (S s : {S::read_send, S::read_zc, S::automatic})
        b.push_back(benchmark::RegisterBenchmark((std::string("direct/") + zcio::to_string(s)).c_str(), bm_sender, s,
                                                 false, true));
    b.push_back(benchmark::RegisterBenchmark("direct/raw-read", bm_raw_direct_read));
    for (zcio::FileRecvStrategy s : zcio::all_file_recv_strategies)
        b.push_back(benchmark::RegisterBenchmark((std::string("recv/") + zcio::to_string(s)).c_str(), bm_receiver, s));
    for (auto* x : b) x->UseRealTime()->MinTime(0.3)->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
    bool table = false;
    bench::Args args(argc, argv, [&](std::string_view a) { return a == "--table" && (table = true); });
    const char* path = std::getenv("ZCIO_BENCH_FILE");
    g_path = path ? path : "bench_file.dat";
    const char* mib = std::getenv("ZCIO_BENCH_MIB");
    g_size = (mib ? std::strtoull(mib, nullptr, 10) : 1024) << 20;
    if (auto why = zcio::SinkNamespace::unavailable_reason()) {
        std::printf("bench_file: skipped, no sink namespace here: %s\n", why->c_str());
        return 0;
    }
    g_sink = std::make_unique<zcio::SinkNamespace>(zcio::SinkOptions{.mtu = 65535, .name_prefix = "bfile"});
    make_file();
    register_all();

    if (!args.initialize()) return 1;
    TableReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    if (table) reporter.print_table();
    benchmark::Shutdown();
    g_sink.reset();
    return 0;
}
