#include "send_op.hpp"

namespace zcio::detail {

void OpQueue::insert_by_seq(Op* op) noexcept {
    if (!head || op->seq < head->seq) {
        op->next = head;
        head = op;
        if (!tail) tail = op;
        ++size;
        return;
    }
    Op* at = head;
    while (at->next && at->next->seq < op->seq) at = at->next;
    op->next = at->next;
    at->next = op;
    if (tail == at) tail = op;
    ++size;
}

OpPool::OpPool(std::uint32_t count, Completion::Fn on_cqe, SendCore* core)
    // From make_unique, not make_shared: libstdc++ 12's make_shared<T[]>(n) copies one
    // value-initialised element n times, and an Op owns move-only things.
    : ops_(std::make_unique<Op[]>(count)), count_(count) {
    for (std::uint32_t i = count; i-- > 0;) {
        Op& op = ops_[i];
        op.fn = on_cqe;
        op.core = core;
        op.next = free_;
        free_ = &op;
    }
}

}  // namespace zcio::detail
