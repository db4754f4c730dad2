// InplaceFunction: a handler is moved and destroyed exactly as often as C++ says, whether it is
// trivially copyable (moved by copying bytes, dropped for free) or owns something (moved and
// destroyed through its own operations).
#include "zcio/inplace_function.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>

namespace {

using Fn = zcio::InplaceFunction<int(int), 48>;

TEST(InplaceFunction, TriviallyCopyableHandlerSurvivesMoves) {
    int calls = 0;
    int* counter = &calls;
    int bias = 7;  // not const: a constant needs no capture, and clang says so
    Fn a = [counter, bias](int x) {
        ++*counter;
        return x + bias;
    };
    Fn b = std::move(a);
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): a moved-from handler is empty
    Fn c;
    c = std::move(b);
    EXPECT_FALSE(b);  // NOLINT(bugprone-use-after-move)
    ASSERT_TRUE(c);
    EXPECT_EQ(c(35), 42);
    EXPECT_EQ(calls, 1);
    c.reset();
    EXPECT_FALSE(c);
}

// A handler that owns a resource: every move must run its move constructor (the source gives
// the resource up) and the last owner's destructor must free it once.
TEST(InplaceFunction, OwningHandlerIsMovedAndDestroyedOnce) {
    auto token = std::make_shared<int>(5);
    std::weak_ptr<int> watch = token;
    {
        Fn a = [t = std::move(token)](int x) { return x * *t; };
        EXPECT_EQ(watch.use_count(), 1);
        Fn b = std::move(a);
        EXPECT_EQ(watch.use_count(), 1);  // moved, not copied: still one owner
        Fn c;
        c = std::move(b);
        EXPECT_EQ(watch.use_count(), 1);
        EXPECT_EQ(c(4), 20);
        c.reset();
        EXPECT_TRUE(watch.expired());  // reset destroyed the capture
    }
    EXPECT_TRUE(watch.expired());
}

TEST(InplaceFunction, AssigningOverAnOwningHandlerDestroysTheOldOne) {
    auto old_token = std::make_shared<std::string>("old");
    std::weak_ptr<std::string> watch = old_token;
    Fn f = [t = std::move(old_token)](int x) { return x + static_cast<int>(t->size()); };
    EXPECT_EQ(f(1), 4);
    f = Fn([](int x) { return -x; });  // a trivial one replaces it
    EXPECT_TRUE(watch.expired());
    EXPECT_EQ(f(3), -3);
}

}  // namespace
