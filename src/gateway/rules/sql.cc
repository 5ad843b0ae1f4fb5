// AWS IoT SQL: lexer, recursive-descent parser and tree evaluator. Operator and function
// semantics follow developerguide/iot-sql-operators, iot-sql-functions and iot-sql-data-types.
#include "gateway/rules/sql.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <functional>
#include <limits>

#include <absl/container/inlined_vector.h>
#include <simdjson.h>

#include "core/crypto.h"
#include "core/strings.h"

namespace tarn::gateway::rules {

using json = nlohmann::json;

namespace {

// simdjson's DOM to nlohmann's (the value type of operators and functions). simdjson limits the
// depth to 1024, so the recursion is bounded.
json FromSimdjson(simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      json o = json::object();
      auto& members = o.get_ref<json::object_t&>();
      // A repeated key keeps its last value, as nlohmann's parser does.
      for (auto [k, v] : simdjson::dom::object(e)) members[std::string(k)] = FromSimdjson(v);
      return o;
    }
    case simdjson::dom::element_type::ARRAY: {
      json a = json::array();
      auto& items = a.get_ref<json::array_t&>();
      for (simdjson::dom::element v : simdjson::dom::array(e)) items.push_back(FromSimdjson(v));
      return a;
    }
    case simdjson::dom::element_type::INT64: {
      int64_t v = int64_t(e);
      if (v >= 0) return uint64_t(v);  // as nlohmann types non-negative integers
      return v;
    }
    case simdjson::dom::element_type::UINT64: return uint64_t(e);
    case simdjson::dom::element_type::DOUBLE: return double(e);
    case simdjson::dom::element_type::STRING: return std::string(std::string_view(e));
    case simdjson::dom::element_type::BOOL: return bool(e);
    case simdjson::dom::element_type::NULL_VALUE: return nullptr;
  }
  return nullptr;
}

// The member `key` of a simdjson object; a repeated key is its last value (as FromSimdjson).
std::optional<simdjson::dom::element> FindMember(simdjson::dom::object o, std::string_view key) {
  std::optional<simdjson::dom::element> found;
  for (auto [k, v] : o) {
    if (k == key) found = v;
  }
  return found;
}

}  // namespace

static_assert(ParsedPayload::kPadding >= simdjson::SIMDJSON_PADDING);

struct ParsedPayload::Impl {
  simdjson::dom::parser parser;
  std::string_view text;  // the payload parsed
  simdjson::dom::element root;
  bool is_json = false;
  bool simd = false;  // root is valid; otherwise `fallback` holds the document
  json fallback;
};

ParsedPayload::ParsedPayload() : impl_(std::make_unique<Impl>()) {}
ParsedPayload::~ParsedPayload() = default;

bool ParsedPayload::Parse(std::string_view payload, size_t readable_after) {
  Impl& m = *impl_;
  m.fallback = json();
  m.text = payload;
  // With simdjson's padding readable past the end, the payload is parsed where it is instead of
  // being copied into the parser's padded buffer first.
  m.simd = m.parser.parse(payload.data(), payload.size(), /*realloc_if_needed=*/readable_after < kPadding)
               .get(m.root) == simdjson::SUCCESS;
  if (m.simd) {
    m.is_json = true;
  } else {
    m.fallback = json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
    m.is_json = !m.fallback.is_discarded();
  }
  return m.is_json;
}

bool ParsedPayload::is_json() const { return impl_->is_json; }

// ---------------------------------------------------------------------------------------------
// Values: a JSON value borrowed from the payload (an nlohmann one, or an element of simdjson's
// document), one the expression made, or Undefined. An element turns into nlohmann json only
// when j() is asked for (once; kept in own_).
class Value {
 public:
  Value() = default;
  static Value Ref(const json* j) { Value v; v.ref_ = j; v.defined_ = true; return v; }
  static Value Own(json j) { Value v; v.own_ = std::move(j); v.defined_ = true; return v; }
  static Value Elem(simdjson::dom::element e) {
    Value v;
    v.elem_ = e;
    v.is_elem_ = true;
    v.defined_ = true;
    return v;
  }
  bool defined() const { return defined_; }
  // Borrowed from an nlohmann document: its children can be borrowed too.
  bool borrowed() const { return ref_ != nullptr; }
  bool is_elem() const { return is_elem_; }
  simdjson::dom::element elem() const { return elem_; }
  const json& j() const {
    if (ref_) return *ref_;
    if (is_elem_ && !converted_) {
      own_ = FromSimdjson(elem_);
      converted_ = true;
    }
    return own_;
  }
  json Take() && {
    if (ref_) return *ref_;
    if (is_elem_ && !converted_) return FromSimdjson(elem_);
    return std::move(own_);
  }

 private:
  mutable json own_;
  const json* ref_ = nullptr;
  simdjson::dom::element elem_;
  bool is_elem_ = false;
  mutable bool converted_ = false;
  bool defined_ = false;
};

struct EvalContext {
  const MessageContext* msg;
  std::string error;  // set when evaluation cannot go on (payload not JSON)
};

class Expr {
 public:
  virtual ~Expr() = default;
  virtual Value Eval(EvalContext& ctx) const = 0;
};

namespace {

// Characters (code points) in UTF-8 text: every byte that does not continue a sequence.
size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Byte offset of character `k` (clamped to the end).
size_t Utf8Offset(std::string_view s, int64_t k) {
  size_t i = 0;
  for (; k > 0 && i < s.size(); --k) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
  }
  return i;
}

// --- conversions (iot-sql-data-types "Conversions") ------------------------------------------

bool IsNumber(const json& j) { return j.is_number(); }

// A number as Int when whole (SQL V2), else Decimal.
json MakeNumber(double d) {
  if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.2e18) {
    return json(static_cast<int64_t>(d));
  }
  return json(d);
}

std::optional<double> ToDecimal(const json& j) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    std::string_view t = Trim(s);
    if (t.empty()) return std::nullopt;
    std::string tmp(t);
    char* end = nullptr;
    double d = std::strtod(tmp.c_str(), &end);
    if (end != tmp.c_str() + tmp.size() || !std::isfinite(d)) return std::nullopt;
    return d;
  }
  return std::nullopt;
}

std::optional<bool> ToBool(const json& j) {
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    if (EqualsIgnoreCase(s, "true")) return true;
    if (EqualsIgnoreCase(s, "false")) return false;
  }
  return std::nullopt;
}

std::string NumberText(const json& j) {
  if (j.is_number_integer() || j.is_number_unsigned()) return j.dump();
  double d = j.get<double>();
  if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
  return j.dump();
}

// The string form used by concat(), cast(… AS String) and templates.
std::string ToText(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_number()) return NumberText(j);
  return j.dump();
}

bool IsIntLike(const json& j) { return j.is_number_integer() || j.is_number_unsigned(); }

// --- expression nodes -------------------------------------------------------------------------

class LiteralExpr final : public Expr {
 public:
  explicit LiteralExpr(json v) : v_(std::move(v)) {}
  Value Eval(EvalContext&) const override { return Value::Ref(&v_); }

 private:
  json v_;
};

// The payload as a value; Undefined when it is not JSON.
Value PayloadOf(const MessageContext& msg) {
  if (const ParsedPayload* p = msg.parsed) {
    const ParsedPayload::Impl& m = p->impl();
    if (m.simd) return Value::Elem(m.root);
    if (m.is_json) return Value::Ref(&m.fallback);
  } else if (msg.json) {
    return Value::Ref(msg.json);
  }
  return Value();
}

// The whole payload: `*` as a function argument, or the root of an attribute path.
class PayloadExpr final : public Expr {
 public:
  Value Eval(EvalContext& ctx) const override {
    Value v = PayloadOf(*ctx.msg);
    if (!v.defined() && ctx.error.empty()) ctx.error = "the payload is not a JSON document";
    return v;
  }
};

// base.name — Undefined when base is not an object or lacks the key.
class MemberExpr final : public Expr {
 public:
  MemberExpr(std::shared_ptr<Expr> base, std::string name)
      : base_(std::move(base)), name_(std::move(name)) {}
  Value Eval(EvalContext& ctx) const override {
    Value b = base_->Eval(ctx);
    if (b.is_elem()) {
      simdjson::dom::object o;
      if (b.elem().get(o) != simdjson::SUCCESS) return Value();
      auto e = FindMember(o, name_);
      return e ? Value::Elem(*e) : Value();
    }
    if (!b.defined() || !b.j().is_object()) return Value();
    auto it = b.j().find(name_);
    if (it == b.j().end()) return Value();
    return Borrow(std::move(b), *it);
  }
  const std::string& name() const { return name_; }

  // A child of a borrowed value can be borrowed; a child of an owned one must be copied.
  static Value Borrow(Value&& parent, const json& child) {
    if (parent.borrowed()) return Value::Ref(&child);
    return Value::Own(child);
  }

 private:
  std::shared_ptr<Expr> base_;
  std::string name_;
};

class IndexExpr final : public Expr {
 public:
  IndexExpr(std::shared_ptr<Expr> base, std::shared_ptr<Expr> index)
      : base_(std::move(base)), index_(std::move(index)) {}
  Value Eval(EvalContext& ctx) const override {
    Value b = base_->Eval(ctx);
    Value i = index_->Eval(ctx);
    if (!b.defined() || !i.defined()) return Value();
    if (b.is_elem()) {
      simdjson::dom::array a;
      simdjson::dom::object o;
      if (b.elem().get(a) == simdjson::SUCCESS && IsIntLike(i.j())) {
        int64_t k = i.j().get<int64_t>();
        if (k < 0) return Value();
        auto e = a.at(static_cast<size_t>(k));
        if (e.error()) return Value();
        return Value::Elem(e.value_unsafe());
      }
      if (b.elem().get(o) == simdjson::SUCCESS && i.j().is_string()) {
        auto e = FindMember(o, i.j().get_ref<const std::string&>());
        return e ? Value::Elem(*e) : Value();
      }
      return Value();
    }
    const json& arr = b.j();
    if (arr.is_array() && IsIntLike(i.j())) {
      int64_t k = i.j().get<int64_t>();
      if (k < 0 || static_cast<size_t>(k) >= arr.size()) return Value();
      return MemberExpr::Borrow(std::move(b), arr[static_cast<size_t>(k)]);
    }
    if (arr.is_object() && i.j().is_string()) {
      auto it = arr.find(i.j().get<std::string>());
      if (it == arr.end()) return Value();
      return MemberExpr::Borrow(std::move(b), *it);
    }
    return Value();
  }

 private:
  std::shared_ptr<Expr> base_, index_;
};

class ArrayExpr final : public Expr {
 public:
  explicit ArrayExpr(std::vector<std::shared_ptr<Expr>> items) : items_(std::move(items)) {}
  Value Eval(EvalContext& ctx) const override {
    json out = json::array();
    for (const auto& e : items_) {
      Value v = e->Eval(ctx);
      if (v.defined()) out.push_back(std::move(v).Take());
    }
    return Value::Own(std::move(out));
  }

 private:
  std::vector<std::shared_ptr<Expr>> items_;
};

class ObjectExpr final : public Expr {
 public:
  explicit ObjectExpr(std::vector<std::pair<std::string, std::shared_ptr<Expr>>> members)
      : members_(std::move(members)) {}
  Value Eval(EvalContext& ctx) const override {
    json out = json::object();
    for (const auto& [k, e] : members_) {
      Value v = e->Eval(ctx);
      if (v.defined()) out[k] = std::move(v).Take();
    }
    return Value::Own(std::move(out));
  }

 private:
  std::vector<std::pair<std::string, std::shared_ptr<Expr>>> members_;
};

enum class Op { kAdd, kSub, kMul, kDiv, kMod, kEq, kNe, kLt, kLe, kGt, kGe, kAnd, kOr };

// Arithmetic (iot-sql-operators "+", "-", "*", "/", "%"): Int op Int is Int, otherwise
// Decimal; strings that read as numbers are converted; anything else is Undefined.
Value Arithmetic(Op op, const json& a, const json& b) {
  if (IsIntLike(a) && IsIntLike(b)) {
    int64_t x = a.get<int64_t>(), y = b.get<int64_t>();
    switch (op) {
      case Op::kAdd: return Value::Own(json(x + y));
      case Op::kSub: return Value::Own(json(x - y));
      case Op::kMul: return Value::Own(json(x * y));
      case Op::kDiv:
        if (y == 0) return Value();
        return Value::Own(json(x / y));
      case Op::kMod:
        if (y == 0) return Value();
        return Value::Own(json(x % y));
      default: return Value();
    }
  }
  auto x = ToDecimal(a), y = ToDecimal(b);
  if (!x || !y) return Value();
  double r = 0;
  switch (op) {
    case Op::kAdd: r = *x + *y; break;
    case Op::kSub: r = *x - *y; break;
    case Op::kMul: r = *x * *y; break;
    case Op::kDiv:
      if (*y == 0) return Value();
      r = *x / *y;
      break;
    case Op::kMod:
      if (*y == 0) return Value();
      r = std::fmod(*x, *y);
      break;
    default: return Value();
  }
  if (!std::isfinite(r)) return Value();
  return Value::Own(MakeNumber(r));
}

// Equality (iot-sql-operators "="): numbers compare by value, other types structurally; values
// of different types are not equal.
bool JsonEquals(const json& a, const json& b) {
  if (IsNumber(a) && IsNumber(b)) return a.get<double>() == b.get<double>();
  return a == b;
}

// Ordering: numbers (or strings that read as numbers) numerically, two strings
// lexicographically; Undefined otherwise.
std::optional<int> Compare(const json& a, const json& b) {
  if (a.is_string() && b.is_string()) {
    auto x = ToDecimal(a), y = ToDecimal(b);
    if (x && y) return *x < *y ? -1 : (*x > *y ? 1 : 0);
    int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  auto x = ToDecimal(a), y = ToDecimal(b);
  if (!x || !y) return std::nullopt;
  if (a.is_boolean() || b.is_boolean()) return std::nullopt;
  return *x < *y ? -1 : (*x > *y ? 1 : 0);
}

class BinaryExpr final : public Expr {
 public:
  BinaryExpr(Op op, std::shared_ptr<Expr> l, std::shared_ptr<Expr> r)
      : op_(op), l_(std::move(l)), r_(std::move(r)) {}
  Value Eval(EvalContext& ctx) const override {
    Value a = l_->Eval(ctx);
    if (op_ == Op::kAnd || op_ == Op::kOr) {
      // Short-circuit when the left side decides, as a boolean.
      std::optional<bool> x = a.defined() ? ToBool(a.j()) : std::nullopt;
      if (x && op_ == Op::kAnd && !*x) return Value::Own(json(false));
      if (x && op_ == Op::kOr && *x) return Value::Own(json(true));
      Value b = r_->Eval(ctx);
      std::optional<bool> y = b.defined() ? ToBool(b.j()) : std::nullopt;
      if (!x || !y) return Value();
      return Value::Own(json(op_ == Op::kAnd ? (*x && *y) : (*x || *y)));
    }
    Value b = r_->Eval(ctx);
    if (!a.defined() || !b.defined()) return Value();
    switch (op_) {
      case Op::kAdd: case Op::kSub: case Op::kMul: case Op::kDiv: case Op::kMod:
        return Arithmetic(op_, a.j(), b.j());
      case Op::kEq: return Value::Own(json(JsonEquals(a.j(), b.j())));
      case Op::kNe: return Value::Own(json(!JsonEquals(a.j(), b.j())));
      default: break;
    }
    auto c = Compare(a.j(), b.j());
    if (!c) return Value();
    switch (op_) {
      case Op::kLt: return Value::Own(json(*c < 0));
      case Op::kLe: return Value::Own(json(*c <= 0));
      case Op::kGt: return Value::Own(json(*c > 0));
      case Op::kGe: return Value::Own(json(*c >= 0));
      default: return Value();
    }
  }

 private:
  Op op_;
  std::shared_ptr<Expr> l_, r_;
};

class NotExpr final : public Expr {
 public:
  explicit NotExpr(std::shared_ptr<Expr> e) : e_(std::move(e)) {}
  Value Eval(EvalContext& ctx) const override {
    Value v = e_->Eval(ctx);
    if (!v.defined()) return Value();
    auto b = ToBool(v.j());
    if (!b) return Value();
    return Value::Own(json(!*b));
  }

 private:
  std::shared_ptr<Expr> e_;
};

class NegExpr final : public Expr {
 public:
  explicit NegExpr(std::shared_ptr<Expr> e) : e_(std::move(e)) {}
  Value Eval(EvalContext& ctx) const override {
    Value v = e_->Eval(ctx);
    if (!v.defined()) return Value();
    if (IsIntLike(v.j())) return Value::Own(json(-v.j().get<int64_t>()));
    auto d = ToDecimal(v.j());
    if (!d) return Value();
    return Value::Own(MakeNumber(-*d));
  }

 private:
  std::shared_ptr<Expr> e_;
};

// x IN array (iot-sql-operators "IN").
class InExpr final : public Expr {
 public:
  InExpr(std::shared_ptr<Expr> l, std::shared_ptr<Expr> r) : l_(std::move(l)), r_(std::move(r)) {}
  Value Eval(EvalContext& ctx) const override {
    Value a = l_->Eval(ctx), b = r_->Eval(ctx);
    if (!a.defined() || !b.defined() || !b.j().is_array()) return Value();
    for (const auto& e : b.j()) {
      if (JsonEquals(a.j(), e)) return Value::Own(json(true));
    }
    return Value::Own(json(false));
  }

 private:
  std::shared_ptr<Expr> l_, r_;
};

// CASE [v] WHEN t THEN r … [ELSE e] END (iot-sql-case). The simple form compares v = t; the
// searched form (no v) takes the first WHEN that is true. No match and no ELSE is Undefined.
class CaseExpr final : public Expr {
 public:
  CaseExpr(std::shared_ptr<Expr> subject,
           std::vector<std::pair<std::shared_ptr<Expr>, std::shared_ptr<Expr>>> whens,
           std::shared_ptr<Expr> otherwise)
      : subject_(std::move(subject)), whens_(std::move(whens)), else_(std::move(otherwise)) {}
  Value Eval(EvalContext& ctx) const override {
    Value s;
    if (subject_) s = subject_->Eval(ctx);
    for (const auto& [when, then] : whens_) {
      Value w = when->Eval(ctx);
      if (!w.defined()) continue;
      bool hit = false;
      if (subject_) {
        hit = s.defined() && JsonEquals(s.j(), w.j());
      } else {
        auto b = ToBool(w.j());
        hit = b && *b;
      }
      if (hit) return then->Eval(ctx);
    }
    if (else_) return else_->Eval(ctx);
    return Value();
  }

 private:
  std::shared_ptr<Expr> subject_;
  std::vector<std::pair<std::shared_ptr<Expr>, std::shared_ptr<Expr>>> whens_;
  std::shared_ptr<Expr> else_;
};

// --- functions (iot-sql-functions) ------------------------------------------------------------

using Args = absl::InlinedVector<Value, 4>;
using FnImpl = std::function<Value(EvalContext&, Args&)>;

struct FnSpec {
  const char* name;
  int min_args, max_args;
  FnImpl impl;
};

Value Round(const Args& a, double (*fn)(double)) {
  if (!a[0].defined()) return Value();
  if (IsIntLike(a[0].j())) return Value::Own(a[0].j());
  auto d = ToDecimal(a[0].j());
  if (!d) return Value();
  return Value::Own(MakeNumber(fn(*d)));
}

// Joda-Time style patterns used by parse_time(): the common letters, quoted literals.
std::optional<std::string> FormatTime(const std::string& pattern, int64_t ms, int64_t offset_s) {
  int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  int millis = static_cast<int>(ms - secs * 1000);
  time_t t = static_cast<time_t>(secs + offset_s);
  std::tm tm{};
  if (!gmtime_r(&t, &tm)) return std::nullopt;
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  std::string out;
  auto pad = [&](int64_t v, size_t width) {
    std::string s = std::to_string(v);
    if (s.size() < width) s.insert(0, width - s.size(), '0');
    out += s;
  };
  for (size_t i = 0; i < pattern.size();) {
    char c = pattern[i];
    if (c == '\'') {
      size_t j = pattern.find('\'', i + 1);
      if (j == std::string::npos) return std::nullopt;
      if (j == i + 1) out += '\'';
      else out += pattern.substr(i + 1, j - i - 1);
      i = j + 1;
      continue;
    }
    if (!std::isalpha(static_cast<unsigned char>(c))) {
      out += c;
      ++i;
      continue;
    }
    size_t n = 1;
    while (i + n < pattern.size() && pattern[i + n] == c) ++n;
    switch (c) {
      case 'y': case 'Y': case 'u':
        if (n == 2) pad((tm.tm_year + 1900) % 100, 2);
        else pad(tm.tm_year + 1900, n);
        break;
      case 'M':
        if (n >= 3) out += kMonths[tm.tm_mon];
        else pad(tm.tm_mon + 1, n);
        break;
      case 'd': pad(tm.tm_mday, n); break;
      case 'D': pad(tm.tm_yday + 1, n); break;
      case 'H': pad(tm.tm_hour, n); break;
      case 'h': pad(tm.tm_hour % 12 == 0 ? 12 : tm.tm_hour % 12, n); break;
      case 'm': pad(tm.tm_min, n); break;
      case 's': pad(tm.tm_sec, n); break;
      case 'S': {
        std::string f = std::to_string(millis);
        f.insert(0, 3 - f.size(), '0');
        if (n <= 3) out += f.substr(0, n);
        else out += f + std::string(n - 3, '0');
        break;
      }
      case 'a': out += tm.tm_hour < 12 ? "AM" : "PM"; break;
      case 'E': out += kDays[tm.tm_wday]; break;
      case 'Z': case 'X': {
        if (offset_s == 0 && c == 'X') { out += 'Z'; break; }
        int64_t o = offset_s < 0 ? -offset_s : offset_s;
        out += offset_s < 0 ? '-' : '+';
        pad(o / 3600, 2);
        if (n >= 2) out += ':';
        pad((o % 3600) / 60, 2);
        break;
      }
      default: return std::nullopt;  // a letter we do not know: Undefined, not a wrong answer
    }
    i += n;
  }
  return out;
}

// Time zone argument: "UTC"/"Z" or a fixed offset "+05:30". Named zones other than UTC are
// not supported (Undefined).
std::optional<int64_t> ZoneOffset(const std::string& tz) {
  if (tz.empty() || EqualsIgnoreCase(tz, "UTC") || tz == "Z" || EqualsIgnoreCase(tz, "GMT")) {
    return 0;
  }
  if ((tz[0] == '+' || tz[0] == '-') && tz.size() >= 3) {
    auto h = ParseInt64(tz.substr(1, 2));
    std::optional<int64_t> m = 0;
    if (tz.size() == 6 && tz[3] == ':') m = ParseInt64(tz.substr(4, 2));
    else if (tz.size() == 5) m = ParseInt64(tz.substr(3, 2));
    else if (tz.size() != 3) return std::nullopt;
    if (!h || !m) return std::nullopt;
    int64_t o = *h * 3600 + *m * 60;
    return tz[0] == '-' ? -o : o;
  }
  return std::nullopt;
}

const std::vector<FnSpec>& Functions() {
  static const std::vector<FnSpec> kFns = {
      {"topic", 0, 1,
       [](EvalContext& ctx, Args& a) -> Value {
         std::string_view t = ctx.msg->topic;
         if (a.empty()) return Value::Own(json(std::string(t)));
         if (!a[0].defined() || !IsIntLike(a[0].j())) return Value();
         int64_t n = a[0].j().get<int64_t>();
         if (n < 1) return Value();
         size_t start = 0;
         for (int64_t level = 1;; ++level) {
           size_t slash = t.find('/', start);
           if (level == n) {
             return Value::Own(json(std::string(t.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start))));
           }
           if (slash == std::string_view::npos) return Value();
           start = slash + 1;
         }
       }},
      {"clientid", 0, 0,
       [](EvalContext& ctx, Args&) -> Value {
         if (ctx.msg->client_id.empty()) return Value();
         return Value::Own(json(std::string(ctx.msg->client_id)));
       }},
      {"principal", 0, 0,
       [](EvalContext& ctx, Args&) -> Value {
         if (ctx.msg->principal.empty()) return Value();
         return Value::Own(json(std::string(ctx.msg->principal)));
       }},
      {"timestamp", 0, 0,
       [](EvalContext& ctx, Args&) -> Value { return Value::Own(json(ctx.msg->timestamp_ms)); }},
      {"newuuid", 0, 0, [](EvalContext&, Args&) -> Value { return Value::Own(json(NewUuid())); }},
      {"abs", 1, 1,
       [](EvalContext&, Args& a) -> Value {
         if (!a[0].defined()) return Value();
         if (IsIntLike(a[0].j())) {
           int64_t v = a[0].j().get<int64_t>();
           return Value::Own(json(v < 0 ? -v : v));
         }
         auto d = ToDecimal(a[0].j());
         if (!d) return Value();
         return Value::Own(MakeNumber(std::fabs(*d)));
       }},
      {"round", 1, 1, [](EvalContext&, Args& a) { return Round(a, [](double d) { return std::round(d); }); }},
      {"floor", 1, 1, [](EvalContext&, Args& a) { return Round(a, [](double d) { return std::floor(d); }); }},
      {"ceil", 1, 1, [](EvalContext&, Args& a) { return Round(a, [](double d) { return std::ceil(d); }); }},
      {"sqrt", 1, 1,
       [](EvalContext&, Args& a) -> Value {
         if (!a[0].defined()) return Value();
         auto d = ToDecimal(a[0].j());
         if (!d || *d < 0) return Value();
         return Value::Own(MakeNumber(std::sqrt(*d)));
       }},
      {"mod", 2, 2,
       [](EvalContext&, Args& a) -> Value {
         if (!a[0].defined() || !a[1].defined()) return Value();
         return Arithmetic(Op::kMod, a[0].j(), a[1].j());
       }},
      {"concat", 1, 64,
       [](EvalContext&, Args& a) -> Value {
         // Arrays concatenate into an array; otherwise the string forms concatenate.
         bool any_array = false;
         for (const auto& v : a) {
           if (!v.defined()) return Value();
           any_array = any_array || v.j().is_array();
         }
         if (any_array) {
           json out = json::array();
           for (const auto& v : a) {
             if (v.j().is_array()) {
               for (const auto& e : v.j()) out.push_back(e);
             } else {
               out.push_back(v.j());
             }
           }
           return Value::Own(std::move(out));
         }
         std::string s;
         for (const auto& v : a) s += ToText(v.j());
         return Value::Own(json(std::move(s)));
       }},
      {"lower", 1, 1,
       [](EvalContext&, Args& a) -> Value {
         if (!a[0].defined() || !a[0].j().is_string()) return Value();
         return Value::Own(json(ToLower(a[0].j().get<std::string>())));
       }},
      {"upper", 1, 1,
       [](EvalContext&, Args& a) -> Value {
         if (!a[0].defined() || !a[0].j().is_string()) return Value();
         std::string s = a[0].j().get<std::string>();
         for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
         return Value::Own(json(std::move(s)));
       }},
      {"length", 1, 1,
       [](EvalContext&, Args& a) -> Value {
         if (!a[0].defined()) return Value();
         if (a[0].j().is_string()) return Value::Own(json(Utf8Length(a[0].j().get_ref<const std::string&>())));
         if (a[0].j().is_array()) return Value::Own(json(a[0].j().size()));
         return Value();
       }},
      {"trim", 1, 1,
       [](EvalContext&, Args& a) -> Value {
         if (!a[0].defined() || !a[0].j().is_string()) return Value();
         return Value::Own(json(std::string(Trim(a[0].j().get_ref<const std::string&>()))));
       }},
      {"substring", 2, 3,
       // substring(str, start[, end]): 0-based, end exclusive, both clamped to the string.
       [](EvalContext&, Args& a) -> Value {
         for (const auto& v : a) if (!v.defined()) return Value();
         if (!a[0].j().is_string()) return Value();
         // Positions count characters (code points), never bytes: a cut inside a multi-byte
         // character would make the output invalid UTF-8.
         const std::string& s = a[0].j().get_ref<const std::string&>();
         auto start = ToDecimal(a[1].j());
         if (!start) return Value();
         int64_t n = static_cast<int64_t>(Utf8Length(s));
         int64_t b = std::clamp<int64_t>(static_cast<int64_t>(*start), 0, n);
         int64_t e = n;
         if (a.size() == 3) {
           auto end = ToDecimal(a[2].j());
           if (!end) return Value();
           e = std::clamp<int64_t>(static_cast<int64_t>(*end), 0, n);
         }
         if (e < b) return Value::Own(json(""));
         size_t from = Utf8Offset(s, b);
         return Value::Own(json(s.substr(from, Utf8Offset(s, e) - from)));
       }},
      {"get", 2, 2,
       [](EvalContext&, Args& a) -> Value {
         if (!a[0].defined() || !a[1].defined()) return Value();
         const json& c = a[0].j();
         if (c.is_array() && IsIntLike(a[1].j())) {
           int64_t k = a[1].j().get<int64_t>();
           if (k < 0 || static_cast<size_t>(k) >= c.size()) return Value();
           return Value::Own(c[static_cast<size_t>(k)]);
         }
         if (c.is_object() && a[1].j().is_string()) {
           auto it = c.find(a[1].j().get<std::string>());
           if (it == c.end()) return Value();
           return Value::Own(*it);
         }
         return Value();
       }},
      {"parse_time", 2, 3,
       [](EvalContext&, Args& a) -> Value {
         for (const auto& v : a) if (!v.defined()) return Value();
         if (!a[0].j().is_string()) return Value();
         auto ms = ToDecimal(a[1].j());
         if (!ms) return Value();
         int64_t offset = 0;
         if (a.size() == 3) {
           if (!a[2].j().is_string()) return Value();
           auto o = ZoneOffset(a[2].j().get<std::string>());
           if (!o) return Value();
           offset = *o;
         }
         auto s = FormatTime(a[0].j().get<std::string>(), static_cast<int64_t>(*ms), offset);
         if (!s) return Value();
         return Value::Own(json(*s));
       }},
      {"isundefined", 1, 1,
       [](EvalContext&, Args& a) -> Value { return Value::Own(json(!a[0].defined())); }},
      {"isnull", 1, 1,
       [](EvalContext&, Args& a) -> Value {
         if (!a[0].defined()) return Value();
         return Value::Own(json(a[0].j().is_null()));
       }},
  };
  return kFns;
}

class FuncExpr final : public Expr {
 public:
  FuncExpr(const FnSpec* fn, std::vector<std::shared_ptr<Expr>> args)
      : fn_(fn), args_(std::move(args)) {}
  Value Eval(EvalContext& ctx) const override {
    Args a;
    a.reserve(args_.size());
    for (const auto& e : args_) a.push_back(e->Eval(ctx));
    return fn_->impl(ctx, a);
  }

 private:
  const FnSpec* fn_;
  std::vector<std::shared_ptr<Expr>> args_;
};

// encode(value, 'base64'): `*` is the raw payload bytes, which need not be JSON
// (developerguide/binary-payloads).
class EncodeExpr final : public Expr {
 public:
  EncodeExpr(std::shared_ptr<Expr> arg, bool raw) : arg_(std::move(arg)), raw_(raw) {}
  Value Eval(EvalContext& ctx) const override {
    if (raw_) return Value::Own(json(Base64Encode(ctx.msg->payload)));
    Value v = arg_->Eval(ctx);
    if (!v.defined()) return Value();
    return Value::Own(json(Base64Encode(ToText(v.j()))));
  }

 private:
  std::shared_ptr<Expr> arg_;
  bool raw_;
};

enum class CastType { kInt, kDecimal, kBool, kString };

// cast(value AS type) (iot-sql-functions "cast").
class CastExpr final : public Expr {
 public:
  CastExpr(std::shared_ptr<Expr> arg, CastType type) : arg_(std::move(arg)), type_(type) {}
  Value Eval(EvalContext& ctx) const override {
    Value v = arg_->Eval(ctx);
    if (!v.defined()) return Value();
    const json& j = v.j();
    switch (type_) {
      case CastType::kString:
        if (j.is_null()) return Value();
        return Value::Own(json(ToText(j)));
      case CastType::kBool: {
        if (j.is_boolean()) return Value::Own(j);
        if (j.is_number()) return Value::Own(json(j.get<double>() != 0));
        auto b = ToBool(j);
        if (!b) return Value();
        return Value::Own(json(*b));
      }
      case CastType::kInt: {
        if (j.is_boolean()) return Value::Own(json(j.get<bool>() ? 1 : 0));
        auto d = ToDecimal(j);
        if (!d || std::fabs(*d) > 9.2e18) return Value();
        return Value::Own(json(static_cast<int64_t>(std::trunc(*d))));
      }
      case CastType::kDecimal: {
        if (j.is_boolean()) return Value::Own(json(j.get<bool>() ? 1.0 : 0.0));
        auto d = ToDecimal(j);
        if (!d) return Value();
        return Value::Own(MakeNumber(*d));
      }
    }
    return Value();
  }

 private:
  std::shared_ptr<Expr> arg_;
  CastType type_;
};

// --- lexer ------------------------------------------------------------------------------------

enum class Tok { kEnd, kIdent, kNumber, kString, kQuotedIdent, kSym };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // identifier / symbol / decoded string
  size_t pos = 0;    // byte offset in the SQL
};

}  // namespace

class Parser {
 public:
  explicit Parser(std::string_view sql) : sql_(sql) {}

  Status Tokenize() {
    size_t i = 0;
    while (i < sql_.size()) {
      char c = sql_[i];
      if (std::isspace(static_cast<unsigned char>(c))) { ++i; continue; }
      Token t;
      t.pos = i;
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == '$') {
        size_t j = i;
        while (j < sql_.size() && (std::isalnum(static_cast<unsigned char>(sql_[j])) || sql_[j] == '_' || sql_[j] == '$')) ++j;
        t.kind = Tok::kIdent;
        t.text = std::string(sql_.substr(i, j - i));
        i = j;
      } else if (std::isdigit(static_cast<unsigned char>(c)) ||
                 (c == '.' && i + 1 < sql_.size() && std::isdigit(static_cast<unsigned char>(sql_[i + 1])))) {
        size_t j = i;
        while (j < sql_.size() && std::isdigit(static_cast<unsigned char>(sql_[j]))) ++j;
        if (j < sql_.size() && sql_[j] == '.') {
          ++j;
          while (j < sql_.size() && std::isdigit(static_cast<unsigned char>(sql_[j]))) ++j;
        }
        if (j < sql_.size() && (sql_[j] == 'e' || sql_[j] == 'E')) {
          size_t k = j + 1;
          if (k < sql_.size() && (sql_[k] == '+' || sql_[k] == '-')) ++k;
          if (k < sql_.size() && std::isdigit(static_cast<unsigned char>(sql_[k]))) {
            j = k;
            while (j < sql_.size() && std::isdigit(static_cast<unsigned char>(sql_[j]))) ++j;
          }
        }
        t.kind = Tok::kNumber;
        t.text = std::string(sql_.substr(i, j - i));
        i = j;
      } else if (c == '\'' || c == '"' || c == '`') {
        // 'string literal' ('' escapes a quote); "attribute name" / `attribute name` for keys
        // with spaces or special characters (iot-sql-reference).
        size_t j = i + 1;
        std::string s;
        for (;;) {
          if (j >= sql_.size()) return SyntaxError(i, "unterminated quoted text");
          if (sql_[j] == c) {
            if (c == '\'' && j + 1 < sql_.size() && sql_[j + 1] == '\'') {
              s += '\'';
              j += 2;
              continue;
            }
            break;
          }
          s += sql_[j++];
        }
        t.kind = c == '\'' ? Tok::kString : Tok::kQuotedIdent;
        t.text = std::move(s);
        i = j + 1;
      } else {
        static const char* kTwo[] = {"<>", "!=", "<=", ">=", "||"};
        t.kind = Tok::kSym;
        bool two = false;
        for (const char* s : kTwo) {
          if (sql_.substr(i, 2) == s) {
            t.text = s;
            two = true;
            break;
          }
        }
        if (!two) {
          if (std::string_view("()[]{},.*+-/%=<>:").find(c) == std::string_view::npos) {
            return SyntaxError(i, std::string("unexpected character '") + c + "'");
          }
          t.text = std::string(1, c);
        }
        i += t.text.size();
      }
      toks_.push_back(std::move(t));
    }
    Token end;
    end.pos = sql_.size();
    toks_.push_back(end);
    return Status::OK();
  }

  Result<std::shared_ptr<const RuleQuery>> ParseQuery() {
    std::shared_ptr<RuleQuery> q(new RuleQuery());
    q->sql_ = std::string(sql_);
    RETURN_IF_ERROR(Tokenize());
    RETURN_IF_ERROR(ExpectKeyword("SELECT"));
    if (IsKeyword("VALUE")) {
      ++p_;
      q->select_value_ = true;
      ASSIGN_OR_RETURN(auto e, ParseExpr());
      q->items_.push_back({std::move(e), ""});
    } else {
      for (size_t n = 1;; ++n) {
        if (IsSym("*")) {
          ++p_;
          q->items_.push_back({nullptr, "*"});
        } else {
          size_t start = p_;
          ASSIGN_OR_RETURN(auto e, ParseExpr());
          std::string name;
          if (IsKeyword("AS")) {
            ++p_;
            if (Cur().kind != Tok::kIdent && Cur().kind != Tok::kQuotedIdent) {
              return SyntaxError(Cur().pos, "expected an alias after AS, found " + Describe(Cur()));
            }
            name = Cur().text;
            ++p_;
          } else {
            name = DefaultName(e.get(), start, n);
          }
          q->items_.push_back({std::move(e), std::move(name)});
        }
        if (!IsSym(",")) break;
        ++p_;
      }
    }
    RETURN_IF_ERROR(ExpectKeyword("FROM"));
    if (Cur().kind != Tok::kString) {
      return SyntaxError(Cur().pos, "expected a quoted topic filter after FROM, found " + Describe(Cur()));
    }
    Status tf = ValidateTopicFilter(Cur().text);
    if (!tf.ok()) return SyntaxError(Cur().pos, tf.message());
    q->topic_filter_ = Cur().text;
    ++p_;
    if (IsKeyword("WHERE")) {
      ++p_;
      ASSIGN_OR_RETURN(q->where_, ParseExpr());
    }
    if (Cur().kind != Tok::kEnd) {
      return SyntaxError(Cur().pos, "unexpected " + Describe(Cur()) + " after the query");
    }
    // `SELECT *, <expr> AS <name>, …`: one `*`, first, and names that differ (EvaluateText).
    q->splice_star_ = !q->select_value_ && !q->items_.empty() && !q->items_[0].expr;
    for (size_t i = 1; i < q->items_.size() && q->splice_star_; ++i) {
      q->splice_star_ = q->items_[i].expr != nullptr;
      for (size_t j = 1; j < i && q->splice_star_; ++j) q->splice_star_ = q->items_[j].name != q->items_[i].name;
    }
    return std::shared_ptr<const RuleQuery>(std::move(q));
  }

  Result<std::shared_ptr<Expr>> ParseStandalone() {
    RETURN_IF_ERROR(Tokenize());
    ASSIGN_OR_RETURN(auto e, ParseExpr());
    if (Cur().kind != Tok::kEnd) return SyntaxError(Cur().pos, "unexpected " + Describe(Cur()));
    return e;
  }

 private:
  const Token& Cur() const { return toks_[p_]; }
  bool IsKeyword(const char* kw) const {
    return Cur().kind == Tok::kIdent && EqualsIgnoreCase(Cur().text, kw);
  }
  bool IsSym(const char* s) const { return Cur().kind == Tok::kSym && Cur().text == s; }

  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case Tok::kEnd: return "the end of the statement";
      case Tok::kString: return "'" + t.text + "'";
      default: return "'" + t.text + "'";
    }
  }

  Status SyntaxError(size_t pos, const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < sql_.size(); ++i) {
      if (sql_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return Error(ErrorCode::kIotInvalidRequest,
                 "SQL syntax error at line " + std::to_string(line) + ", column " +
                     std::to_string(col) + ": " + what);
  }

  Status ExpectKeyword(const char* kw) {
    if (!IsKeyword(kw)) {
      return SyntaxError(Cur().pos, std::string("expected ") + kw + ", found " + Describe(Cur()));
    }
    ++p_;
    return Status::OK();
  }
  Status ExpectSym(const char* s) {
    if (!IsSym(s)) {
      return SyntaxError(Cur().pos, std::string("expected '") + s + "', found " + Describe(Cur()));
    }
    ++p_;
    return Status::OK();
  }

  // The output key of an un-aliased projection: an attribute's last name, a function's name,
  // otherwise "_<position>".
  std::string DefaultName(const Expr* e, size_t start, size_t n) const {
    if (auto* m = dynamic_cast<const MemberExpr*>(e)) return m->name();
    if (toks_[start].kind == Tok::kIdent && toks_[start + 1].kind == Tok::kSym &&
        toks_[start + 1].text == "(" && dynamic_cast<const FuncExpr*>(e)) {
      return ToLower(toks_[start].text);
    }
    return "_" + std::to_string(n);
  }

  bool AtReserved() const {
    static const char* kReserved[] = {"FROM", "WHERE", "AS", "AND", "OR", "NOT", "CASE", "WHEN",
                                      "THEN", "ELSE", "END", "IN", "SELECT"};
    if (Cur().kind != Tok::kIdent) return false;
    for (const char* r : kReserved) {
      if (EqualsIgnoreCase(Cur().text, r)) return true;
    }
    return false;
  }

  Result<std::shared_ptr<Expr>> ParseExpr() {
    if (++depth_ > 200) return SyntaxError(Cur().pos, "expression nested too deeply");
    auto r = ParseOr();
    --depth_;
    return r;
  }

  Result<std::shared_ptr<Expr>> ParseOr() {
    ASSIGN_OR_RETURN(auto l, ParseAnd());
    while (IsKeyword("OR")) {
      ++p_;
      ASSIGN_OR_RETURN(auto r, ParseAnd());
      l = std::make_shared<BinaryExpr>(Op::kOr, std::move(l), std::move(r));
    }
    return l;
  }
  Result<std::shared_ptr<Expr>> ParseAnd() {
    ASSIGN_OR_RETURN(auto l, ParseNot());
    while (IsKeyword("AND")) {
      ++p_;
      ASSIGN_OR_RETURN(auto r, ParseNot());
      l = std::make_shared<BinaryExpr>(Op::kAnd, std::move(l), std::move(r));
    }
    return l;
  }
  Result<std::shared_ptr<Expr>> ParseNot() {
    if (IsKeyword("NOT")) {
      ++p_;
      if (++depth_ > 200) return SyntaxError(Cur().pos, "expression nested too deeply");
      ASSIGN_OR_RETURN(auto e, ParseNot());
      --depth_;
      return std::shared_ptr<Expr>(std::make_shared<NotExpr>(std::move(e)));
    }
    return ParseComparison();
  }
  Result<std::shared_ptr<Expr>> ParseComparison() {
    ASSIGN_OR_RETURN(auto l, ParseAdditive());
    for (;;) {
      if (IsKeyword("IN")) {
        ++p_;
        ASSIGN_OR_RETURN(auto r, ParseAdditive());
        l = std::make_shared<InExpr>(std::move(l), std::move(r));
        continue;
      }
      if (Cur().kind != Tok::kSym) break;
      const std::string& s = Cur().text;
      Op op;
      if (s == "=") op = Op::kEq;
      else if (s == "<>" || s == "!=") op = Op::kNe;
      else if (s == "<") op = Op::kLt;
      else if (s == "<=") op = Op::kLe;
      else if (s == ">") op = Op::kGt;
      else if (s == ">=") op = Op::kGe;
      else break;
      ++p_;
      ASSIGN_OR_RETURN(auto r, ParseAdditive());
      l = std::make_shared<BinaryExpr>(op, std::move(l), std::move(r));
    }
    return l;
  }
  Result<std::shared_ptr<Expr>> ParseAdditive() {
    ASSIGN_OR_RETURN(auto l, ParseMultiplicative());
    while (IsSym("+") || IsSym("-") || IsSym("||")) {
      bool concat = IsSym("||");
      Op op = IsSym("+") ? Op::kAdd : Op::kSub;
      ++p_;
      ASSIGN_OR_RETURN(auto r, ParseMultiplicative());
      if (concat) {
        static const FnSpec* kConcat = FindFn("concat");
        l = std::make_shared<FuncExpr>(kConcat, std::vector<std::shared_ptr<Expr>>{l, r});
      } else {
        l = std::make_shared<BinaryExpr>(op, std::move(l), std::move(r));
      }
    }
    return l;
  }
  Result<std::shared_ptr<Expr>> ParseMultiplicative() {
    ASSIGN_OR_RETURN(auto l, ParseUnary());
    while (IsSym("*") || IsSym("/") || IsSym("%")) {
      Op op = IsSym("*") ? Op::kMul : IsSym("/") ? Op::kDiv : Op::kMod;
      ++p_;
      ASSIGN_OR_RETURN(auto r, ParseUnary());
      l = std::make_shared<BinaryExpr>(op, std::move(l), std::move(r));
    }
    return l;
  }
  Result<std::shared_ptr<Expr>> ParseUnary() {
    if (IsSym("-")) {
      ++p_;
      if (++depth_ > 200) return SyntaxError(Cur().pos, "expression nested too deeply");
      ASSIGN_OR_RETURN(auto e, ParseUnary());
      --depth_;
      return std::shared_ptr<Expr>(std::make_shared<NegExpr>(std::move(e)));
    }
    if (IsSym("+")) {
      ++p_;
      return ParseUnary();
    }
    return ParsePostfix();
  }
  Result<std::shared_ptr<Expr>> ParsePostfix() {
    ASSIGN_OR_RETURN(auto e, ParsePrimary());
    for (;;) {
      if (IsSym(".")) {
        ++p_;
        if (Cur().kind != Tok::kIdent && Cur().kind != Tok::kQuotedIdent) {
          return SyntaxError(Cur().pos, "expected an attribute name after '.', found " + Describe(Cur()));
        }
        e = std::make_shared<MemberExpr>(std::move(e), Cur().text);
        ++p_;
      } else if (IsSym("[")) {
        ++p_;
        ASSIGN_OR_RETURN(auto idx, ParseExpr());
        RETURN_IF_ERROR(ExpectSym("]"));
        e = std::make_shared<IndexExpr>(std::move(e), std::move(idx));
      } else {
        break;
      }
    }
    return e;
  }

  static const FnSpec* FindFn(std::string_view name) {
    for (const FnSpec& f : Functions()) {
      if (EqualsIgnoreCase(f.name, name)) return &f;
    }
    return nullptr;
  }

  Result<std::shared_ptr<Expr>> ParseFunction(const Token& name) {
    ++p_;  // '('
    std::string lname = ToLower(name.text);
    if (lname == "cast") {
      ASSIGN_OR_RETURN(auto arg, ParseExpr());
      if (!IsKeyword("AS")) return SyntaxError(Cur().pos, "expected AS in cast(), found " + Describe(Cur()));
      ++p_;
      if (Cur().kind != Tok::kIdent) return SyntaxError(Cur().pos, "expected a type name in cast()");
      std::string t = ToLower(Cur().text);
      CastType type;
      if (t == "int" || t == "integer") type = CastType::kInt;
      else if (t == "decimal") type = CastType::kDecimal;
      else if (t == "bool" || t == "boolean") type = CastType::kBool;
      else if (t == "string" || t == "varchar") type = CastType::kString;
      else return SyntaxError(Cur().pos, "unknown type '" + Cur().text + "' in cast()");
      ++p_;
      RETURN_IF_ERROR(ExpectSym(")"));
      return std::shared_ptr<Expr>(std::make_shared<CastExpr>(std::move(arg), type));
    }
    std::vector<std::shared_ptr<Expr>> args;
    std::vector<bool> star;
    if (!IsSym(")")) {
      for (;;) {
        if (IsSym("*") && (toks_[p_ + 1].kind == Tok::kSym &&
                           (toks_[p_ + 1].text == "," || toks_[p_ + 1].text == ")"))) {
          ++p_;
          args.push_back(std::make_shared<PayloadExpr>());
          star.push_back(true);
        } else {
          ASSIGN_OR_RETURN(auto a, ParseExpr());
          args.push_back(std::move(a));
          star.push_back(false);
        }
        if (!IsSym(",")) break;
        ++p_;
      }
    }
    RETURN_IF_ERROR(ExpectSym(")"));
    if (lname == "encode") {
      if (args.size() != 2) return SyntaxError(name.pos, "encode() takes 2 arguments");
      auto* lit = dynamic_cast<LiteralExpr*>(args[1].get());
      EvalContext dummy{nullptr, {}};
      if (!lit || !EqualsIgnoreCase(lit->Eval(dummy).j().is_string() ? lit->Eval(dummy).j().get<std::string>() : "", "base64")) {
        return SyntaxError(name.pos, "encode() supports only the 'base64' encoding");
      }
      return std::shared_ptr<Expr>(std::make_shared<EncodeExpr>(args[0], star[0]));
    }
    const FnSpec* fn = FindFn(lname);
    if (!fn) return SyntaxError(name.pos, "unknown function '" + name.text + "'");
    int n = static_cast<int>(args.size());
    if (n < fn->min_args || n > fn->max_args) {
      return SyntaxError(name.pos, "wrong number of arguments to " + lname + "(): " + std::to_string(n));
    }
    return std::shared_ptr<Expr>(std::make_shared<FuncExpr>(fn, std::move(args)));
  }

  Result<std::shared_ptr<Expr>> ParsePrimary() {
    const Token t = Cur();
    switch (t.kind) {
      case Tok::kEnd:
        return SyntaxError(t.pos, "expected an expression, found the end of the statement");
      case Tok::kNumber: {
        ++p_;
        if (t.text.find_first_of(".eE") == std::string::npos) {
          if (auto v = ParseInt64(t.text)) return std::shared_ptr<Expr>(std::make_shared<LiteralExpr>(json(*v)));
        }
        return std::shared_ptr<Expr>(std::make_shared<LiteralExpr>(MakeNumber(std::strtod(t.text.c_str(), nullptr))));
      }
      case Tok::kString:
        ++p_;
        return std::shared_ptr<Expr>(std::make_shared<LiteralExpr>(json(t.text)));
      case Tok::kQuotedIdent:
        ++p_;
        return std::shared_ptr<Expr>(std::make_shared<MemberExpr>(std::make_shared<PayloadExpr>(), t.text));
      case Tok::kIdent: {
        if (EqualsIgnoreCase(t.text, "true") || EqualsIgnoreCase(t.text, "false")) {
          ++p_;
          return std::shared_ptr<Expr>(std::make_shared<LiteralExpr>(json(EqualsIgnoreCase(t.text, "true"))));
        }
        if (EqualsIgnoreCase(t.text, "null")) {
          ++p_;
          return std::shared_ptr<Expr>(std::make_shared<LiteralExpr>(json(nullptr)));
        }
        if (EqualsIgnoreCase(t.text, "CASE")) return ParseCase();
        if (toks_[p_ + 1].kind == Tok::kSym && toks_[p_ + 1].text == "(") {
          ++p_;
          return ParseFunction(t);
        }
        if (AtReserved()) {
          return SyntaxError(t.pos, "expected an expression, found keyword " + Describe(t));
        }
        ++p_;
        return std::shared_ptr<Expr>(std::make_shared<MemberExpr>(std::make_shared<PayloadExpr>(), t.text));
      }
      case Tok::kSym:
        break;
    }
    if (t.text == "(") {
      ++p_;
      ASSIGN_OR_RETURN(auto e, ParseExpr());
      RETURN_IF_ERROR(ExpectSym(")"));
      return e;
    }
    if (t.text == "*") {
      // `*` as an operand: the whole payload.
      ++p_;
      return std::shared_ptr<Expr>(std::make_shared<PayloadExpr>());
    }
    if (t.text == "[") {
      ++p_;
      std::vector<std::shared_ptr<Expr>> items;
      if (!IsSym("]")) {
        for (;;) {
          ASSIGN_OR_RETURN(auto e, ParseExpr());
          items.push_back(std::move(e));
          if (!IsSym(",")) break;
          ++p_;
        }
      }
      RETURN_IF_ERROR(ExpectSym("]"));
      return std::shared_ptr<Expr>(std::make_shared<ArrayExpr>(std::move(items)));
    }
    if (t.text == "{") {
      ++p_;
      std::vector<std::pair<std::string, std::shared_ptr<Expr>>> members;
      if (!IsSym("}")) {
        for (;;) {
          if (Cur().kind != Tok::kQuotedIdent && Cur().kind != Tok::kString && Cur().kind != Tok::kIdent) {
            return SyntaxError(Cur().pos, "expected an object key, found " + Describe(Cur()));
          }
          std::string key = Cur().text;
          ++p_;
          RETURN_IF_ERROR(ExpectSym(":"));
          ASSIGN_OR_RETURN(auto e, ParseExpr());
          members.emplace_back(std::move(key), std::move(e));
          if (!IsSym(",")) break;
          ++p_;
        }
      }
      RETURN_IF_ERROR(ExpectSym("}"));
      return std::shared_ptr<Expr>(std::make_shared<ObjectExpr>(std::move(members)));
    }
    return SyntaxError(t.pos, "expected an expression, found " + Describe(t));
  }

  Result<std::shared_ptr<Expr>> ParseCase() {
    ++p_;  // CASE
    std::shared_ptr<Expr> subject;
    if (!IsKeyword("WHEN")) {
      ASSIGN_OR_RETURN(subject, ParseExpr());
    }
    std::vector<std::pair<std::shared_ptr<Expr>, std::shared_ptr<Expr>>> whens;
    while (IsKeyword("WHEN")) {
      ++p_;
      ASSIGN_OR_RETURN(auto w, ParseExpr());
      RETURN_IF_ERROR(ExpectKeyword("THEN"));
      ASSIGN_OR_RETURN(auto r, ParseExpr());
      whens.emplace_back(std::move(w), std::move(r));
    }
    if (whens.empty()) return SyntaxError(Cur().pos, "expected WHEN in CASE, found " + Describe(Cur()));
    std::shared_ptr<Expr> otherwise;
    if (IsKeyword("ELSE")) {
      ++p_;
      ASSIGN_OR_RETURN(otherwise, ParseExpr());
    }
    RETURN_IF_ERROR(ExpectKeyword("END"));
    return std::shared_ptr<Expr>(std::make_shared<CaseExpr>(std::move(subject), std::move(whens), std::move(otherwise)));
  }

  std::string_view sql_;
  std::vector<Token> toks_;
  size_t p_ = 0;
  int depth_ = 0;
};

bool ParsePayload(std::string_view payload, json* out) {
  // Every matched message is parsed, so this is on the hot path: simdjson parses about twice as
  // fast as nlohmann's lexer. What simdjson refuses (invalid JSON, numbers beyond 64 bits, depth
  // beyond 1024) is left to nlohmann, whose answer stands.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(payload.data(), payload.size()).get(doc) == simdjson::SUCCESS) {
    *out = FromSimdjson(doc);
    return true;
  }
  *out = json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  return !out->is_discarded();
}

bool TopicMatches(std::string_view filter, std::string_view topic) {
  // MQTT 3.1.1 §4.7.2: wildcards do not match topics starting with '$' at the first level.
  if (!topic.empty() && topic[0] == '$' && !filter.empty() && (filter[0] == '+' || filter[0] == '#')) {
    return false;
  }
  size_t f = 0, t = 0;
  for (;;) {
    size_t fe = filter.find('/', f);
    std::string_view flevel = filter.substr(f, fe == std::string_view::npos ? std::string_view::npos : fe - f);
    if (flevel == "#") return true;
    if (t > topic.size()) return false;
    size_t te = topic.find('/', t);
    std::string_view tlevel = topic.substr(t, te == std::string_view::npos ? std::string_view::npos : te - t);
    if (flevel != "+" && flevel != tlevel) return false;
    bool fend = fe == std::string_view::npos, tend = te == std::string_view::npos;
    if (fend && tend) return true;
    if (tend) {
      // "a/#" also matches "a" (MQTT 3.1.1 §4.7.1.2).
      return !fend && filter.substr(fe + 1) == "#";
    }
    if (fend) return false;
    f = fe + 1;
    t = te + 1;
  }
}

Status ValidateTopicFilter(std::string_view filter) {
  if (filter.empty()) return Error(ErrorCode::kIotInvalidRequest, "the topic filter is empty");
  if (filter.size() > 256) return Error(ErrorCode::kIotInvalidRequest, "the topic filter is longer than 256 bytes");
  if (!IsValidUtf8(filter)) return Error(ErrorCode::kIotInvalidRequest, "the topic filter is not UTF-8");
  size_t start = 0;
  for (;;) {
    size_t e = filter.find('/', start);
    std::string_view level = filter.substr(start, e == std::string_view::npos ? std::string_view::npos : e - start);
    if (level.find_first_of("+#") != std::string_view::npos && level.size() != 1) {
      return Error(ErrorCode::kIotInvalidRequest, "a wildcard must occupy a whole topic level");
    }
    if (level == "#" && e != std::string_view::npos) {
      return Error(ErrorCode::kIotInvalidRequest, "'#' must be the last level of a topic filter");
    }
    if (e == std::string_view::npos) break;
    start = e + 1;
  }
  return Status::OK();
}

namespace {

// JSON text exactly as nlohmann's dump() writes it (compact, non-ASCII kept as UTF-8), so that
// EvaluateText() emits what Evaluate()'s document dumps to, byte for byte.
void WriteEscaped(std::string_view s, std::string* out) {
  out->push_back('"');
  size_t run = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\t': out->append("\\t"); break;
      case '\n': out->append("\\n"); break;
      case '\f': out->append("\\f"); break;
      case '\r': out->append("\\r"); break;
      default: {
        static const char kHex[] = "0123456789abcdef";
        char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out->append(u, 6);
      }
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

void WriteDouble(double d, std::string* out) {
  if (!std::isfinite(d)) {
    out->append("null");
    return;
  }
  char buf[64];
  char* end = nlohmann::detail::to_chars(buf, buf + sizeof buf, d);
  out->append(buf, static_cast<size_t>(end - buf));
}

template <typename T>
void WriteInteger(T v, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

// An object's members in nlohmann's order: sorted by key (std::map's order), a repeated key
// keeping its last value. `members` is sorted in place; `write(i)` writes member i's value.
template <typename Members, typename WriteValue>
void WriteObject(Members& members, std::string* out, WriteValue write) {
  std::stable_sort(members.begin(), members.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  out->push_back('{');
  bool first = true;
  for (size_t i = 0; i < members.size(); ++i) {
    if (i + 1 < members.size() && members[i + 1].first == members[i].first) continue;
    if (!first) out->push_back(',');
    first = false;
    WriteEscaped(members[i].first, out);
    out->push_back(':');
    write(members[i].second);
  }
  out->push_back('}');
}

void WriteElement(simdjson::dom::element e, std::string* out) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      absl::InlinedVector<std::pair<std::string_view, simdjson::dom::element>, 16> members;
      for (auto [k, v] : simdjson::dom::object(e)) members.emplace_back(k, v);
      WriteObject(members, out, [out](simdjson::dom::element v) { WriteElement(v, out); });
      return;
    }
    case simdjson::dom::element_type::ARRAY: {
      out->push_back('[');
      bool first = true;
      for (simdjson::dom::element v : simdjson::dom::array(e)) {
        if (!first) out->push_back(',');
        first = false;
        WriteElement(v, out);
      }
      out->push_back(']');
      return;
    }
    case simdjson::dom::element_type::INT64: WriteInteger(int64_t(e), out); return;
    case simdjson::dom::element_type::UINT64: WriteInteger(uint64_t(e), out); return;
    case simdjson::dom::element_type::DOUBLE: WriteDouble(double(e), out); return;
    case simdjson::dom::element_type::STRING: WriteEscaped(std::string_view(e), out); return;
    case simdjson::dom::element_type::BOOL: out->append(bool(e) ? "true" : "false"); return;
    case simdjson::dom::element_type::NULL_VALUE: out->append("null"); return;
  }
}

void WriteJson(const json& j, std::string* out) {
  switch (j.type()) {
    case json::value_t::string: {
      const std::string& s = j.get_ref<const std::string&>();
      if (IsValidUtf8(s)) return WriteEscaped(s, out);
      break;
    }
    case json::value_t::number_integer: return WriteInteger(j.get<int64_t>(), out);
    case json::value_t::number_unsigned: return WriteInteger(j.get<uint64_t>(), out);
    case json::value_t::number_float: return WriteDouble(j.get<double>(), out);
    case json::value_t::boolean: out->append(j.get<bool>() ? "true" : "false"); return;
    case json::value_t::null: out->append("null"); return;
    default: break;
  }
  // Containers, and strings that are not UTF-8 (substring() can cut a character in two):
  // nlohmann writes them, replacing bytes that are not UTF-8 with U+FFFD instead of throwing.
  out->append(j.dump(-1, ' ', false, json::error_handler_t::replace));
}

void WriteValue(const Value& v, std::string* out) {
  if (v.is_elem()) return WriteElement(v.elem(), out);
  WriteJson(v.j(), out);
}

// --- `SELECT *, <expr> AS <name>, …` over a JSON object: the payload's own text ------------------
//
// The payload's members are copied as the device wrote them (their order, number forms and
// escapes; whitespace between tokens dropped) and the query's members appended, instead of re-writing the whole document: the
// rules threads' largest cost was formatting numbers the payload already held as text. The
// result is the document the general path writes, member for member (sql_test.cc parses both).

size_t SkipWs(std::string_view t, size_t i) {
  while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i;
  return i;
}

// Past the string starting at t[i] ('"'); npos when it does not end.
size_t SkipString(std::string_view t, size_t i) {
  for (++i; i < t.size(); ++i) {
    if (t[i] == '\\') {
      ++i;
    } else if (t[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// Past the value starting at t[i]; npos when it does not end.
size_t SkipValue(std::string_view t, size_t i) {
  if (i >= t.size()) return std::string_view::npos;
  if (t[i] == '"') return SkipString(t, i);
  if (t[i] == '{' || t[i] == '[') {
    int depth = 0;
    while (i < t.size()) {
      char c = t[i];
      if (c == '"') {
        i = SkipString(t, i);
        if (i == std::string_view::npos) return i;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      ++i;
    }
    return std::string_view::npos;
  }
  while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']' && t[i] != ' ' && t[i] != '\t' &&
         t[i] != '\n' && t[i] != '\r') {
    ++i;
  }
  return i;
}

// The text of each top-level member (`"key": value`) of the object `t`, which simdjson accepted;
// false if the text is not shaped as expected (never for what simdjson accepts).
template <typename Spans>
bool MemberSpans(std::string_view t, Spans* spans) {
  size_t i = SkipWs(t, 0);
  if (i >= t.size() || t[i] != '{') return false;
  i = SkipWs(t, i + 1);
  if (i < t.size() && t[i] == '}') return true;
  for (;;) {
    if (i >= t.size() || t[i] != '"') return false;
    size_t start = i;
    i = SkipString(t, i);
    if (i == std::string_view::npos) return false;
    i = SkipWs(t, i);
    if (i >= t.size() || t[i] != ':') return false;
    i = SkipValue(t, SkipWs(t, i + 1));
    if (i == std::string_view::npos) return false;
    spans->push_back(t.substr(start, i - start));
    i = SkipWs(t, i);
    if (i >= t.size()) return false;
    if (t[i] == '}') return true;
    if (t[i] != ',') return false;
    i = SkipWs(t, i + 1);
  }
}

// Appends JSON text `t` without the whitespace between its tokens (strings are copied as they
// are), so the output is compact whatever the device's spacing.
void AppendCompact(std::string_view t, std::string* out) {
  size_t run = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < t.size();) {
    char c = t[i];
    if (c == '"') {
      size_t end = SkipString(t, i);
      i = end == std::string_view::npos ? t.size() : end;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      out->append(t.data() + run, i - run);
      run = ++i;
    } else {
      ++i;
    }
  }
  out->append(t.data() + run, t.size() - run);
}

struct AddedMember {
  std::string_view name;
  const Value* value;
};

// `{payload members not named by an added member, added members}` into `*out`, compact; false
// when the general path must write it: a payload key that repeats (the general path keeps the
// last) or more members than this path bothers with.
template <typename Added>
bool SpliceObject(std::string_view text, simdjson::dom::object o, const Added& added,
                  std::string* out) {
  constexpr size_t kMaxMembers = 32;
  absl::InlinedVector<std::string_view, 16> keys;
  for (auto [k, v] : o) {
    if (keys.size() == kMaxMembers) return false;
    for (std::string_view seen : keys) {
      if (seen == k) return false;
    }
    keys.push_back(k);
  }
  absl::InlinedVector<std::string_view, 16> spans;
  if (!MemberSpans(text, &spans) || spans.size() != keys.size()) return false;
  out->reserve(text.size() + 16 * added.size() + 64);
  out->push_back('{');
  bool first = true;
  for (size_t i = 0; i < spans.size(); ++i) {
    bool replaced = false;
    for (const AddedMember& a : added) replaced |= a.name == keys[i];
    if (replaced) continue;  // the query's member wins, as in the general path
    if (!first) out->push_back(',');
    first = false;
    AppendCompact(spans[i], out);
  }
  for (const AddedMember& a : added) {
    if (!first) out->push_back(',');
    first = false;
    WriteEscaped(a.name, out);
    out->push_back(':');
    WriteValue(*a.value, out);
  }
  out->push_back('}');
  return true;
}

}  // namespace

RuleQuery::~RuleQuery() = default;

Result<std::shared_ptr<const RuleQuery>> RuleQuery::Compile(std::string_view sql) {
  if (sql.size() > 256 * 1024) return Error(ErrorCode::kIotInvalidRequest, "the SQL statement is too long");
  if (!IsValidUtf8(sql)) return Error(ErrorCode::kIotInvalidRequest, "the SQL statement is not valid UTF-8");
  Parser p(sql);
  return p.ParseQuery();
}

Result<std::optional<json>> RuleQuery::Evaluate(const MessageContext& msg) const {
  EvalContext ctx{&msg, {}};
  if (where_) {
    Value w = where_->Eval(ctx);
    if (!ctx.error.empty()) return Error(ErrorCode::kIotRuleAction, ctx.error);
    // WHERE keeps the message only when it is true; false and Undefined drop it.
    std::optional<bool> b = w.defined() ? ToBool(w.j()) : std::nullopt;
    if (!b || !*b) return std::optional<json>();
  }
  if (select_value_) {
    Value v = items_[0].expr->Eval(ctx);
    if (!ctx.error.empty()) return Error(ErrorCode::kIotRuleAction, ctx.error);
    if (!v.defined()) return std::optional<json>(json());
    return std::optional<json>(std::move(v).Take());
  }
  json out = json::object();
  for (const Item& item : items_) {
    if (!item.expr) {
      Value payload = PayloadOf(msg);
      if (!payload.defined()) return Error(ErrorCode::kIotRuleAction, "the payload is not a JSON document");
      const json& pj = payload.j();
      if (pj.is_object()) {
        for (auto it = pj.begin(); it != pj.end(); ++it) out[it.key()] = it.value();
      } else if (items_.size() == 1) {
        return std::optional<json>(pj);
      }
      continue;
    }
    Value v = item.expr->Eval(ctx);
    if (!ctx.error.empty()) return Error(ErrorCode::kIotRuleAction, ctx.error);
    if (v.defined()) out[item.name] = std::move(v).Take();
  }
  return std::optional<json>(std::move(out));
}

Result<bool> RuleQuery::EvaluateText(const MessageContext& msg, std::string* out, bool splice) const {
  out->clear();
  EvalContext ctx{&msg, {}};
  if (where_) {
    Value w = where_->Eval(ctx);
    if (!ctx.error.empty()) return Error(ErrorCode::kIotRuleAction, ctx.error);
    std::optional<bool> b = w.defined() ? ToBool(w.j()) : std::nullopt;
    if (!b || !*b) return false;
  }
  if (select_value_) {
    Value v = items_[0].expr->Eval(ctx);
    if (!ctx.error.empty()) return Error(ErrorCode::kIotRuleAction, ctx.error);
    if (!v.defined()) {
      out->append("null");
    } else {
      WriteValue(v, out);
    }
    return true;
  }
  if (splice && splice_star_ && msg.parsed && msg.parsed->impl().simd) {
    const ParsedPayload::Impl& m = msg.parsed->impl();
    simdjson::dom::object o;
    if (m.root.get(o) == simdjson::SUCCESS) {
      absl::InlinedVector<Value, 8> values;
      values.reserve(items_.size());  // `added` points into it
      absl::InlinedVector<AddedMember, 8> added;
      for (size_t i = 1; i < items_.size(); ++i) {
        values.push_back(items_[i].expr->Eval(ctx));
        if (!ctx.error.empty()) return Error(ErrorCode::kIotRuleAction, ctx.error);
        if (values.back().defined()) added.push_back({items_[i].name, &values.back()});
      }
      if (SpliceObject(m.text, o, added, out)) return true;
      out->clear();
    }
  }
  // The members Evaluate() would assign, in order: a `*`'s payload members (an element, or an
  // nlohmann value of a payload simdjson refused) and the defined items.
  struct Source {
    const Value* value = nullptr;
    simdjson::dom::element elem;
    const json* j = nullptr;
  };
  absl::InlinedVector<Value, 8> values;
  values.reserve(items_.size());  // `members` points into it
  Value payload;
  absl::InlinedVector<std::pair<std::string_view, Source>, 16> members;
  for (const Item& item : items_) {
    if (!item.expr) {
      if (!payload.defined()) payload = PayloadOf(msg);
      if (!payload.defined()) return Error(ErrorCode::kIotRuleAction, "the payload is not a JSON document");
      if (payload.is_elem()) {
        simdjson::dom::object o;
        if (payload.elem().get(o) == simdjson::SUCCESS) {
          for (auto [k, v] : o) members.push_back({k, Source{nullptr, v, nullptr}});
        } else if (items_.size() == 1) {
          WriteElement(payload.elem(), out);
          return true;
        }
      } else {
        const json& pj = payload.j();
        if (pj.is_object()) {
          for (auto it = pj.begin(); it != pj.end(); ++it) members.push_back({it.key(), Source{nullptr, {}, &it.value()}});
        } else if (items_.size() == 1) {
          WriteJson(pj, out);
          return true;
        }
      }
      continue;
    }
    values.push_back(item.expr->Eval(ctx));
    if (!ctx.error.empty()) return Error(ErrorCode::kIotRuleAction, ctx.error);
    if (values.back().defined()) members.push_back({item.name, Source{&values.back(), {}, nullptr}});
  }
  WriteObject(members, out, [out](const Source& s) {
    if (s.value) return WriteValue(*s.value, out);
    if (s.j) return WriteJson(*s.j, out);
    WriteElement(s.elem, out);
  });
  return true;
}

Result<Template> Template::Compile(std::string_view text) {
  Template t;
  size_t i = 0;
  std::string literal;
  while (i < text.size()) {
    size_t open = text.find("${", i);
    if (open == std::string_view::npos) {
      literal += text.substr(i);
      break;
    }
    literal += text.substr(i, open - i);
    // The expression ends at the matching '}', skipping braces inside quotes.
    size_t j = open + 2;
    int depth = 1;
    char quote = 0;
    for (; j < text.size(); ++j) {
      char c = text[j];
      if (quote) {
        if (c == quote) quote = 0;
      } else if (c == '\'' || c == '"') {
        quote = c;
      } else if (c == '{') {
        ++depth;
      } else if (c == '}' && --depth == 0) {
        break;
      }
    }
    if (j >= text.size()) {
      return Error(ErrorCode::kIotInvalidRequest,
                   "unterminated substitution template at offset " + std::to_string(open));
    }
    Parser p(text.substr(open + 2, j - open - 2));
    auto e = p.ParseStandalone();
    if (!e.ok()) {
      return Error(ErrorCode::kIotInvalidRequest,
                   "in substitution template '" + std::string(text.substr(open, j - open + 1)) +
                       "': " + e.status().message());
    }
    t.parts_.push_back({std::move(literal), nullptr});
    literal.clear();
    t.parts_.push_back({"", std::move(e).value()});
    i = j + 1;
  }
  if (!literal.empty() || t.parts_.empty()) t.parts_.push_back({std::move(literal), nullptr});
  return t;
}

std::string Template::Expand(const MessageContext& msg) const {
  EvalContext ctx{&msg, {}};
  std::string out;
  for (const Part& p : parts_) {
    if (!p.expr) {
      out += p.literal;
      continue;
    }
    Value v = p.expr->Eval(ctx);
    if (v.defined()) out += ToText(v.j());
  }
  return out;
}

}  // namespace tarn::gateway::rules
