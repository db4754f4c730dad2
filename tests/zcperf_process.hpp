// Programs as a user runs them, for zcperf's end-to-end tests: a process (zcperf, iperf3, or
// either inside a network namespace via `ip netns exec`) with its stdout and stderr in files, a
// free port, and "is it listening yet" without connecting to it.
//
//   zcio::test::Process server({"iperf3", "-s", "-1", "-p", port_text, "-J"});
//   zcio::test::wait_listening(port);
//   int rc = server.wait(15s);   // -1: it hung and was killed
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace zcio::test {

inline std::string slurp(const std::filesystem::path& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// argv[0] is looked up in PATH (posix_spawnp).
class Process {
public:
    explicit Process(std::vector<std::string> argv) {
        static int counter = 0;
        dir_ = std::filesystem::temp_directory_path() /
               ("zcperf-proc-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::create_directories(dir_);
        std::vector<char*> cargv;
        for (auto& a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, (dir_ / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addopen(&fa, 2, (dir_ / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addchdir_np(&fa, dir_.c_str());
        if (posix_spawnp(&pid_, cargv[0], &fa, nullptr, cargv.data(), environ) != 0) pid_ = -1;
        posix_spawn_file_actions_destroy(&fa);
    }
    ~Process() {
        if (pid_ > 0 && !exited_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    // Exit code, or -1 if it had to be killed after `timeout` (a hang is a failure).
    int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        if (pid_ <= 0) return -2;
        if (exited_) return status_;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                exited_ = true;
                status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                return status_;
            }
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, nullptr, 0);
                exited_ = true;
                status_ = -1;
                return -1;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    bool running() {
        if (exited_ || pid_ <= 0) return false;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            exited_ = true;
            status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return false;
        }
        return true;
    }
    void signal(int sig) { ::kill(pid_, sig); }
    pid_t pid() const noexcept { return pid_; }
    std::string out() const { return slurp(dir_ / "out"); }
    std::string err() const { return slurp(dir_ / "err"); }

private:
    std::filesystem::path dir_;
    pid_t pid_ = -1;
    bool exited_ = false;
    int status_ = 0;
};

// A port nobody uses right now, TCP and UDP (iperf3's UDP streams use the server's port too).
inline std::uint16_t free_port() {
    for (;;) {
        int t = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        ::bind(t, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socklen_t len = sizeof a;
        ::getsockname(t, reinterpret_cast<sockaddr*>(&a), &len);
        int u = ::socket(AF_INET, SOCK_DGRAM, 0);
        const bool udp_free = ::bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(u);
        ::close(t);
        if (udp_free) return ntohs(a.sin_port);
    }
}

// Whether something listens on TCP `port` (looked up in /proc, so the server sees no connection;
// in the calling thread's network namespace).
inline bool listening(std::uint16_t port) {
    char hex[8];
    std::snprintf(hex, sizeof hex, ":%04X", port);
    for (const char* file : {"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"}) {
        std::ifstream f(file);
        std::string line;
        while (std::getline(f, line)) {
            std::istringstream ls(line);
            std::string sl, local, remote, state;
            ls >> sl >> local >> remote >> state;
            if (state == "0A" && local.size() > 5 && local.compare(local.size() - 5, 5, hex) == 0) return true;
        }
    }
    return false;
}

inline bool wait_listening(std::uint16_t port, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!listening(port))
        if (std::chrono::steady_clock::now() > deadline) return false;
        else std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return true;
}

// Whether `program` can be run (found in PATH).
inline bool have_program(const std::string& program) {
    Process p({program, "--version"});
    return p.wait(std::chrono::seconds(10)) == 0;
}

// A value from /proc/PID/status in kB ("VmHWM", "VmRSS"), or -1.
inline long proc_status_kb(pid_t pid, const std::string& key) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
    return -1;
}

inline int open_fds(pid_t pid) {
    std::error_code ec;
    int n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++n;
    return n;
}

}  // namespace zcio::test
