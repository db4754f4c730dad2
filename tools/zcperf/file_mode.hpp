// The file side of a zcperf test (-F FILE, iperf3's meaning): what each end was asked to do with
// its file, and what it did. The sending end sends the file's bytes (zcio::FileSender) instead of
// a pattern; the receiving end writes what it receives to its file (zcio::FileReceiver). -F alone
// sends the file once; with -t or -n the sender starts over at EOF until the end of the test.
//
//   TestParams p;  p.file.path = "/srv/blob";  p.file.send = zcio::FileSendStrategy::read_zc;
//   ... the test runs (file_transfer.hpp) ...
//   if (const FileReport* f = stream.file ? &*stream.file : nullptr) fmt::print("{}\n", f->used);
#pragma once

#include <zcio/file_strategy.hpp>

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace zcperf {

struct FileParams {
    // This end's own (never sent: each end names its own file, as with iperf3 -F).
    std::string path;     // -F; empty: no file at this end
    bool direct = false;  // --direct: the sender reads with O_DIRECT
    // Carried to a zcperf peer as extras; each end applies the one for its role.
    std::optional<zcio::FileSendStrategy> send;  // the sending end's (default auto)
    std::optional<zcio::FileRecvStrategy> recv;  // the receiving end's (default recv-write-fixed)
    bool verify = false;                         // both ends hash their side of the file's bytes (file_hash.hpp)
    bool once = false;  // -R -F without -t/-n: the server sends its file once, then the test ends

    bool active() const noexcept { return !path.empty(); }
};

// What one end did with its file on one stream (sent with the results to a zcperf peer).
struct FileReport {
    std::string path;
    std::string requested, used, why;         // the strategy asked for, the one that ran, and why
    bool direct = false;                      // reads bypassed the page cache (O_DIRECT)
    std::uint64_t file_size = 0;              // sender: the file's size when the test started
    std::uint64_t passes = 0;                 // sender: times the file was started from its first byte
    std::uint64_t bytes = 0;                  // sender: sent; receiver: written to the file
    std::uint64_t bytes_read = 0;             // sender: read into this process's memory (sendfile/splice: 0)
    std::uint64_t read_requests = 0;          // sender: READ / READ_FIXED submitted
    std::uint64_t write_requests = 0;         // receiver: WRITE_FIXED submitted
    std::uint64_t syscalls = 0;               // pread, send, sendfile, splice, recv, write calls
    std::uint64_t sends = 0;                  // sender, read-zc: SEND_ZC requests
    std::uint64_t zero_copy = 0, copied = 0;  // sender, read-zc: what the kernel reported per send
    std::uint64_t chunk = 0;                  // bytes per read / send / recv
    std::string hash;                         // --verify: "crc32c:xxxxxxxx" over `hashed_bytes`
    std::uint64_t hashed_bytes = 0;
};

struct TestRecord;

nlohmann::json file_report_to_json(const FileReport& f, bool sender);
// From a peer's results (escapes its strings); false with `error` set when it is malformed.
bool file_report_from_json(const nlohmann::json& j, FileReport& f, std::string& error);

// --file-strategy's names, by side: a name both sides know (splice) goes to every side not named
// otherwise.
struct FileStrategyNames {
    std::vector<zcio::FileSendStrategy> send;
    std::optional<zcio::FileRecvStrategy> recv;
};
// "read-zc", "splice", "sendfile,recv-write", "all" (every send strategy; with --sweep). Outside
// a sweep, at most one per side. Empty when fine, else the usage error.
std::string parse_file_strategies(const std::string& text, bool sweep, FileStrategyNames& out);

// The file lines of a test's text summary (none without -F), and sum_zcio's "file" object (null).
void print_file_summary(const TestRecord& r, std::FILE* out);
nlohmann::json file_summary_json(const TestRecord& r);

}  // namespace zcperf
