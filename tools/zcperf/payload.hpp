// --verify: the payload of a TCP stream is a pattern that depends on the byte's stream offset, so
// the receiving end can check every byte: a lost, duplicated, reordered or overwritten chunk (a
// buffer reused while the kernel still reads it, say) shows up at a known offset.
//
//   fill_pattern(buffer.span(), bytes_queued_so_far);                    // sender, before send()
//   if (auto at = first_mismatch(view.bytes(), bytes_received_so_far)) { /* *at: stream offset */ }
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace zcperf {

// The 8 bytes at stream offsets 8w .. 8w+7 are the little-endian bytes of mix(w) (splitmix64).
constexpr std::uint64_t pattern_word(std::uint64_t w) noexcept {
    std::uint64_t z = w + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
constexpr std::byte pattern_byte(std::uint64_t offset) noexcept {
    return static_cast<std::byte>(pattern_word(offset >> 3) >> ((offset & 7) * 8));
}

inline void fill_pattern(std::span<std::byte> out, std::uint64_t offset) noexcept {
    std::uint64_t word = pattern_word(offset >> 3);
    for (std::size_t i = 0; i < out.size(); ++i, ++offset) {
        if ((offset & 7) == 0) word = pattern_word(offset >> 3);
        out[i] = static_cast<std::byte>(word >> ((offset & 7) * 8));
    }
}

// The stream offset of the first byte of `in` (which starts at `offset`) that differs.
inline std::optional<std::uint64_t> first_mismatch(std::span<const std::byte> in, std::uint64_t offset) noexcept {
    std::uint64_t word = pattern_word(offset >> 3);
    for (std::size_t i = 0; i < in.size(); ++i, ++offset) {
        if ((offset & 7) == 0) word = pattern_word(offset >> 3);
        if (in[i] != static_cast<std::byte>(word >> ((offset & 7) * 8))) return offset;
    }
    return std::nullopt;
}

}  // namespace zcperf
