// FileRead: a byte range of a file that SendEngine::read_and_send() reads into a buffer right
// before sending it, as one linked pair of requests (IORING_OP_READ_FIXED -> SEND_ZC of the same
// registered buffer, IOSQE_IO_LINK): one submission, one copy out of the page cache (none with
// O_DIRECT), none to the device. zcio/file_sender.hpp drives it over a whole file.
//
//   zcio::Buffer b = arena.take();
//   b.resize(n);                                           // bytes to send
//   engine.read_and_send(sock, std::move(b), {.fd = file.fd(), .offset = off, .length = n},
//                        zcio::Storage{[](zcio::Release r) { /* r.bytes sent; r.buffer.size(): read */ }});
//
// A read that comes back short (EOF, a file that shrank) fails the link: the kernel cancels the
// send, and the engine sends what was read instead (nothing at EOF): the release's buffer is
// resized to the bytes read, so `r.buffer.size() < n` with no error means the file ended there.
// A read error is the release's error (and fails a stream socket: its byte stream has a hole).
#pragma once

#include <cstdint>

namespace zcio {

struct FileRead {
    int fd = -1;               // a regular file open for reading (O_DIRECT allowed), or a slot
    bool fixed_file = false;   // fd is a slot of the ring's file table (Ring::register_file)
    std::uint64_t offset = 0;  // in the file; O_DIRECT: aligned to the device's block size
    // Bytes to read, at most the buffer's capacity. At least the bytes to send (buffer.size()):
    // O_DIRECT reads whole blocks, and only buffer.size() of them are sent.
    std::uint32_t length = 0;
};

}  // namespace zcio
