#include "sweep_runner.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>

namespace zcperf {

namespace {

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::vector<std::string> interleaved_order(const std::vector<std::string>& names, int rep) {
    std::vector<std::string> order = names;
    if (order.empty()) return order;
    const auto shift = static_cast<std::ptrdiff_t>(static_cast<std::size_t>(rep) % order.size());
    std::rotate(order.begin(), order.begin() + shift, order.end());
    if (rep % 2) std::reverse(order.begin(), order.end());
    return order;
}

std::vector<std::size_t> sorted_sizes(std::vector<std::size_t> sizes) {
    std::sort(sizes.begin(), sizes.end());
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
    return sizes;
}

void ensure_baseline(std::vector<std::string>& names, const std::string& baseline) {
    if (std::find(names.begin(), names.end(), baseline) == names.end()) names.insert(names.begin(), baseline);
}

ProgressLine::ProgressLine(bool enabled, std::size_t total)
    : enabled_(enabled), total_(total), started_(now_seconds()) {}

ProgressLine::~ProgressLine() {
    if (enabled_) fmt::print(stderr, "\r\033[K");
}

void ProgressLine::cell_done(const CellPlace& at, const std::string& result) {
    ++done_;
    if (!enabled_) return;
    const double per_cell = (now_seconds() - started_) / static_cast<double>(done_);
    fmt::print(stderr, "\r[{}/{}, {:.0f} s left] {} {} B: {}\033[K", done_, total_,
               per_cell * static_cast<double>(total_ - done_), at.name, at.size, result);
    std::fflush(stderr);
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace zcperf
