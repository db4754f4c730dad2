#include "zcio/zcrx.hpp"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "anonymous_mapping.hpp"
#include "uring_compat.hpp"
#include "zcio/error.hpp"
#include "zcio/unique_fd.hpp"

namespace zcio {

ZcrxSlice zcrx_slice(const io_uring_cqe& cqe32) noexcept {
    abi::zcrx_cqe z;
    std::memcpy(&z, cqe32.big_cqe, sizeof z);
    return zcrx_slice(z.off, cqe32.res);
}

// ---- RefillRing ------------------------------------------------------------------------------------

RefillRing::RefillRing(void* base, std::uint32_t head_off, std::uint32_t tail_off, std::uint32_t rqes_off,
                       std::uint32_t entries, std::uint64_t area_token) noexcept
    : khead_(reinterpret_cast<std::uint32_t*>(static_cast<std::byte*>(base) + head_off)),
      ktail_(reinterpret_cast<std::uint32_t*>(static_cast<std::byte*>(base) + tail_off)),
      rqes_(static_cast<std::byte*>(base) + rqes_off),
      mask_(entries - 1),
      tail_(*ktail_),
      token_(area_token) {}

std::uint32_t RefillRing::free_entries() const noexcept {
    const std::uint32_t head = io_uring_smp_load_acquire(khead_);
    return mask_ + 1 - (tail_ - head);
}

bool RefillRing::push(std::uint64_t area_offset, std::uint32_t len) noexcept {
    if (rqes_ == nullptr || free_entries() == 0) return false;
    auto* rqe = static_cast<abi::zcrx_rqe*>(rqes_) + (tail_ & mask_);
    // The kernel finds the area from the token in the high bits, the niov from the low bits.
    rqe->off = (area_offset & ~abi::zcrx_area_mask) | token_;
    rqe->len = len;
    rqe->pad = 0;
    ++tail_;
    io_uring_smp_store_release(ktail_, tail_);
    return true;
}

// ---- NIC preflight ---------------------------------------------------------------------------------

namespace {

int ethtool(int sock, const std::string& ifname, void* cmd) {
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    ifr.ifr_data = static_cast<char*>(cmd);
    return ::ioctl(sock, SIOCETHTOOL, &ifr) == 0 ? 0 : -errno;
}

// `flow`: "tcp4", "tcp6"; empty when the caller does not know which (both are named).
std::string steer_cmd(const std::string& ifname, std::uint32_t q, std::string_view flow, std::uint16_t port) {
    const std::string dst = port ? std::to_string(port) : std::string("<PORT>");
    if (flow.empty())
        return "ethtool -N " + ifname + " flow-type tcp4 dst-port " + dst + " action " + std::to_string(q) +
               " (tcp6 for IPv6)";
    return "ethtool -N " + ifname + " flow-type " + std::string(flow) + " dst-port " + dst + " action " +
           std::to_string(q);
}

// What a NIC needs for zcrx, each with the command that sets it.
struct SetupStep {
    std::string what, command;
};
std::vector<SetupStep> setup_steps(const std::string& ifname, std::uint32_t q, std::string_view flow,
                                   std::uint16_t port) {
    return {{"header split", "ethtool -G " + ifname + " tcp-data-split on; check ethtool -g " + ifname},
            {"the flow steered to queue " + std::to_string(q), steer_cmd(ifname, q, flow, port)},
            {"the queue out of RSS", "ethtool -X " + ifname + " equal " + std::to_string(q)}};
}

}  // namespace

std::string zcrx_setup_commands(const std::string& interface, std::uint32_t rx_queue, std::string_view flow_type,
                                std::uint16_t port) {
    std::string s;
    for (const auto& step : setup_steps(interface, rx_queue, flow_type, port))
        s += "  " + step.what + ": " + step.command + "\n";
    return s;
}

std::vector<std::string> zcrx_nic_problems(const std::string& ifname, std::uint32_t rxq, std::string_view flow_type,
                                           std::uint16_t port) {
    namespace fs = std::filesystem;
    std::vector<std::string> problems;
    if (::if_nametoindex(ifname.c_str()) == 0) {
        problems.push_back("interface '" + ifname + "' does not exist (list them: ip -br link)");
        return problems;
    }
    const fs::path sys = fs::path("/sys/class/net") / ifname;
    std::error_code ec;
    if (!fs::exists(sys / "device", ec)) {
        problems.push_back(ifname +
                           " is a virtual device without a hardware queue API (zcrx needs a "
                           "NIC whose driver supports queue management and header split, e.g. mlx5, "
                           "bnxt, gve, fbnic)");
        return problems;
    }
    std::uint32_t nq = 0;
    for (const auto& e : fs::directory_iterator(sys / "queues", ec))
        if (e.path().filename().string().rfind("rx-", 0) == 0) ++nq;
    if (rxq >= nq)
        problems.push_back(ifname + " has " + std::to_string(nq) + " rx queues, so queue " + std::to_string(rxq) +
                           " does not exist: ethtool -L " + ifname + " combined " + std::to_string(rxq + 1));

    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) return problems;
    // Flow steering: some ntuple rule must send the flow to our queue.
    ethtool_rxnfc cnt{};
    cnt.cmd = ETHTOOL_GRXCLSRLCNT;
    if (int err = ethtool(sock.get(), ifname, &cnt); err != 0) {
        problems.push_back(ifname + " has no ntuple flow steering (" + errno_string(err) + "): ethtool -K " + ifname +
                           " ntuple on, then " + steer_cmd(ifname, rxq, flow_type, port));
    } else {
        const std::uint32_t n = cnt.rule_cnt;
        std::vector<std::byte> storage(sizeof(ethtool_rxnfc) + n * sizeof(std::uint32_t));
        auto* all = reinterpret_cast<ethtool_rxnfc*>(storage.data());
        all->cmd = ETHTOOL_GRXCLSRLALL;
        all->rule_cnt = n;
        bool steered = false;
        if (n > 0 && ethtool(sock.get(), ifname, all) == 0) {
            for (std::uint32_t i = 0; i < all->rule_cnt && !steered; ++i) {
                ethtool_rxnfc rule{};
                rule.cmd = ETHTOOL_GRXCLSRULE;
                rule.fs.location = all->rule_locs[i];
                if (ethtool(sock.get(), ifname, &rule) == 0 && ethtool_get_flow_spec_ring(rule.fs.ring_cookie) == rxq)
                    steered = true;
            }
        }
        if (!steered)
            problems.push_back("no flow-steering rule sends traffic to " + ifname + " queue " + std::to_string(rxq) +
                               ": " + steer_cmd(ifname, rxq, flow_type, port));
    }
    // Dedicated queue: RSS must not spread other flows onto it.
    ethtool_rxfh_indir size{};
    size.cmd = ETHTOOL_GRXFHINDIR;
    if (ethtool(sock.get(), ifname, &size) == 0 && size.size > 0) {
        std::vector<std::byte> storage(sizeof(ethtool_rxfh_indir) + size.size * sizeof(std::uint32_t));
        auto* ind = reinterpret_cast<ethtool_rxfh_indir*>(storage.data());
        ind->cmd = ETHTOOL_GRXFHINDIR;
        ind->size = size.size;
        if (ethtool(sock.get(), ifname, ind) == 0) {
            for (std::uint32_t i = 0; i < ind->size; ++i) {
                if (ind->ring_index[i] == rxq) {
                    problems.push_back("queue " + std::to_string(rxq) + " of " + ifname +
                                       " also takes RSS traffic: ethtool -X " + ifname + " equal " +
                                       std::to_string(rxq) + " (spread RSS over the queues below it)");
                    break;
                }
            }
        }
    }
    return problems;
}

// ---- ZcrxQueue -------------------------------------------------------------------------------------

namespace {

std::uint32_t next_pow2(std::uint64_t v) {
    std::uint32_t p = 1;
    while (p < v && p < (1U << 15)) p <<= 1;
    return p;
}

std::string registration_hint(const ZcrxConfig& cfg, int err) {
    std::string hint;
    if (err == -EINVAL)
        hint =
            "the ring must be set up with CQE32 (RingOptions{.cqe32 = true}) and "
            "SINGLE_ISSUER|DEFER_TASKRUN; ";
    else if (err == -EPERM) hint = "registering a zcrx queue needs CAP_NET_ADMIN (run as root); ";
    else if (err == -ENODEV) hint = "no such interface; ";
    else if (err == -EOPNOTSUPP) hint = cfg.interface + " cannot do zcrx (no queue-management support in its driver); ";
    const auto problems = zcrx_nic_problems(cfg.interface, cfg.rx_queue);
    for (const auto& p : problems) hint += p + "; ";
    hint += "zcrx needs:";
    const char* sep = " ";
    for (const auto& step : setup_steps(cfg.interface, cfg.rx_queue, {}, 0)) {
        hint += sep + step.what + " (" + step.command + ")";
        sep = ", ";
    }
    return hint;
}

}  // namespace

ZcrxQueue::ZcrxQueue(Ring& ring, const ZcrxConfig& cfg) {
    const unsigned ifindex = ::if_nametoindex(cfg.interface.c_str());
    if (ifindex == 0)
        throw SetupError("zcrx: interface '" + cfg.interface + "' not found", ENODEV,
                         "name an existing interface (ip -br link)");
    const std::size_t page = AnonymousMapping::page_size();
    area_size_ = AnonymousMapping::round_to_pages(cfg.area_size);
    const std::uint32_t entries =
        cfg.refill_entries != 0 ? next_pow2(cfg.refill_entries) : next_pow2(area_size_ / page);

    memory_.reserve(2);
    abi::zcrx_area_reg area{};
    if (cfg.dmabuf_fd >= 0) {
        area.flags = abi::zcrx_area_dmabuf;
        area.dmabuf_fd = static_cast<std::uint32_t>(cfg.dmabuf_fd);
        area.addr = 0;  // offset into the dmabuf
        memory_.emplace_back();
        // Payload views read the dmabuf through a CPU mapping of it.
        void* p = ::mmap(nullptr, area_size_, PROT_READ, MAP_SHARED, cfg.dmabuf_fd, 0);
        if (p == MAP_FAILED)
            throw SetupError("zcrx: mapping dmabuf fd " + std::to_string(cfg.dmabuf_fd), errno,
                             "the dmabuf must be CPU-mappable and at least area_size bytes");
        dmabuf_map_ = std::unique_ptr<void, DmabufUnmap>(p, DmabufUnmap{area_size_});
        area_base_ = static_cast<const std::byte*>(p);
    } else {
        memory_.emplace_back(area_size_);
        area.addr = reinterpret_cast<std::uintptr_t>(memory_[0].data());
        area_base_ = memory_[0].bytes();
    }
    area.len = area_size_;

    // Refill ring region: a page for head/tail, then the entries.
    memory_.emplace_back(page + std::size_t{entries} * sizeof(abi::zcrx_rqe));
    abi::region_desc region{};
    region.user_addr = reinterpret_cast<std::uintptr_t>(memory_[1].data());
    region.size = memory_[1].size();
    region.flags = abi::mem_region_type_user;

    abi::zcrx_ifq_reg reg{};
    reg.if_idx = ifindex;
    reg.if_rxq = cfg.rx_queue;
    reg.rq_entries = entries;
    reg.area_ptr = reinterpret_cast<std::uintptr_t>(&area);
    reg.region_ptr = reinterpret_cast<std::uintptr_t>(&region);
    const long r = ::syscall(__NR_io_uring_register, ring.native()->ring_fd, abi::reg_zcrx_ifq, &reg, 1);
    if (r < 0) {
        const int err = -errno;
        throw SetupError("zcrx: registering " + cfg.interface + " queue " + std::to_string(cfg.rx_queue) +
                             " (IORING_REGISTER_ZCRX_IFQ)",
                         err, registration_hint(cfg, err));
    }
    id_ = reg.zcrx_id;
    refill_ = RefillRing(memory_[1].data(), reg.offsets.head, reg.offsets.tail, reg.offsets.rqes, reg.rq_entries,
                         area.rq_area_token);
    pending_.reserve(reg.rq_entries);
}

// The kernel keeps the queue (and its pins on our memory) until the ring goes; there is no
// unregister call on this kernel.
ZcrxQueue::~ZcrxQueue() = default;

void ZcrxQueue::DmabufUnmap::operator()(void* p) const noexcept { ::munmap(p, size); }

RecvBuffer ZcrxQueue::take(const io_uring_cqe& cqe32) noexcept {
    const ZcrxSlice s = zcrx_slice(cqe32);
    if (s.len == 0) return {};
    // The offset comes from the kernel, but a view past the area would hand out foreign memory:
    // refuse it (an empty view) rather than trust it.
    if (s.offset > area_size_ || s.len > area_size_ - s.offset) return {};
    return RecvBuffer(area_base_ + s.offset, s.len, this, &ZcrxQueue::release,
                      static_cast<std::uint32_t>(s.offset >> 12));
}

void ZcrxQueue::release(void* owner, std::uint32_t, const std::byte* data, std::uint32_t len) noexcept {
    auto* self = static_cast<ZcrxQueue*>(owner);
    const auto off = static_cast<std::uint64_t>(data - self->area_base_);
    if (self->pending_.empty() && self->refill_.push(off, len)) {
        ++self->returned_;
        return;
    }
    if (self->pending_.size() < self->pending_.capacity()) self->pending_.push_back({off, len});
}

void ZcrxQueue::flush() noexcept {
    std::size_t done = 0;
    while (done < pending_.size() && refill_.push(pending_[done].offset, pending_[done].len)) ++done;
    returned_ += done;
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(done));
}

}  // namespace zcio
