// iperf3's UDP datagram header, and how a receiver counts what arrives the way iperf3 does
// (iperf_udp.c): every datagram starts with the send time (seconds, microseconds) and a sequence
// number counted from 1 per stream, big-endian, 32 bits or 64 when the client asked for 64-bit
// counters. Loss is a gap in the sequence, a late datagram is out of order and takes one loss back,
// jitter is RFC 1889's running estimate of the interarrival variation.
//
//   write_udp_header(buffer.span(), ++seq, udp64, udp_clock_now());       // sender, each datagram
//   account.on_datagram(view.bytes(), udp64, udp_clock_now());             // receiver
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace zcperf {

constexpr std::size_t udp_header_size(bool udp64) noexcept { return udp64 ? 16 : 12; }

// Seconds on the clock both the header and the jitter use (CLOCK_MONOTONIC, as iperf3's).
double udp_clock_now() noexcept;

// Writes the header at the start of `datagram` (which must hold udp_header_size bytes).
void write_udp_header(std::span<std::byte> datagram, std::uint64_t seq, bool udp64, double now) noexcept;

// One UDP stream's receive account.
struct UdpAccount {
    std::uint64_t highest = 0;  // highest sequence number seen (iperf3's packet_count)
    std::uint64_t lost = 0;     // iperf3's cnt_error
    std::uint64_t out_of_order = 0;
    std::uint64_t datagrams = 0;
    std::uint64_t runts = 0;  // datagrams too short to hold the header (not counted above)
    double jitter = 0;        // seconds
    double prev_transit = 0;

    void on_datagram(std::span<const std::byte> datagram, bool udp64, double arrival) noexcept;
};

}  // namespace zcperf
