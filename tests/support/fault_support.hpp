// Helpers for the fault and lifetime tests: deadlines, bounded joins, per-send exactly-once
// bookkeeping, process RSS, and whether a known-bug test should run.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "net_fixtures.hpp"

namespace zcio::test {

class Deadline {
public:
    explicit Deadline(std::chrono::nanoseconds d) : end_(std::chrono::steady_clock::now() + d) {}
    bool passed() const { return std::chrono::steady_clock::now() >= end_; }

private:
    std::chrono::steady_clock::time_point end_;
};

// Joins the checker within `limit`. If it has not seen EOF by then, shuts the sender down (the
// receiver then sees EOF or a reset) and resumes it, so the join always ends. Returns whether the
// join came on its own.
inline bool join_within(StreamChecker& checker, int sender_fd, std::chrono::milliseconds limit) {
    auto joined = std::async(std::launch::async, [&checker] { checker.join(); });
    if (joined.wait_for(limit) == std::future_status::ready) return true;
    if (sender_fd >= 0) ::shutdown(sender_fd, SHUT_RDWR);
    checker.resume();
    joined.wait();
    return false;
}

// Resident set size of this process, from /proc/self/statm.
inline std::size_t rss_bytes() {
    std::ifstream f("/proc/self/statm");
    std::size_t size = 0, resident = 0;
    f >> size >> resident;
    return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// One counter per send: every release must bump its own exactly once.
struct ReleaseLedger {
    std::vector<std::uint32_t> count;
    std::uint64_t releases = 0;
    std::uint64_t errors = 0;
    std::uint64_t bytes = 0;
    int first_error = 0;
    int last_error = 0;

    std::uint32_t add() {
        count.push_back(0);
        return static_cast<std::uint32_t>(count.size() - 1);
    }
    void released(std::uint32_t id, int error, std::size_t nbytes) {
        ++count.at(id);
        ++releases;
        bytes += nbytes;
        if (error) {
            ++errors;
            if (!first_error) first_error = error;
            last_error = error;
        }
    }
    // Sends whose release count is not exactly one.
    std::size_t not_exactly_once() const {
        std::size_t n = 0;
        for (auto c : count) n += c != 1;
        return n;
    }
};

// True when built with AddressSanitizer (gcc defines __SANITIZE_ADDRESS__, clang has the feature).
constexpr bool sanitized_build() {
#if defined(__SANITIZE_ADDRESS__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}

// Tests of known library bugs skip unless ZCIO_RUN_KNOWN_BUGS=1, so the suite stays green while
// the bug is open; run them with the variable set to see the failure.
inline bool run_known_bugs() {
    const char* v = std::getenv("ZCIO_RUN_KNOWN_BUGS");
    return v && std::string(v) == "1";
}

}  // namespace zcio::test
