// -F FILE at the data-phase level: one stream's sending end sends its file through
// zcio::FileSender, or its receiving end writes to its file through zcio::FileReceiver, each on
// its own ring and arena; and what the client and the server decide around them (which file an
// end uses, --verify's comparison, the checks that turn a bad -F into a clear error at once).
//
//   StreamReport r = run_file_sender(sock, params, seconds, stop, 4000ms);  // in a sending thread
//   StreamReport w = run_file_receiver(sock, params, start);                // until EOF or shutdown(RD)
//   if (auto why = file_verify_mismatch(record); !why.empty()) record.error = why;
#pragma once

#include "report.hpp"
#include "stream.hpp"

#include <atomic>
#include <chrono>
#include <string>

namespace zcperf {

// Sends p.file.path on `sock` in pieces, starting over at EOF, until `seconds` are up, p.bytes are
// sent (-F alone: the file's size), `stop`, or an error. Never throws: errors are the report's.
StreamReport run_file_sender(const StreamSocket& sock, const TestParams& p, double seconds,
                             const std::atomic<bool>& stop, std::chrono::milliseconds stall);

// Writes what `sock` (TCP) receives to p.file.path (created or truncated) until the peer's EOF or
// a shutdown(SHUT_RD) of the socket (DataPhase::stop_receiving). Never throws.
StreamReport run_file_receiver(const StreamSocket& sock, const TestParams& p,
                               std::chrono::steady_clock::time_point start);

// Why -F cannot go with these parameters at an end (one TCP stream, one way), or empty.
std::string file_test_unsupported(const TestParams& p);

// A file this end is to send: empty when it opens (with O_DIRECT if asked) and has bytes, else
// what is wrong and what to do. `size` gets its size.
std::string check_file_to_send(const std::string& path, bool direct, std::uint64_t& size);
// A file this end is to write: empty when it can be (it is created if missing, not truncated yet).
std::string check_file_to_write(const std::string& path);

// The server's -F applied to a client's test (the strategies the client did not name come from the
// server's own). Returns the refusal (the test cannot run with it), or empty; notes go to `notes`.
std::string apply_server_file(TestParams& p, const FileParams& mine, std::vector<std::string>& notes);
// The client after the server's hello: -R -F once is sent once by a zcperf server with its own -F,
// else the client's file gets what the server sends for the test's time. Throws Error when the
// test cannot go on (--verify against a peer that cannot hash).
void apply_server_hello_file(TestParams& p, bool peer_is_zcperf, std::uint64_t file_once_bytes,
                             std::vector<std::string>& notes);

// --verify over -F: empty when both ends' hashes agree (or nothing was asked), else the failure
// in words (which hash, both values, both byte counts).
std::string file_verify_mismatch(const TestRecord& r);

}  // namespace zcperf
