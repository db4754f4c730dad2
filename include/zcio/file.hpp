// File: an open regular file, owned (closed exactly once), and what moving its bytes needs to
// know: its size now, whether reads and writes bypass the page cache (O_DIRECT), the alignment
// O_DIRECT asks for. Opening says clearly why it cannot: missing, a directory, not a regular
// file, no permission, O_DIRECT refused by the file system.
//
//   zcio::File src = zcio::File::open("/srv/blob");                   // read, page cache
//   zcio::File raw = zcio::File::open("/srv/blob", {.direct = true}); // O_DIRECT: aligned I/O
//   zcio::File dst = zcio::File::open("out", {.write = true, .create = true, .truncate = true});
//   std::uint64_t n = src.size();
#pragma once

#include "zcio/unique_fd.hpp"

#include <sys/types.h>

#include <cstdint>
#include <limits>
#include <string>

namespace zcio {

struct FileOpen {
    bool write = false;     // open for writing (a receiving end); reading otherwise
    bool create = false;    // O_CREAT (with write)
    bool truncate = false;  // O_TRUNC (with write)
    bool direct = false;    // O_DIRECT: no page cache; offsets, lengths and memory aligned
    mode_t mode = 0644;     // for a file that create makes
};

// A byte range of a file; `length` to_eof: up to the end of the file as it is when a transfer
// starts.
struct FileRange {
    static constexpr std::uint64_t to_eof = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t offset = 0;
    std::uint64_t length = to_eof;
};

class File {
public:
    // Throws SetupError saying what is wrong and what to do.
    static File open(const std::string& path, const FileOpen& how = {});

    File() noexcept = default;
    File(File&&) noexcept = default;
    File& operator=(File&&) noexcept = default;

    int fd() const noexcept { return fd_.get(); }
    explicit operator bool() const noexcept { return static_cast<bool>(fd_); }
    const std::string& path() const noexcept { return path_; }
    bool direct() const noexcept { return direct_; }
    bool writable() const noexcept { return writable_; }
    // O_DIRECT's alignment for file offsets, lengths and memory (a page: every block device we
    // meet uses 512 B or 4 KiB blocks, and arena slabs are page-aligned).
    static constexpr std::uint32_t direct_alignment = 4096;
    // The size now (fstat), or -errno.
    std::int64_t size() const noexcept;

private:
    UniqueFd fd_;
    std::string path_;
    bool direct_ = false;
    bool writable_ = false;
};

}  // namespace zcio
