#include "zcio/error.hpp"

#include <cstdlib>
#include <cstring>

namespace zcio {
namespace {

std::string compose(std::string_view what, int err, std::string_view hint) {
    std::string msg(what);
    if (err != 0) {
        msg += ": ";
        msg += errno_string(err);
    }
    if (!hint.empty()) {
        msg += ". ";
        msg += hint;
    }
    return msg;
}

}  // namespace

SetupError::SetupError(std::string_view what, int err, std::string_view hint)
    : std::runtime_error(compose(what, err, hint)), err_(err < 0 ? -err : err) {}

std::string errno_string(int err) {
    if (err < 0) err = -err;
    const char* name = strerrorname_np(err);
    std::string s = name ? name : ("errno " + std::to_string(err));
    s += " (";
    s += std::strerror(err);
    s += ")";
    return s;
}

}  // namespace zcio
