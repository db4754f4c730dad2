// AnonymousMapping: sole owner of a page-aligned, zero-filled mmap region (munmap'd exactly once).
//
// zcio hands memory to the kernel (registered arenas, buffer rings, zcrx areas, refill rings);
// it must be page aligned and must not move, which is what an anonymous mapping gives. The
// throwing constructor populates the pages up front so the first receive does not fault them in;
// try_map() is for attempts with a fallback (huge pages first, then normal ones).
//
//   zcio::AnonymousMapping m(1 << 20);            // throws SetupError on failure
//   auto huge = zcio::AnonymousMapping::try_map(2 << 20, MAP_HUGETLB);   // empty if refused
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <utility>

#include "zcio/error.hpp"

namespace zcio {

class AnonymousMapping {
public:
    AnonymousMapping() noexcept = default;
    explicit AnonymousMapping(std::size_t bytes) : size_(round_to_pages(bytes)) {
        void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p == MAP_FAILED) {
            const int err = errno;
            size_ = 0;
            throw SetupError("mmap of " + std::to_string(bytes) + " bytes failed", err,
                             "lower the buffer count/size or free memory");
        }
        data_ = p;
    }
    // `bytes` exactly (a multiple of the page size in use), MAP_PRIVATE|MAP_ANONYMOUS plus
    // `extra_flags`; empty, with errno set, when the kernel refuses.
    static AnonymousMapping try_map(std::size_t bytes, int extra_flags) noexcept {
        AnonymousMapping m;
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
        if (p == MAP_FAILED) return m;
        m.data_ = p;
        m.size_ = bytes;
        return m;
    }
    explicit operator bool() const noexcept { return data_ != nullptr; }

    AnonymousMapping(AnonymousMapping&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    AnonymousMapping& operator=(AnonymousMapping&& o) noexcept {
        if (this != &o) {
            reset();
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    AnonymousMapping(const AnonymousMapping&) = delete;
    AnonymousMapping& operator=(const AnonymousMapping&) = delete;
    ~AnonymousMapping() { reset(); }

    void* data() const noexcept { return data_; }
    std::byte* bytes() const noexcept { return static_cast<std::byte*>(data_); }
    std::size_t size() const noexcept { return size_; }

    static std::size_t page_size() noexcept { return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)); }
    static std::size_t round_to_pages(std::size_t bytes) noexcept {
        const std::size_t page = page_size();
        return (bytes + page - 1) / page * page;
    }

private:
    void reset() noexcept {
        if (data_ != nullptr) ::munmap(data_, size_);
        data_ = nullptr;
        size_ = 0;
    }

    void* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace zcio
