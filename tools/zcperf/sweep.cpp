#include "sweep.hpp"

#include "file_sweep.hpp"
#include "recv_sweep.hpp"
#include "send_sweep.hpp"

namespace zcperf {

int run_sweep(Options o) {
    if (!o.file.empty()) return run_file_sweep(std::move(o));
    if (!o.recv_sweep.empty()) return run_recv_sweep(o);
    return run_send_sweep(std::move(o));
}

}  // namespace zcperf
