// The file sweep (--sweep -F FILE): every file send strategy x chunk sizes into one target (the
// namespace sink: UDP datagrams of the file's bytes, nothing downstream; or loopback TCP to an
// in-process server), interleaved over repetitions (sweep_runner.hpp), each cell sending the file
// over and over for the cell's time. Per cell the sender's MiB/s, CPU per GB, system calls and
// io_uring requests per MB, bytes read into memory per byte sent; per strategy the medians and
// the median ratios to sendfile and to read-send. Table, CSV, JSON and plot, as the other sweeps.
//
//   zcperf --sweep --target sink -F /data/1GiB --file-strategy all --sizes 60K
#pragma once

#include "options.hpp"
#include "sweep_runner.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace zcperf {

struct FileCell : CellPlace {
    double seconds = 0, thread_cpu = 0;
    std::uint64_t bytes = 0, received = 0, bytes_read = 0, read_requests = 0, syscalls = 0, sends = 0;
    std::uint64_t zero_copy = 0, copied = 0;
    bool direct = false;
    std::string used, why;

    double mib_per_s() const noexcept;
    double cpu_s_per_gb() const noexcept;
    // System calls, and io_uring requests (READ_FIXED, SEND_ZC), per MB sent: what each byte costs
    // in trips to the kernel.
    double ops_per_mb() const noexcept;
    double read_per_byte() const noexcept;  // bytes read into this process per byte sent
    std::string progress_text() const;
};

struct FileRow {  // medians over repetitions
    std::string strategy;
    std::size_t size = 0;
    std::size_t runs = 0;
    double mib_per_s = 0, cpu_s_per_gb = 0, ops_per_mb = 0, read_per_byte = 0, zero_copy_share = 0;
    double ratio_to_sendfile = 0, ratio_to_read_send = 0;  // MiB/s, median of per-repetition ratios; 0: unknown
    std::string used, why, error;
};

std::vector<FileRow> summarize(const std::vector<FileCell>& cells, const SweepGrid& grid);
std::string file_table(const std::vector<FileRow>& rows, const std::string& title);

int run_file_sweep(Options o);

}  // namespace zcperf
