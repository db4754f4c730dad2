// CPU time, the way zcperf reports it: the process (iperf3's cpu_utilization_percent) and the
// sending thread alone (the sweep's "CPU per GB": what one send loop costs, whatever else runs).
#pragma once

#include "results.hpp"

#include <chrono>

namespace zcperf {

struct CpuSnapshot {
    double user = 0, system = 0;  // seconds of this process, all threads
    std::chrono::steady_clock::time_point wall;
};

CpuSnapshot process_cpu_now() noexcept;
CpuUsage cpu_between(const CpuSnapshot& from, const CpuSnapshot& to) noexcept;
double thread_cpu_seconds() noexcept;  // CLOCK_THREAD_CPUTIME_ID of the calling thread

}  // namespace zcperf
