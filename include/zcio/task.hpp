// C++20 coroutines over the same completion core: `co_await zcio::async_send(...)` is a Storage
// completion whose handler resumes the coroutine. Nothing new underneath, no allocation per send
// (the awaitable lives in the coroutine frame; the handler captures one pointer).
//
//   zcio::Task pump(zcio::SendEngine& e, zcio::SocketId s, zcio::BufferArena& a) {
//       zcio::Release r = co_await zcio::async_send(e, s, a.take());
//       if (r.error) co_return;            // r.usage says zero-copy or copied; r.buffer is back
//   }
//   auto t = pump(engine, sock, arena);  while (!t.done()) engine.run(true);
#pragma once

#include "zcio/send_engine.hpp"

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

namespace zcio {

// An eagerly started coroutine whose result is "it finished". Owns its frame.
class Task {
public:
    struct promise_type {
        std::exception_ptr error;
        Task get_return_object() { return Task(std::coroutine_handle<promise_type>::from_promise(*this)); }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_always final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { error = std::current_exception(); }
    };
    Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    Task& operator=(Task&& o) noexcept {
        if (this != &o) {
            if (h_) h_.destroy();
            h_ = std::exchange(o.h_, {});
        }
        return *this;
    }
    Task(const Task&) = delete;
    Task& operator=(const Task&) = delete;
    ~Task() {
        if (h_) h_.destroy();
    }
    bool done() const noexcept { return !h_ || h_.done(); }
    // Rethrows what the coroutine threw, once it is done.
    void check() const {
        if (h_ && h_.done() && h_.promise().error) std::rethrow_exception(h_.promise().error);
    }

private:
    explicit Task(std::coroutine_handle<promise_type> h) : h_(h) {}
    std::coroutine_handle<promise_type> h_;
};

class SendAwaitable {
public:
    SendAwaitable(SendEngine& engine, SocketId sock, Buffer&& buffer) noexcept
        : engine_(engine), sock_(sock), buffer_(std::move(buffer)) {}
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        waiter_ = h;
        engine_.send(sock_, std::move(buffer_), Storage{[this](Release&& r) {
                         result_.emplace(std::move(r));
                         waiter_.resume();
                     }});
    }
    Release await_resume() noexcept { return std::move(*result_); }

private:
    SendEngine& engine_;
    SocketId sock_;
    Buffer buffer_;
    std::coroutine_handle<> waiter_;
    std::optional<Release> result_;
};

// Resumes with the Release (the buffer back, the usage report) once the kernel is done with it.
inline SendAwaitable async_send(SendEngine& engine, SocketId sock, Buffer&& buffer) noexcept {
    return SendAwaitable(engine, sock, std::move(buffer));
}

}  // namespace zcio
