#include "streams/jq.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <atomic>
#include <optional>
#include <vector>

#include <simdjson.h>

extern "C" {
#include <jq.h>
#include <jv.h>
}

namespace tarn::streams {

static_assert(JqQuery::kPadding >= simdjson::SIMDJSON_PADDING);

namespace {

void OnJqError(void* data, jv msg) {
  auto* out = static_cast<std::string*>(data);
  if (jv_get_kind(msg) == JV_KIND_STRING) {
    *out = jv_string_value(msg);
  } else {
    jv s = jv_dump_string(jv_copy(msg), 0);
    *out = jv_string_value(s);
    jv_free(s);
  }
  jv_free(msg);
}

std::string Message(jv invalid) {
  jv msg = jv_invalid_get_msg(invalid);  // consumes `invalid`
  std::string out = "error";
  if (jv_get_kind(msg) == JV_KIND_STRING) out = jv_string_value(msg);
  jv_free(msg);
  return out;
}

// How Extract writes a number, as libjq's doubles are written.
std::string FormatNumber(double d) {
  char buf[64];
  if (std::floor(d) == d && std::fabs(d) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(d));
  } else {
    std::snprintf(buf, sizeof(buf), "%.17g", d);
  }
  return buf;
}

}  // namespace

// --- The native program ---------------------------------------------------------------------
//
//   program := '{' entry (',' entry)* '}'
//   entry   := key ':' expr | identifier            ({a} is {a: .a})
//   expr    := '(' pipe ')' | pipe
//   pipe    := path ['/' number] ('|' (floor | strftime("fmt") | . '/' number))*
//   path    := ('.' identifier)+
struct JqQuery::Native {
  struct Step {
    enum Kind { kDivide, kFloor, kStrftime } kind;
    double divisor = 1;
    std::string format;
    uint64_t id = 0;  // kStrftime: unique in the process, the key of its memo (FormatTime)
  };
  struct Entry {
    std::string key;
    std::vector<std::string> path;
    std::vector<Step> steps;
  };
  std::vector<Entry> entries;

  static std::unique_ptr<Native> Parse(std::string_view p);
  // False: let libjq answer (`*keys` is then unspecified). `padded`: `json` may be read
  // JqQuery::kPadding bytes past its end.
  bool Run(std::string_view json, bool padded, std::map<std::string, std::string>* keys) const;
  std::vector<std::string> key_names;  // the output's keys, sorted as a std::map holds them
};

namespace {

class NativeParser {
 public:
  explicit NativeParser(std::string_view p) : p_(p) {}

  bool Program(JqQuery::Native* out) {
    if (!Eat('{')) return false;
    do {
      JqQuery::Native::Entry e;
      if (!Entry(&e)) return false;
      out->entries.push_back(std::move(e));
    } while (Eat(','));
    if (!Eat('}')) return false;
    Ws();
    return i_ == p_.size() && !out->entries.empty();
  }

 private:
  void Ws() {
    while (i_ < p_.size() && std::isspace(static_cast<unsigned char>(p_[i_]))) ++i_;
  }
  bool Eat(char c) {
    Ws();
    if (i_ < p_.size() && p_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool EatWord(std::string_view w) {
    Ws();
    if (p_.substr(i_, w.size()) != w) return false;
    size_t end = i_ + w.size();
    if (end < p_.size() && (std::isalnum(static_cast<unsigned char>(p_[end])) || p_[end] == '_')) return false;
    i_ = end;
    return true;
  }
  bool Ident(std::string* out) {
    Ws();
    size_t b = i_;
    if (i_ < p_.size() && (std::isalpha(static_cast<unsigned char>(p_[i_])) || p_[i_] == '_')) {
      ++i_;
      while (i_ < p_.size() && (std::isalnum(static_cast<unsigned char>(p_[i_])) || p_[i_] == '_')) ++i_;
    }
    *out = std::string(p_.substr(b, i_ - b));
    return !out->empty();
  }
  // A string literal without escapes (anything else is left to libjq).
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    size_t b = i_;
    while (i_ < p_.size() && p_[i_] != '"') {
      if (p_[i_] == '\\') return false;
      ++i_;
    }
    if (i_ == p_.size()) return false;
    *out = std::string(p_.substr(b, i_ - b));
    ++i_;
    return true;
  }
  bool Number(double* out) {
    Ws();
    size_t b = i_;
    while (i_ < p_.size() && (std::isdigit(static_cast<unsigned char>(p_[i_])) || p_[i_] == '.')) ++i_;
    if (b == i_) return false;
    std::string text(p_.substr(b, i_ - b));
    char* end = nullptr;
    *out = std::strtod(text.c_str(), &end);
    return end && *end == 0 && *out != 0;
  }
  bool Entry(JqQuery::Native::Entry* e) {
    Ws();
    if (i_ < p_.size() && p_[i_] == '"') {
      if (!String(&e->key)) return false;
      if (!Eat(':')) return false;
    } else {
      if (!Ident(&e->key)) return false;
      if (!Eat(':')) {
        e->path = {e->key};  // {a}: {a: .a}
        return true;
      }
    }
    bool paren = Eat('(');
    if (!Pipe(e)) return false;
    return !paren || Eat(')');
  }
  bool Path(std::vector<std::string>* path) {
    while (true) {
      Ws();
      if (i_ >= p_.size() || p_[i_] != '.') break;
      ++i_;
      std::string k;
      if (!Ident(&k)) return false;
      path->push_back(std::move(k));
    }
    return !path->empty();
  }
  bool Divide(JqQuery::Native::Entry* e) {
    double d;
    if (!Number(&d)) return false;
    e->steps.push_back({JqQuery::Native::Step::kDivide, d, {}});
    return true;
  }
  bool Pipe(JqQuery::Native::Entry* e) {
    if (!Path(&e->path)) return false;
    if (Eat('/') && !Divide(e)) return false;
    while (Eat('|')) {
      if (!e->steps.empty() && e->steps.back().kind == JqQuery::Native::Step::kStrftime) return false;
      if (EatWord("floor")) {
        e->steps.push_back({JqQuery::Native::Step::kFloor, 1, {}});
      } else if (EatWord("strftime")) {
        std::string fmt;
        if (!Eat('(') || !String(&fmt) || !Eat(')')) return false;
        // Conversions that read only the broken-down UTC time (not its zone fields, which
        // libjq leaves empty).
        for (size_t k = 0; k < fmt.size(); ++k) {
          if (fmt[k] != '%') continue;
          if (++k == fmt.size() || !std::strchr("YmdHMSjyeFTbBaAIpuwCDRUWVGg%", fmt[k])) return false;
        }
        static std::atomic<uint64_t> next_id{0};
        e->steps.push_back({JqQuery::Native::Step::kStrftime, 1, std::move(fmt), ++next_id});
      } else if (Eat('.')) {
        if (!Eat('/') || !Divide(e)) return false;
      } else {
        return false;
      }
    }
    return true;
  }

  std::string_view p_;
  size_t i_ = 0;
};

// The last member called `key` (jq keeps the last of duplicate keys).
std::optional<simdjson::dom::element> Member(simdjson::dom::element e, std::string_view key) {
  simdjson::dom::object obj;
  if (e.get(obj) != simdjson::SUCCESS) return std::nullopt;
  std::optional<simdjson::dom::element> found;
  for (auto field : obj) {
    if (field.key == key) found = field.value;
  }
  return found;
}

// strftime of whole second `t` (UTC) with the format of step `id`, into `*out`; false when the
// text is empty though the format is not (libjq answers then). The texts of the last seconds
// formatted are kept per thread: a stream's records carry the same second over and over, and
// gmtime_r + strftime cost more than the rest of a record's extraction.
bool FormatTime(uint64_t id, const std::string& format, time_t t, std::string* out) {
  struct Memo {
    uint64_t id = 0;
    time_t t = 0;
    std::string text;
  };
  // Direct-mapped by step and second: two steps of one program (day and hour) and a second
  // boundary within a batch each keep their own slot.
  thread_local Memo memo[16];
  Memo& m = memo[(id * 0x9e3779b97f4a7c15ull ^ uint64_t(t) * 0xbf58476d1ce4e5b9ull) >> 60];
  if (m.id == id && m.t == t) {
    out->assign(m.text);
    return true;
  }
  struct tm tm;
  if (!gmtime_r(&t, &tm)) return false;
  char buf[512];
  size_t n = std::strftime(buf, sizeof(buf), format.c_str(), &tm);
  if (n == 0 && !format.empty()) return false;
  m.id = id;
  m.t = t;
  m.text.assign(buf, n);
  out->assign(buf, n);
  return true;
}

// Assigns `value` to `keys[key]`, reusing the node and its string when the key is there.
std::string& Slot(std::map<std::string, std::string>* keys, const std::string& key) {
  auto it = keys->find(key);
  if (it != keys->end()) return it->second;
  return (*keys)[key];
}

}  // namespace

std::unique_ptr<JqQuery::Native> JqQuery::Native::Parse(std::string_view p) {
  auto n = std::make_unique<Native>();
  NativeParser parser(p);
  if (!parser.Program(n.get())) return nullptr;
  std::map<std::string, int> keys;
  for (const Entry& e : n->entries) keys[e.key];
  for (const auto& [k, unused] : keys) n->key_names.push_back(k);
  return n;
}

bool JqQuery::Native::Run(std::string_view json, bool padded,
                          std::map<std::string, std::string>* keys) const {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size(), /*realloc_if_needed=*/!padded).get(root) !=
      simdjson::SUCCESS) {
    return false;
  }
  // The keys of an earlier run of this program are reused; others (libjq's) are dropped.
  if (keys->size() != key_names.size() ||
      !std::equal(key_names.begin(), key_names.end(), keys->begin(),
                  [](const std::string& name, const auto& kv) { return name == kv.first; })) {
    keys->clear();
  }
  for (const Entry& e : entries) {
    simdjson::dom::element v = root;
    for (const std::string& k : e.path) {
      auto m = Member(v, k);
      if (!m) return false;
      v = *m;
    }
    if (e.steps.empty()) {
      switch (v.type()) {
        case simdjson::dom::element_type::STRING: Slot(keys, e.key).assign(std::string_view(v)); break;
        case simdjson::dom::element_type::BOOL: Slot(keys, e.key).assign(bool(v) ? "true" : "false"); break;
        case simdjson::dom::element_type::INT64: Slot(keys, e.key) = FormatNumber(double(int64_t(v))); break;
        case simdjson::dom::element_type::UINT64: Slot(keys, e.key) = FormatNumber(double(uint64_t(v))); break;
        case simdjson::dom::element_type::DOUBLE: Slot(keys, e.key) = FormatNumber(double(v)); break;
        default: return false;
      }
      continue;
    }
    double d;
    switch (v.type()) {
      case simdjson::dom::element_type::INT64: d = double(int64_t(v)); break;
      case simdjson::dom::element_type::UINT64: d = double(uint64_t(v)); break;
      case simdjson::dom::element_type::DOUBLE: d = double(v); break;
      default: return false;
    }
    bool formatted = false;
    for (const Step& s : e.steps) {
      switch (s.kind) {
        case Step::kDivide: d /= s.divisor; break;
        case Step::kFloor: d = std::floor(d); break;
        case Step::kStrftime: {
          // Whole seconds from 1970 to 9999 only; fractions and the rest are libjq's.
          if (!(d >= 0 && d < 253402300800.0) || std::floor(d) != d) return false;
          if (!FormatTime(s.id, s.format, static_cast<time_t>(d), &Slot(keys, e.key))) return false;
          formatted = true;
          break;
        }
      }
    }
    if (!formatted) Slot(keys, e.key) = FormatNumber(d);
  }
  return true;
}

Result<std::unique_ptr<JqQuery>> JqQuery::Compile(const std::string& program, bool native) {
  std::unique_ptr<JqQuery> q(new JqQuery());
  jq_state* jq = jq_init();
  if (!jq) return Error(ErrorCode::kInternal, "jq_init failed");
  q->state_ = jq;
  jq_set_error_cb(jq, OnJqError, &q->error_);
  if (!jq_compile(jq, program.c_str())) {
    return Error(ErrorCode::kFirehoseInvalidArgument,
                 "MetadataExtractionQuery '" + program + "' does not compile: " +
                     (q->error_.empty() ? "syntax error" : q->error_));
  }
  if (native) q->native_ = Native::Parse(program);
  return q;
}

JqQuery::~JqQuery() {
  if (state_) {
    jq_state* jq = static_cast<jq_state*>(state_);
    jq_teardown(&jq);
  }
}

Result<std::map<std::string, std::string>> JqQuery::Extract(std::string_view json) {
  std::map<std::string, std::string> keys;
  RETURN_IF_ERROR(ExtractInto(json, 0, &keys));
  return keys;
}

Status JqQuery::ExtractInto(std::string_view json, size_t readable_after,
                            std::map<std::string, std::string>* keys) {
  if (native_ && native_->Run(json, readable_after >= kPadding, keys)) return Status::OK();
  keys->clear();
  return ExtractWithLibjq(json, keys);
}

Status JqQuery::ExtractWithLibjq(std::string_view json, std::map<std::string, std::string>* keys_out) {
  jv input = jv_parse_sized(json.data(), int(json.size()));
  if (!jv_is_valid(input)) {
    return Error(ErrorCode::kInvalidArgument, "record is not JSON: " + Message(input));
  }
  std::lock_guard<std::mutex> l(mu_);
  jq_state* jq = static_cast<jq_state*>(state_);
  error_.clear();
  jq_start(jq, input, 0);
  jv out = jq_next(jq);
  if (!jv_is_valid(out)) {
    std::string why = jv_invalid_has_msg(jv_copy(out)) ? Message(out) : "no output";
    if (why == "no output") jv_free(out);
    return Error(ErrorCode::kInvalidArgument, "MetadataExtractionQuery failed: " + why);
  }
  // Drain the rest so the state is ready for the next record.
  for (jv more = jq_next(jq); jv_is_valid(more); more = jq_next(jq)) jv_free(more);
  if (jv_get_kind(out) != JV_KIND_OBJECT) {
    jv_free(out);
    return Error(ErrorCode::kInvalidArgument, "MetadataExtractionQuery must produce an object");
  }
  std::map<std::string, std::string>& keys = *keys_out;
  Status st;
  for (int it = jv_object_iter(out); jv_object_iter_valid(out, it); it = jv_object_iter_next(out, it)) {
    jv k = jv_object_iter_key(out, it);
    jv v = jv_object_iter_value(out, it);
    std::string key = jv_string_value(k);
    switch (jv_get_kind(v)) {
      case JV_KIND_STRING: keys[key] = jv_string_value(v); break;
      case JV_KIND_TRUE: keys[key] = "true"; break;
      case JV_KIND_FALSE: keys[key] = "false"; break;
      case JV_KIND_NUMBER: keys[key] = FormatNumber(jv_number_value(v)); break;
      default:
        if (st.ok()) {
          st = Error(ErrorCode::kInvalidArgument,
                     "partition key '" + key + "' is null or not a scalar in the record");
        }
    }
    jv_free(k);
    jv_free(v);
  }
  jv_free(out);
  return st;
}

}  // namespace tarn::streams
