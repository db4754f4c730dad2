#include "unprivileged.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <exception>

namespace zcio::test {

// A new one per call: a ring a previous child closed is torn down asynchronously, and its charge stays
// on the uid's account until then.
uid_t scratch_uid() {
    static std::atomic<unsigned> calls{0};
    const auto pid = static_cast<unsigned>(::getpid()) % 1'000'000u;
    return static_cast<uid_t>(3'000'000u + pid * 64u + calls++ % 64u);
}

ChildResult run_unprivileged(std::uint64_t memlock, const std::function<int(std::string& message)>& body,
                             std::chrono::milliseconds limit) {
    ChildResult result;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        result.message = "pipe2 failed";
        return result;
    }
    const uid_t uid = scratch_uid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        result.message = "fork failed";
        return result;
    }
    if (pid == 0) {
        // The child: no gtest, no exceptions out; the verdict goes through the exit code and the pipe.
        ::close(fds[0]);
        auto report = [&](int code, const std::string& msg) {
            [[maybe_unused]] ssize_t w = ::write(fds[1], msg.data(), msg.size());
            ::_exit(code);
        };
        rlimit lim{memlock, memlock};
        if (::setrlimit(RLIMIT_MEMLOCK, &lim) != 0) report(10, "setrlimit failed");
        if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0)
            report(11, "cannot drop to uid " + std::to_string(uid));
        if (::geteuid() == 0) report(12, "still root");
        std::string msg;
        int code = 3;
        try {
            code = body(msg);
        } catch (const std::exception& e) {
            msg += std::string("exception: ") + e.what();
        }
        report(code, msg);
    }
    ::close(fds[1]);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        pollfd pf{fds[0], POLLIN, 0};
        if (::poll(&pf, 1, 100) > 0) {
            char buf[1024];
            const ssize_t n = ::read(fds[0], buf, sizeof buf);
            if (n <= 0) break;
            result.message.append(buf, static_cast<std::size_t>(n));
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(pid, SIGKILL);
            result.message += " [killed: still running after the deadline]";
            break;
        }
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    return result;
}

}  // namespace zcio::test
