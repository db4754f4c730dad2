// The interleaved runner every sweep shares: repetitions x sizes x names, each cell run once per
// repetition, the names' order rotated (and on odd repetitions reversed) from one repetition to
// the next, so slow drift of a noisy host (5-35 % here) hits every name alike. A sweep's ratios
// are medians of per-repetition ratios: each cell against its baseline measured moments apart.
//
// A sweep gives its grid and a function that runs one cell; the runner calls it in order, prints
// the progress line and drops a cell that Ctrl-C cut short:
//
//   SweepGrid grid{.names = {"plain", "zc-fixed"}, .sizes = {1400, 60000}, .repeat = 3};
//   std::vector<MyCell> cells = run_interleaved<MyCell>(grid, true, [&](const CellPlace& at) {
//       MyCell c{at};          // MyCell derives from CellPlace and has progress_text()
//       ...                    // measure; on failure set c.error
//       return c;
//   });
//   double r = median_ratio(cells, "zc-fixed", 60000, "plain", [](const MyCell& c) { return c.rate; });
#pragma once

#include "net.hpp"

#include <algorithm>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace zcperf {

// Where a cell sits in the grid; every sweep's cell type derives from it.
struct CellPlace {
    std::string name;      // the strategy (send, receive or file) this cell measured
    std::size_t size = 0;  // bytes per send
    int rep = 0;
    std::string error;  // why the cell failed (or stopped early)

    // Whether the cell counts in medians and ratios; a cell type may say otherwise (a send cell
    // whose stream failed after sending some data still measured something).
    bool measured() const noexcept { return error.empty(); }
};

struct SweepGrid {
    std::vector<std::string> names;  // the baseline among them (ratios are against it)
    std::vector<std::size_t> sizes;  // ascending, without repeats
    int repeat = 3;
    double cell_seconds = 0;  // for the progress line's estimate
};

// The order of `names` in repetition `rep`: rotated by rep, reversed on odd repetitions.
std::vector<std::string> interleaved_order(const std::vector<std::string>& names, int rep);

// Sorts and de-duplicates sizes (the grid's and the tables' order).
std::vector<std::size_t> sorted_sizes(std::vector<std::size_t> sizes);

// Puts `baseline` first in `names` unless it is there already (the ratios need it).
void ensure_baseline(std::vector<std::string>& names, const std::string& baseline);

// The live line on stderr: "[3/48, 20 s left] zc-fixed 60000 B: 31234 MiB/s".
class ProgressLine {
public:
    ProgressLine(bool enabled, std::size_t total);
    ~ProgressLine();  // clears the line
    ProgressLine(const ProgressLine&) = delete;
    ProgressLine& operator=(const ProgressLine&) = delete;
    void cell_done(const CellPlace& at, const std::string& result);

private:
    bool enabled_;
    std::size_t total_, done_ = 0;
    double started_;
};

// Runs every cell of `grid` once per repetition, in interleaved order, until done or Ctrl-C.
template <typename Cell>
std::vector<Cell> run_interleaved(const SweepGrid& grid, bool progress,
                                  const std::function<Cell(const CellPlace&)>& run_cell) {
    std::vector<Cell> cells;
    ProgressLine line(progress, grid.names.size() * grid.sizes.size() * static_cast<std::size_t>(grid.repeat));
    for (int rep = 0; rep < grid.repeat; ++rep)
        for (std::size_t size : grid.sizes)
            for (const std::string& name : interleaved_order(grid.names, rep)) {
                if (stop_requested().load()) return cells;
                Cell c = run_cell(CellPlace{name, size, rep, {}});
                if (stop_requested().load()) return cells;  // cut short: it measured a fraction
                line.cell_done(c, c.progress_text());
                cells.push_back(std::move(c));
            }
    return cells;
}

double median(std::vector<double> v);

// One row per cell of the grid in table order (sizes, then names): make(name, size) builds each.
template <typename Row, typename Make>
std::vector<Row> rows_of(const SweepGrid& grid, Make make) {
    std::vector<Row> rows;
    for (std::size_t size : grid.sizes)
        for (const std::string& name : grid.names) rows.push_back(make(name, size));
    return rows;
}

// How many of the cells of `name` at `size` measured, the error of one that did not, and the last
// that did (nullptr: none).
template <typename Cell>
struct Tally {
    std::size_t runs = 0;
    std::string error;
    const Cell* last = nullptr;
};
template <typename Cell>
Tally<Cell> tally(const std::vector<Cell>& cells, const std::string& name, std::size_t size) {
    Tally<Cell> t;
    for (const Cell& c : cells) {
        if (c.name != name || c.size != size) continue;
        if (!c.measured()) {
            t.error = c.error;
            continue;
        }
        ++t.runs;
        t.last = &c;
    }
    return t;
}

// The median over repetitions of metric(cell) / metric(baseline cell of the same size and
// repetition), for the cells of `name` at `size` that measured; 0 when there is none. A baseline
// that did not measure, or measured a metric <= 0, leaves its repetition out.
template <typename Cell, typename Metric>
double median_ratio(const std::vector<Cell>& cells, const std::string& name, std::size_t size,
                    const std::string& baseline, Metric metric) {
    std::vector<double> ratios;
    for (const Cell& c : cells) {
        if (c.name != name || c.size != size || !c.measured()) continue;
        for (const Cell& b : cells)
            if (b.name == baseline && b.size == size && b.rep == c.rep && b.measured() && metric(b) > 0)
                ratios.push_back(metric(c) / metric(b));
    }
    return median(std::move(ratios));
}

// The median of metric(cell) over the cells of `name` at `size` that measured.
template <typename Cell, typename Metric>
double median_of(const std::vector<Cell>& cells, const std::string& name, std::size_t size, Metric metric) {
    std::vector<double> v;
    for (const Cell& c : cells)
        if (c.name == name && c.size == size && c.measured()) v.push_back(metric(c));
    return median(std::move(v));
}

}  // namespace zcperf
