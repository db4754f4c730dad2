// Running part of a test as an ordinary user with a small RLIMIT_MEMLOCK, from a test run as root.
//
// Root is exempt from io_uring's locked-memory accounting (CAP_IPC_LOCK), so what users without
// root meet can only be seen in a process that gave up root: a forked child drops to a uid of its
// own (the kernel keeps the locked-memory account per uid: a uid shared with other test runs would
// share their charges) and reports through its exit code and a message.
//
//   auto r = zcio::test::run_unprivileged(64 << 10, [](std::string& msg) { msg = "..."; return 0; });
//   EXPECT_EQ(r.exit_code, 0) << r.message;
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace zcio::test {

struct ChildResult {
    int exit_code = -1;  // -1: crashed, killed, or hung past the deadline
    std::string message;
};

// A uid (and gid) that no account holds and no concurrent test run uses: from our pid and a count.
uid_t scratch_uid();

// Forks; the child sets RLIMIT_MEMLOCK to `memlock` bytes (soft and hard), drops every group and
// becomes scratch_uid(), then runs `body` (no gtest in there: its verdict is the return value and
// the message). Exceptions out of `body` become exit code 3. A child still running at `limit` is
// killed. Codes 10-12 mean the set-up itself failed.
ChildResult run_unprivileged(std::uint64_t memlock, const std::function<int(std::string& message)>& body,
                             std::chrono::milliseconds limit = std::chrono::seconds(30));

}  // namespace zcio::test
