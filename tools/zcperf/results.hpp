// What one end of a zcperf test measured: per stream and for the whole process.
//
// Both ends fill a SideReport; the control connection carries it to the other end, so each can
// print the whole picture (iperf3's sum_sent / sum_received, and both ends' CPU).
#pragma once

#include "file_mode.hpp"

#include <zcio/receiver.hpp>
#include <zcio/send_engine.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace zcperf {

enum class CompletionModel : std::uint8_t { two_step, storage, group };
const char* to_string(CompletionModel m) noexcept;  // "two-step", "storage", "group"
std::optional<CompletionModel> parse_completion(std::string_view name) noexcept;

// Process CPU over the test, as iperf3 reports it: percent of one CPU over the wall time.
struct CpuUsage {
    double total = 0, user = 0, system = 0;
};

struct StreamReport {
    int id = 0;  // iperf3's numbering (1, 3, 4, 5, ...), the same on both ends
    bool sender = false;
    std::uint64_t bytes = 0;  // accepted by the kernel (sender) or received (receiver)
    double seconds = 0;
    // iperf3's "packets": UDP sender: datagrams sent; UDP receiver: the highest sequence number
    // seen; TCP receiver: recv calls that returned data.
    std::uint64_t packets = 0;
    std::uint64_t datagrams = 0;             // UDP receiver: datagrams that arrived
    std::uint64_t lost = 0;                  // UDP receiver: sequence gaps, as iperf3 counts them ("errors")
    std::uint64_t out_of_order = 0;          // UDP receiver: datagrams older than one already seen
    double jitter = 0;                       // UDP receiver: RFC 1889 interarrival jitter, seconds
    double thread_cpu_seconds = 0;           // CPU of the thread that ran this stream
    std::string strategy;                    // sender: what was asked for
    std::string completion;                  // sender: two-step / storage / group
    std::optional<zcio::Counters> counters;  // sender: the engine's account of every send
    std::optional<FileReport> file;          // -F: what this end did with its file on this stream
    std::string error;                       // empty, or why the stream stopped early
};

// The receiving side's account: one zcio::Receiver (one thread) took every stream's data.
struct RecvReport {
    std::string strategy;           // what ran ("multishot")
    std::string requested;          // what was asked for ("zcrx")
    std::string fallback_reason;    // why they differ (empty: they do not)
    std::string description;        // Receiver::describe()
    zcio::RecvCounters counters;    // every receive syscall the receiving thread made
    double thread_cpu_seconds = 0;  // CPU of the receiving thread
};

struct SideReport {
    CpuUsage cpu;
    std::vector<StreamReport> streams;
    std::optional<RecvReport> receive;  // the receiving side's
    int threads = 0;                    // sending side: threads that sent (at most one per core)
    int process_threads = 0;            // sending side: most threads the process had while sending

    std::uint64_t bytes() const noexcept {
        std::uint64_t b = 0;
        for (const auto& s : streams) b += s.bytes;
        return b;
    }
    double seconds() const noexcept {
        double t = 0;
        for (const auto& s : streams) t = s.seconds > t ? s.seconds : t;
        return t;
    }
};

}  // namespace zcperf
