// What the running kernel really supports, found out by asking it and by trying.
//
// The opcode table (IORING_REGISTER_PROBE, or IORING_REGISTER_QUERY where it exists) says what the
// kernel knows; only a trial says what works in this configuration (report-usage on a notification,
// registered buffers with SENDMSG_ZC, incremental buffer rings, zcrx on an interface). probe() does
// both, once, without touching anything but loopback, and explains every "no".
//
//   const zcio::KernelFeatures& k = zcio::probe();
//   if (!k.send_zc) std::cerr << k.why("send_zc") << '\n';
//   std::cout << k.report();                 // the `zcperf --features` text
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace zcio {

struct KernelFeatures {
    std::string kernel_release;       // uname -r
    bool io_uring = false;            // a ring could be set up at all
    unsigned last_op = 0;             // IORING_REGISTER_PROBE's last_op
    std::uint32_t ring_features = 0;  // io_uring_params.features (IORING_FEAT_*)

    // Requests (supported by the opcode table)
    bool op_send = false, op_recv = false, op_sendmsg = false;
    bool send_zc = false, sendmsg_zc = false, recv_zc = false;
    bool read_multishot = false, provide_buffers = false;

    // Ring set-up (found by trial set-ups)
    bool single_issuer = false, defer_taskrun = false, coop_taskrun = false;
    bool cqe32 = false, cqe_mixed = false, no_sqarray = false, submit_all = false;
    bool registered_ring_fd = false;

    // Zero-copy send (found by trial sends over loopback)
    bool zc_report_usage = false;   // notification res carries IORING_NOTIF_USAGE_ZC_COPIED
    bool send_zc_fixed = false;     // SEND_ZC + IORING_RECVSEND_FIXED_BUF
    bool sendmsg_zc_fixed = false;  // SENDMSG_ZC with iovecs inside a registered buffer
    bool msg_zerocopy = false;      // SO_ZEROCOPY accepted on a TCP socket
    bool send_to_address = false;   // IORING_OP_SEND takes a destination (addr2), as SEND_ZC does

    // Receive
    bool recvsend_bundle = false;        // IORING_FEAT_RECVSEND_BUNDLE
    bool pbuf_ring = false;              // IORING_REGISTER_PBUF_RING
    bool pbuf_ring_incremental = false;  // IOU_PBUF_RING_INC
    bool query_interface = false;        // IORING_REGISTER_QUERY answered
    bool zcrx_query = false;             // the query interface knows zcrx (op 1)
    // What IORING_REGISTER_QUERY said (0 where it did not answer); kept for cross-checks and reports.
    unsigned query_request_opcodes = 0;   // op 0: number of request opcodes (last_op + 1)
    std::uint64_t query_setup_flags = 0;  // op 0: every IORING_SETUP_* bit the kernel knows
    int zcrx_query_result = 0;            // op 1's result: 0, or -errno (-EOPNOTSUPP on 6.18)

    // Memory
    std::uint64_t memlock_limit = 0;  // RLIMIT_MEMLOCK soft limit, bytes (UINT64_MAX: unlimited)
    bool memlock_exempt = false;      // CAP_IPC_LOCK (root): the limit does not apply
    unsigned long nr_hugepages = 0;   // /proc/sys/vm/nr_hugepages
    std::string thp_mode;             // "always" / "madvise" / "never"

    // For every feature that is missing: why (the errno or what was observed), keyed by field name.
    std::map<std::string, std::string> reasons;

    std::string why(const std::string& feature) const;
    // A human report: one line a feature, "yes"/"no: <why>", grouped, with what follows for zcio.
    std::string report() const;
};

// Probes once per process (the kernel does not change under us) and returns the cached result.
const KernelFeatures& probe();
// Probes again, now (tests compare the two).
KernelFeatures probe_uncached();

}  // namespace zcio
