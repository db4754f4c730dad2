// Pipe: a pipe we own (both ends closed exactly once), sized for one chunk: what splice(2) moves
// pages through between a file and a socket.
#pragma once

#include "zcio/error.hpp"
#include "zcio/unique_fd.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace zcio::detail {

struct Pipe {
    UniqueFd read, write;
    std::size_t capacity = 0;

    // Throws SetupError. The kernel rounds the size up (a power of two of pages); an
    // unprivileged process is capped at /proc/sys/fs/pipe-max-size.
    explicit Pipe(std::size_t size) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw SetupError("pipe2 failed", errno, "raise the open-file limit");
        read.reset(fds[0]);
        write.reset(fds[1]);
        const int got = ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(size));
        capacity = got > 0 ? static_cast<std::size_t>(got) : static_cast<std::size_t>(::fcntl(fds[1], F_GETPIPE_SZ));
    }
};

}  // namespace zcio::detail
