// The file strategies' names and parsing.
#include "zcio/file_strategy.hpp"

namespace zcio {

const char* to_string(FileSendStrategy s) noexcept {
    switch (s) {
    case FileSendStrategy::sendfile: return "sendfile";
    case FileSendStrategy::splice: return "splice";
    case FileSendStrategy::read_send: return "read-send";
    case FileSendStrategy::read_zc: return "read-zc";
    case FileSendStrategy::automatic: return "auto";
    }
    return "?";
}

const char* to_string(FileRecvStrategy s) noexcept {
    switch (s) {
    case FileRecvStrategy::recv_write: return "recv-write";
    case FileRecvStrategy::splice: return "splice";
    case FileRecvStrategy::recv_write_fixed: return "recv-write-fixed";
    }
    return "?";
}

std::optional<FileSendStrategy> parse_file_send_strategy(std::string_view name) noexcept {
    for (FileSendStrategy s : all_file_send_strategies)
        if (name == to_string(s)) return s;
    return std::nullopt;
}

std::optional<FileRecvStrategy> parse_file_recv_strategy(std::string_view name) noexcept {
    for (FileRecvStrategy s : all_file_recv_strategies)
        if (name == to_string(s)) return s;
    return std::nullopt;
}

}  // namespace zcio
