// send() takes the buffer by rvalue: the caller must give it up (std::move) and cannot keep a
// usable handle to memory the kernel is reading. Passing an lvalue does not compile.
// expect: cannot bind rvalue reference|no matching member function for call to 'send'
#include "zcio/send_engine.hpp"

void misuse(zcio::SendEngine& engine, zcio::SocketId sock, zcio::Buffer& buf) {
    engine.send(sock, buf, zcio::Storage{});
}
