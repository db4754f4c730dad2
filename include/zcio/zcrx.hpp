// zcrx: zero-copy receive into memory the NIC writes directly (IORING_REGISTER_ZCRX_IFQ, RECV_ZC).
//
// The application lends the kernel an *area* (user memory or a dmabuf) for one hardware receive
// queue. Each RECV_ZC completion (32-byte CQE) names a slice of that area holding payload; the
// application hands the slice back through a *refill ring* (shared memory, no syscall) when done.
// It needs a NIC with header split, a flow-steering rule sending the flow to that queue, and the
// queue kept out of RSS; lo and veth cannot do it (-EOPNOTSUPP), so receivers fall back.
//
//   zcio::Ring ring({.cqe32 = true});                       // SINGLE_ISSUER|DEFER_TASKRUN too
//   zcio::ZcrxQueue q(ring, {.interface = "eth0", .rx_queue = 4});   // SetupError says what's missing
//   // SQE: opcode RECV_ZC, ioprio |= IORING_RECV_MULTISHOT, abi::set_zcrx_ifq_idx(sqe, q.id())
//   zcio::RecvBuffer b = q.take(cqe);                       // dropping b refills the area
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "zcio/recv_buffer.hpp"
#include "zcio/ring.hpp"

namespace zcio {

class AnonymousMapping;

// ---- pure parsing and refill logic (testable on crafted memory, no NIC) --------------------------

inline constexpr unsigned zcrx_area_shift = 48;

// Where a RECV_ZC completion's payload is: area `area`, `offset` bytes in, `len` bytes.
struct ZcrxSlice {
    std::uint16_t area;
    std::uint64_t offset;
    std::uint32_t len;
};

// `zcqe_off` is the first u64 of the CQE's second half (io_uring_zcrx_cqe.off), `res` the CQE's res
// (> 0: payload bytes).
constexpr ZcrxSlice zcrx_slice(std::uint64_t zcqe_off, std::int32_t res) noexcept {
    return {static_cast<std::uint16_t>(zcqe_off >> zcrx_area_shift),
            zcqe_off & ((std::uint64_t{1} << zcrx_area_shift) - 1), res > 0 ? static_cast<std::uint32_t>(res) : 0U};
}
// The same, from a whole 32-byte CQE (the ring must be set up with CQE32).
ZcrxSlice zcrx_slice(const io_uring_cqe& cqe32) noexcept;

// The refill ring: the application produces (offset, len) returns, the kernel consumes them.
// Operates on memory laid out as the kernel's io_uring_zcrx_offsets describe, so tests can give it
// a fake ring in ordinary memory.
class RefillRing {
public:
    RefillRing() noexcept = default;
    // `base`: the ring's memory; head/tail/rqes are byte offsets into it; `entries` a power of two;
    // `area_token`: the rq_area_token the kernel returned for the area (goes in the high bits).
    RefillRing(void* base, std::uint32_t head_off, std::uint32_t tail_off, std::uint32_t rqes_off,
               std::uint32_t entries, std::uint64_t area_token) noexcept;

    // Writes one entry at tail and publishes the new tail with a store-release. False when the
    // kernel has not consumed enough entries yet (nothing written).
    bool push(std::uint64_t area_offset, std::uint32_t len) noexcept;
    // Entries the ring can take now (reads the kernel's head with a load-acquire).
    std::uint32_t free_entries() const noexcept;
    std::uint32_t entries() const noexcept { return mask_ + 1; }
    std::uint32_t tail() const noexcept { return tail_; }

private:
    std::uint32_t* khead_ = nullptr;
    std::uint32_t* ktail_ = nullptr;
    void* rqes_ = nullptr;
    std::uint32_t mask_ = 0;
    std::uint32_t tail_ = 0;
    std::uint64_t token_ = 0;
};

// ---- registration --------------------------------------------------------------------------------

struct ZcrxConfig {
    std::string interface {};          // "eth0"
    std::uint32_t rx_queue = 0;        // the hardware queue flows are steered to
    std::size_t area_size = 16 << 20;  // user-memory area (ignored with a dmabuf)
    int dmabuf_fd = -1;                // >= 0: the area is this dmabuf, area_size bytes of it
    std::uint32_t refill_entries = 0;  // 0: enough for every page of the area (power of two)
};

// What a NIC needs for zcrx that `interface` visibly lacks, each with the command that sets it.
// Empty when nothing was found missing (header split is not visible through ioctl: see the hint
// of a failed registration). `flow_type` ("tcp4", "tcp6") and `port` name the flow to steer in
// the commands; left out, both flow types are named and the port is <PORT>.
std::vector<std::string> zcrx_nic_problems(const std::string& interface, std::uint32_t rx_queue,
                                           std::string_view flow_type = {}, std::uint16_t port = 0);

// The commands that set `interface` up for zcrx on `rx_queue`, one indented line per step (header
// split, flow steering of `flow_type` to `port`, the queue out of RSS), for a caller who asked for
// zcrx and did not get it (a receiver that fell back says only why, in one line).
std::string zcrx_setup_commands(const std::string& interface, std::uint32_t rx_queue, std::string_view flow_type = {},
                                std::uint16_t port = 0);

class ZcrxQueue {
public:
    // Registers an interface queue with `ring` (which must use CQE32 and SINGLE_ISSUER|
    // DEFER_TASKRUN, and outlive this object). Throws SetupError: error() is the kernel's errno and
    // the message names what is missing and the command that sets it.
    ZcrxQueue(Ring& ring, const ZcrxConfig& config);
    ~ZcrxQueue();
    ZcrxQueue(const ZcrxQueue&) = delete;
    ZcrxQueue& operator=(const ZcrxQueue&) = delete;

    std::uint32_t id() const noexcept { return id_; }
    const std::byte* area() const noexcept { return area_base_; }
    std::size_t area_size() const noexcept { return area_size_; }

    // The payload of a RECV_ZC completion as a view; dropping it returns the slice to the kernel.
    RecvBuffer take(const io_uring_cqe& cqe32) noexcept;
    // Returns queued while the refill ring was full; call before waiting for completions.
    void flush() noexcept;
    std::uint64_t returned() const noexcept { return returned_; }

private:
    static void release(void* owner, std::uint32_t tag, const std::byte* data, std::uint32_t len) noexcept;

    struct DmabufUnmap {
        std::size_t size;
        void operator()(void* p) const noexcept;
    };
    std::vector<AnonymousMapping> memory_;  // the area (user memory) and the refill ring region
    std::unique_ptr<void, DmabufUnmap> dmabuf_map_{nullptr, DmabufUnmap{0}};
    const std::byte* area_base_ = nullptr;
    std::size_t area_size_ = 0;
    std::uint32_t id_ = 0;
    RefillRing refill_;
    struct Pending {
        std::uint64_t offset;
        std::uint32_t len;
    };
    std::vector<Pending> pending_;  // reserved at set-up: never grows on the hot path
    std::uint64_t returned_ = 0;
};

}  // namespace zcio
