#include "udp_header.hpp"

#include <cmath>
#include <ctime>

namespace zcperf {

namespace {

void put_be(std::byte* at, std::uint64_t v, int bytes) noexcept {
    for (int i = bytes - 1; i >= 0; --i, v >>= 8) at[i] = static_cast<std::byte>(v & 0xff);
}

std::uint64_t get_be(const std::byte* at, int bytes) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<std::uint64_t>(at[i]);
    return v;
}

}  // namespace

double udp_clock_now() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void write_udp_header(std::span<std::byte> d, std::uint64_t seq, bool udp64, double now) noexcept {
    if (d.size() < udp_header_size(udp64)) return;
    const double whole = std::floor(now);
    put_be(d.data(), static_cast<std::uint32_t>(whole), 4);
    put_be(d.data() + 4, static_cast<std::uint32_t>((now - whole) * 1e6), 4);
    put_be(d.data() + 8, udp64 ? seq : static_cast<std::uint32_t>(seq), udp64 ? 8 : 4);
}

void UdpAccount::on_datagram(std::span<const std::byte> d, bool udp64, double arrival) noexcept {
    if (d.size() < udp_header_size(udp64)) {
        ++runts;
        return;
    }
    const double sent = static_cast<double>(get_be(d.data(), 4)) + static_cast<double>(get_be(d.data() + 4, 4)) * 1e-6;
    const std::uint64_t seq = get_be(d.data() + 8, udp64 ? 8 : 4);
    const bool first = datagrams == 0;
    ++datagrams;
    if (seq > highest) {
        if (seq > highest + 1) lost += seq - highest - 1;  // a gap: counted lost until it shows up
        highest = seq;
    } else {
        ++out_of_order;
        if (lost > 0) --lost;
    }
    const double transit = arrival - sent;
    if (first) prev_transit = transit;
    jitter += (std::fabs(transit - prev_transit) - jitter) / 16.0;
    prev_transit = transit;
}

}  // namespace zcperf
