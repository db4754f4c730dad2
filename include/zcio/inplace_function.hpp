// A move-only callable stored inside its owner: no heap allocation, ever.
//
// Send completions carry user handlers; std::function may allocate per call site, which the hot
// path must not do. InplaceFunction keeps the callable in a fixed buffer and refuses, at compile
// time, one that does not fit (capture a pointer to your state instead of the state itself).
//
//   zcio::InplaceFunction<void(int), 32> f = [this](int res) { on_sent(res); };
//   f(42);
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace zcio {

template <typename Signature, std::size_t Capacity = 48>
class InplaceFunction;

template <typename R, typename... Args, std::size_t Capacity>
class InplaceFunction<R(Args...), Capacity> {
public:
    InplaceFunction() noexcept = default;
    InplaceFunction(std::nullptr_t) noexcept {}

    template <typename F, typename D = std::decay_t<F>,
              typename = std::enable_if_t<!std::is_same_v<D, InplaceFunction> && std::is_invocable_r_v<R, D&, Args...>>>
    InplaceFunction(F&& f) {  // NOLINT(google-explicit-constructor): lambdas convert implicitly
        static_assert(sizeof(D) <= Capacity,
                      "handler captures too much for zcio's in-place storage: capture a pointer");
        static_assert(alignof(D) <= alignof(std::max_align_t), "over-aligned handler");
        static_assert(std::is_nothrow_move_constructible_v<D>, "handler must be nothrow-movable");
        ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
        ops_ = &ops_for<D>;
    }

    InplaceFunction(InplaceFunction&& other) noexcept { take(other); }
    InplaceFunction& operator=(InplaceFunction&& other) noexcept {
        if (this != &other) {
            reset();
            take(other);
        }
        return *this;
    }
    InplaceFunction(const InplaceFunction&) = delete;
    InplaceFunction& operator=(const InplaceFunction&) = delete;
    ~InplaceFunction() {
        if (ops_ && ops_->destroy) ops_->destroy(storage_);
    }

    explicit operator bool() const noexcept { return ops_ != nullptr; }

    R operator()(Args... args) { return ops_->invoke(storage_, std::forward<Args>(args)...); }

    void reset() noexcept {
        if (ops_) {
            if (ops_->destroy) ops_->destroy(storage_);
            ops_ = nullptr;
        }
    }

private:
    // move_to / destroy are null for a trivially copyable callable (a lambda capturing pointers
    // and integers, the usual handler): moving it is copying its bytes and dropping it is nothing,
    // so a send's handler costs no indirect call until it runs.
    struct Ops {
        R (*invoke)(void*, Args&&...);
        void (*move_to)(void* from, void* to) noexcept;
        void (*destroy)(void*) noexcept;
    };

    template <typename D>
    static constexpr bool trivial = std::is_trivially_copyable_v<D>&& std::is_trivially_destructible_v<D>;

    template <typename D>
    static constexpr Ops ops_for{
        [](void* p, Args&&... args) -> R { return (*static_cast<D*>(p))(std::forward<Args>(args)...); },
        trivial<D> ? nullptr
                   : +[](void* from, void* to) noexcept {
                         ::new (to) D(std::move(*static_cast<D*>(from)));
                         static_cast<D*>(from)->~D();
                     },
        trivial<D> ? nullptr : +[](void* p) noexcept { static_cast<D*>(p)->~D(); },
    };

    void take(InplaceFunction& other) noexcept {
        if (other.ops_) {
            if (other.ops_->move_to) other.ops_->move_to(other.storage_, storage_);
            else std::memcpy(storage_, other.storage_, Capacity);
            ops_ = std::exchange(other.ops_, nullptr);
        }
    }

    alignas(std::max_align_t) unsigned char storage_[Capacity];
    const Ops* ops_ = nullptr;
};

}  // namespace zcio
