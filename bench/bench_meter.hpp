// What every zcio benchmark measures the same way: the sending thread's CPU and the wall clock of
// a timed loop, the counters they give (bytes/s, CPU ns per KiB, CPU share, zero-copy share), and
// a reporter that keeps each case's per-repetition figures for a table of medians afterwards.
//
//   bench::Meter m;                                         // just before the timed loop
//   for (auto _ : state) { ... }
//   m.finish(state, payload, zero_copy, copied, releases);  // sets the counters
//   bench::MedianReporter r; benchmark::RunSpecifiedBenchmarks(&r); r.median("case", "bytes_per_second");
#pragma once

#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bench {

inline double thread_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
inline double wall_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Thread CPU and wall time of a timed loop; sets every counter of a case.
struct Meter {
    double cpu0 = thread_cpu_seconds(), wall0 = wall_seconds();

    void finish(benchmark::State& state, std::size_t payload, std::uint64_t zero_copy, std::uint64_t copied,
                std::uint64_t releases) const {
        const double cpu = thread_cpu_seconds() - cpu0, wall = wall_seconds() - wall0;
        const auto sends = static_cast<std::int64_t>(state.iterations());
        const double bytes = static_cast<double>(sends) * static_cast<double>(payload);
        state.SetItemsProcessed(sends);
        state.SetBytesProcessed(sends * static_cast<std::int64_t>(payload));
        state.counters["cpu_ns_per_KiB"] = bytes > 0 ? cpu * 1e9 / (bytes / 1024) : 0;
        state.counters["cpu_util"] = wall > 0 ? cpu / wall : 0;
        const double n = releases ? static_cast<double>(releases) : 1;
        state.counters["zc_share"] = static_cast<double>(zero_copy) / n;
        state.counters["copied_share"] = static_cast<double>(copied) / n;
    }
};

// Console output as usual, and every repetition's counters kept by case name (function name).
class MedianReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs) {
            if (r.error_occurred) continue;
            if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
            auto& into = r.run_type == Run::RT_Aggregate ? medians_ : runs_;
            for (const auto& [key, counter] : r.counters) into[r.run_name.function_name][key].push_back(counter.value);
        }
        ConsoleReporter::ReportRuns(runs);
    }
    // The median over repetitions of `counter` for case `name` (0 if it did not run).
    double median(const std::string& name, const std::string& counter) const {
        for (const auto* m : {&runs_, &medians_}) {
            auto it = m->find(name);
            if (it == m->end()) continue;
            auto c = it->second.find(counter);
            if (c != it->second.end() && !c->second.empty()) return bench::median(c->second);
        }
        return 0;
    }

private:
    using Figures = std::map<std::string, std::vector<double>>;
    std::map<std::string, Figures> runs_, medians_;
};

}  // namespace bench
