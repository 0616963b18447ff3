// An argument error raised where no JS environment is at hand (ops, workers). The bridge turns it
// into a JS TypeError with the same message: "<where>: argument '<arg>' must be <expected>, got <got>".
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace medgr2 {

class ArgumentError : public std::invalid_argument {
 public:
  ArgumentError(const std::string& where, const std::string& arg, const std::string& expected,
                const std::string& got = "")
      : std::invalid_argument(Format(where, arg, expected, got)) {}

  static std::string Format(const std::string& where, const std::string& arg, const std::string& expected,
                            const std::string& got) {
    std::string msg = where + ": argument '" + arg + "' must be " + expected;
    if (!got.empty()) msg += ", got " + got;
    return msg;
  }
};

// "[2, 3]": a shape for error messages (works for at::IntArrayRef or any streamable sizes()).
template <typename Sizes>
std::string ShapeText(const Sizes& sizes) {
  std::ostringstream s;
  s << sizes;
  return s.str();
}

}  // namespace medgr2
