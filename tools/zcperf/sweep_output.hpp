// What a sweep leaves: the table it prints, and the CSV (one line per cell) and JSON (the run,
// per-strategy medians, every cell) it writes. The plot is sweep_plot.hpp's.
//
//   fmt::print("{}", send_table(rows, title));
//   write_sweep_files(o.out_dir, {{dir + "/zcperf-sweep.csv", send_csv(cells, "sink", params)}});
#pragma once

#include "control.hpp"
#include "options.hpp"
#include "recv_sweep.hpp"
#include "send_sweep.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace zcperf {

std::string send_table(const std::vector<SendRow>& rows, const std::string& title);
std::string send_csv(const std::vector<SendCell>& cells, const std::string& target, const TestParams& p);
// `buffers`: which buffer mode ran (the header's line).
nlohmann::json send_json(const std::string& target, const std::string& description, const TestParams& p,
                         const Options& o, const std::string& buffers, bool interrupted,
                         const std::vector<SendRow>& rows, const std::vector<SendCell>& cells);

std::string recv_table(const std::vector<RecvRow>& rows, const std::string& title);
std::string recv_csv(const std::vector<RecvCell>& cells);
nlohmann::json recv_json(const std::string& description, const Options& o, zcio::Strategy sender,
                         const std::vector<RecvRow>& rows, const std::vector<RecvCell>& cells);

// Creates `dir` and writes each (path, text). Throws Error naming the path and --out.
void write_sweep_files(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace zcperf
