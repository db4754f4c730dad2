// FileReceiver: what a socket receives, written to a file, by any of the ways Linux has
// (zcio/file_strategy.hpp): recv + write, splice through a pipe, or recv-write-fixed — a multishot
// receive into a provided-buffer ring of registered arena slabs (zcio/arena_recv_ring.hpp), then
// IORING_OP_WRITE_FIXED from the same buffer, many writes in flight, each buffer back in the ring
// once its write is done. Byte-exact and in stream order (each buffer's bytes go to their own
// offset); fsync on request; a full file system (ENOSPC) or an I/O error ends it with the bytes
// written so far.
//
//   zcio::FileReceiver rx(ring, arena);                // arena registered with ring
//   zcio::File out = zcio::File::open("copy", {.write = true, .create = true, .truncate = true});
//   zcio::FileRecvReport r = rx.receive(sock_fd, out, {.fsync = true});   // until the peer's EOF
//   if (r.error) std::cerr << r.message << '\n';       // "file system full after 1048576 bytes..."
//
// receive() runs the ring's loop (or blocks in system calls) until the peer closes the stream.
#pragma once

#include "zcio/buffer_arena.hpp"
#include "zcio/file.hpp"
#include "zcio/file_strategy.hpp"
#include "zcio/ring.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace zcio {

struct FileRecvOptions {
    FileRecvStrategy strategy = FileRecvStrategy::recv_write_fixed;
    std::uint64_t offset = 0;         // where in the file the stream's first byte goes
    bool fsync = false;               // fsync(2) the file once everything is written
    std::size_t chunk = 0;            // recv / splice size; 0: the arena's slab size
    std::uint32_t buffers = 64;       // recv-write-fixed: ring buffers (power of two)
    std::uint16_t buffer_group = 11;  // recv-write-fixed: a group id free on this ring
    // No byte received for this long: the transfer ends with -ETIMEDOUT.
    std::chrono::milliseconds stall_timeout{30000};
};

struct FileRecvReport {
    FileRecvStrategy strategy = FileRecvStrategy::recv_write_fixed;
    int error = 0;        // 0, or -errno (ENOSPC, EIO, ECONNRESET, ETIMEDOUT...)
    std::string message;  // the error in words, with the bytes written so far
    std::uint64_t bytes_received = 0;
    std::uint64_t bytes_written = 0;   // completed writes (what the file holds from the stream)
    std::uint64_t write_requests = 0;  // WRITE_FIXED submitted (continuations included)
    std::uint64_t recv_completions = 0;
    std::uint64_t syscalls = 0;  // recv, write, splice, fsync calls
    bool direct = false;
    bool synced = false;
    double seconds = 0;
};

class FileReceiver {
public:
    // `arena` registered with `ring` (WRITE_FIXED needs it); both outlive this.
    FileReceiver(Ring& ring, BufferArena& arena) noexcept : ring_(ring), arena_(arena) {}
    FileReceiver(const FileReceiver&) = delete;
    FileReceiver& operator=(const FileReceiver&) = delete;

    // Receives from `socket_fd` (a connected stream socket; the caller keeps it) until the
    // peer's EOF, writing at options.offset onwards. An O_DIRECT file is refused at once (-EINVAL:
    // received chunks are not block-aligned; open it without direct). Throws SetupError only when
    // recv-write-fixed cannot set up its ring (the message says what to change).
    FileRecvReport receive(int socket_fd, const File& file, const FileRecvOptions& options = {});

private:
    Ring& ring_;
    BufferArena& arena_;
};

}  // namespace zcio
