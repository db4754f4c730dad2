// A Buffer cannot be copied: two handles to one in-flight buffer would let one of them reuse it
// while the kernel still reads it.
// expect: use of deleted function|call to deleted constructor
#include "zcio/buffer.hpp"

void misuse(zcio::Buffer& b) {
    zcio::Buffer copy = b;
    (void)copy;
}
