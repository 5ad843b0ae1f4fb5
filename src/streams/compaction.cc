#include "streams/compaction.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

namespace tarn::streams {

namespace {

constexpr size_t kSeqDigits = 20;
constexpr size_t kTimeChars = 19;  // yyyy-MM-dd-HH-mm-ss

bool Digits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return !s.empty();
}

bool TimeText(std::string_view t) {
  if (t.size() != kTimeChars) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    bool dash = i == 4 || i == 7 || i == 10 || i == 13 || i == 16;
    if (dash ? t[i] != '-' : (t[i] < '0' || t[i] > '9')) return false;
  }
  return true;
}

uint64_t ParseSeq(std::string_view s) {
  uint64_t v = 0;
  for (char c : s) v = v * 10 + uint64_t(c - '0');
  return v;
}

}  // namespace

std::optional<StreamObjectName> ParseStreamObjectName(std::string_view key) {
  size_t slash = key.rfind('/');
  std::string_view name = slash == std::string_view::npos ? key : key.substr(slash + 1);
  // "-<20 digits>-<20 digits>" followed by the extension: find the last such run.
  constexpr size_t kRange = 2 * (kSeqDigits + 1);
  for (size_t at = name.size() >= kRange ? name.size() - kRange + 1 : 0; at-- > 0;) {
    std::string_view range = name.substr(at, kRange);
    if (range[0] != '-' || range[kSeqDigits + 1] != '-') continue;
    std::string_view first = range.substr(1, kSeqDigits);
    std::string_view last = range.substr(kSeqDigits + 2, kSeqDigits);
    if (!Digits(first) || !Digits(last)) continue;
    std::string_view ext = name.substr(at + kRange);
    if (!ext.empty() && (ext[0] != '.' || ext.find('-') != std::string_view::npos)) return std::nullopt;
    // "<stream>-<time>" before it.
    if (at < kTimeChars + 2) return std::nullopt;
    std::string_view time = name.substr(at - kTimeChars, kTimeChars);
    if (!TimeText(time) || name[at - kTimeChars - 1] != '-') return std::nullopt;
    StreamObjectName out;
    out.stream = std::string(name.substr(0, at - kTimeChars - 1));
    out.time = std::string(time);
    out.first = ParseSeq(first);
    out.last = ParseSeq(last);
    out.extension = std::string(ext);
    if (out.first > out.last) return std::nullopt;
    return out;
  }
  return std::nullopt;
}

std::vector<bool> CoveredObjects(const std::vector<std::string>& keys) {
  std::vector<bool> covered(keys.size(), false);
  // (folder, stream, extension) → (first, last, index)
  std::map<std::tuple<std::string, std::string, std::string>,
           std::vector<std::tuple<uint64_t, uint64_t, size_t>>>
      groups;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto n = ParseStreamObjectName(keys[i]);
    if (!n || n->extension.empty()) continue;
    size_t slash = keys[i].rfind('/');
    std::string folder = slash == std::string::npos ? std::string() : keys[i].substr(0, slash + 1);
    groups[{folder, n->stream, n->extension}].emplace_back(n->first, n->last, i);
  }
  for (auto& [g, ranges] : groups) {
    if (ranges.size() < 2) continue;
    // By first ascending, last descending: an object is covered when an earlier one in this
    // order reaches at least as far and is not the very same range.
    std::sort(ranges.begin(), ranges.end(), [](const auto& a, const auto& b) {
      if (std::get<0>(a) != std::get<0>(b)) return std::get<0>(a) < std::get<0>(b);
      return std::get<1>(a) > std::get<1>(b);
    });
    bool have = false;
    uint64_t reach_first = 0, reach_last = 0;  // the earlier range reaching furthest
    for (const auto& [first, last, index] : ranges) {
      if (have && reach_last >= last && !(reach_first == first && reach_last == last)) {
        covered[index] = true;
        continue;
      }
      if (!have || last > reach_last) {
        reach_first = first;
        reach_last = last;
        have = true;
      }
    }
  }
  return covered;
}

std::optional<std::pair<size_t, size_t>> PickMerge(const std::vector<CompactionFile>& files,
                                                   const CompactionPolicy& policy) {
  size_t n = std::max<size_t>(policy.min_files, 2);
  double log_n = std::log(double(n));
  uint64_t floor_bytes = std::max<uint64_t>(1, std::min(policy.floor_bytes, policy.target_bytes));
  auto level = [&](uint64_t size) {
    return std::log(double(std::max(size, floor_bytes))) / log_n;
  };
  size_t i = 0;
  while (i < files.size()) {
    // A run of objects below the target, between final ones.
    if (files[i].size >= policy.target_bytes) {
      ++i;
      continue;
    }
    size_t run_end = i;
    while (run_end < files.size() && files[run_end].size < policy.target_bytes) ++run_end;
    size_t start = i;
    while (start < run_end) {
      double top = 0;
      for (size_t k = start; k < run_end; ++k) top = std::max(top, level(files[k].size));
      double bottom = top - 0.75;
      size_t upto = start;
      for (size_t k = run_end; k-- > start;) {
        if (level(files[k].size) >= bottom) {
          upto = k;
          break;
        }
      }
      // [start, upto] is one level; merge its oldest objects.
      if (upto - start + 1 >= n) {
        size_t end = start;
        uint64_t total = 0;
        while (end < start + n) {
          total += files[end].size;
          ++end;
          if (end - start >= 2 && total >= policy.target_bytes) break;
        }
        return std::make_pair(start, end);
      }
      start = upto + 1;
    }
    i = run_end;
  }
  return std::nullopt;
}

}  // namespace tarn::streams
