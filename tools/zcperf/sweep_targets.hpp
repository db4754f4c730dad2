// Where a sweep's cells run: the namespace sink (UDP; every packet crosses the whole transmit
// path and is dropped at the tx veth's qdisc, so nothing downstream copies the pages), an
// in-process loopback server, or a zcperf server elsewhere (-c HOST).
//
//   auto where = make_send_target(o);              // Error / zcio::SetupError when it cannot be made
//   TestRecord rec = where->run(params);           // one cell's test
//   fmt::print("{}\n", where->description());     // "UDP into the namespace sink 198.18.0.1 -> ..."
#pragma once

#include "options.hpp"
#include "report.hpp"

#include <memory>
#include <optional>
#include <string>

namespace zcperf {

class SweepTarget {
public:
    virtual ~SweepTarget() = default;
    // One test with these parameters. Throws Error / zcio::SetupError when it cannot run.
    virtual TestRecord run(const TestParams& p) = 0;
    // A minimal send() loop on one of this target's sockets for p.duration (send_loop.hpp): the
    // floor `plain` is held against. Only where no server is needed to take the data (the sink).
    virtual bool has_send_loop() const noexcept { return false; }
    virtual std::optional<StreamReport> run_send_loop(const TestParams&) { return std::nullopt; }
    const std::string& name() const noexcept { return name_; }  // sink | loopback | remote
    const std::string& description() const noexcept { return description_; }

protected:
    SweepTarget(std::string name, std::string description)
        : name_(std::move(name)), description_(std::move(description)) {}
    void set_description(std::string d) { description_ = std::move(d); }

private:
    std::string name_, description_;
};

// The send sweep's target: -c HOST, --target, or the best local one this machine allows (the sink
// as root, else loopback, saying why). Sets o.udp for the sink.
std::unique_ptr<SweepTarget> make_send_target(Options& o);

// The receive sweep's target: TCP to -c HOST or to an in-process loopback server.
std::unique_ptr<SweepTarget> make_recv_target(const Options& o);

}  // namespace zcperf
