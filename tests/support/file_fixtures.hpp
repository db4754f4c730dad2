// Files for the storage tests: a directory the test owns (on tmpfs or on the disk), files of the
// pattern (the byte at file offset k is pattern_byte(k), so any misplaced byte shows where), a
// TCP reader that keeps everything it gets, and a small tmpfs mount to fill up.
#pragma once

#include "net_fixtures.hpp"
#include "zcio/unique_fd.hpp"

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace zcio::test {

enum class Fs { tmpfs, disk };
const char* to_string(Fs fs);

// A fresh directory, removed with everything in it at the end. tmpfs: under /dev/shm; disk:
// under $ZCIO_TEST_DISK_DIR, else the working directory (the build tree), which must not be tmpfs.
class TestDir {
public:
    explicit TestDir(Fs fs);
    ~TestDir();
    TestDir(const TestDir&) = delete;
    TestDir& operator=(const TestDir&) = delete;
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }
    // Why this kind of file system is not available here, or nullopt.
    static std::optional<std::string> unavailable(Fs fs);

private:
    std::string path_;
};

// Writes pattern bytes [offset, offset + size) at their own offsets (a sparse file below offset).
void write_pattern(const std::string& path, std::uint64_t offset, std::uint64_t size, bool truncate = true);
std::vector<unsigned char> pattern(std::uint64_t offset, std::uint64_t size);
std::uint64_t hash(const unsigned char* p, std::size_t n);  // FNV-1a 64
inline std::uint64_t hash(const std::vector<unsigned char>& v) { return hash(v.data(), v.size()); }
std::vector<unsigned char> read_file(const std::string& path);

// Reads a stream socket to EOF on its own thread, keeping every byte (for a few MB).
class StreamCollector {
public:
    explicit StreamCollector(UniqueFd fd, std::uint64_t pause_after = UINT64_MAX);
    ~StreamCollector();
    void resume() { paused_.store(false); }
    // Waits for EOF (or an error); what arrived.
    const std::vector<unsigned char>& join();
    std::uint64_t bytes() const { return count_.load(); }
    int error() const { return error_.load(); }

private:
    UniqueFd fd_;
    std::vector<unsigned char> data_;
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> pause_after_;
    std::atomic<bool> paused_{true};
    std::atomic<int> error_{0};
    std::thread thread_;
};

// A tmpfs of `bytes` mounted on a directory of its own (root only): a file system to fill up.
class SmallTmpfs {
public:
    explicit SmallTmpfs(std::size_t bytes);  // throws std::runtime_error
    ~SmallTmpfs();
    const std::string& path() const { return dir_; }
    static std::optional<std::string> unavailable();

private:
    std::string dir_;
};

}  // namespace zcio::test
