// The io_uring ABI newer than Debian 12's liburing 2.3, in one place.
//
// liburing 2.3 predates the 6.x kernels zcio runs on. We keep liburing for what it has (ring set-up,
// SQE prep helpers, registration calls) and define here only the constants and structures it lacks,
// with the values of the kernel's include/uapi/linux/io_uring.h. Every #ifndef lets a newer liburing
// take over without a clash. Structure layouts are checked with static_assert against the kernel's.
#pragma once

#include <liburing.h>

#include <cstdint>

// ---- send/recv flags, in sqe->ioprio --------------------------------------------------------------
#ifndef IORING_RECVSEND_POLL_FIRST
#define IORING_RECVSEND_POLL_FIRST (1U << 0)
#endif
#ifndef IORING_RECV_MULTISHOT
#define IORING_RECV_MULTISHOT (1U << 1)
#endif
#ifndef IORING_RECVSEND_FIXED_BUF
#define IORING_RECVSEND_FIXED_BUF (1U << 2)
#endif
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif

// ---- CQE flags and the notification's usage report -----------------------------------------------
#ifndef IORING_CQE_F_BUFFER
#define IORING_CQE_F_BUFFER (1U << 0)
#endif
#ifndef IORING_CQE_F_MORE
#define IORING_CQE_F_MORE (1U << 1)
#endif
#ifndef IORING_CQE_F_SOCK_NONEMPTY
#define IORING_CQE_F_SOCK_NONEMPTY (1U << 2)
#endif
#ifndef IORING_CQE_F_NOTIF
#define IORING_CQE_F_NOTIF (1U << 3)
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif
#ifndef IORING_CQE_BUFFER_SHIFT
#define IORING_CQE_BUFFER_SHIFT 16
#endif
// With IORING_SEND_ZC_REPORT_USAGE, a notification's res has this bit set when the kernel copied
// (at least part of) the data instead of sending the user pages.
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

// ---- setup flags and features that 2.3 may lack ------------------------------------------------
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#ifndef IORING_SETUP_CQE32
#define IORING_SETUP_CQE32 (1U << 11)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif
#ifndef IORING_SETUP_CQE_MIXED
#define IORING_SETUP_CQE_MIXED (1U << 18)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif

// ---- opcodes past 2.3's enum (numbers are ABI: they never change) --------------------------------
namespace zcio::abi {
inline constexpr std::uint8_t op_send_zc = 47;
inline constexpr std::uint8_t op_sendmsg_zc = 48;
inline constexpr std::uint8_t op_read_multishot = 49;
inline constexpr std::uint8_t op_recv_zc = 58;
inline constexpr std::uint8_t op_readv_fixed = 60;
inline constexpr std::uint8_t op_writev_fixed = 61;

// ---- register opcodes ----------------------------------------------------------------------------
inline constexpr unsigned reg_pbuf_ring = 22;
inline constexpr unsigned reg_pbuf_status = 26;
inline constexpr unsigned reg_napi = 27;
inline constexpr unsigned reg_clone_buffers = 30;
inline constexpr unsigned reg_zcrx_ifq = 32;
inline constexpr unsigned reg_resize_rings = 33;
inline constexpr unsigned reg_mem_region = 34;
inline constexpr unsigned reg_query = 35;

// ---- provided buffer rings (io_uring_buf_reg.flags, named `pad` in 2.3) ---------------------------
inline constexpr std::uint16_t pbuf_ring_mmap = 1;
inline constexpr std::uint16_t pbuf_ring_inc = 2;

// ---- zcrx ----------------------------------------------------------------------------------------
inline constexpr unsigned zcrx_area_shift = 48;
inline constexpr std::uint64_t zcrx_area_mask = ~((std::uint64_t{1} << zcrx_area_shift) - 1);
inline constexpr std::uint32_t zcrx_area_dmabuf = 1;
inline constexpr std::uint32_t mem_region_type_user = 1;

struct zcrx_rqe {
    std::uint64_t off;
    std::uint32_t len;
    std::uint32_t pad;
};
static_assert(sizeof(zcrx_rqe) == 16);

struct zcrx_cqe {
    std::uint64_t off;
    std::uint64_t pad;
};
static_assert(sizeof(zcrx_cqe) == 16);

struct zcrx_offsets {
    std::uint32_t head;
    std::uint32_t tail;
    std::uint32_t rqes;
    std::uint32_t resv2;
    std::uint64_t resv[2];
};
static_assert(sizeof(zcrx_offsets) == 32);

struct zcrx_area_reg {
    std::uint64_t addr;
    std::uint64_t len;
    std::uint64_t rq_area_token;
    std::uint32_t flags;
    std::uint32_t dmabuf_fd;
    std::uint64_t resv2[2];
};
static_assert(sizeof(zcrx_area_reg) == 48);

struct region_desc {
    std::uint64_t user_addr;
    std::uint64_t size;
    std::uint32_t flags;
    std::uint32_t id;
    std::uint64_t mmap_offset;
    std::uint64_t resv[4];
};
static_assert(sizeof(region_desc) == 64);

struct zcrx_ifq_reg {
    std::uint32_t if_idx;
    std::uint32_t if_rxq;
    std::uint32_t rq_entries;
    std::uint32_t flags;
    std::uint64_t area_ptr;
    std::uint64_t region_ptr;
    zcrx_offsets offsets;
    std::uint32_t zcrx_id;
    std::uint32_t resv2;
    std::uint64_t resv[3];
};
static_assert(sizeof(zcrx_ifq_reg) == 96);

// ---- IORING_REGISTER_QUERY (needs no ring) ---------------------------------------------------------
struct query_hdr {
    std::uint64_t next_entry;
    std::uint64_t query_data;
    std::uint32_t query_op;
    std::uint32_t size;
    std::int32_t result;
    std::uint32_t resv[3];
};
static_assert(sizeof(query_hdr) == 40);

inline constexpr std::uint32_t query_opcodes = 0;
inline constexpr std::uint32_t query_zcrx = 1;

struct query_opcode {
    std::uint32_t nr_request_opcodes;
    std::uint32_t nr_register_opcodes;
    std::uint64_t feature_flags;
    std::uint64_t ring_setup_flags;
    std::uint64_t enter_flags;
    std::uint64_t sqe_flags;
    std::uint32_t nr_query_opcodes;
    std::uint32_t pad;
};
static_assert(sizeof(query_opcode) == 48);

// The SQE field that RECV_ZC reads as the zcrx queue id shares its place with file_index.
inline void set_zcrx_ifq_idx(io_uring_sqe* sqe, std::uint32_t id) { sqe->file_index = id; }

}  // namespace zcio::abi
