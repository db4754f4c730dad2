#include "zcio/sink_namespace.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/gen_stats.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>
#include <vector>

#include "zcio/error.hpp"

extern char** environ;

namespace zcio {
namespace {

constexpr const char* kNetnsDir = "/run/netns/";
constexpr const char* kNeedRoot = "run as root (needs CAP_NET_ADMIN and CAP_SYS_ADMIN)";
constexpr const char* kNeedIproute = "install iproute2 (apt-get install iproute2)";
// 198.18.0.0/15 holds 512 /24 subnets; slot K is 198.(18 + K/256).(K%256).0/24.
constexpr unsigned kSlots = 512;

int side_index(SinkNamespace::Side side) { return side == SinkNamespace::tx ? 0 : 1; }
const char* side_name(SinkNamespace::Side side) { return side == SinkNamespace::tx ? "tx" : "rx"; }

// `ip` and `tc` live in /usr/sbin, which a non-root PATH often lacks; look there too.
std::optional<std::string> find_tool(const char* name) {
    std::string dirs;
    if (const char* path = std::getenv("PATH")) dirs = path;
    dirs += ":/usr/sbin:/sbin:/usr/bin:/bin";
    std::istringstream in(dirs);
    for (std::string dir; std::getline(in, dir, ':');) {
        if (dir.empty()) continue;
        std::string candidate = dir + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return std::nullopt;
}

std::string read_all(int fd) {
    std::string out;
    ::lseek(fd, 0, SEEK_SET);
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

std::string join(const std::vector<std::string>& argv) {
    std::string s;
    for (const auto& a : argv) {
        if (!s.empty()) s += ' ';
        s += a;
    }
    return s;
}

struct ToolResult {
    int exit_code = -1;  // -1: killed by a signal
    std::string out, err;
};

// Runs an iproute2 tool (no shell) and captures its output. Output goes to memfds rather than
// pipes so a chatty child can never block on a full pipe while we wait for it.
ToolResult run_tool_raw(const char* tool, const std::vector<std::string>& args) {
    std::optional<std::string> path = find_tool(tool);
    if (!path) throw SetupError(std::string("cannot find `") + tool + "` in PATH or /usr/sbin", 0, kNeedIproute);

    UniqueFd out(::memfd_create("zcio-tool-stdout", MFD_CLOEXEC));
    UniqueFd err(::memfd_create("zcio-tool-stderr", MFD_CLOEXEC));
    if (!out || !err) throw SetupError("memfd_create for tool output", errno);

    std::vector<std::string> argv_storage{*path};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err.get(), STDERR_FILENO);
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, path->c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw SetupError("cannot start `" + join(argv_storage) + "`", rc, kNeedIproute);

    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) throw SetupError("waitpid for `" + join(argv_storage) + "`", errno);
    }
    ToolResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_all(out.get());
    r.err = read_all(err.get());
    return r;
}

// Runs the tool and throws a SetupError naming the command, its stderr and what to do.
std::string run_tool(const char* tool, const std::vector<std::string>& args) {
    ToolResult r = run_tool_raw(tool, args);
    if (r.exit_code == 0) return r.out;
    std::string what = "`" + std::string(tool) + " " + join(args) + "` failed (";
    what += r.exit_code < 0 ? "killed by a signal" : "exit " + std::to_string(r.exit_code);
    what += "): " + (r.err.empty() ? std::string("no message") : r.err);
    const bool permission = r.err.find("Operation not permitted") != std::string::npos ||
                            r.err.find("Permission denied") != std::string::npos;
    throw SetupError(what, 0, permission ? kNeedRoot : "check the command and the kernel's message above");
}

bool pid_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// zcio-<prefix>-<slot>-p<pid>-<tx|rx>: the owner pid, or nullopt if the name is not one of ours.
// Strict on purpose: remove_stale() must never delete a namespace someone else made.
std::optional<pid_t> owner_of(std::string_view name) {
    auto take = [&](std::string_view prefix) {
        if (!name.starts_with(prefix)) return false;
        name.remove_prefix(prefix.size());
        return true;
    };
    auto take_while = [&](auto pred, std::size_t min, std::size_t max) -> std::optional<std::string_view> {
        std::size_t n = 0;
        while (n < name.size() && pred(name[n])) ++n;
        if (n < min || n > max) return std::nullopt;
        std::string_view part = name.substr(0, n);
        name.remove_prefix(n);
        return part;
    };
    auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
    auto is_tag = [&](char c) { return is_digit(c) || (c >= 'a' && c <= 'z'); };
    if (!take("zcio-") || !take_while(is_tag, 1, 10) || !take("-") || !take_while(is_digit, 1, 3) || !take("-p"))
        return std::nullopt;
    auto pid_text = take_while(is_digit, 1, 10);
    if (!pid_text || !take("-") || !(name == "tx" || name == "rx")) return std::nullopt;
    long long pid = 0;
    auto [ptr, ec] = std::from_chars(pid_text->data(), pid_text->data() + pid_text->size(), pid);
    if (ec != std::errc{} || pid <= 0 || pid > 0x7fffffff) return std::nullopt;
    return static_cast<pid_t>(pid);
}

// Claims a slot by binding an abstract unix socket named after it: bind() is atomic across
// processes, and the kernel releases the name when the process dies, so a crash never leaks one.
// Abstract names belong to the caller's network namespace, which is the same for every process
// that does not itself live in a separate one.
std::pair<UniqueFd, unsigned> claim_slot() {
    static std::atomic<unsigned> counter{0};
    const unsigned start = (static_cast<unsigned>(::getpid()) * 31u + counter.fetch_add(1)) % kSlots;
    for (unsigned i = 0; i < kSlots; ++i) {
        const unsigned slot = (start + i) % kSlots;
        UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (!fd) throw SetupError("socket(AF_UNIX) to claim a sink slot", errno);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        const std::string name = "zcio/sink-slot/" + std::to_string(slot);
        std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
        const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
        if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0) return {std::move(fd), slot};
        if (errno != EADDRINUSE) throw SetupError("bind abstract socket to claim a sink slot", errno);
    }
    throw SetupError("all 512 sink slots of 198.18.0.0/15 are in use", 0, "destroy some SinkNamespaces");
}

std::string ipv4_string(in_addr a) {
    char buf[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &a, buf, sizeof buf);
    return buf;
}

// Without IPv6 the link is silent: no router solicitations, MLD reports or DAD probes. The qdisc
// drop counter then counts only what the program sent, and delivery tests see only their data.
void disable_ipv6_here() {
    for (const char* which : {"all", "default"}) {
        std::string path = std::string("/proc/sys/net/ipv6/conf/") + which + "/disable_ipv6";
        UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
        if (!fd) {
            if (errno == ENOENT) return;  // kernel without IPv6: already silent
            throw SetupError("open " + path, errno);
        }
        if (::write(fd.get(), "1", 1) != 1) throw SetupError("write " + path, errno);
    }
}

}  // namespace

// ---- detail ----------------------------------------------------------------------------------

namespace detail {

ThreadInNetns::ThreadInNetns(const std::string& netns_path) {
    // thread-self, not self: another thread of this process may be inside some other namespace.
    original_.reset(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!original_) throw SetupError("open /proc/thread-self/ns/net", errno, "is /proc mounted?");
    UniqueFd target(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!target) throw SetupError("open " + netns_path, errno, "the namespace is gone or was never made");
    if (::setns(target.get(), CLONE_NEWNET) != 0) throw SetupError("setns into " + netns_path, errno, kNeedRoot);
}

ThreadInNetns::~ThreadInNetns() {
    if (::setns(original_.get(), CLONE_NEWNET) != 0) {
        std::fprintf(stderr, "zcio: cannot return the thread to its network namespace: %s\n",
                     errno_string(errno).c_str());
        std::abort();
    }
}

OwnedNetns::OwnedNetns(std::string name) {
    run_tool("ip", {"netns", "add", name});
    name_ = std::move(name);  // only now is it ours to delete
}

OwnedNetns& OwnedNetns::operator=(OwnedNetns&& o) noexcept {
    if (this != &o) {
        remove();
        name_ = std::exchange(o.name_, {});
    }
    return *this;
}

OwnedNetns::~OwnedNetns() { remove(); }

void OwnedNetns::remove() noexcept {
    if (name_.empty()) return;
    try {
        run_tool("ip", {"netns", "del", name_});
    } catch (const std::exception& e) {
        // A destructor must not throw; remove_stale() collects it after this process exits.
        std::fprintf(stderr, "zcio: could not delete network namespace %s: %s\n", name_.c_str(), e.what());
    }
    name_.clear();
}

}  // namespace detail

// ---- SinkNamespace ---------------------------------------------------------------------------

std::optional<std::string> SinkNamespace::unavailable_reason() {
    std::ifstream status("/proc/self/status");
    unsigned long long cap_eff = 0;
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with("CapEff:")) cap_eff = std::strtoull(line.c_str() + 7, nullptr, 16);
    }
    const bool net_admin = (cap_eff >> CAP_NET_ADMIN) & 1;
    const bool sys_admin = (cap_eff >> CAP_SYS_ADMIN) & 1;
    if (!net_admin || !sys_admin)
        return std::string("SinkNamespace needs CAP_NET_ADMIN and CAP_SYS_ADMIN: run as root");
    struct stat st {};
    if (::stat("/proc/self/ns/net", &st) != 0)
        return std::string("the kernel has no network namespaces (CONFIG_NET_NS)");
    for (const char* tool : {"ip", "tc"}) {
        if (!find_tool(tool)) return "`" + std::string(tool) + "` not found: " + kNeedIproute;
    }
    return std::nullopt;
}

int SinkNamespace::remove_stale() {
    int removed = 0;
    DIR* dir = ::opendir(kNetnsDir);
    if (!dir) return 0;  // no /run/netns: nobody ever made a named namespace
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(dir)) {
        if (auto owner = owner_of(e->d_name); owner && !pid_alive(*owner)) stale.emplace_back(e->d_name);
    }
    ::closedir(dir);
    for (const auto& name : stale) {
        // Another process may be collecting the same leftovers; losing that race is fine.
        if (run_tool_raw("ip", {"netns", "del", name}).exit_code == 0) ++removed;
    }
    return removed;
}

SinkNamespace::SinkNamespace(SinkOptions options) : options_(std::move(options)) {
    if (options_.mtu < 68 || options_.mtu > 65535)
        throw SetupError("SinkOptions::mtu " + std::to_string(options_.mtu) + " is outside what veth accepts", 0,
                         "use 68..65535 (1500 Ethernet, 9000 jumbo, 65535 for unfragmented 60 KB datagrams)");
    const std::string& prefix = options_.name_prefix;
    const bool prefix_ok = !prefix.empty() && prefix.size() <= 10 &&
                           prefix.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789") == std::string::npos;
    if (!prefix_ok)
        throw SetupError("SinkOptions::name_prefix \"" + prefix + "\" is not usable", 0,
                         "use 1..10 characters of [a-z0-9]");
    if (auto why = unavailable_reason()) throw SetupError("cannot build a SinkNamespace", 0, *why);

    remove_stale();
    std::tie(slot_claim_, slot_) = claim_slot();

    const std::string k = std::to_string(slot_);
    const std::string base = "zcio-" + prefix + "-" + k + "-p" + std::to_string(::getpid()) + "-";
    // The veth ends are created directly inside their namespaces, so these names never meet the
    // root namespace's interfaces; they carry the slot only to be recognisable in `ip` output.
    if_name_[0] = "zc" + k + "tx";
    if_name_[1] = "zc" + k + "rx";
    netns_[0] = detail::OwnedNetns(base + "tx");
    netns_[1] = detail::OwnedNetns(base + "rx");

    for (Side side : {tx, rx}) in_namespace(side, disable_ipv6_here);

    const std::string mtu = std::to_string(options_.mtu);
    run_tool("ip", {"link",      "add",     "name",         if_name_[0], "address", mac_string(tx), "mtu",
                    mtu,         "netns",   netns_name(tx), "type",      "veth",    "peer",         "name",
                    if_name_[1], "address", mac_string(rx), "mtu",       mtu,       "netns",        netns_name(rx)});
    for (Side side : {tx, rx}) {
        const std::string& ns = netns_name(side);
        const std::string& dev = interface_name(side);
        run_tool("ip", {"-n", ns, "address", "add", address_string(side) + "/24", "dev", dev});
        run_tool("ip", {"-n", ns, "link", "set", "dev", "lo", "up"});
        run_tool("ip", {"-n", ns, "link", "set", "dev", dev, "up"});
    }
    // With the neighbour fixed, tx never sends ARP: nothing but the program's packets hits the
    // qdisc, and in drop mode (where no ARP reply could ever come back) sends do not stall in
    // neighbour resolution.
    run_tool("ip", {"-n", netns_name(tx), "neigh", "replace", address_string(rx), "lladdr", mac_string(rx), "dev",
                    interface_name(tx), "nud", "permanent"});
    if (options_.drop)
        run_tool("tc",
                 {"-n", netns_name(tx), "qdisc", "add", "dev", interface_name(tx), "root", "pfifo", "limit", "0"});

    for (Side side : {tx, rx}) {
        const std::string& dev = interface_name(side);
        unsigned index = in_namespace(side, [&] { return ::if_nametoindex(dev.c_str()); });
        if (index == 0) throw SetupError("if_nametoindex(" + dev + ") in " + netns_name(side), errno);
        ifindex_[side_index(side)] = static_cast<int>(index);
    }
}

UniqueFd SinkNamespace::socket(Side side, int type, int protocol) const {
    UniqueFd fd = in_namespace(side, [&] { return UniqueFd(::socket(AF_INET, type | SOCK_CLOEXEC, protocol)); });
    if (!fd) throw SetupError(std::string("socket(AF_INET) in the sink's ") + side_name(side) + " namespace", errno);
    return fd;
}

UniqueFd SinkNamespace::bound_socket(Side side, int type, std::uint16_t port, int protocol) const {
    UniqueFd fd = socket(side, type, protocol);
    sockaddr_in addr = address(side, port);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        throw SetupError("bind to " + address_string(side) + ":" + std::to_string(port), errno);
    return fd;
}

sockaddr_in SinkNamespace::address(Side side, std::uint16_t port) const {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    const std::uint32_t host =
        (198u << 24) | ((18u + slot_ / 256) << 16) | ((slot_ % 256) << 8) | (side == tx ? 1u : 2u);
    a.sin_addr.s_addr = htonl(host);
    return a;
}

std::string SinkNamespace::address_string(Side side) const { return ipv4_string(address(side).sin_addr); }

const std::string& SinkNamespace::netns_name(Side side) const noexcept { return netns_[side_index(side)].name(); }

std::string SinkNamespace::netns_path(Side side) const { return kNetnsDir + netns_name(side); }

const std::string& SinkNamespace::interface_name(Side side) const noexcept { return if_name_[side_index(side)]; }

int SinkNamespace::ifindex(Side side) const noexcept { return ifindex_[side_index(side)]; }

std::string SinkNamespace::mac_string(Side side) const {
    // Locally administered unicast (02:...), "zc" (7a:63), then the slot and the side.
    char buf[18];
    std::snprintf(buf, sizeof buf, "02:7a:63:%02x:%02x:%02x", (slot_ >> 8) & 0xff, slot_ & 0xff, side == tx ? 1u : 2u);
    return buf;
}

// The rtnetlink walking macros (NLMSG_OK, RTA_NEXT, ...) are written with C casts, and NLMSG_OK
// compares the header's __u32 length with an int (gcc hides that in a system macro; clang does not).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wsign-compare"
std::uint64_t SinkNamespace::qdisc_drops() const {
    // Asked over rtnetlink from inside the tx namespace: exact, and no process spawned per read,
    // so a benchmark can read it around every run.
    UniqueFd nl =
        in_namespace(tx, [] { return UniqueFd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)); });
    if (!nl) throw SetupError("socket(AF_NETLINK) in the sink's tx namespace", errno);

    struct {
        nlmsghdr hdr;
        tcmsg tc;
    } req{};
    req.hdr.nlmsg_len = sizeof req;
    req.hdr.nlmsg_type = RTM_GETQDISC;
    req.hdr.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.hdr.nlmsg_seq = 1;
    req.tc.tcm_family = AF_UNSPEC;
    req.tc.tcm_ifindex = ifindex(tx);
    if (::send(nl.get(), &req, sizeof req, 0) < 0) throw SetupError("send RTM_GETQDISC", errno);

    std::uint64_t drops = 0;
    std::vector<char> buf(64 << 10);
    for (;;) {
        ssize_t n = ::recv(nl.get(), buf.data(), buf.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw SetupError("recv RTM_GETQDISC dump", errno);
        }
        int left = static_cast<int>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_type == NLMSG_DONE) return drops;
            if (h->nlmsg_type == NLMSG_ERROR) {
                auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
                throw SetupError("RTM_GETQDISC dump", -e->error);
            }
            if (h->nlmsg_type != RTM_NEWQDISC) continue;
            auto* tc = static_cast<tcmsg*>(NLMSG_DATA(h));
            // The dump lists every qdisc in the namespace (lo's too); keep the veth's root one.
            if (tc->tcm_ifindex != ifindex(tx) || tc->tcm_parent != TC_H_ROOT) continue;
            int attr_len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(tcmsg)));
            for (auto* a = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(tc) + NLMSG_ALIGN(sizeof(tcmsg)));
                 RTA_OK(a, attr_len); a = RTA_NEXT(a, attr_len)) {
                if (a->rta_type != TCA_STATS2) continue;
                int stats_len = static_cast<int>(RTA_PAYLOAD(a));
                for (auto* s = static_cast<rtattr*>(RTA_DATA(a)); RTA_OK(s, stats_len); s = RTA_NEXT(s, stats_len)) {
                    if (s->rta_type == TCA_STATS_QUEUE && RTA_PAYLOAD(s) >= sizeof(gnet_stats_queue)) {
                        gnet_stats_queue q;
                        std::memcpy(&q, RTA_DATA(s), sizeof q);
                        drops = q.drops;
                    }
                }
            }
        }
    }
}
#pragma GCC diagnostic pop

}  // namespace zcio
