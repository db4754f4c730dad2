// Which sanitizer the test (and, built alike, the program it drives) runs under: a few figures
// measure the sanitizer rather than zcio there (RSS under ASan's quarantine, rates under TSan).
#pragma once

namespace zcio::test {

#if defined(__has_feature)
#define ZCIO_TEST_HAS_FEATURE(x) __has_feature(x)
#else
#define ZCIO_TEST_HAS_FEATURE(x) 0
#endif

#if defined(__SANITIZE_ADDRESS__) || ZCIO_TEST_HAS_FEATURE(address_sanitizer)
inline constexpr bool under_asan = true;
#else
inline constexpr bool under_asan = false;
#endif

#if defined(__SANITIZE_THREAD__) || ZCIO_TEST_HAS_FEATURE(thread_sanitizer)
inline constexpr bool under_tsan = true;
#else
inline constexpr bool under_tsan = false;
#endif

#undef ZCIO_TEST_HAS_FEATURE

}  // namespace zcio::test
