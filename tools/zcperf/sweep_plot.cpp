#include "sweep_plot.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

namespace zcperf {

std::string plot_script(const std::vector<SendRow>& rows, const std::vector<std::string>& strategies,
                        const std::string& file, const std::string& title) {
    const bool png = file.size() >= 4 && file.compare(file.size() - 4, 4, ".png") == 0;
    std::string s = png ? "set terminal pngcairo size 1000,620 enhanced font 'sans,11'\n"
                        : "set terminal svg size 1000,620 dynamic enhanced font 'sans,11' background rgb 'white'\n";
    std::string quoted = file;
    std::replace(quoted.begin(), quoted.end(), '\'', '_');
    s += fmt::format("set output '{}'\n", quoted);
    s += fmt::format("set title \"zcperf: {}\" noenhanced\n", title);
    s += "set logscale x\nset xlabel 'payload per send (bytes, log scale)'\nset ylabel 'throughput (MiB/s)'\n"
         "set key left top\nset grid\nset yrange [0:*]\nset pointsize 1.2\n";
    std::string plot = "plot ";
    int n = 0;
    for (const auto& st : strategies) {
        const std::string block = fmt::format("$S{}", n);
        s += block + " << EOD\n";
        for (const auto& r : rows)
            if (r.strategy == st && r.runs > 0) s += fmt::format("{} {:.2f}\n", r.size, r.mib_per_s);
        s += "EOD\n";
        plot += fmt::format("{}{} using 1:2 with linespoints lw 2 title '{}'", n ? ", " : "", block, st);
        ++n;
    }
    return s + plot + "\n";
}

std::string draw_plot(const std::string& file, const std::vector<SendRow>& rows,
                      const std::vector<std::string>& strategies, const std::string& title) {
    if (file == "none") return {};
    std::FILE* gp = ::popen("gnuplot 2>&1", "w");
    if (!gp) {
        fmt::print(stderr, "zcperf: cannot run gnuplot; the plot is skipped (the CSV has the data)\n");
        return {};
    }
    const std::string script = plot_script(rows, strategies, file, title);
    std::fwrite(script.data(), 1, script.size(), gp);
    if (::pclose(gp) != 0) {
        fmt::print(stderr, "zcperf: gnuplot failed (is it installed?); the plot is skipped\n");
        return {};
    }
    return file;
}

}  // namespace zcperf
