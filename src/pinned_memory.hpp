// Locked memory for zero-copy sends: what the kernel charges to RLIMIT_MEMLOCK, who is exempt, and
// whether the kernel will accept a charge of N bytes from this process right now.
//
// A SEND_ZC or SENDMSG_ZC request whose memory is not registered (no IORING_RECVSEND_FIXED_BUF: the
// zc and sendmsg-zc strategies, and auto without a registered arena) pins its pages while the
// network may read them. For a ring made without CAP_IPC_LOCK (in the initial user namespace) the
// kernel charges (bytes >> PAGE_SHIFT) + 2 pages per request to the user's locked memory — the
// uid's, shared by all of its processes, against the sender's RLIMIT_MEMLOCK — and fails the request
// with ENOMEM past the limit; the charge goes when the request's notification is posted. Root is
// exempt; an unlimited RLIMIT_MEMLOCK never refuses. (Kernel: io_uring/notif.h
// io_notif_account_mem, io_uring/rsrc.c __io_account_mem, io_uring/io_uring.c io_uring_create sets
// ctx->user only without CAP_IPC_LOCK; SENDMSG_ZC is charged since 6.15.) Registered memory is
// charged once, at registration, and not per send.
//
//   if (zcio::try_pinned_charge(8 << 20) == -ENOMEM) throw zcio::SetupError(zcio::pinned_send_advice(), 0);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace zcio {

// RLIMIT_MEMLOCK's soft limit now, in bytes (UINT64_MAX: unlimited).
std::uint64_t memlock_limit() noexcept;
// Whether io_uring charges nothing to RLIMIT_MEMLOCK for this process: CAP_IPC_LOCK in the initial
// user namespace (a capability held only inside a user namespace does not count). If not and
// `why_not` is given: why, in words.
bool memlock_exempt(std::string* why_not = nullptr);
// "8 MiB", "64 KiB", "unlimited".
std::string memory_size_text(std::uint64_t bytes);

// What one zero-copy request of `bytes` from unregistered memory charges, in bytes.
std::size_t pinned_send_charge(std::size_t bytes) noexcept;

// Asks the kernel, with a trial SEND_ZC that sends nothing (a UDP socket refuses the datagram after
// the charge and before reading a byte), whether `bytes` of unregistered zero-copy sends can be
// charged now on top of what this uid already holds. 0: yes, or nothing is charged (exempt, or
// unlimited); -ENOMEM: the kernel refuses; another -errno: the trial itself could not run (no ring,
// no socket), so nothing is known.
int try_pinned_charge(std::size_t bytes);

// Why a zero-copy send from unregistered memory fails with ENOMEM here, and what to change.
std::string pinned_send_advice();

}  // namespace zcio
