// The send sweep's graph: throughput against payload size, one line per strategy, drawn by
// gnuplot (SVG, or PNG when the file name ends in .png). Optional: without gnuplot the CSV has
// the data and zcperf says the plot was skipped.
//
//   std::string drawn = draw_plot("zcperf-sweep.svg", rows, grid.names, "UDP into the sink");
#pragma once

#include "send_sweep.hpp"

#include <string>
#include <vector>

namespace zcperf {

// The gnuplot script that draws `rows` into `file` (inline data blocks, no temporary files).
std::string plot_script(const std::vector<SendRow>& rows, const std::vector<std::string>& strategies,
                        const std::string& file, const std::string& title);

// Runs gnuplot; returns `file`, or "" when `file` is "none" or gnuplot failed (said on stderr).
std::string draw_plot(const std::string& file, const std::vector<SendRow>& rows,
                      const std::vector<std::string>& strategies, const std::string& title);

}  // namespace zcperf
