// FileSender: a file's bytes (a range of them) into a socket, by any of the ways Linux has
// (zcio/file_strategy.hpp), through one SendEngine and its registered BufferArena.
//
// read-zc keeps many buffers in flight, reads running ahead of sends: on a datagram socket each
// READ_FIXED -> SEND_ZC pair is independent; on a stream socket the pairs form the socket's linked
// chain, so the byte stream is the file's, in order. Short reads and short sends are continued.
// A file that ends before the range does (it shrank while being sent) ends the transfer with
// -ENODATA and a message saying where; a stalled peer ends it with -ETIMEDOUT: never a hang. An
// optional hook sees (and may rewrite) each buffer between its read and its send, in file order —
// what sendfile and splice cannot offer.
//
//   zcio::FileSender tx(engine, arena, sock_fd);          // arena registered with engine.ring()
//   zcio::File f = zcio::File::open("/srv/blob");
//   zcio::FileSendReport r = tx.send(f, {.offset = 0, .length = zcio::FileRange::to_eof},
//                                    {.strategy = zcio::FileSendStrategy::automatic});
//   if (r.error) std::cerr << r.message << '\n';          // r.used, r.why: what auto chose and why
//
// send() runs the engine's loop until the range is sent and every buffer is back (other users of
// the engine are served meanwhile); the syscall strategies block in their system calls.
#pragma once

#include "zcio/buffer_arena.hpp"
#include "zcio/file.hpp"
#include "zcio/file_strategy.hpp"
#include "zcio/inplace_function.hpp"
#include "zcio/send_engine.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace zcio {

// Sees each buffer between its read and its send, in file order: `bytes` start at `file_offset`;
// it may rewrite them in place (not change their length). 0: send them; -errno: stop the transfer
// with that error. A hook that throws stops it too (the exception leaves send()).
using FileHook = InplaceFunction<int(std::span<std::byte> bytes, std::uint64_t file_offset), 48>;

struct FileSendOptions {
    FileSendStrategy strategy = FileSendStrategy::automatic;
    // Bytes per read and send (a datagram socket sends one datagram of this size each);
    // 0: the arena's slab size. O_DIRECT rounds it down to File::direct_alignment.
    std::size_t chunk = 0;
    std::uint32_t depth = 32;  // buffers in flight (read-zc)
    FileHook hook{};
    // No byte sent for this long: the transfer ends with -ETIMEDOUT (a peer that stopped reading).
    std::chrono::milliseconds stall_timeout{30000};
};

// What one send() did: enough for a report line or a JSON object.
struct FileSendReport {
    FileSendStrategy requested = FileSendStrategy::automatic;
    FileSendStrategy used = FileSendStrategy::automatic;
    std::string why;      // why `used` (auto's choice, a fallback), or empty
    int error = 0;        // 0, or -errno (ENODATA: the file ended early; ETIMEDOUT: stall)
    std::string message;  // the error in words, with byte offsets
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_read = 0;     // read into our memory (sendfile and splice read none)
    std::uint64_t read_requests = 0;  // READ / READ_FIXED submitted
    std::uint64_t syscalls = 0;       // pread, send, sendfile, splice calls
    std::uint64_t sends = 0;          // buffers handed to the engine (read-zc)
    std::uint64_t zero_copy = 0;      // of those, released as zero-copy by the kernel
    std::uint64_t copied = 0;         // ... as copied
    bool direct = false;              // reads bypassed the page cache (O_DIRECT)
    std::uint64_t chunk = 0;          // bytes per read/send used
    double seconds = 0;
};

class FileSender {
public:
    // Adds `socket_fd` (TCP or UDP, connected; the caller keeps it) to the engine, sending
    // zc-fixed where the kernel can (else auto). The arena should be registered with the
    // engine's ring (READ_FIXED, SEND_ZC fixed); plain memory works, slower. Throws SetupError.
    FileSender(SendEngine& engine, BufferArena& arena, int socket_fd);
    // Waits for what is still in flight, then removes the socket from the engine. Destroy it
    // before the engine (scope order does that).
    ~FileSender();
    FileSender(const FileSender&) = delete;
    FileSender& operator=(const FileSender&) = delete;

    // Sends `range` of `file`. Errors come back in the report (a range past the end of the file,
    // a hook or strategy that cannot go together: at once, with nothing sent). Throws only what
    // the hook throws.
    FileSendReport send(const File& file, FileRange range = {}, const FileSendOptions& options = {});

    SocketId socket_id() const noexcept { return id_; }
    // Buffers of ours still in the kernel or the engine (0 between sends).
    std::uint32_t in_flight() const noexcept;

    struct State;  // the transfer under way (src/file_sender.cpp)

private:
    SendEngine& engine_;
    BufferArena& arena_;
    int fd_;
    SocketId id_;
    bool stream_;
    std::unique_ptr<State> st_;
};

}  // namespace zcio
