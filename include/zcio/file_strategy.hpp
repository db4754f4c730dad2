// Every way zcio moves bytes between a file and a socket, by name (the table lives here only).
//
//   auto s = zcio::parse_file_send_strategy("read-zc");     // nullopt for an unknown name
//   for (auto t : zcio::all_file_send_strategies) std::puts(zcio::to_string(t));
#pragma once

#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>

namespace zcio {

// file -> socket (zcio/file_sender.hpp)
// sendfile   sendfile(2): page-cache pages straight into the socket, no copy to user memory
// splice     splice(2) file -> pipe -> socket: the same pages, through a pipe we own
// read_send  pread(2) + send(2) from one buffer: the classic, two copies
// read_zc    IORING_OP_READ_FIXED into a registered arena buffer linked to a SEND_ZC of it: one
//            copy out of the page cache (none with O_DIRECT), none to the device; with a hook,
//            READ_FIXED -> hook -> SEND_ZC as two steps
// automatic  sendfile for a cached file nobody needs to see; read_zc when a hook must see the
//            bytes or the file is O_DIRECT (sendfile cannot do either); says why
enum class FileSendStrategy : std::uint8_t { sendfile, splice, read_send, read_zc, automatic };
inline constexpr FileSendStrategy all_file_send_strategies[] = {FileSendStrategy::sendfile, FileSendStrategy::splice,
                                                                FileSendStrategy::read_send, FileSendStrategy::read_zc,
                                                                FileSendStrategy::automatic};
inline constexpr std::size_t file_send_strategy_count = std::size(all_file_send_strategies);

// socket -> file (zcio/file_receiver.hpp)
// recv_write        recv(2) + write(2): the baseline
// splice            splice(2) socket -> pipe -> file
// recv_write_fixed  a multishot receive into a provided-buffer ring of registered arena slabs
//                   (zcio/arena_recv_ring.hpp), then IORING_OP_WRITE_FIXED from the same buffer
enum class FileRecvStrategy : std::uint8_t { recv_write, splice, recv_write_fixed };
inline constexpr FileRecvStrategy all_file_recv_strategies[] = {FileRecvStrategy::recv_write, FileRecvStrategy::splice,
                                                                FileRecvStrategy::recv_write_fixed};

const char* to_string(FileSendStrategy s) noexcept;  // "sendfile", "read-zc", "auto", ...
const char* to_string(FileRecvStrategy s) noexcept;  // "recv-write", "splice", "recv-write-fixed"
std::optional<FileSendStrategy> parse_file_send_strategy(std::string_view name) noexcept;
std::optional<FileRecvStrategy> parse_file_recv_strategy(std::string_view name) noexcept;

}  // namespace zcio
