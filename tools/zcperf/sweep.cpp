#include "sweep.hpp"

#include "recv_sweep.hpp"
#include "send_sweep.hpp"

namespace zcperf {

int run_sweep(Options o) {
    if (!o.recv_sweep.empty()) return run_recv_sweep(o);
    return run_send_sweep(std::move(o));
}

}  // namespace zcperf
