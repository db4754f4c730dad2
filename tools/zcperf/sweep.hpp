// zcperf's sweeps: strategies x payload sizes, measured side by side in one run, interleaved over
// repetitions (sweep_runner.hpp), on a target (sweep_targets.hpp), written out as a table, CSV,
// JSON and a plot (sweep_output.hpp, sweep_plot.hpp). Three sweeps share that machinery: the send
// sweep (send_sweep.hpp), with --recv LIST the receive sweep (recv_sweep.hpp), and with -F FILE
// the file sweep (file_sweep.hpp).
//
//   return run_sweep(options);   // the exit code
#pragma once

#include "options.hpp"

namespace zcperf {

int run_sweep(Options o);

}  // namespace zcperf
