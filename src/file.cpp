#include "zcio/file.hpp"

#include "zcio/error.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace zcio {
namespace {

std::string octal(mode_t m) {
    char b[8];
    std::snprintf(b, sizeof b, "%04o", static_cast<unsigned>(m & 07777));
    return b;
}

// What to do about an open(2) failure, in words.
std::string open_hint(const std::string& path, int err, const FileOpen& how) {
    struct stat st {};
    switch (err) {
    case ENOENT: return how.write ? "a directory on the way is missing: create it" : "check the path: no such file";
    case EACCES:
    case EPERM:
        if (::stat(path.c_str(), &st) == 0)
            return "the file is mode " + octal(st.st_mode) + ", owner uid " + std::to_string(st.st_uid) +
                   ", and this process runs as uid " + std::to_string(::geteuid()) +
                   ": grant access (chmod/chown) or run as a user who has it";
        return "this process (uid " + std::to_string(::geteuid()) + ") may not open it: check the permissions";
    case EISDIR: return "it is a directory: name a regular file";
    case EINVAL:
        return how.direct ? "the file system refuses O_DIRECT (tmpfs, overlay...): open it without direct"
                          : "check the flags";
    case EROFS: return "the file system is read-only";
    default: return {};
    }
}

}  // namespace

File File::open(const std::string& path, const FileOpen& how) {
    int flags = O_CLOEXEC | (how.write ? O_RDWR : O_RDONLY);
    if (how.write && how.create) flags |= O_CREAT;
    if (how.write && how.truncate) flags |= O_TRUNC;
    if (how.direct) flags |= O_DIRECT;
    File f;
    f.fd_.reset(::open(path.c_str(), flags, how.mode));
    if (!f.fd_) {
        const int err = errno;
        throw SetupError("File: cannot open " + path + (how.write ? " for writing" : " for reading") +
                             (how.direct ? " with O_DIRECT" : ""),
                         err, open_hint(path, err, how));
    }
    struct stat st {};
    if (::fstat(f.fd(), &st) != 0) throw SetupError("File: fstat of " + path + " failed", errno);
    if (S_ISDIR(st.st_mode))
        throw SetupError("File: " + path + " is a directory", EISDIR, "name a regular file inside it");
    if (!S_ISREG(st.st_mode))
        throw SetupError("File: " + path + " is not a regular file (a device, FIFO or socket)", EINVAL,
                         "zcio moves regular files' bytes; for a socket use SendEngine or Relay");
    f.path_ = path;
    f.direct_ = how.direct;
    f.writable_ = how.write;
    return f;
}

std::int64_t File::size() const noexcept {
    struct stat st {};
    if (::fstat(fd(), &st) != 0) return -errno;
    return st.st_size;
}

}  // namespace zcio
