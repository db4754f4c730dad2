#include "file_fixtures.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace zcio::test {

const char* to_string(Fs fs) { return fs == Fs::tmpfs ? "tmpfs" : "disk"; }

namespace {
std::string base_of(Fs fs) {
    if (fs == Fs::tmpfs) return "/dev/shm";
    const char* env = std::getenv("ZCIO_TEST_DISK_DIR");
    return env ? env : std::filesystem::current_path().string();
}
bool is_tmpfs(const std::string& dir) {
    struct statfs s {};
    return ::statfs(dir.c_str(), &s) == 0 && s.f_type == TMPFS_MAGIC;
}
}  // namespace

std::optional<std::string> TestDir::unavailable(Fs fs) {
    const std::string base = base_of(fs);
    if (::access(base.c_str(), W_OK) != 0) return base + " is not writable";
    if (fs == Fs::tmpfs && !is_tmpfs(base)) return base + " is not tmpfs";
    if (fs == Fs::disk && is_tmpfs(base)) return base + " is tmpfs: set ZCIO_TEST_DISK_DIR to a directory on a disk";
    return std::nullopt;
}

TestDir::TestDir(Fs fs) {
    std::string tmpl = base_of(fs) + "/zcio-files-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    path_ = tmpl;
}

TestDir::~TestDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::vector<unsigned char> pattern(std::uint64_t offset, std::uint64_t size) {
    std::vector<unsigned char> v(size);
    for (std::uint64_t i = 0; i < size; ++i) v[i] = pattern_byte(offset + i);
    return v;
}

void write_pattern(const std::string& path, std::uint64_t offset, std::uint64_t size, bool truncate) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644));
    if (!fd) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
    constexpr std::uint64_t step = 1 << 20;
    for (std::uint64_t at = 0; at < size; at += step) {
        const auto v = pattern(offset + at, std::min(step, size - at));
        if (::pwrite(fd.get(), v.data(), v.size(), static_cast<off_t>(offset + at)) != static_cast<ssize_t>(v.size()))
            throw std::runtime_error("pwrite " + path + ": " + std::strerror(errno));
    }
}

std::uint64_t hash(const unsigned char* p, std::size_t n) {
    std::uint64_t h = 1469598103934665603ull;
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

std::vector<unsigned char> read_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    std::vector<unsigned char> v;
    if (!fd) return v;
    unsigned char buf[1 << 16];
    for (ssize_t r; (r = ::read(fd.get(), buf, sizeof buf)) > 0;) v.insert(v.end(), buf, buf + r);
    return v;
}

StreamCollector::StreamCollector(UniqueFd fd, std::uint64_t pause_after)
    : fd_(std::move(fd)), pause_after_(pause_after), thread_([this] {
          std::vector<unsigned char> buf(256 << 10);
          for (;;) {
              if (count_.load() >= pause_after_.load() && paused_.load()) {
                  ::usleep(1000);
                  continue;
              }
              const ssize_t r = ::recv(fd_.get(), buf.data(), buf.size(), 0);
              if (r < 0 && errno == EINTR) continue;
              if (r <= 0) {
                  if (r < 0) error_.store(errno);
                  return;
              }
              data_.insert(data_.end(), buf.data(), buf.data() + r);
              count_.fetch_add(static_cast<std::uint64_t>(r));
          }
      }) {}

StreamCollector::~StreamCollector() {
    resume();
    if (thread_.joinable()) {
        ::shutdown(fd_.get(), SHUT_RDWR);
        thread_.join();
    }
}

const std::vector<unsigned char>& StreamCollector::join() {
    resume();
    if (thread_.joinable()) thread_.join();
    return data_;
}

std::optional<std::string> SmallTmpfs::unavailable() {
    if (::geteuid() != 0) return std::string("mounting a tmpfs needs root");
    return std::nullopt;
}

SmallTmpfs::SmallTmpfs(std::size_t bytes) {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/zcio-full-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
    dir_ = tmpl;
    const std::string opts = "size=" + std::to_string(bytes) + ",mode=0777";
    if (::mount("zcio-test", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
        const int err = errno;
        ::rmdir(dir_.c_str());
        throw std::runtime_error("mount tmpfs on " + dir_ + ": " + std::strerror(err));
    }
}

SmallTmpfs::~SmallTmpfs() {
    ::umount2(dir_.c_str(), MNT_DETACH);
    ::rmdir(dir_.c_str());
}

}  // namespace zcio::test
