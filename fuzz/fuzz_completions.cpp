// libFuzzer target: receive-completion parsing and the zcrx refill ring, against models.
//
// - cqe_buffer_id: an id exactly when IORING_CQE_F_BUFFER is set, and it is the top 16 bits.
// - bundle_buffer_count / for_each_bundle_buffer, for any valid ring (count a power of two up to
//   32768, buffer_size > 0, as ProvidedBufferRing accepts): the count is ceil(res / size) (1 for
//   res <= 0), computed without overflow; the callback sees that many buffers, consecutive ids
//   modulo the count, each id inside the ring, every buffer full but the last, lengths summing to
//   res.
// - zcrx_slice: area = top 16 bits, offset = low 48, len = max(res, 0), from the raw value and from
//   a whole 32-byte CQE alike; a slice the kernel could report for an area of a given size parses
//   back to exactly that slice, inside the area.
// - RefillRing, on a fake ring laid out at fuzzed offsets in a guarded buffer and driven by a model
//   kernel that consumes in order: push succeeds exactly when the model has room, writes only the
//   entry at tail and the tail word (every other byte of the buffer is unchanged), publishes the
//   tail, never reports more free entries than the ring has, and the kernel reads back exactly
//   what was pushed, in order, area bits replaced by the token.
#include "uring_compat.hpp"
#include "zcio/buffer_ring.hpp"
#include "zcio/zcrx.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <sanitizer/common_interface_defs.h>
#include <algorithm>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what, unsigned long long a = 0, unsigned long long b = 0) {
    // Through the sanitizer's report channel: scripts/fuzz.sh closes the target's own stderr.
    char msg[256];
    std::snprintf(msg, sizeof msg, "fuzz_completions: %s (%llu, %llu)", what, a, b);
    __sanitizer_report_error_summary(msg);
    std::abort();
}

void buffer_ids(FuzzedDataProvider& in) {
    const auto flags = in.ConsumeIntegral<std::uint32_t>();
    const auto bid = zcio::cqe_buffer_id(flags);
    if (bid.has_value() != ((flags & IORING_CQE_F_BUFFER) != 0)) fail("cqe_buffer_id: presence", flags);
    if (bid && *bid != (flags >> IORING_CQE_BUFFER_SHIFT)) fail("cqe_buffer_id: value", flags, *bid);
}

void bundles(FuzzedDataProvider& in) {
    const auto first = in.ConsumeIntegral<std::uint16_t>();
    const auto res = in.ConsumeIntegral<std::int32_t>();
    // Every size: bundle_buffer_count once wrapped above 2 GiB (found by this target; regression
    // test RecvParsing.BundleCountDoesNotOverflowAbove2GiBBuffers).
    const auto size = in.ConsumeIntegralInRange<std::uint32_t>(1, UINT32_MAX);
    const std::uint32_t count = 1U << in.ConsumeIntegralInRange<unsigned>(0, 15);

    const std::uint64_t want = res <= 0 ? 1 : (static_cast<std::uint64_t>(res) + size - 1) / size;
    const std::uint32_t n = zcio::bundle_buffer_count(res, size);
    if (n != want)
        fail("bundle_buffer_count differs from ceil(res / size)", static_cast<unsigned long long>(res) << 32 | size, n);

    if (n > 65536) return;  // a real bundle is at most a ring (32768 buffers); walking 2^31 is just slow

    std::uint32_t calls = 0;
    std::uint64_t total = 0;
    bool short_seen = false;
    zcio::for_each_bundle_buffer(first, res, size, count, [&](std::uint16_t b, std::uint32_t len) {
        if (b >= count) fail("bundle buffer id outside the ring", b, count);
        if (b != ((first + calls) & (count - 1))) fail("bundle ids not consecutive", b, calls);
        if (len > size) fail("bundle buffer longer than a buffer", len, size);
        if (short_seen) fail("a buffer after a partly filled one", calls);
        if (len < size) short_seen = true;
        total += len;
        ++calls;
    });
    if (calls != n) fail("for_each_bundle_buffer call count", calls, n);
    if (total != static_cast<std::uint64_t>(std::max(res, 0))) fail("bundle lengths do not sum to res", total);
}

void zcrx_slices(FuzzedDataProvider& in) {
    // Any raw value.
    const auto off = in.ConsumeIntegral<std::uint64_t>();
    const auto res = in.ConsumeIntegral<std::int32_t>();
    const zcio::ZcrxSlice s = zcio::zcrx_slice(off, res);
    if (s.area != (off >> 48) || s.offset != (off & ((std::uint64_t{1} << 48) - 1)))
        fail("zcrx_slice: area/offset split", off);
    if (s.len != static_cast<std::uint32_t>(std::max(res, 0))) fail("zcrx_slice: length", s.len);

    // The same through a whole 32-byte CQE.
    alignas(io_uring_cqe) std::byte mem[32]{};
    auto* cqe = reinterpret_cast<io_uring_cqe*>(mem);
    cqe->res = res;
    cqe->flags = in.ConsumeIntegral<std::uint32_t>();
    const zcio::abi::zcrx_cqe z{off, in.ConsumeIntegral<std::uint64_t>()};
    std::memcpy(mem + 16, &z, sizeof z);
    const zcio::ZcrxSlice c = zcio::zcrx_slice(*cqe);
    if (c.area != s.area || c.offset != s.offset || c.len != s.len) fail("zcrx_slice(cqe32) differs", off);

    // A completion the kernel could write for an area of `area_size` bytes.
    const auto area = in.ConsumeIntegral<std::uint16_t>();
    const auto area_size = in.ConsumeIntegralInRange<std::uint64_t>(1, std::uint64_t{1} << 40);
    const auto len = in.ConsumeIntegralInRange<std::uint32_t>(
        1, static_cast<std::uint32_t>(std::min<std::uint64_t>(area_size, INT32_MAX)));
    const auto at = in.ConsumeIntegralInRange<std::uint64_t>(0, area_size - len);
    const zcio::ZcrxSlice k = zcio::zcrx_slice((std::uint64_t{area} << 48) | at, static_cast<std::int32_t>(len));
    if (k.area != area || k.offset != at || k.len != len)
        fail("zcrx_slice does not give back the kernel's slice", at, len);
    if (k.offset + k.len > area_size) fail("zcrx slice outside its area", k.offset, k.len);
}

void refill_ring(FuzzedDataProvider& in) {
    using Rqe = zcio::abi::zcrx_rqe;
    const std::uint32_t entries = 1U << in.ConsumeIntegralInRange<unsigned>(0, 8);
    // Layout: head and tail words and the entry array at fuzzed, aligned, non-overlapping offsets
    // inside a buffer with room around them, as io_uring_zcrx_offsets may describe.
    const std::uint32_t head_off = 4 * in.ConsumeIntegralInRange<std::uint32_t>(0, 15);
    const std::uint32_t tail_off = 64 + 4 * in.ConsumeIntegralInRange<std::uint32_t>(0, 15);
    const std::uint32_t rqes_off = 128 + 8 * in.ConsumeIntegralInRange<std::uint32_t>(0, 16);
    const std::size_t total = rqes_off + entries * sizeof(Rqe) + 64;
    std::vector<std::byte> mem(total);
    for (auto& b : mem) b = std::byte{0xa5};
    auto word = [&](std::uint32_t o) {
        std::uint32_t v;
        std::memcpy(&v, mem.data() + o, 4);
        return v;
    };
    auto set_word = [&](std::uint32_t o, std::uint32_t v) { std::memcpy(mem.data() + o, &v, 4); };
    // The kernel's free-running counters, anywhere (wraparound included), with tail - head <= entries.
    const auto head0 = in.ConsumeIntegral<std::uint32_t>();
    const auto used0 = in.ConsumeIntegralInRange<std::uint32_t>(0, entries);
    set_word(head_off, head0);
    set_word(tail_off, head0 + used0);
    const std::uint64_t token = std::uint64_t{in.ConsumeIntegral<std::uint16_t>()} << 48;

    zcio::RefillRing ring(mem.data(), head_off, tail_off, rqes_off, entries, token);
    if (ring.entries() != entries) fail("entries", ring.entries(), entries);
    std::uint32_t head = head0, tail = head0 + used0;
    std::deque<Rqe> expected;  // what the model kernel will read, oldest first
    for (std::uint32_t i = 0; i < used0; ++i) expected.push_back(Rqe{});  // slots filled before us: not checked
    std::size_t unknown = used0;

    for (int step = 0; step < 512 && in.remaining_bytes() > 0; ++step) {
        const std::uint32_t free_now = ring.free_entries();
        if (free_now > entries) fail("more free entries than the ring has", free_now, entries);
        if (free_now != entries - (tail - head))
            fail("free_entries disagrees with the model", free_now, entries - (tail - head));
        if (in.ConsumeBool()) {
            const auto off = in.ConsumeIntegral<std::uint64_t>();
            const auto len = in.ConsumeIntegral<std::uint32_t>();
            const std::vector<std::byte> before = mem;
            const bool ok = ring.push(off, len);
            if (ok != (tail - head < entries)) fail("push succeeded exactly when there is room: no", ok, tail - head);
            if (!ok) {
                if (mem != before) fail("a refused push wrote memory");
                continue;
            }
            const std::size_t slot = rqes_off + (tail & (entries - 1)) * sizeof(Rqe);
            for (std::size_t i = 0; i < mem.size(); ++i) {
                const bool in_entry = i >= slot && i < slot + sizeof(Rqe);
                const bool in_tail = i >= tail_off && i < tail_off + 4u;
                if (!in_entry && !in_tail && mem[i] != before[i])
                    fail("push wrote outside its entry and the tail", i, slot);
            }
            ++tail;
            if (word(tail_off) != tail || ring.tail() != tail) fail("tail not published", word(tail_off), tail);
            const Rqe want{(off & ~zcio::abi::zcrx_area_mask) | token, len, 0};
            expected.push_back(want);
        } else {
            // The model kernel consumes some entries, in order, checking each.
            const std::uint32_t n = in.ConsumeIntegralInRange<std::uint32_t>(0, tail - head);
            for (std::uint32_t i = 0; i < n; ++i) {
                Rqe got;
                std::memcpy(&got, mem.data() + rqes_off + (head & (entries - 1)) * sizeof(Rqe), sizeof got);
                const Rqe want = expected.front();
                expected.pop_front();
                if (unknown > 0) {
                    --unknown;
                } else if (got.off != want.off || got.len != want.len || got.pad != 0) {
                    fail("the kernel read something other than what was pushed", got.off, want.off);
                }
                ++head;
            }
            set_word(head_off, head);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: buffer_ids(in); break;
    case 1: bundles(in); break;
    case 2: zcrx_slices(in); break;
    case 3: refill_ring(in); break;
    }
    return 0;
}
