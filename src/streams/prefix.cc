#include "streams/prefix.h"

#include <ctime>

namespace tarn::streams {

namespace {

Status Invalid(const std::string& msg) { return Error(ErrorCode::kFirehoseInvalidArgument, msg); }

std::string Pad(int v, int width) {
  std::string s = std::to_string(v);
  while (int(s.size()) < width) s.insert(s.begin(), '0');
  return s;
}

}  // namespace

Result<std::string> FormatTimestamp(const std::string& pattern, int64_t unix_micros) {
  time_t secs = time_t(unix_micros / 1000000);
  if (unix_micros < 0 && unix_micros % 1000000) --secs;
  struct tm tm;
  gmtime_r(&secs, &tm);
  std::string out;
  for (size_t i = 0; i < pattern.size();) {
    char c = pattern[i];
    if (c == '\'') {  // 'literal', '' is a quote
      size_t j = i + 1;
      if (j < pattern.size() && pattern[j] == '\'') {
        out += '\'';
        i += 2;
        continue;
      }
      while (j < pattern.size() && pattern[j] != '\'') out += pattern[j++];
      if (j >= pattern.size()) return Invalid("unterminated quote in timestamp pattern '" + pattern + "'");
      i = j + 1;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
      out += c;
      ++i;
      continue;
    }
    size_t n = 1;
    while (i + n < pattern.size() && pattern[i + n] == c) ++n;
    switch (c) {
      case 'y':
      case 'u':
        out += n == 2 ? Pad((tm.tm_year + 1900) % 100, 2) : Pad(tm.tm_year + 1900, int(n));
        break;
      case 'M': out += Pad(tm.tm_mon + 1, int(n)); break;
      case 'd': out += Pad(tm.tm_mday, int(n)); break;
      case 'H': out += Pad(tm.tm_hour, int(n)); break;
      case 'm': out += Pad(tm.tm_min, int(n)); break;
      case 's': out += Pad(tm.tm_sec, int(n)); break;
      case 'D': out += Pad(tm.tm_yday + 1, int(n)); break;
      default:
        return Invalid(std::string("timestamp pattern letter '") + c + "' in '" + pattern +
                       "' is not supported (use y, M, d, H, m, s, D)");
    }
    i += n;
  }
  return out;
}

Result<PrefixTemplate> PrefixTemplate::Parse(const std::string& text, bool dynamic_partitioning,
                                             bool error_prefix) {
  PrefixTemplate t;
  t.text_ = text;
  size_t i = 0;
  std::string lit;
  while (i < text.size()) {
    if (text.compare(i, 2, "!{") != 0) {
      lit += text[i++];
      continue;
    }
    size_t close = text.find('}', i);
    if (close == std::string::npos) return Invalid("unterminated expression in prefix '" + text + "'");
    std::string expr = text.substr(i + 2, close - i - 2);
    size_t colon = expr.find(':');
    if (colon == std::string::npos) return Invalid("expression !{" + expr + "} has no namespace");
    std::string ns = expr.substr(0, colon), arg = expr.substr(colon + 1);
    if (!lit.empty()) t.parts_.push_back({Kind::kLiteral, lit});
    lit.clear();
    if (ns == "timestamp") {
      Result<std::string> check = FormatTimestamp(arg, 0);
      if (!check.ok()) return Status(check.status());
      t.parts_.push_back({Kind::kTimestamp, arg});
      t.uses_timestamp_ = true;
    } else if (ns == "firehose" && arg == "random-string") {
      t.parts_.push_back({Kind::kRandom, ""});
    } else if (ns == "firehose" && arg == "error-output-type") {
      if (!error_prefix) {
        return Invalid("!{firehose:error-output-type} is only allowed in ErrorOutputPrefix");
      }
      t.parts_.push_back({Kind::kErrorType, ""});
    } else if (ns == "partitionKeyFromQuery") {
      if (error_prefix) return Invalid("ErrorOutputPrefix cannot use partitionKeyFromQuery");
      if (!dynamic_partitioning) {
        return Invalid("!{partitionKeyFromQuery:" + arg +
                       "} requires DynamicPartitioningConfiguration Enabled=true");
      }
      if (arg.empty()) return Invalid("partitionKeyFromQuery needs a key name");
      t.parts_.push_back({Kind::kQueryKey, arg});
      t.query_keys_.push_back(arg);
    } else if (ns == "partitionKeyFromLambda") {
      return Invalid("!{partitionKeyFromLambda:" + arg +
                     "} is not supported: Tarn runs no Lambda functions; use "
                     "partitionKeyFromQuery with a MetadataExtraction JQ query");
    } else {
      return Invalid("unknown prefix expression !{" + expr + "}");
    }
    t.has_expressions_ = true;
    i = close + 1;
  }
  if (!lit.empty()) t.parts_.push_back({Kind::kLiteral, lit});
  return t;
}

Result<std::string> PrefixTemplate::Evaluate(int64_t arrival_micros,
                                             const std::map<std::string, std::string>& keys,
                                             const std::string& error_output_type) const {
  std::string out;
  for (const Part& p : parts_) {
    switch (p.kind) {
      case Kind::kLiteral: out += p.text; break;
      case Kind::kTimestamp: {
        ASSIGN_OR_RETURN(std::string s, FormatTimestamp(p.text, arrival_micros));
        out += s;
        break;
      }
      case Kind::kRandom: out += kRandomStringToken; break;
      case Kind::kErrorType: out += error_output_type; break;
      case Kind::kQueryKey: {
        auto it = keys.find(p.text);
        if (it == keys.end()) {
          return Error(ErrorCode::kInvalidArgument,
                       "the MetadataExtraction query produced no value for partition key '" +
                           p.text + "'");
        }
        out += it->second;
        break;
      }
    }
  }
  return out;
}

std::string FillRandomString(const std::string& partition, uint64_t seed) {
  size_t pos = partition.find(kRandomStringToken);
  if (pos == std::string::npos) return partition;
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string out = partition;
  while (pos != std::string::npos) {
    // splitmix64: a fixed function of the seed, so a replayed flush draws the same string.
    std::string r;
    uint64_t x = seed;
    for (int i = 0; i < 11; ++i) {
      x += 0x9e3779b97f4a7c15ull;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      r += kAlphabet[z % 36];
    }
    out.replace(pos, std::string(kRandomStringToken).size(), r);
    pos = out.find(kRandomStringToken, pos + r.size());
  }
  return out;
}

}  // namespace tarn::streams
