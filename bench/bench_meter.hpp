// What every zcio benchmark measures the same way: the sending thread's CPU and the wall clock of
// a timed loop, the counters they give (bytes/s, CPU ns per KiB, CPU share, zero-copy share), and
// a reporter that keeps each case's per-repetition figures for a table of medians afterwards.
//
//   bench::Meter m;                                         // just before the timed loop
//   for (auto _ : state) { ... }
//   m.finish(state, payload, zero_copy, copied, releases);  // sets the counters
//   bench::MedianReporter r; benchmark::RunSpecifiedBenchmarks(&r); r.median("case", "bytes_per_second");
//   bench::Args a(argc, argv, [&](std::string_view f) { return f == "--table" && (table = true); });
//   if (!a.initialize()) return 1;          // zcio's defaults for Google Benchmark, then its own flags
#pragma once

#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
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

// The command line: our own flags taken out (`ours` returns true for each it took), Google
// Benchmark's given defaults (repetitions, interleaving, ...) added unless the user gave them.
class Args {
public:
    template <typename Ours>
    Args(int argc, char** argv, Ours ours,
         std::vector<std::string> defaults = {"--benchmark_repetitions=5",
                                              "--benchmark_enable_random_interleaving=true"}) {
        args_.emplace_back(argv[0]);
        for (int i = 1; i < argc; ++i)
            if (!ours(std::string_view(argv[i]))) args_.emplace_back(argv[i]);
        for (auto& d : defaults)
            if (!given(d.substr(0, d.find('=')))) args_.push_back(std::move(d));
    }
    bool given(std::string_view prefix) const {
        for (const auto& a : args_)
            if (a.rfind(prefix, 0) == 0) return true;
        return false;
    }
    // The value of a --flag=N we passed on (after defaults), or `fallback`.
    int number(std::string_view prefix, int fallback) const {
        for (const auto& a : args_)
            if (a.rfind(prefix, 0) == 0) return std::atoi(a.c_str() + prefix.size());
        return fallback;
    }
    // benchmark::Initialize on what is left; false: a flag nobody knows (already reported).
    bool initialize() {
        std::vector<char*> argv;
        for (auto& a : args_) argv.push_back(a.data());
        int argc = static_cast<int>(argv.size());
        argv.push_back(nullptr);
        benchmark::Initialize(&argc, argv.data());
        return !benchmark::ReportUnrecognizedArguments(argc, argv.data());
    }

private:
    std::vector<std::string> args_;
};

}  // namespace bench
