// --verify over -F: a CRC32C (Castagnoli) of the bytes each end handled, read back from its file
// after the test: the sending end over the stream it sent (its file from the first byte, started
// over at EOF as often as it was), the receiving end over what it wrote. A source changed while
// it was being sent, or a write that did not land, shows as two different values.
//
//   auto h = hash_file_stream("/srv/blob", file_size, bytes_sent);   // "crc32c:1a2b3c4d" or error
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace zcperf {

// CRC32C of `n` bytes, continuing `crc` (0 to start).
std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) noexcept;

struct FileHash {
    std::string value;  // "crc32c:xxxxxxxx"; empty on error
    std::string error;  // why it could not be computed
};

// The CRC32C of `total` bytes of the stream that is the file's first `period` bytes repeated
// (period >= total: its first `total` bytes). Reads through the page cache.
FileHash hash_file_stream(const std::string& path, std::uint64_t period, std::uint64_t total);

}  // namespace zcperf
