// An argument error raised where no JS environment is at hand (ops, workers). The bridge turns it
// into a JS TypeError with the same message: "<where>: argument '<arg>' must be <expected>, got <got>".
#pragma once

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

}  // namespace medgr2
