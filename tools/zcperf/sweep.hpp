// The sweep: strategies x payload sizes, measured side by side in one run, and what it draws.
//
// Each repetition runs every (size, strategy) cell once, rotating the strategy order from one
// repetition to the next, so slow drift of a noisy host (5-35% here) hits every strategy alike;
// each strategy's ratio to `plain` is the median of its per-repetition ratios.
#pragma once

#include "options.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace zcperf {

struct SweepCell {
    std::string strategy;
    std::size_t size = 0;
    int rep = 0;
    double seconds = 0;
    std::uint64_t bytes = 0;           // the sender's (kernel-accepted) bytes
    std::uint64_t received = 0;        // the receiver's, where there is one
    std::uint64_t sends = 0, notifications = 0, zero_copy = 0, copied = 0, not_reported = 0, errors = 0;
    double thread_cpu = 0;             // the sending thread's CPU seconds
    std::string error;
};

struct SweepRow {                      // medians over repetitions
    std::string strategy;
    std::size_t size = 0;
    int runs = 0;
    double mib_per_s = 0, sends_per_s = 0, cpu_s_per_gb = 0;
    double zero_copy_share = 0, copied_share = 0, notifications_per_send = 0;
    double ratio_to_plain = 0;         // median of per-repetition ratios; 0 if unknown
    double ratio_to_copy = 0;          // the same against io_uring's copying send
    std::string error;
};

std::vector<SweepRow> summarize(const std::vector<SweepCell>& cells, const std::vector<std::string>& strategies,
                                const std::vector<std::size_t>& sizes);
std::string format_table(const std::vector<SweepRow>& rows, const std::string& title);

int run_sweep(Options o);

}  // namespace zcperf
