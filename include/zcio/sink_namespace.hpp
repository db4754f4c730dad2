// SinkNamespace: the talk's "dummy device", built from network namespaces this process creates.
//
// A zero-copy send stays zero-copy only if nothing on the way copies the pages: loopback TCP and a
// socket receiving across a veth both copy. The sink is a veth pair between two fresh namespaces
// (tx, rx) whose tx end has a `pfifo limit 0` root qdisc, so every packet runs the whole transmit
// path (UDP/IP, neighbour, qdisc) and is then dropped, its pages released without being touched.
// With `drop = false` the link delivers to the rx namespace instead (receive tests, copy demos).
// Addresses come from the RFC 2544 benchmarking range 198.18.0.0/15 and exist only inside these
// namespaces: no default route, nothing in the root namespace changes.
//
//   if (auto why = zcio::SinkNamespace::unavailable_reason()) GTEST_SKIP() << *why;
//   zcio::SinkNamespace sink;                                    // drop mode, MTU 1500
//   zcio::UniqueFd s = sink.socket(zcio::SinkNamespace::tx, SOCK_DGRAM);
//   sockaddr_in to = sink.address(zcio::SinkNamespace::rx, 9);   // 198.18.K.2:9
//   ::sendto(s.get(), buf, len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);  // dropped at qdisc
//
// Needs CAP_NET_ADMIN and CAP_SYS_ADMIN (root) and iproute2's `ip` and `tc`. Sockets hold a
// reference to their namespace: close them before the SinkNamespace goes, or the namespace and
// its veth live on, unnamed, until the last socket closes.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "zcio/unique_fd.hpp"

namespace zcio {

struct SinkOptions {
    // true: tx veth drops everything at its qdisc (the zero-copy sink). false: packets reach rx.
    bool drop = true;
    // Both veth ends; veth accepts 68..65535. A UDP datagram larger than the MTU is fragmented,
    // and fragmenting copies: SEND_ZC of 60000 bytes reports COPIED at MTU 1500 or 9000, and is
    // zero-copy at 65535. (Only the first fragment reaches the qdisc: one drop per datagram.)
    unsigned mtu = 1500;
    // Tags the namespace names (zcio-<prefix>-<slot>-p<pid>-tx) so `ip netns` shows who made them;
    // 1..10 characters of [a-z0-9].
    std::string name_prefix = "sink";
};

namespace detail {

// Moves the calling thread into another network namespace for its lifetime and back afterwards.
// Only this thread moves; setns(CLONE_NEWNET) is per thread, and so safe in threaded programs.
class ThreadInNetns {
public:
    explicit ThreadInNetns(const std::string& netns_path);  // throws SetupError
    // Aborts if it cannot go back: a thread silently left in the wrong namespace would send the
    // rest of the program's traffic somewhere else.
    ~ThreadInNetns();
    ThreadInNetns(const ThreadInNetns&) = delete;
    ThreadInNetns& operator=(const ThreadInNetns&) = delete;

private:
    UniqueFd original_;
};

// A namespace mounted at /run/netns/<name> by `ip netns add`; `ip netns del` in the destructor.
class OwnedNetns {
public:
    OwnedNetns() = default;
    explicit OwnedNetns(std::string name);  // throws SetupError
    OwnedNetns(OwnedNetns&& o) noexcept : name_(std::exchange(o.name_, {})) {}
    OwnedNetns& operator=(OwnedNetns&& o) noexcept;
    ~OwnedNetns();

    const std::string& name() const noexcept { return name_; }

private:
    void remove() noexcept;
    std::string name_;
};

}  // namespace detail

class SinkNamespace {
public:
    enum class Side { tx, rx };
    using enum Side;

    explicit SinkNamespace(SinkOptions options = {});  // throws SetupError
    ~SinkNamespace() = default;  // members delete rx, then tx, then release the slot; never throws
    SinkNamespace(const SinkNamespace&) = delete;
    SinkNamespace& operator=(const SinkNamespace&) = delete;

    // Why a SinkNamespace cannot be built here (missing privileges, tools, kernel support), or
    // nullopt if it can. Tests skip with this text.
    static std::optional<std::string> unavailable_reason();

    // Deletes namespaces named by zcio (zcio-<prefix>-<slot>-p<pid>-{tx,rx}) whose owner pid is
    // gone, left behind by a crash or Ctrl-C. Touches no other namespace. Returns how many it
    // deleted. The constructor calls it first.
    static int remove_stale();

    // A socket created inside `side`'s namespace; it stays there for life, usable from anywhere.
    UniqueFd socket(Side side, int type, int protocol = 0) const;
    // The same, bound to `side`'s address and `port` (0: the kernel picks one).
    UniqueFd bound_socket(Side side, int type, std::uint16_t port = 0, int protocol = 0) const;

    // Runs f() on the calling thread inside `side`'s namespace and returns what it returns.
    template <class F>
    decltype(auto) in_namespace(Side side, F&& f) const {
        detail::ThreadInNetns entered(netns_path(side));
        return std::forward<F>(f)();
    }

    sockaddr_in address(Side side, std::uint16_t port = 0) const;
    std::string address_string(Side side) const;  // "198.18.K.1" (tx) / "198.18.K.2" (rx)
    const std::string& netns_name(Side side) const noexcept;
    std::string netns_path(Side side) const;  // /run/netns/<name>
    const std::string& interface_name(Side side) const noexcept;
    int ifindex(Side side) const noexcept;            // of the veth end, inside its namespace
    std::string mac_string(Side side) const;          // the veth end's address, aa:bb:cc:dd:ee:ff
    unsigned slot() const noexcept { return slot_; }  // K in 198.18.0.0/15: unique among live sinks
    const SinkOptions& options() const noexcept { return options_; }

    // Packets dropped by the tx veth's root qdisc so far: proof that sends reached the device.
    // Always 0 without drop mode. Throws SetupError if the counter cannot be read.
    std::uint64_t qdisc_drops() const;

private:
    SinkOptions options_;
    UniqueFd slot_claim_;  // held for life: makes slot_ unique among live processes
    unsigned slot_ = 0;
    std::string if_name_[2];
    int ifindex_[2] = {0, 0};
    // Declared last so they are deleted first, while the slot is still claimed.
    detail::OwnedNetns netns_[2];
};

}  // namespace zcio
