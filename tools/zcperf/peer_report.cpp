#include "peer_report.hpp"

#include "stream.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

namespace zcperf {

std::string match_peer_report(SideReport& peer, const SideReport& mine, const TestParams& p, double elapsed) {
    if (peer.streams.size() != mine.streams.size())
        return fmt::format("the peer reports {} streams for a test of {}", peer.streams.size(), mine.streams.size());
    const double ceiling = (elapsed + 5) * 1e11;  // bytes: 800 Gbit/s for the whole test and then some
    for (auto& ps : peer.streams) {
        const auto it = std::find_if(mine.streams.begin(), mine.streams.end(),
                                     [&](const StreamReport& m) { return m.id == ps.id; });
        if (it == mine.streams.end())
            return fmt::format("the peer reports stream {}, which this test does not have", ps.id);
        if (std::count_if(peer.streams.begin(), peer.streams.end(),
                          [&](const StreamReport& s) { return s.id == ps.id; }) != 1)
            return fmt::format("the peer reports stream {} twice", ps.id);
        ps.sender = !it->sender;
        if (static_cast<double>(ps.bytes) > ceiling)
            return fmt::format("the peer reports {} bytes on stream {} in {:.1f} s: not possible", ps.bytes, ps.id,
                               elapsed);
        if (it->sender && ps.bytes > it->bytes && p.omit == 0)
            return fmt::format("the peer reports receiving {} bytes on stream {}, more than the {} sent", ps.bytes,
                               ps.id, it->bytes);
        if (p.udp && ps.lost > (1ull << 48))
            return fmt::format("the peer reports an impossible loss on stream {}", ps.id);
    }
    return {};
}

std::size_t estimate_test_memory(const TestParams& p, bool server, zcio::RecvStrategy server_recv) {
    const bool sends_here = p.bidir || (server ? p.reverse : !p.reverse);
    const bool receives_here = p.bidir || (server ? !p.reverse : p.reverse);
    const auto streams = static_cast<std::size_t>(p.streams);
    std::size_t total = streams * (p.bidir ? 2 : 1) * (64u << 10);  // per-stream state, socket bookkeeping
    if (sends_here) {
        const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
        const std::size_t threads = std::min(streams, cores);
        const std::size_t per_thread = (streams + threads - 1) / threads;
        const ArenaPlan plan = plan_arena(p.length, per_thread, threads);
        total += threads * plan.slab_size * plan.slab_count;
    }
    if (receives_here) {
        const zcio::RecvStrategy rs = p.recv.value_or(server_recv);
        const zcio::ReceiverOptions o = receiver_options(rs, p.udp, streams, {});
        total += static_cast<std::size_t>(o.buffer_count) * o.buffer_size;
        if (rs == zcio::RecvStrategy::zcrx || rs == zcio::RecvStrategy::automatic) total += o.zcrx_area_size;
    }
    return total;
}

}  // namespace zcperf
