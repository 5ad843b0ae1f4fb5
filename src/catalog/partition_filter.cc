#include "catalog/partition_filter.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>

#include "core/strings.h"

namespace tarn::catalog {

namespace {

enum class TypeClass { kString, kInteger, kNumber };

TypeClass ClassOf(const std::string& hive_type) {
  std::string t = ToLower(Trim(hive_type));
  if (t == "tinyint" || t == "smallint" || t == "int" || t == "integer" || t == "bigint") {
    return TypeClass::kInteger;
  }
  if (t == "float" || t == "double" || StartsWith(t, "decimal")) return TypeClass::kNumber;
  return TypeClass::kString;
}

std::optional<double> ParseNumber(std::string_view s) {
  std::string str(Trim(s));
  if (str.empty()) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(str.c_str(), &end);
  // NaN compares neither below, above nor equal to anything: it is not a number here.
  if (end != str.c_str() + str.size() || std::isnan(d)) return std::nullopt;
  return d;
}

// A literal converted to the key's type once, at compile time.
struct Literal {
  std::string text;
  int64_t i = 0;
  double d = 0;
};

enum class Op { kEq, kNe, kLt, kGt, kLe, kGe };

// Lexer --------------------------------------------------------------------------------------

enum class Tok { kEnd, kIdent, kString, kNumber, kLParen, kRParen, kComma, kOp };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;
  size_t pos = 0;
};

Result<std::vector<Token>> Lex(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  auto err = [&](const std::string& what) {
    return Error(ErrorCode::kInvalidInput,
                 "Unsupported expression: " + what + " at position " + std::to_string(i));
  };
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    Token t;
    t.pos = i;
    if (c == '(') {
      t.kind = Tok::kLParen;
      ++i;
    } else if (c == ')') {
      t.kind = Tok::kRParen;
      ++i;
    } else if (c == ',') {
      t.kind = Tok::kComma;
      ++i;
    } else if (c == '\'') {
      t.kind = Tok::kString;
      ++i;
      bool closed = false;
      while (i < s.size()) {
        if (s[i] == '\'') {
          if (i + 1 < s.size() && s[i + 1] == '\'') {
            t.text += '\'';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        t.text += s[i++];
      }
      if (!closed) return err("unterminated string literal");
    } else if (c == '`') {
      t.kind = Tok::kIdent;
      ++i;
      size_t end = s.find('`', i);
      if (end == std::string_view::npos) return err("unterminated quoted identifier");
      t.text = std::string(s.substr(i, end - i));
      i = end + 1;
    } else if (c == '=' || c == '<' || c == '>' || c == '!') {
      t.kind = Tok::kOp;
      t.text = c;
      ++i;
      if (i < s.size() && (s[i] == '=' || (c == '<' && s[i] == '>'))) t.text += s[i++];
      if (t.text == "!") return err("'!'");
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               ((c == '-' || c == '+' || c == '.') && i + 1 < s.size() &&
                (std::isdigit(static_cast<unsigned char>(s[i + 1])) || s[i + 1] == '.'))) {
      t.kind = Tok::kNumber;
      t.text += s[i++];
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '.' ||
                              ((s[i] == '-' || s[i] == '+') && (s[i - 1] == 'e' || s[i - 1] == 'E')))) {
        t.text += s[i++];
      }
      if (!ParseNumber(t.text)) return err("malformed number '" + t.text + "'");
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      t.kind = Tok::kIdent;
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_' ||
                              s[i] == '$')) {
        t.text += s[i++];
      }
    } else {
      return err(std::string("unexpected character '") + c + "'");
    }
    out.push_back(std::move(t));
  }
  Token end;
  end.pos = s.size();
  out.push_back(end);
  return out;
}

}  // namespace

struct PartitionFilter::Node {
  enum class Kind { kAnd, kOr, kNot, kCmp, kIn, kBetween, kLike, kIsNull };
  Kind kind = Kind::kCmp;
  std::unique_ptr<Node> left, right;
  size_t key = 0;
  TypeClass type = TypeClass::kString;
  Op op = Op::kEq;
  std::vector<Literal> literals;
  bool negated = false;

  // <0, 0, >0; nullopt when the value does not parse in the key's type (never matches).
  std::optional<int> Compare(const std::string& value, const Literal& lit) const {
    switch (type) {
      case TypeClass::kInteger: {
        auto v = ParseInt64(Trim(value));
        if (!v) return std::nullopt;
        return *v < lit.i ? -1 : (*v > lit.i ? 1 : 0);
      }
      case TypeClass::kNumber: {
        auto v = ParseNumber(value);
        if (!v) return std::nullopt;
        return *v < lit.d ? -1 : (*v > lit.d ? 1 : 0);
      }
      default: {
        int c = value.compare(lit.text);
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
      }
    }
  }

  bool Eval(const std::vector<std::string>& values) const {
    switch (kind) {
      case Kind::kAnd: return left->Eval(values) && right->Eval(values);
      case Kind::kOr: return left->Eval(values) || right->Eval(values);
      case Kind::kNot: return !left->Eval(values);
      default: break;
    }
    if (key >= values.size()) return kind == Kind::kIsNull && !negated;
    const std::string& v = values[key];
    bool r = false;
    switch (kind) {
      case Kind::kCmp: {
        auto c = Compare(v, literals[0]);
        if (!c) return false;
        switch (op) {
          case Op::kEq: return *c == 0;
          case Op::kNe: return *c != 0;
          case Op::kLt: return *c < 0;
          case Op::kGt: return *c > 0;
          case Op::kLe: return *c <= 0;
          case Op::kGe: return *c >= 0;
        }
        return false;
      }
      case Kind::kIn:
        for (const Literal& l : literals) {
          auto c = Compare(v, l);
          if (c && *c == 0) {
            r = true;
            break;
          }
        }
        break;
      case Kind::kBetween: {
        auto lo = Compare(v, literals[0]);
        auto hi = Compare(v, literals[1]);
        if (!lo || !hi) return false;
        r = *lo >= 0 && *hi <= 0;
        break;
      }
      case Kind::kLike: r = LikeMatch(v, literals[0].text); break;
      case Kind::kIsNull: r = false; break;  // partition values are never null
      default: break;
    }
    return negated ? !r : r;
  }
};

namespace {

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::vector<PartitionKey>& keys)
      : toks_(std::move(tokens)), keys_(keys) {}

  Result<std::unique_ptr<PartitionFilter::Node>> Parse() {
    ASSIGN_OR_RETURN(auto n, ParseOr());
    if (Peek().kind != Tok::kEnd) return Fail("unexpected '" + Peek().text + "'");
    return n;
  }

 private:
  using NodeP = std::unique_ptr<PartitionFilter::Node>;
  using Kind = PartitionFilter::Node::Kind;

  const Token& Peek() const { return toks_[pos_]; }
  const Token& Next() { return toks_[pos_ < toks_.size() - 1 ? pos_++ : pos_]; }
  bool IsKeyword(const char* kw) const {
    return Peek().kind == Tok::kIdent && EqualsIgnoreCase(Peek().text, kw);
  }
  bool Accept(const char* kw) {
    if (!IsKeyword(kw)) return false;
    ++pos_;
    return true;
  }
  Status Fail(const std::string& what) const {
    return Error(ErrorCode::kInvalidInput, "Unsupported expression: " + what + " at position " +
                                               std::to_string(Peek().pos));
  }

  Result<NodeP> ParseOr() {
    ASSIGN_OR_RETURN(NodeP l, ParseAnd());
    while (Accept("OR")) {
      ASSIGN_OR_RETURN(NodeP r, ParseAnd());
      l = Combine(Kind::kOr, std::move(l), std::move(r));
    }
    return l;
  }
  Result<NodeP> ParseAnd() {
    ASSIGN_OR_RETURN(NodeP l, ParseNot());
    while (Accept("AND")) {
      ASSIGN_OR_RETURN(NodeP r, ParseNot());
      l = Combine(Kind::kAnd, std::move(l), std::move(r));
    }
    return l;
  }
  // Parentheses and NOTs nest by recursion: bounded, so that no expression (they come from the
  // network) can exhaust the stack.
  static constexpr int kMaxNesting = 64;

  Result<NodeP> ParseNot() {
    if (Accept("NOT")) {
      if (++depth_ > kMaxNesting) return Fail("expression nested too deeply");
      ASSIGN_OR_RETURN(NodeP inner, ParseNot());
      --depth_;
      auto n = std::make_unique<PartitionFilter::Node>();
      n->kind = Kind::kNot;
      n->left = std::move(inner);
      return n;
    }
    return ParsePrimary();
  }
  static NodeP Combine(Kind k, NodeP l, NodeP r) {
    auto n = std::make_unique<PartitionFilter::Node>();
    n->kind = k;
    n->left = std::move(l);
    n->right = std::move(r);
    return n;
  }

  Result<Literal> ParseLiteral(TypeClass type, const std::string& key_name) {
    const Token& t = Peek();
    if (t.kind != Tok::kString && t.kind != Tok::kNumber) return Fail("expected a literal");
    Literal lit;
    lit.text = t.text;
    if (type == TypeClass::kInteger) {
      auto v = ParseInt64(Trim(t.text));
      if (!v) return Fail("'" + t.text + "' is not an integer value for key " + key_name);
      lit.i = *v;
    } else if (type == TypeClass::kNumber) {
      auto v = ParseNumber(t.text);
      if (!v) return Fail("'" + t.text + "' is not a numeric value for key " + key_name);
      lit.d = *v;
    }
    ++pos_;
    return lit;
  }

  Result<NodeP> ParsePrimary() {
    if (Peek().kind == Tok::kLParen) {
      ++pos_;
      if (++depth_ > kMaxNesting) return Fail("expression nested too deeply");
      ASSIGN_OR_RETURN(NodeP inner, ParseOr());
      --depth_;
      if (Peek().kind != Tok::kRParen) return Fail("expected ')'");
      ++pos_;
      return inner;
    }
    if (Peek().kind != Tok::kIdent) return Fail("expected a partition key");
    std::string name = Peek().text;
    size_t key = keys_.size();
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (EqualsIgnoreCase(keys_[i].name, name)) key = i;
    }
    if (key == keys_.size()) return Fail("'" + name + "' is not a partition key");
    ++pos_;
    auto n = std::make_unique<PartitionFilter::Node>();
    n->key = key;
    n->type = ClassOf(keys_[key].type);
    if (Peek().kind == Tok::kOp) {
      const std::string& op = Next().text;
      n->kind = Kind::kCmp;
      if (op == "=" || op == "==") n->op = Op::kEq;
      else if (op == "<>" || op == "!=") n->op = Op::kNe;
      else if (op == "<") n->op = Op::kLt;
      else if (op == ">") n->op = Op::kGt;
      else if (op == "<=") n->op = Op::kLe;
      else if (op == ">=") n->op = Op::kGe;
      else return Fail("unknown operator '" + op + "'");
      ASSIGN_OR_RETURN(Literal l, ParseLiteral(n->type, name));
      n->literals.push_back(std::move(l));
      return n;
    }
    if (Accept("IS")) {
      n->kind = Kind::kIsNull;
      n->negated = Accept("NOT");
      if (!Accept("NULL")) return Fail("expected NULL");
      return n;
    }
    n->negated = Accept("NOT");
    if (Accept("IN")) {
      n->kind = Kind::kIn;
      if (Peek().kind != Tok::kLParen) return Fail("expected '(' after IN");
      ++pos_;
      while (true) {
        ASSIGN_OR_RETURN(Literal l, ParseLiteral(n->type, name));
        n->literals.push_back(std::move(l));
        if (Peek().kind == Tok::kComma) {
          ++pos_;
          continue;
        }
        if (Peek().kind == Tok::kRParen) {
          ++pos_;
          break;
        }
        return Fail("expected ',' or ')' in IN list");
      }
      return n;
    }
    if (Accept("BETWEEN")) {
      n->kind = Kind::kBetween;
      ASSIGN_OR_RETURN(Literal lo, ParseLiteral(n->type, name));
      if (!Accept("AND")) return Fail("expected AND in BETWEEN");
      ASSIGN_OR_RETURN(Literal hi, ParseLiteral(n->type, name));
      n->literals.push_back(std::move(lo));
      n->literals.push_back(std::move(hi));
      return n;
    }
    if (Accept("LIKE")) {
      n->kind = Kind::kLike;
      if (Peek().kind != Tok::kString) return Fail("LIKE needs a quoted pattern");
      Literal l;
      l.text = Next().text;
      n->literals.push_back(std::move(l));
      return n;
    }
    return Fail("expected an operator after '" + name + "'");
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  const std::vector<PartitionKey>& keys_;
};

}  // namespace

PartitionFilter::~PartitionFilter() = default;

Result<std::shared_ptr<const PartitionFilter>> PartitionFilter::Compile(
    std::string_view expression, const std::vector<PartitionKey>& keys) {
  if (Trim(expression).empty()) return Error(ErrorCode::kInvalidInput, "Expression is empty");
  if (expression.size() > 2048) {
    return Error(ErrorCode::kInvalidInput, "Expression is longer than 2048 characters");
  }
  ASSIGN_OR_RETURN(auto tokens, Lex(expression));
  Parser parser(std::move(tokens), keys);
  std::shared_ptr<PartitionFilter> f(new PartitionFilter());
  ASSIGN_OR_RETURN(f->root_, parser.Parse());
  return std::shared_ptr<const PartitionFilter>(std::move(f));
}

bool PartitionFilter::Matches(const std::vector<std::string>& values) const {
  return root_->Eval(values);
}

std::optional<double> PartitionFilter::NumericValue(std::string_view value) {
  return ParseNumber(value);
}

namespace {

using Node = PartitionFilter::Node;

// The smallest string above every string that starts with `prefix`, if there is one.
std::optional<std::string> PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    auto c = static_cast<unsigned char>(prefix.back());
    if (c < 0xff) {
      prefix.back() = static_cast<char>(c + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::nullopt;
}

// The ranges of a single-key term (or an OR of such terms over one key); nullopt when the term
// cannot be looked up by range. Integer keys compare int64 values and number keys doubles;
// their ranges are over the value read as a double, which keeps order (rounding is monotonic),
// so strict bounds become inclusive ones and Matches() decides the edge.
std::optional<KeyConstraint> ConstraintOf(const Node& n) {
  using Kind = Node::Kind;
  if (n.kind == Kind::kOr) {
    auto l = ConstraintOf(*n.left);
    auto r = ConstraintOf(*n.right);
    if (!l || !r || l->key != r->key) return std::nullopt;
    l->ranges.insert(l->ranges.end(), r->ranges.begin(), r->ranges.end());
    l->equality = l->equality && r->equality;
    return l;
  }
  if (n.kind == Kind::kAnd || n.kind == Kind::kNot || n.negated) return std::nullopt;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  KeyConstraint c;
  c.key = n.key;
  const bool numeric = n.type != TypeClass::kString;
  auto num = [&](const Literal& l) { return n.type == TypeClass::kInteger ? double(l.i) : l.d; };
  auto open = [&] {
    KeyRange r;
    r.numeric = numeric;
    r.lo_num = -kInf;
    r.hi_num = kInf;
    return r;
  };
  auto point = [&](const Literal& l) {
    KeyRange r = open();
    if (numeric) {
      r.lo_num = r.hi_num = num(l);
    } else {
      r.lo = r.hi = l.text;
    }
    return r;
  };
  switch (n.kind) {
    case Kind::kCmp: {
      const Literal& l = n.literals[0];
      KeyRange r = open();
      switch (n.op) {
        case Op::kEq:
          c.equality = true;
          r = point(l);
          break;
        case Op::kLt:
        case Op::kLe:
          if (numeric) r.hi_num = num(l);
          else r.hi = l.text, r.hi_inclusive = n.op == Op::kLe;
          break;
        case Op::kGt:
        case Op::kGe:
          if (numeric) r.lo_num = num(l);
          else r.lo = l.text, r.lo_inclusive = n.op == Op::kGe;
          break;
        case Op::kNe:
          return std::nullopt;
      }
      c.ranges.push_back(std::move(r));
      return c;
    }
    case Kind::kIn:
      c.equality = true;
      for (const Literal& l : n.literals) c.ranges.push_back(point(l));
      return c;
    case Kind::kBetween: {
      KeyRange r = open();
      if (numeric) {
        r.lo_num = num(n.literals[0]);
        r.hi_num = num(n.literals[1]);
      } else {
        r.lo = n.literals[0].text;
        r.hi = n.literals[1].text;
      }
      c.ranges.push_back(std::move(r));
      return c;
    }
    case Kind::kLike: {
      // LIKE reads the value as text whatever the key's type: a literal prefix is a text range.
      const std::string& p = n.literals[0].text;
      size_t wild = p.find_first_of("%_");
      KeyRange r;
      if (wild == std::string::npos) {
        c.equality = true;
        r.lo = r.hi = p;
      } else {
        if (wild == 0) return std::nullopt;
        r.lo = p.substr(0, wild);
        r.hi = PrefixEnd(*r.lo);
        r.hi_inclusive = false;
      }
      c.ranges.push_back(std::move(r));
      return c;
    }
    default:
      return std::nullopt;
  }
}

void CollectConstraints(const Node& n, std::vector<KeyConstraint>* out) {
  if (n.kind == Node::Kind::kAnd) {
    CollectConstraints(*n.left, out);
    CollectConstraints(*n.right, out);
    return;
  }
  if (auto c = ConstraintOf(n)) out->push_back(std::move(*c));
}

}  // namespace

std::vector<KeyConstraint> PartitionFilter::Constraints() const {
  std::vector<KeyConstraint> out;
  CollectConstraints(*root_, &out);
  std::stable_partition(out.begin(), out.end(), [](const KeyConstraint& c) { return c.equality; });
  return out;
}

bool LikeMatch(std::string_view v, std::string_view p) {
  // Iterative wildcard match with back-tracking to the last '%'.
  size_t vi = 0, pi = 0, star = std::string_view::npos, mark = 0;
  while (vi < v.size()) {
    if (pi < p.size() && (p[pi] == '_' || p[pi] == v[vi])) {
      ++vi;
      ++pi;
    } else if (pi < p.size() && p[pi] == '%') {
      star = pi++;
      mark = vi;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      vi = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '%') ++pi;
  return pi == p.size();
}

}  // namespace tarn::catalog
