// Reading one JSON object from the network field by field, remembering the first problem: every
// accessor is total (never throws, whatever the value's type or size). control.cpp and
// control_results.cpp read the peer's messages with it.
//
//   Fields f(object);
//   f.integer("parallel", p.streams, 1, 256, /*required=*/false);
//   if (!f.ok()) return f.error;
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace zcperf {

class Fields {
public:
    explicit Fields(const nlohmann::json& o) : o_(o) {}

    const nlohmann::json* find(const char* key, bool required) {
        auto it = o_.find(key);
        if (it == o_.end()) {
            if (required) fail(std::string("missing \"") + key + "\"");
            return nullptr;
        }
        return &*it;
    }
    // iperf3 writes numbers through cJSON (doubles): an integral double counts as an integer.
    template <class T>
    void integer(const char* key, T& out, std::int64_t lo, std::int64_t hi, bool required = true) {
        const nlohmann::json* v = find(key, required);
        if (!v) return;
        std::int64_t x = 0;
        if (!as_integer(*v, x)) return fail(std::string("\"") + key + "\" must be an integer");
        if (x < lo || x > hi) return fail(std::string("\"") + key + "\" out of range");
        out = static_cast<T>(x);
    }
    void u64(const char* key, std::uint64_t& out, bool required = false) {
        const nlohmann::json* v = find(key, required);
        if (!v) return;
        if (v->is_number_unsigned()) {
            out = v->get<std::uint64_t>();
            return;
        }
        std::int64_t x = 0;
        if (!as_integer(*v, x) || x < 0) return fail(std::string("\"") + key + "\" must be a non-negative integer");
        out = static_cast<std::uint64_t>(x);
    }
    void number(const char* key, double& out, double lo, double hi, bool required = true) {
        const nlohmann::json* v = find(key, required);
        if (!v) return;
        if (!v->is_number()) return fail(std::string("\"") + key + "\" must be a number");
        double x = v->get<double>();
        if (!std::isfinite(x) || x < lo || x > hi) return fail(std::string("\"") + key + "\" out of range");
        out = x;
    }
    void boolean(const char* key, bool& out, bool required = true) {
        const nlohmann::json* v = find(key, required);
        if (!v) return;
        if (!v->is_boolean()) return fail(std::string("\"") + key + "\" must be true or false");
        out = v->get<bool>();
    }
    void string(const char* key, std::string& out, std::size_t max_len, bool required = true) {
        const nlohmann::json* v = find(key, required);
        if (!v) return;
        if (!v->is_string()) return fail(std::string("\"") + key + "\" must be a string");
        const auto& s = v->get_ref<const std::string&>();
        if (s.size() > max_len) return fail(std::string("\"") + key + "\" too long");
        out = s;
    }

    void fail(std::string why) {
        if (error.empty()) error = std::move(why);
    }
    bool ok() const noexcept { return error.empty(); }
    std::string error;

private:
    static bool as_integer(const nlohmann::json& v, std::int64_t& x) {
        if (v.is_number_unsigned()) {
            auto u = v.get<std::uint64_t>();
            if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
            x = static_cast<std::int64_t>(u);
            return true;
        }
        if (v.is_number_integer()) {
            x = v.get<std::int64_t>();
            return true;
        }
        if (!v.is_number_float()) return false;
        const double d = v.get<double>();
        if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e18) return false;
        x = static_cast<std::int64_t>(d);
        return true;
    }

    const nlohmann::json& o_;
};

// Parses a frame's JSON, refusing what only costs the parser stack and time (deep nesting).
// Returns a discarded value when it is not JSON. Never throws.
nlohmann::json parse_frame_json(std::string_view text) noexcept;

}  // namespace zcperf
