// Shared by every part of tvrun-native: the one-line user error and small helpers.
#pragma once

#include <stdexcept>
#include <string>

namespace tvn {

/// Bad input (a missing graph, another task's graph, a bad option): main() prints
/// `error: <what>` on one line and exits 2. Messages never contain a newline.
class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& what) : std::runtime_error(one_line(what)) {}
  static std::string one_line(std::string s) {
    for (char& c : s)
      if (c == '\n' || c == '\r') c = ' ';
    return s;
  }
};

/// A source that fails or ends unexpectedly mid-run, a sink that cannot be written:
/// `error: <what>` and exit 1 (the Python runtime's SourceError/SinkError).
class RunError : public std::runtime_error {
 public:
  explicit RunError(const std::string& what) : std::runtime_error(UserError::one_line(what)) {}
};

/// Python's round(): halves to even (std::nearbyint in the default rounding mode).
int round_half_even(double x);

}  // namespace tvn
