// Small path helpers shared by sources.cpp and sinks.cpp (internal).
#pragma once

#include <algorithm>
#include <cctype>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace tvn::fs {

inline bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
inline bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}
inline std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
inline std::string suffix(const std::string& p) {
  const auto slash = p.find_last_of('/');
  const auto dot = p.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash) || dot == slash + 1) return "";
  return lower(p.substr(dot));
}
inline bool is_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}
inline const std::vector<std::string> kImageExt = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"};
inline const std::vector<std::string> kVideoExt = {".avi", ".m4v", ".mov", ".mp4"};
inline bool in(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace tvn::fs
