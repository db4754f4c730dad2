#include "cpu.hpp"

#include <sys/resource.h>
#include <time.h>

namespace zcperf {

namespace {
double seconds(const timeval& tv) noexcept {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
}
}  // namespace

CpuSnapshot process_cpu_now() noexcept {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return {seconds(ru.ru_utime), seconds(ru.ru_stime), std::chrono::steady_clock::now()};
}

CpuUsage cpu_between(const CpuSnapshot& from, const CpuSnapshot& to) noexcept {
    const double wall = std::chrono::duration<double>(to.wall - from.wall).count();
    if (wall <= 0) return {};
    CpuUsage u;
    u.user = 100.0 * (to.user - from.user) / wall;
    u.system = 100.0 * (to.system - from.system) / wall;
    u.total = u.user + u.system;
    return u;
}

double thread_cpu_seconds() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace zcperf
