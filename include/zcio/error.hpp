// Errors in zcio: values on the hot path, exceptions at set-up.
//
// Hot-path calls return a negative errno (the kernel's own convention, and what a CQE carries): a
// send never allocates, and a failed send is a value in its release. The hot path throws only for
// a programming error (a socket id add_socket() never returned) and to pass on what a completion
// handler of yours threw (zcio/send_completion.hpp). Set-up (rings, arenas, registrations, namespaces) throws
// zcio::SetupError, whose message says what failed, the errno, and what to change.
//
//   try { zcio::BufferArena arena(ring, {.slab_size = 64 << 10, .slab_count = 1024}); }
//   catch (const zcio::SetupError& e) { std::cerr << e.what() << '\n'; }   // "... raise ulimit -l"
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace zcio {

class SetupError : public std::runtime_error {
public:
    // `what` says what was attempted, `err` is a positive errno (0 if none), `hint` what to change.
    SetupError(std::string_view what, int err, std::string_view hint = {});
    int error() const noexcept { return err_; }

private:
    int err_;
};

// "EINVAL (Invalid argument)" for a positive or negative errno.
std::string errno_string(int err);

}  // namespace zcio
