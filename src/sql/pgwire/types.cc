#include "sql/pgwire/types.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/strings.h"

namespace tarn::sql::pgwire {

namespace {

// PostgreSQL's epoch for dates and timestamps on the wire is 2000-01-01.
constexpr int32_t kPgEpochDays = 10957;
constexpr int64_t kPgEpochMicros = 946684800000000LL;
constexpr int64_t kMicrosPerDay = 86400000000LL;

void PutInt16(std::string* out, int16_t v) {
  auto u = static_cast<uint16_t>(v);
  out->push_back(static_cast<char>(u >> 8));
  out->push_back(static_cast<char>(u));
}
void PutInt32(std::string* out, int32_t v) {
  auto u = static_cast<uint32_t>(v);
  char b[4] = {static_cast<char>(u >> 24), static_cast<char>(u >> 16), static_cast<char>(u >> 8),
               static_cast<char>(u)};
  out->append(b, 4);
}
void PutInt64(std::string* out, int64_t v) {
  auto u = static_cast<uint64_t>(v);
  PutInt32(out, static_cast<int32_t>(u >> 32));
  PutInt32(out, static_cast<int32_t>(u));
}
int64_t GetBE(std::string_view s) {
  uint64_t v = 0;
  for (unsigned char c : s) v = (v << 8) | c;
  // Sign-extend from the width read.
  if (!s.empty() && s.size() < 8 && (static_cast<unsigned char>(s[0]) & 0x80)) {
    v |= ~uint64_t{0} << (s.size() * 8);
  }
  return static_cast<int64_t>(v);
}

// Howard Hinnant's civil_from_days / days_from_civil (proleptic Gregorian, any year).
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t yy = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yy + (*m <= 2);
}

// Writes n (0 <= n < 10^width) as exactly `width` digits.
inline char* PutDigits(char* p, uint64_t n, int width) {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + n % 10);
    n /= 10;
  }
  return p + width;
}

void AppendDate(int64_t days, std::string* out) {
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  bool bc = y <= 0;
  if (!bc && y <= 9999) {  // the common case without snprintf (result text hot path)
    char buf[10];
    char* p = PutDigits(buf, static_cast<uint64_t>(y), 4);
    *p++ = '-';
    p = PutDigits(p, m, 2);
    *p++ = '-';
    PutDigits(p, d, 2);
    out->append(buf, 10);
    return;
  }
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02u", static_cast<long long>(bc ? 1 - y : y), m, d);
  out->append(buf);
  if (bc) out->append(" BC");
}

void AppendTime(int64_t micros, std::string* out) {
  int64_t secs = micros / 1000000, frac = micros % 1000000;
  if (micros >= 0 && secs / 3600 < 100) {
    char buf[15];
    char* p = PutDigits(buf, static_cast<uint64_t>(secs / 3600), 2);
    *p++ = ':';
    p = PutDigits(p, static_cast<uint64_t>(secs / 60 % 60), 2);
    *p++ = ':';
    p = PutDigits(p, static_cast<uint64_t>(secs % 60), 2);
    if (frac) {
      *p++ = '.';
      p = PutDigits(p, static_cast<uint64_t>(frac), 6);
      while (p[-1] == '0') --p;
    }
    out->append(buf, p - buf);
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%02lld:%02lld:%02lld", static_cast<long long>(secs / 3600),
                static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
  out->append(buf);
  if (frac) {
    std::snprintf(buf, sizeof(buf), ".%06lld", static_cast<long long>(frac));
    size_t len = std::strlen(buf);
    while (buf[len - 1] == '0') --len;
    out->append(buf, len);
  }
}

void AppendTimestamp(int64_t micros, std::string* out, bool tz) {
  if (micros == std::numeric_limits<int64_t>::max()) {
    out->append("infinity");
    return;
  }
  if (micros == -std::numeric_limits<int64_t>::max()) {
    out->append("-infinity");
    return;
  }
  int64_t days = micros >= 0 ? micros / kMicrosPerDay : (micros - kMicrosPerDay + 1) / kMicrosPerDay;
  int64_t tod = micros - days * kMicrosPerDay;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  bool bc = y <= 0;
  if (!bc && y <= 9999) {
    char buf[11];
    char* p = PutDigits(buf, static_cast<uint64_t>(y), 4);
    *p++ = '-';
    p = PutDigits(p, m, 2);
    *p++ = '-';
    p = PutDigits(p, d, 2);
    *p = ' ';
    out->append(buf, 11);
  } else {
    char buf[48];
    std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02u ", static_cast<long long>(bc ? 1 - y : y), m, d);
    out->append(buf);
  }
  AppendTime(tod, out);
  if (tz) out->append("+00");
  if (bc) out->append(" BC");
}

void AppendInterval(const Interval& iv, std::string* out) {
  // PostgreSQL's IntervalStyle "postgres" output.
  bool any = false;
  auto part = [&](int64_t n, const char* unit, const char* plural) {
    if (!n) return;
    if (any) out->push_back(' ');
    *out += std::to_string(n) + " " + (n == 1 || n == -1 ? unit : plural);
    any = true;
  };
  part(iv.months / 12, "year", "years");
  part(iv.months % 12, "mon", "mons");
  part(iv.days, "day", "days");
  if (iv.micros || !any) {
    if (any) out->push_back(' ');
    int64_t us = iv.micros;
    if (us < 0) {
      out->push_back('-');
      us = -us;
    }
    AppendTime(us, out);
  }
}

void AppendDouble(double v, std::string* out, bool is_float) {
  if (std::isnan(v)) {
    out->append("NaN");
    return;
  }
  if (std::isinf(v)) {
    out->append(v > 0 ? "Infinity" : "-Infinity");
    return;
  }
  char buf[64];
  // Shortest representation that reads back exactly (PostgreSQL 12+ with extra_float_digits 1).
  std::to_chars_result r = is_float ? std::to_chars(buf, buf + sizeof(buf), static_cast<float>(v))
                                    : std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

std::string Int128ToString(unsigned __int128 v) {
  if (v == 0) return "0";
  char buf[48];
  int i = 48;
  while (v) {
    buf[--i] = static_cast<char>('0' + static_cast<int>(v % 10));
    v /= 10;
  }
  return std::string(buf + i, 48 - i);
}

// Unscaled value + scale → the decimal digits of |v| split at the point.
void DecimalParts(__int128 v, int scale, bool* neg, std::string* int_part, std::string* frac_part) {
  *neg = v < 0;
  unsigned __int128 a = *neg ? static_cast<unsigned __int128>(-(v + 1)) + 1 : static_cast<unsigned __int128>(v);
  std::string digits = Int128ToString(a);
  if (static_cast<int>(digits.size()) <= scale) digits.insert(0, static_cast<size_t>(scale) + 1 - digits.size(), '0');
  *int_part = digits.substr(0, digits.size() - static_cast<size_t>(scale));
  *frac_part = digits.substr(digits.size() - static_cast<size_t>(scale));
}

void AppendDecimalText(__int128 v, int scale, std::string* out) {
  bool neg;
  std::string ip, fp;
  DecimalParts(v, scale, &neg, &ip, &fp);
  if (neg) out->push_back('-');
  out->append(ip);
  if (scale > 0) {
    out->push_back('.');
    out->append(fp);
  }
}

// NUMERIC binary form (PostgreSQL numeric_send): ndigits, weight, sign, dscale, base-10000
// digits.
void AppendNumericBinary(__int128 v, int scale, std::string* out) {
  bool neg;
  std::string ip, fp;
  DecimalParts(v, scale, &neg, &ip, &fp);
  if (ip.size() % 4) ip.insert(0, 4 - ip.size() % 4, '0');
  if (fp.size() % 4) fp.append(4 - fp.size() % 4, '0');
  std::vector<int16_t> groups;
  for (size_t i = 0; i < ip.size(); i += 4) groups.push_back(static_cast<int16_t>(std::stoi(ip.substr(i, 4))));
  int weight = static_cast<int>(ip.size() / 4) - 1;
  for (size_t i = 0; i < fp.size(); i += 4) groups.push_back(static_cast<int16_t>(std::stoi(fp.substr(i, 4))));
  size_t first = 0;
  while (first < groups.size() && groups[first] == 0) {
    ++first;
    --weight;
  }
  size_t last = groups.size();
  while (last > first && groups[last - 1] == 0) --last;
  if (first == last) weight = 0;
  PutInt16(out, static_cast<int16_t>(last - first));
  PutInt16(out, static_cast<int16_t>(weight));
  PutInt16(out, static_cast<int16_t>(neg && first != last ? 0x4000 : 0x0000));
  PutInt16(out, static_cast<int16_t>(scale));
  for (size_t i = first; i < last; ++i) PutInt16(out, groups[i]);
}

void AppendUuid(Int128 h, std::string* out) {
  // DuckDB stores UUIDs as HUGEINT with the top bit flipped (so they sort as unsigned).
  uint64_t upper = static_cast<uint64_t>(h.upper) ^ (uint64_t{1} << 63);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(upper >> 32),
                static_cast<unsigned>((upper >> 16) & 0xffff), static_cast<unsigned>(upper & 0xffff),
                static_cast<unsigned>(h.lower >> 48), static_cast<unsigned long long>(h.lower & 0xffffffffffffULL));
  out->append(buf);
}

bool IsScalarArrayElement(const TypeInfo& t) {
  switch (t.type) {
    case ColumnType::kList: case ColumnType::kArray: case ColumnType::kStruct: case ColumnType::kMap:
    case ColumnType::kUnion: return false;
    default: return ArrayOidOf(PgTypeFor(t).oid) != 0;
  }
}

// Array element text: quoted when PostgreSQL's array_out would (§8.15.6).
void AppendArrayElementText(const VectorView& v, size_t row, std::string* out) {
  std::string s;
  EncodeText(v, row, &s);
  bool quote = s.empty() || EqualsIgnoreCase(s, "NULL");
  for (char c : s) {
    if (c == '{' || c == '}' || c == ',' || c == '"' || c == '\\' || c == ' ' || c == '\t' || c == '\n' ||
        c == '\r') {
      quote = true;
      break;
    }
  }
  if (!quote) {
    out->append(s);
    return;
  }
  out->push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace

PgType PgTypeFor(const TypeInfo& t) {
  switch (t.type) {
    case ColumnType::kBoolean: return {oid::kBool, 1};
    case ColumnType::kTinyInt:
    case ColumnType::kSmallInt:
    case ColumnType::kUTinyInt: return {oid::kInt2, 2};
    case ColumnType::kInteger:
    case ColumnType::kUSmallInt: return {oid::kInt4, 4};
    case ColumnType::kBigInt:
    case ColumnType::kUInteger: return {oid::kInt8, 8};
    case ColumnType::kUBigInt:
    case ColumnType::kHugeInt:
    case ColumnType::kUHugeInt: return {oid::kNumeric, -1};
    case ColumnType::kFloat: return {oid::kFloat4, 4};
    case ColumnType::kDouble: return {oid::kFloat8, 8};
    case ColumnType::kDecimal: return {oid::kNumeric, -1, ((int32_t{t.width} << 16) | t.scale) + 4};
    case ColumnType::kVarchar:
      if (EqualsIgnoreCase(t.alias, "JSON")) return {oid::kJson, -1};
      return {oid::kText, -1};
    case ColumnType::kBlob: return {oid::kBytea, -1};
    case ColumnType::kDate: return {oid::kDate, 4};
    case ColumnType::kTime: return {oid::kTime, 8};
    case ColumnType::kTimeTz: return {oid::kTimeTz, 12};
    case ColumnType::kTimestamp:
    case ColumnType::kTimestampS:
    case ColumnType::kTimestampMs:
    case ColumnType::kTimestampNs: return {oid::kTimestamp, 8};
    case ColumnType::kTimestampTz: return {oid::kTimestampTz, 8};
    case ColumnType::kInterval: return {oid::kInterval, 16};
    case ColumnType::kUuid: return {oid::kUuid, 16};
    case ColumnType::kList:
    case ColumnType::kArray:
      if (IsScalarArrayElement(t.children[0])) return {ArrayOidOf(PgTypeFor(t.children[0]).oid), -1};
      return {oid::kText, -1};
    default: return {oid::kText, -1};  // ENUM, STRUCT, MAP, UNION, BIT …: their text form
  }
}

int32_t ArrayOidOf(int32_t elem) {
  switch (elem) {
    case oid::kBool: return 1000;
    case oid::kBytea: return 1001;
    case oid::kInt2: return 1005;
    case oid::kInt4: return 1007;
    case oid::kInt8: return 1016;
    case oid::kText: return 1009;
    case oid::kVarchar: return 1015;
    case oid::kFloat4: return 1021;
    case oid::kFloat8: return 1022;
    case oid::kDate: return 1182;
    case oid::kTime: return 1183;
    case oid::kTimestamp: return 1115;
    case oid::kTimestampTz: return 1185;
    case oid::kInterval: return 1187;
    case oid::kNumeric: return 1231;
    case oid::kUuid: return 2951;
    case oid::kJson: return 199;
    case oid::kJsonb: return 3807;
    case oid::kTimeTz: return 1270;
    default: return 0;
  }
}

int32_t ElementOidOf(int32_t array_oid) {
  static const int32_t kElems[] = {oid::kBool, oid::kBytea, oid::kInt2, oid::kInt4, oid::kInt8, oid::kText,
                                   oid::kVarchar, oid::kFloat4, oid::kFloat8, oid::kDate, oid::kTime,
                                   oid::kTimestamp, oid::kTimestampTz, oid::kInterval, oid::kNumeric,
                                   oid::kUuid, oid::kJson, oid::kJsonb, oid::kTimeTz};
  for (int32_t e : kElems) {
    if (ArrayOidOf(e) == array_oid) return e;
  }
  return 0;
}

const char* PgTypeName(int32_t o) {
  switch (o) {
    case oid::kBool: return "boolean";
    case oid::kBytea: return "bytea";
    case oid::kInt2: return "smallint";
    case oid::kInt4: return "integer";
    case oid::kInt8: return "bigint";
    case oid::kText: return "text";
    case oid::kVarchar: return "character varying";
    case oid::kFloat4: return "real";
    case oid::kFloat8: return "double precision";
    case oid::kNumeric: return "numeric";
    case oid::kDate: return "date";
    case oid::kTime: return "time without time zone";
    case oid::kTimestamp: return "timestamp without time zone";
    case oid::kTimestampTz: return "timestamp with time zone";
    case oid::kInterval: return "interval";
    case oid::kUuid: return "uuid";
    case oid::kJson: return "json";
    case oid::kJsonb: return "jsonb";
    default: return "unknown";
  }
}

void EncodeText(const VectorView& v, size_t row, std::string* out) {
  const TypeInfo& t = v.type();
  switch (t.type) {
    case ColumnType::kBoolean: out->push_back(v.Get<bool>(row) ? 't' : 'f'); return;
    case ColumnType::kTinyInt: out->append(std::to_string(v.Get<int8_t>(row))); return;
    case ColumnType::kSmallInt: out->append(std::to_string(v.Get<int16_t>(row))); return;
    case ColumnType::kInteger: out->append(std::to_string(v.Get<int32_t>(row))); return;
    case ColumnType::kBigInt: out->append(std::to_string(v.Get<int64_t>(row))); return;
    case ColumnType::kUTinyInt: out->append(std::to_string(v.Get<uint8_t>(row))); return;
    case ColumnType::kUSmallInt: out->append(std::to_string(v.Get<uint16_t>(row))); return;
    case ColumnType::kUInteger: out->append(std::to_string(v.Get<uint32_t>(row))); return;
    case ColumnType::kUBigInt: out->append(std::to_string(v.Get<uint64_t>(row))); return;
    case ColumnType::kHugeInt: {
      Int128 h = v.Get<Int128>(row);
      AppendDecimalText(static_cast<__int128>(static_cast<unsigned __int128>(h.upper) << 64 | h.lower), 0, out);
      return;
    }
    case ColumnType::kUHugeInt: {
      Int128 h = v.Get<Int128>(row);
      out->append(Int128ToString(static_cast<unsigned __int128>(static_cast<uint64_t>(h.upper)) << 64 | h.lower));
      return;
    }
    case ColumnType::kFloat: AppendDouble(v.Get<float>(row), out, true); return;
    case ColumnType::kDouble: AppendDouble(v.Get<double>(row), out, false); return;
    case ColumnType::kDecimal: AppendDecimalText(v.GetDecimal(row), t.scale, out); return;
    case ColumnType::kVarchar:
    case ColumnType::kBit: out->append(v.GetString(row)); return;
    case ColumnType::kBlob: {
      static const char* kHex = "0123456789abcdef";
      std::string_view b = v.GetString(row);
      out->append("\\x");
      for (unsigned char c : b) {
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
      }
      return;
    }
    case ColumnType::kDate: {
      int32_t d = v.Get<int32_t>(row);
      if (d == std::numeric_limits<int32_t>::max()) return out->append("infinity"), void();
      if (d == -std::numeric_limits<int32_t>::max()) return out->append("-infinity"), void();
      AppendDate(d, out);
      return;
    }
    case ColumnType::kTime: AppendTime(v.Get<int64_t>(row), out); return;
    case ColumnType::kTimeTz: {
      int64_t us;
      int32_t off;
      v.GetTimeTz(row, &us, &off);
      AppendTime(us, out);
      char buf[16];
      int a = off < 0 ? -off : off;
      std::snprintf(buf, sizeof(buf), "%c%02d", off < 0 ? '-' : '+', a / 3600);
      out->append(buf);
      if (a % 3600) {
        std::snprintf(buf, sizeof(buf), ":%02d", a / 60 % 60);
        out->append(buf);
      }
      return;
    }
    case ColumnType::kTimestamp: AppendTimestamp(v.Get<int64_t>(row), out, false); return;
    case ColumnType::kTimestampS: AppendTimestamp(v.Get<int64_t>(row) * 1000000, out, false); return;
    case ColumnType::kTimestampMs: AppendTimestamp(v.Get<int64_t>(row) * 1000, out, false); return;
    case ColumnType::kTimestampNs: AppendTimestamp(v.Get<int64_t>(row) / 1000, out, false); return;
    case ColumnType::kTimestampTz: AppendTimestamp(v.Get<int64_t>(row), out, true); return;
    case ColumnType::kInterval: AppendInterval(v.Get<Interval>(row), out); return;
    case ColumnType::kUuid: AppendUuid(v.Get<Int128>(row), out); return;
    case ColumnType::kEnum: out->append(v.GetEnum(row)); return;
    case ColumnType::kList:
    case ColumnType::kArray: {
      uint64_t off, len;
      v.GetList(row, &off, &len);
      const VectorView& c = v.child(0);
      out->push_back('{');
      for (uint64_t i = 0; i < len; ++i) {
        if (i) out->push_back(',');
        if (c.IsNull(off + i)) {
          out->append("NULL");
        } else if (c.type().type == ColumnType::kList || c.type().type == ColumnType::kArray) {
          EncodeText(c, off + i, out);  // nested arrays print as nested braces
        } else {
          AppendArrayElementText(c, off + i, out);
        }
      }
      out->push_back('}');
      return;
    }
    case ColumnType::kMap: {
      uint64_t off, len;
      v.GetList(row, &off, &len);
      const VectorView& entry = v.child(0);
      out->push_back('{');
      for (uint64_t i = 0; i < len; ++i) {
        if (i) out->append(", ");
        EncodeText(entry.child(0), off + i, out);
        out->push_back('=');
        if (entry.child(1).IsNull(off + i)) {
          out->append("NULL");
        } else {
          EncodeText(entry.child(1), off + i, out);
        }
      }
      out->push_back('}');
      return;
    }
    case ColumnType::kStruct: {
      out->push_back('{');
      for (size_t i = 0; i < t.children.size(); ++i) {
        if (i) out->append(", ");
        out->append("'" + t.child_names[i] + "': ");
        if (v.child(i).IsNull(row)) {
          out->append("NULL");
        } else {
          EncodeText(v.child(i), row, out);
        }
      }
      out->push_back('}');
      return;
    }
    default:
      out->append("<");
      out->append(ColumnTypeName(t.type));
      out->append(">");
      return;
  }
}

void EncodeBinary(const VectorView& v, size_t row, std::string* out) {
  const TypeInfo& t = v.type();
  switch (t.type) {
    case ColumnType::kBoolean: out->push_back(v.Get<bool>(row) ? 1 : 0); return;
    case ColumnType::kTinyInt: PutInt16(out, v.Get<int8_t>(row)); return;
    case ColumnType::kSmallInt: PutInt16(out, v.Get<int16_t>(row)); return;
    case ColumnType::kUTinyInt: PutInt16(out, v.Get<uint8_t>(row)); return;
    case ColumnType::kInteger: PutInt32(out, v.Get<int32_t>(row)); return;
    case ColumnType::kUSmallInt: PutInt32(out, v.Get<uint16_t>(row)); return;
    case ColumnType::kBigInt: PutInt64(out, v.Get<int64_t>(row)); return;
    case ColumnType::kUInteger: PutInt64(out, v.Get<uint32_t>(row)); return;
    case ColumnType::kUBigInt: AppendNumericBinary(v.Get<uint64_t>(row), 0, out); return;
    case ColumnType::kHugeInt:
    case ColumnType::kUHugeInt: {
      Int128 h = v.Get<Int128>(row);
      AppendNumericBinary(static_cast<__int128>(static_cast<unsigned __int128>(h.upper) << 64 | h.lower), 0, out);
      return;
    }
    case ColumnType::kFloat: {
      float f = v.Get<float>(row);
      uint32_t u;
      std::memcpy(&u, &f, 4);
      PutInt32(out, static_cast<int32_t>(u));
      return;
    }
    case ColumnType::kDouble: {
      double d = v.Get<double>(row);
      uint64_t u;
      std::memcpy(&u, &d, 8);
      PutInt64(out, static_cast<int64_t>(u));
      return;
    }
    case ColumnType::kDecimal: AppendNumericBinary(v.GetDecimal(row), t.scale, out); return;
    case ColumnType::kVarchar:
    case ColumnType::kBlob: out->append(v.GetString(row)); return;
    case ColumnType::kDate: {
      int32_t d = v.Get<int32_t>(row);
      if (d == std::numeric_limits<int32_t>::max() || d == -std::numeric_limits<int32_t>::max()) {
        PutInt32(out, d > 0 ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int32_t>::min());
      } else {
        PutInt32(out, d - kPgEpochDays);
      }
      return;
    }
    case ColumnType::kTime: PutInt64(out, v.Get<int64_t>(row)); return;
    case ColumnType::kTimeTz: {
      int64_t us;
      int32_t off;
      v.GetTimeTz(row, &us, &off);
      PutInt64(out, us);
      PutInt32(out, -off);  // PostgreSQL stores seconds west of UTC
      return;
    }
    case ColumnType::kTimestamp:
    case ColumnType::kTimestampTz:
    case ColumnType::kTimestampS:
    case ColumnType::kTimestampMs:
    case ColumnType::kTimestampNs: {
      int64_t us = v.Get<int64_t>(row);
      if (t.type == ColumnType::kTimestampS) us *= 1000000;
      if (t.type == ColumnType::kTimestampMs) us *= 1000;
      if (t.type == ColumnType::kTimestampNs) us /= 1000;
      if (us == std::numeric_limits<int64_t>::max() || us == -std::numeric_limits<int64_t>::max()) {
        PutInt64(out, us > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min());
      } else {
        PutInt64(out, us - kPgEpochMicros);
      }
      return;
    }
    case ColumnType::kInterval: {
      Interval iv = v.Get<Interval>(row);
      PutInt64(out, iv.micros);
      PutInt32(out, iv.days);
      PutInt32(out, iv.months);
      return;
    }
    case ColumnType::kUuid: {
      Int128 h = v.Get<Int128>(row);
      PutInt64(out, static_cast<int64_t>(static_cast<uint64_t>(h.upper) ^ (uint64_t{1} << 63)));
      PutInt64(out, static_cast<int64_t>(h.lower));
      return;
    }
    case ColumnType::kList:
    case ColumnType::kArray: {
      if (PgTypeFor(t).oid == oid::kText) break;  // sent as text (nested/struct elements)
      // §8.15 array_send: ndim, has-nulls flag, element OID, (size, lower bound), elements.
      uint64_t off, len;
      v.GetList(row, &off, &len);
      const VectorView& c = v.child(0);
      bool has_null = false;
      for (uint64_t i = 0; i < len; ++i) has_null |= c.IsNull(off + i);
      PutInt32(out, len ? 1 : 0);
      PutInt32(out, has_null ? 1 : 0);
      PutInt32(out, PgTypeFor(c.type()).oid);
      if (len) {
        PutInt32(out, static_cast<int32_t>(len));
        PutInt32(out, 1);
      }
      for (uint64_t i = 0; i < len; ++i) {
        if (c.IsNull(off + i)) {
          PutInt32(out, -1);
          continue;
        }
        size_t at = out->size();
        PutInt32(out, 0);
        EncodeBinary(c, off + i, out);
        auto n = static_cast<uint32_t>(out->size() - at - 4);
        (*out)[at] = static_cast<char>(n >> 24);
        (*out)[at + 1] = static_cast<char>(n >> 16);
        (*out)[at + 2] = static_cast<char>(n >> 8);
        (*out)[at + 3] = static_cast<char>(n);
      }
      return;
    }
    default: break;
  }
  // Types sent as text (OID text): the binary form of text is its bytes.
  EncodeText(v, row, out);
}

int32_t ParamOidFor(ColumnType t) {
  TypeInfo info;
  info.type = t;
  if (t == ColumnType::kInvalid || t == ColumnType::kList || t == ColumnType::kDecimal) {
    return t == ColumnType::kDecimal ? oid::kNumeric : oid::kText;
  }
  return PgTypeFor(info).oid;
}

namespace {

Status BadParam(size_t index, const std::string& why) {
  return Error(ErrorCode::kSqlInvalidBinaryRepresentation,
               "parameter $" + std::to_string(index) + ": " + why);
}

// PostgreSQL's array text '{1,2,"a b"}' → DuckDB's list text '[1, 2, "a b"]'.
std::string ArrayTextToList(std::string_view s) {
  std::string out;
  bool in_quotes = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_quotes) {
      if (c == '\\' && i + 1 < s.size()) {
        out.push_back(c);
        out.push_back(s[++i]);
        continue;
      }
      if (c == '"') in_quotes = false;
      out.push_back(c);
      continue;
    }
    if (c == '"') in_quotes = true;
    out.push_back(c == '{' ? '[' : c == '}' ? ']' : c);
  }
  return out;
}

std::optional<std::string> DecodeHexBytea(std::string_view s) {
  if (!StartsWith(s, "\\x")) return std::string(s);  // escape format: bytes as they are
  return HexDecode(s.substr(2));
}

// NUMERIC binary → text.
Result<std::string> NumericBinaryToText(std::string_view b, size_t index) {
  if (b.size() < 8) return BadParam(index, "numeric too short");
  int16_t ndigits = static_cast<int16_t>(GetBE(b.substr(0, 2)));
  int16_t weight = static_cast<int16_t>(GetBE(b.substr(2, 2)));
  uint16_t sign = static_cast<uint16_t>(GetBE(b.substr(4, 2)));
  int16_t dscale = static_cast<int16_t>(GetBE(b.substr(6, 2)));
  if (ndigits < 0 || b.size() != 8 + 2 * static_cast<size_t>(ndigits) || dscale < 0 || dscale > 1000) {
    return BadParam(index, "malformed numeric");
  }
  if (sign == 0xC000) return std::string("NaN");
  std::string ip, fp;
  for (int i = 0; i <= weight || i < 0; ++i) {
    if (i > weight) break;
    int d = i < ndigits ? static_cast<int>(GetBE(b.substr(8 + 2 * i, 2))) : 0;
    char g[8];
    std::snprintf(g, sizeof(g), i == 0 ? "%d" : "%04d", d);
    ip += g;
  }
  if (ip.empty()) ip = "0";
  for (int i = weight + 1; static_cast<int>(fp.size()) < dscale; ++i) {
    int d = (i >= 0 && i < ndigits) ? static_cast<int>(GetBE(b.substr(8 + 2 * i, 2))) : 0;
    if (i < 0) d = 0;
    char g[8];
    std::snprintf(g, sizeof(g), "%04d", d);
    fp += g;
  }
  fp.resize(static_cast<size_t>(dscale));
  std::string out = sign == 0x4000 ? "-" : "";
  out += ip;
  if (dscale) out += "." + fp;
  return out;
}

Result<std::string> ArrayBinaryToList(std::string_view b, size_t index);

// One binary element/parameter → DuckDB literal text (for arrays) .
Result<std::string> BinaryToLiteral(int32_t type_oid, std::string_view b, size_t index) {
  switch (type_oid) {
    case oid::kInt2: case oid::kInt4: case oid::kInt8: return std::to_string(GetBE(b));
    case oid::kBool: return std::string(b.size() == 1 && b[0] ? "true" : "false");
    case oid::kFloat4: {
      uint32_t u = static_cast<uint32_t>(GetBE(b));
      float f;
      std::memcpy(&f, &u, 4);
      std::string s;
      AppendDouble(f, &s, true);
      return s;
    }
    case oid::kFloat8: {
      uint64_t u = static_cast<uint64_t>(GetBE(b));
      double d;
      std::memcpy(&d, &u, 8);
      std::string s;
      AppendDouble(d, &s, false);
      return s;
    }
    case oid::kNumeric: return NumericBinaryToText(b, index);
    case oid::kDate: {
      std::string s;
      AppendDate(GetBE(b) + kPgEpochDays, &s);
      return s;
    }
    case oid::kTimestamp: case oid::kTimestampTz: {
      std::string s;
      AppendTimestamp(GetBE(b) + kPgEpochMicros, &s, type_oid == oid::kTimestampTz);
      return s;
    }
    case oid::kUuid: {
      if (b.size() != 16) return BadParam(index, "uuid must be 16 bytes");
      Int128 h{static_cast<uint64_t>(GetBE(b.substr(8))),
               static_cast<int64_t>(static_cast<uint64_t>(GetBE(b.substr(0, 8))) ^ (uint64_t{1} << 63))};
      std::string s;
      AppendUuid(h, &s);
      return s;
    }
    default:
      if (ElementOidOf(type_oid)) return ArrayBinaryToList(b, index);
      return std::string(b);
  }
}

Result<std::string> ArrayBinaryToList(std::string_view b, size_t index) {
  if (b.size() < 12) return BadParam(index, "array too short");
  int32_t ndim = static_cast<int32_t>(GetBE(b.substr(0, 4)));
  int32_t elem = static_cast<int32_t>(GetBE(b.substr(8, 4)));
  if (ndim == 0) return std::string("[]");
  if (ndim != 1 || b.size() < 20) return BadParam(index, "only one-dimensional arrays are supported");
  int32_t n = static_cast<int32_t>(GetBE(b.substr(12, 4)));
  size_t pos = 20;
  std::string out = "[";
  for (int32_t i = 0; i < n; ++i) {
    if (pos + 4 > b.size()) return BadParam(index, "array truncated");
    int32_t len = static_cast<int32_t>(GetBE(b.substr(pos, 4)));
    pos += 4;
    if (i) out += ", ";
    if (len < 0) {
      out += "NULL";
      continue;
    }
    if (pos + static_cast<size_t>(len) > b.size()) return BadParam(index, "array truncated");
    ASSIGN_OR_RETURN(std::string lit, BinaryToLiteral(elem, b.substr(pos, static_cast<size_t>(len)), index));
    pos += static_cast<size_t>(len);
    bool quote = elem == oid::kText || elem == oid::kVarchar || elem == oid::kDate || elem == oid::kTimestamp ||
                 elem == oid::kTimestampTz || elem == oid::kUuid || elem == oid::kJson || elem == oid::kBpchar;
    if (quote) {
      out += '"';
      for (char c : lit) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      out += '"';
    } else {
      out += lit;
    }
  }
  out += "]";
  return out;
}

}  // namespace

Status BindParameter(PreparedStatement& stmt, size_t index, int32_t type_oid, int16_t format,
                     const std::optional<std::string>& value) {
  if (!value) return stmt.BindNull(index);
  const std::string& s = *value;
  ColumnType target = stmt.param_type(index);
  if (type_oid == oid::kUnknownParam || type_oid == oid::kUnknown) {
    type_oid = format == 1 ? ParamOidFor(target) : oid::kUnknownParam;
  }
  if (format == 0) {
    if (!IsValidUtf8(s)) {
      return Error(ErrorCode::kSqlCharacterNotInRepertoire, "invalid byte sequence for encoding \"UTF8\"");
    }
    switch (type_oid) {
      case oid::kInt2: case oid::kInt4: case oid::kInt8: case oid::kOid: {
        auto v = ParseInt64(Trim(s));
        if (!v) return Error(ErrorCode::kSqlConversion, "invalid input syntax for type integer: \"" + s + "\"");
        return stmt.Bind(index, *v);
      }
      case oid::kFloat4: case oid::kFloat8: {
        std::string t(Trim(s));
        char* end = nullptr;
        double d = std::strtod(t.c_str(), &end);
        if (t.empty() || *end) {
          return Error(ErrorCode::kSqlConversion, "invalid input syntax for type double precision: \"" + s + "\"");
        }
        return stmt.Bind(index, d);
      }
      case oid::kBool: {
        std::string t = ToLower(Trim(s));
        if (t == "t" || t == "true" || t == "1" || t == "yes" || t == "on" || t == "y") return stmt.Bind(index, true);
        if (t == "f" || t == "false" || t == "0" || t == "no" || t == "off" || t == "n") return stmt.Bind(index, false);
        return Error(ErrorCode::kSqlConversion, "invalid input syntax for type boolean: \"" + s + "\"");
      }
      case oid::kBytea: {
        auto b = DecodeHexBytea(s);
        if (!b) return Error(ErrorCode::kSqlConversion, "invalid hexadecimal data for bytea");
        return stmt.BindBlob(index, *b);
      }
      default: break;
    }
    if (target == ColumnType::kBlob) {
      auto b = DecodeHexBytea(s);
      if (!b) return Error(ErrorCode::kSqlConversion, "invalid hexadecimal data for bytea");
      return stmt.BindBlob(index, *b);
    }
    if (ElementOidOf(type_oid) || target == ColumnType::kList ||
        (target == ColumnType::kInvalid && StartsWith(s, "{") && type_oid != oid::kText &&
         type_oid != oid::kJson && type_oid != oid::kJsonb && type_oid != oid::kVarchar && type_oid != oid::kUnknownParam)) {
      return stmt.Bind(index, std::string_view(ArrayTextToList(s)));
    }
    // Everything else goes in as text and DuckDB casts it to the parameter's type.
    return stmt.Bind(index, std::string_view(s));
  }
  // Binary formats (typreceive).
  auto need = [&](size_t n) -> Status {
    if (s.size() != n) {
      return BadParam(index, "expected " + std::to_string(n) + " bytes for " + PgTypeName(type_oid) + ", got " +
                                 std::to_string(s.size()));
    }
    return Status::OK();
  };
  switch (type_oid) {
    case oid::kBool: RETURN_IF_ERROR(need(1)); return stmt.Bind(index, s[0] != 0);
    case oid::kInt2: RETURN_IF_ERROR(need(2)); return stmt.Bind(index, GetBE(s));
    case oid::kInt4: case oid::kOid: RETURN_IF_ERROR(need(4)); return stmt.Bind(index, GetBE(s));
    case oid::kInt8: RETURN_IF_ERROR(need(8)); return stmt.Bind(index, GetBE(s));
    case oid::kFloat4: {
      RETURN_IF_ERROR(need(4));
      uint32_t u = static_cast<uint32_t>(GetBE(s));
      float f;
      std::memcpy(&f, &u, 4);
      return stmt.Bind(index, static_cast<double>(f));
    }
    case oid::kFloat8: {
      RETURN_IF_ERROR(need(8));
      uint64_t u = static_cast<uint64_t>(GetBE(s));
      double d;
      std::memcpy(&d, &u, 8);
      return stmt.Bind(index, d);
    }
    case oid::kText: case oid::kVarchar: case oid::kBpchar: case oid::kName: case oid::kJson: case oid::kChar:
      if (!IsValidUtf8(s)) {
        return Error(ErrorCode::kSqlCharacterNotInRepertoire, "invalid byte sequence for encoding \"UTF8\"");
      }
      return stmt.Bind(index, std::string_view(s));
    case oid::kJsonb:
      if (s.empty() || s[0] != 1) return BadParam(index, "unsupported jsonb version");
      return stmt.Bind(index, std::string_view(s).substr(1));
    case oid::kBytea: return stmt.BindBlob(index, s);
    case oid::kDate: RETURN_IF_ERROR(need(4)); return stmt.BindDate(index, static_cast<int32_t>(GetBE(s)) + kPgEpochDays);
    case oid::kTime: RETURN_IF_ERROR(need(8)); return stmt.BindTime(index, GetBE(s));
    case oid::kTimestamp: RETURN_IF_ERROR(need(8)); return stmt.BindTimestamp(index, GetBE(s) + kPgEpochMicros);
    case oid::kTimestampTz: RETURN_IF_ERROR(need(8)); return stmt.BindTimestampTz(index, GetBE(s) + kPgEpochMicros);
    case oid::kInterval: {
      RETURN_IF_ERROR(need(16));
      Interval iv{static_cast<int32_t>(GetBE(s.substr(12, 4))), static_cast<int32_t>(GetBE(s.substr(8, 4))),
                  GetBE(s.substr(0, 8))};
      return stmt.BindInterval(index, iv);
    }
    case oid::kUuid:
      RETURN_IF_ERROR(need(16));
      return stmt.BindUuid(index, static_cast<uint64_t>(GetBE(s.substr(0, 8))), static_cast<uint64_t>(GetBE(s.substr(8))));
    case oid::kNumeric: {
      ASSIGN_OR_RETURN(std::string text, NumericBinaryToText(s, index));
      if (target == ColumnType::kInvalid || target == ColumnType::kDouble || target == ColumnType::kFloat) {
        return stmt.Bind(index, std::strtod(text.c_str(), nullptr));
      }
      return stmt.Bind(index, std::string_view(text));
    }
    default:
      if (ElementOidOf(type_oid)) {
        ASSIGN_OR_RETURN(std::string list, ArrayBinaryToList(s, index));
        return stmt.Bind(index, std::string_view(list));
      }
      return BadParam(index, "binary format for type OID " + std::to_string(type_oid) + " is not supported");
  }
}

}  // namespace tarn::sql::pgwire
