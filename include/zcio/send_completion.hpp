// How a send tells its owner what happened: the talk's completion models, as values.
//
// TwoStep: on_sent when the data is in the socket, on_release when the kernel no longer reads the
// buffer (with the usage report). Storage: one completion, when the buffer is free again. (The
// third model, notification groups, is zcio/notif_group.hpp.) Every send gets exactly one release.
//
// Handlers run on the engine's thread, from run(), drain() or send(). A handler may send again. A
// handler that throws does not break the engine: the engine finishes that completion's
// bookkeeping first, the ring's CQ head moves past it, and the exception leaves the run(),
// drain() or send() call that dispatched it, after the ring's CQ head moved past what that call
// handled (if several throw in one call, the first is thrown and the others are reported on
// stderr). A send() or run() made from inside a handler never throws another handler's exception:
// the outermost call does.
//
//   engine.send(sock, std::move(buf), zcio::TwoStep{
//       [](const zcio::SendResult& s) { /* s.res: bytes, or -errno */ },
//       [](zcio::Release&& r) { /* r.usage, r.buffer: yours again */ }});
#pragma once

#include "zcio/buffer.hpp"
#include "zcio/inplace_function.hpp"
#include "zcio/strategy.hpp"

#include <cstddef>

namespace zcio {

// First step of TwoStep: the data is in the socket (or failed). res: bytes, or -errno.
struct SendResult {
    int res = 0;
};

// The buffer is free again. Exactly one per send, whatever happened.
struct Release {
    int error = 0;          // 0, or -errno (ECONNRESET, EPIPE, ECANCELED on shutdown, ...)
    std::size_t bytes = 0;  // bytes of the buffer the kernel accepted
    Usage usage = Usage::not_reported;
    Strategy used = Strategy::copy;  // what really carried it (after auto's choice and fallbacks)
    Buffer buffer;                   // yours again
    BufferChain more;                // a gathered send's other buffers (empty for a single buffer)
};

using SentHandler = InplaceFunction<void(const SendResult&), 48>;
using ReleaseHandler = InplaceFunction<void(Release&&), 48>;

struct TwoStep {
    SentHandler on_sent;
    ReleaseHandler on_release;
};
struct Storage {
    ReleaseHandler on_complete;
};

}  // namespace zcio
