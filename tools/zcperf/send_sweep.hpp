// The send sweep: every send strategy x payload sizes into one target, interleaved over
// repetitions (sweep_runner.hpp); per cell the sender's MiB/s, sends/s, CPU per GB and what the
// kernel reported, per strategy the medians and the median ratios to `plain` and `copy`. On the
// sink a minimal send() loop (`send-loop`, send_loop.hpp) runs beside them: the floor `plain` is
// held against.
#pragma once

#include "options.hpp"
#include "sweep_runner.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace zcperf {

inline constexpr const char* send_loop_name = "send-loop";

struct SendCell : CellPlace {
    double seconds = 0;
    std::uint64_t bytes = 0;     // the sender's (kernel-accepted) bytes
    std::uint64_t received = 0;  // the receiver's, where there is one
    std::uint64_t sends = 0, notifications = 0, zero_copy = 0, copied = 0, not_reported = 0, errors = 0;
    double thread_cpu = 0;  // the sending thread's CPU seconds

    // A stream that failed after sending some data still measured something.
    bool measured() const noexcept { return error.empty() || bytes > 0; }
    double mib_per_s() const noexcept;
    double sends_per_s() const noexcept;
    double cpu_s_per_gb() const noexcept;
    std::string progress_text() const;
};

struct SendRow {  // medians over repetitions
    std::string strategy;
    std::size_t size = 0;
    int runs = 0;
    double mib_per_s = 0, sends_per_s = 0, cpu_s_per_gb = 0;
    double zero_copy_share = 0, copied_share = 0, notifications_per_send = 0;
    double ratio_to_plain = 0;  // median of per-repetition ratios; 0 if unknown
    double ratio_to_copy = 0;   // the same against io_uring's copying send
    std::string error;
};

std::vector<SendRow> summarize(const std::vector<SendCell>& cells, const SweepGrid& grid);

int run_send_sweep(Options o);

}  // namespace zcperf
