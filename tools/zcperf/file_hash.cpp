#include "file_hash.hpp"

#include <zcio/error.hpp>
#include <zcio/unique_fd.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace zcperf {

namespace {

constexpr std::uint32_t castagnoli = 0x82f63b78;  // reflected polynomial

std::uint32_t crc32c_portable(std::uint32_t c, const unsigned char* p, std::size_t n) noexcept {
    static const auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t v = i;
            for (int k = 0; k < 8; ++k) v = (v >> 1) ^ (castagnoli & (0u - (v & 1)));
            t[i] = v;
        }
        return t;
    }();
    for (; n > 0; --n, ++p) c = table[(c ^ *p) & 0xff] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
[[gnu::target("sse4.2")]] std::uint32_t crc32c_sse42(std::uint32_t c32, const unsigned char* p,
                                                     std::size_t n) noexcept {
    std::uint64_t c = c32;
    for (; n >= 8; p += 8, n -= 8) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
    }
    for (; n > 0; ++p, --n) c = _mm_crc32_u8(static_cast<std::uint32_t>(c), *p);
    return static_cast<std::uint32_t>(c);
}
#endif

}  // namespace

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__)
    static const bool sse42 = __builtin_cpu_supports("sse4.2");
    if (sse42) return ~crc32c_sse42(~crc, p, n);
#endif
    return ~crc32c_portable(~crc, p, n);
}

FileHash hash_file_stream(const std::string& path, std::uint64_t period, std::uint64_t total) {
    zcio::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return {{}, fmt::format("cannot open {} to hash it: {}", path, zcio::errno_string(errno))};
    std::vector<unsigned char> buf(1u << 20);
    std::uint32_t crc = 0;
    std::uint64_t done = 0, at = 0;
    while (done < total) {
        if (period && at >= period) at = 0;
        std::uint64_t want = std::min<std::uint64_t>(buf.size(), total - done);
        if (period) want = std::min(want, period - at);
        const ssize_t n = ::pread(fd.get(), buf.data(), want, static_cast<off_t>(at));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return {{}, fmt::format("reading {} to hash it: {}", path, zcio::errno_string(errno))};
        if (n == 0)
            return {{}, fmt::format("{} ends at byte {}, before the {} bytes to hash: it shrank", path, at, total)};
        crc = crc32c(crc, buf.data(), static_cast<std::size_t>(n));
        done += static_cast<std::uint64_t>(n);
        at += static_cast<std::uint64_t>(n);
    }
    return {fmt::format("crc32c:{:08x}", crc), {}};
}

}  // namespace zcperf
