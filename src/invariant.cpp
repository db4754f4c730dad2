#include "invariant.hpp"

#include <cstdio>
#include <cstdlib>

namespace zcio::detail {

bool aborts_on_broken_invariant() noexcept {
#ifdef NDEBUG
    return false;
#else
    return true;
#endif
}

void invariant_broken(std::uint64_t& counter, const char* what) noexcept {
    ++counter;
    if (aborts_on_broken_invariant()) {
        std::fprintf(stderr, "zcio: invariant broken: %s\n", what);
        std::abort();
    }
}

}  // namespace zcio::detail
