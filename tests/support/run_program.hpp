// run_program: runs a command without a shell and returns its exit code and output, so tests can
// ask iproute2 what the kernel really has (`ip netns list`, `ip neigh show`) independently of the
// code under test.
//
//   auto r = zcio::test::run_program({"ip", "netns", "list"});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
//   EXPECT_NE(r.out.find(name), std::string::npos);
#pragma once

#include <string>
#include <vector>

namespace zcio::test {

struct ProgramResult {
    int exit_code = -1;  // -1: could not start, or killed by a signal
    std::string out;
    std::string err;
};

// argv[0] is looked up in PATH, then /usr/sbin and /sbin (where iproute2 lives).
ProgramResult run_program(const std::vector<std::string>& argv);

}  // namespace zcio::test
