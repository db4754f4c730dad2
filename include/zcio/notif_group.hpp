// NotifGroup: the talk's "slots + flush" — one event when every send bound to a group is free.
//
// Sends bound to a group give their buffers back to their homes (the arena) silently, each as its
// notification arrives; after flush(), the group's handler runs once, when the last of them is
// free, with the round's totals. A send bound after flush() but before that event joins it
// (nothing is lost or counted twice; flushing again meanwhile changes nothing); the first send or
// flush after the event starts a new round. The group must outlive its sends.
//
//   zcio::NotifGroup group([](const zcio::GroupResult& g) { /* g.sends, g.zero_copy, g.errors */ });
//   for (auto& b : batch) engine.send(sock, std::move(b), group);
//   engine.flush(group);                       // the handler runs once all of them are free
#pragma once

#include "zcio/inplace_function.hpp"
#include "zcio/send_completion.hpp"

#include <cstdint>
#include <utility>

namespace zcio {

struct GroupResult {
    std::uint32_t sends = 0;
    std::uint64_t bytes = 0;
    std::uint32_t zero_copy = 0;  // releases reported zero-copy
    std::uint32_t copied = 0;     // releases reported copied
    std::uint32_t errors = 0;
    int first_error = 0;
};

class NotifGroup {
public:
    using Handler = InplaceFunction<void(const GroupResult&), 48>;
    explicit NotifGroup(Handler on_flushed) : on_flushed_(std::move(on_flushed)) {}
    NotifGroup(const NotifGroup&) = delete;
    NotifGroup& operator=(const NotifGroup&) = delete;
    std::uint32_t pending() const noexcept { return pending_; }
    bool flushed() const noexcept { return flushed_; }

    // The engine's side of a round (SendEngine calls these; an application has no reason to).
    // A send joins the current round; the first one after the round's event starts a new one.
    void bind() noexcept {
        if (fired_) new_round();
        ++pending_;
    }
    // One bound send is done (its buffer is free). True when that makes the round's event due.
    bool settle(const Release& r) noexcept {
        ++result_.sends;
        result_.bytes += r.bytes;
        if (r.usage == Usage::zero_copy) ++result_.zero_copy;
        if (r.usage == Usage::copied) ++result_.copied;
        if (r.error) {
            ++result_.errors;
            if (!result_.first_error) result_.first_error = r.error;
        }
        return --pending_ == 0 && flushed_;
    }
    // flush(): closes the round. True when its event is due at once (nothing pending). After an
    // event, it opens and closes an empty round (its event says 0 sends).
    bool close() noexcept {
        if (fired_) new_round();
        if (flushed_) return false;  // already closed: its one event is on its way
        flushed_ = true;
        return pending_ == 0;
    }
    bool due() const noexcept { return pending_ == 0 && flushed_ && !fired_; }
    // Runs the handler with the round's totals; the round is over.
    void fire() {
        fired_ = true;
        const GroupResult result = std::exchange(result_, {});
        on_flushed_(result);
    }

private:
    void new_round() noexcept {
        fired_ = flushed_ = false;
        result_ = {};
    }

    Handler on_flushed_;
    GroupResult result_{};
    std::uint32_t pending_ = 0;
    bool flushed_ = false;
    bool fired_ = false;  // this round's event ran
};

}  // namespace zcio
