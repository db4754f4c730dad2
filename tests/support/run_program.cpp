#include "run_program.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "zcio/unique_fd.hpp"

extern char** environ;

namespace zcio::test {
namespace {

std::string read_back(int fd) {
    std::string s;
    ::lseek(fd, 0, SEEK_SET);
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<std::size_t>(n));
    return s;
}

}  // namespace

ProgramResult run_program(const std::vector<std::string>& argv) {
    ProgramResult r;
    if (argv.empty()) return r;
    std::string path = argv[0];
    if (path.find('/') == std::string::npos) {
        for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
            if (::access((dir + argv[0]).c_str(), X_OK) == 0) {
                path = dir + argv[0];
                break;
            }
        }
    }
    zcio::UniqueFd out(::memfd_create("run_program-out", MFD_CLOEXEC));
    zcio::UniqueFd err(::memfd_create("run_program-err", MFD_CLOEXEC));
    std::vector<std::string> storage = argv;
    std::vector<char*> args;
    for (auto& a : storage) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err.get(), STDERR_FILENO);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, path.c_str(), &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        r.err = "cannot start " + path;
        return r;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_back(out.get());
    r.err = read_back(err.get());
    return r;
}

}  // namespace zcio::test
