// AnonymousMapping: sole owner of a page-aligned, zero-filled mmap region (munmap'd exactly once).
//
// The receive side hands memory to the kernel (buffer rings, zcrx areas, refill rings); those must
// be page aligned and must not move, which is what an anonymous mapping gives. Pages are populated
// up front so the first receive does not fault them in.
//
//   zcio::AnonymousMapping m(1 << 20);            // throws SetupError on failure
//   std::memset(m.data(), 0, m.size());
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
        void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p == MAP_FAILED) {
            const int err = errno;
            size_ = 0;
            throw SetupError("mmap of " + std::to_string(bytes) + " bytes failed", err,
                             "lower the buffer count/size or free memory");
        }
        data_ = p;
    }
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
