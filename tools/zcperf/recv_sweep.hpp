// The receive sweep: the same sender (TCP, -P streams) into each receive strategy, interleaved
// over repetitions (sweep_runner.hpp); per cell the receiver's MB/s, CPU per GB and syscalls per
// MB, per strategy the medians and the median ratios to `plain`.
#pragma once

#include "options.hpp"
#include "sweep_runner.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace zcperf {

// One cell: what the receiving side's zcio::Receiver reported.
struct RecvCell : CellPlace {
    double seconds = 0;
    std::uint64_t bytes = 0, sent = 0, syscalls = 0;
    double cpu = 0;  // the receiving thread's CPU seconds
    std::string ran, fallback;

    double mb_per_s() const noexcept;
    double cpu_per_gb() const noexcept;
    double syscalls_per_mb() const noexcept;
    std::string progress_text() const;
};

struct RecvRow {  // medians over repetitions
    std::string recv;
    std::size_t size = 0;
    std::size_t runs = 0;
    double mb_per_s = 0, cpu_s_per_gb = 0, syscalls_per_mb = 0;
    double ratio_mb_per_s = 0, ratio_cpu_per_gb = 0, ratio_syscalls_per_mb = 0;  // to plain; 0: unknown
    std::string ran_as, fallback_reason, error;
};

std::vector<RecvRow> summarize(const std::vector<RecvCell>& cells, const SweepGrid& grid);

int run_recv_sweep(const Options& o);

}  // namespace zcperf
