#include "sql/pgwire/row_encoder.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <limits>

#include "sql/pgwire/types.h"

namespace tarn::sql::pgwire {

enum class RowEncoder::Kind : uint8_t {
  kGenericText,    // EncodeText
  kGenericBinary,  // EncodeBinary
  kString,         // VARCHAR in either format, BLOB in binary: the bytes as they are
  kBoolBinary,
  kBoolText,
  kInt8As2,  // TINYINT → int2
  kInt16,
  kInt32,
  kInt64,
  kFloat,
  kDouble,
  kDateBinary,
  kTimestampBinary,  // TIMESTAMP / TIMESTAMPTZ in microseconds
  kIntText8,
  kIntText16,
  kIntText32,
  kIntText64,
};

namespace {

// PostgreSQL's epoch for dates and timestamps on the wire is 2000-01-01.
constexpr int32_t kPgEpochDays = 10957;
constexpr int64_t kPgEpochMicros = 946684800000000LL;

inline char* Put16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v);
  return p + 2;
}
inline char* Put32(char* p, uint32_t v) {
  v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
  return p + 4;
}
inline char* Put64(char* p, uint64_t v) {
  v = __builtin_bswap64(v);
  std::memcpy(p, &v, 8);
  return p + 8;
}

template <typename T>
inline T Load(const void* data, size_t row) {
  T v;
  std::memcpy(&v, static_cast<const char*>(data) + row * sizeof(T), sizeof(T));
  return v;
}

// Writes an integer in decimal after a 4-byte length.
template <typename T>
inline char* PutIntText(char* p, T v) {
  char* start = p + 4;
  auto r = std::to_chars(start, start + 24, v);
  Put32(p, static_cast<uint32_t>(r.ptr - start));
  return r.ptr;
}

}  // namespace

void RowEncoder::Reset(const Chunk& chunk, size_t columns, const std::vector<bool>& binary, char message_type) {
  message_type_ = message_type;
  columns_.resize(columns);
  for (size_t c = 0; c < columns; ++c) {
    const VectorView& v = chunk.column(c);
    bool bin = c < binary.size() && binary[c];
    Column& col = columns_[c];
    col.view = &v;
    col.data = v.data();
    col.validity = v.validity();
    Kind k = bin ? Kind::kGenericBinary : Kind::kGenericText;
    // JSON and other aliased VARCHARs keep their own encoders (types.cc decides their OIDs).
    bool plain = v.type().alias.empty();
    switch (v.type().type) {
      case ColumnType::kVarchar: if (plain) k = Kind::kString; break;
      case ColumnType::kBlob: if (bin && plain) k = Kind::kString; break;
      case ColumnType::kBoolean: k = bin ? Kind::kBoolBinary : Kind::kBoolText; break;
      case ColumnType::kTinyInt: k = bin ? Kind::kInt8As2 : Kind::kIntText8; break;
      case ColumnType::kSmallInt: k = bin ? Kind::kInt16 : Kind::kIntText16; break;
      case ColumnType::kInteger: k = bin ? Kind::kInt32 : Kind::kIntText32; break;
      case ColumnType::kBigInt: k = bin ? Kind::kInt64 : Kind::kIntText64; break;
      case ColumnType::kFloat: if (bin) k = Kind::kFloat; break;
      case ColumnType::kDouble: if (bin) k = Kind::kDouble; break;
      case ColumnType::kDate: if (bin) k = Kind::kDateBinary; break;
      case ColumnType::kTimestamp:
      case ColumnType::kTimestampTz: if (bin) k = Kind::kTimestampBinary; break;
      default: break;
    }
    col.kind = k;
  }
}

size_t RowEncoder::Encode(size_t begin, size_t end, std::string* out, size_t limit) {
  size_t pos = out->size();
  size_t cap = out->size();
  char* base = out->data();
  // Makes room for n more bytes at pos (amortised: the string grows by doubling).
  auto reserve = [&](size_t n) -> char* {
    if (pos + n > cap) {
      cap = std::max(pos + n + 4096, cap * 2);
      out->resize(cap);
      base = out->data();
    }
    return base + pos;
  };
  const size_t ncols = columns_.size();
  size_t row = begin;
  for (; row < end; ++row) {
    // Message head: 'D', length (patched below), column count.
    char* p = reserve(7 + ncols * 12);
    size_t msg_start = pos;
    p[0] = message_type_;
    Put16(p + 5, static_cast<uint16_t>(ncols));
    pos += 7;
    for (size_t c = 0; c < ncols; ++c) {
      const Column& col = columns_[c];
      if (col.validity && !((col.validity[row >> 6] >> (row & 63)) & 1)) {
        p = reserve(4);
        Put32(p, 0xFFFFFFFFu);  // NULL
        pos += 4;
        continue;
      }
      switch (col.kind) {
        case Kind::kString: {
          std::string_view s = col.view->GetString(row);
          p = reserve(4 + s.size());
          Put32(p, static_cast<uint32_t>(s.size()));
          std::memcpy(p + 4, s.data(), s.size());
          pos += 4 + s.size();
          break;
        }
        case Kind::kBoolBinary:
          p = reserve(5);
          Put32(p, 1);
          p[4] = Load<bool>(col.data, row) ? 1 : 0;
          pos += 5;
          break;
        case Kind::kBoolText:
          p = reserve(5);
          Put32(p, 1);
          p[4] = Load<bool>(col.data, row) ? 't' : 'f';
          pos += 5;
          break;
        case Kind::kInt8As2:
          p = reserve(6);
          Put16(Put32(p, 2), static_cast<uint16_t>(static_cast<int16_t>(Load<int8_t>(col.data, row))));
          pos += 6;
          break;
        case Kind::kInt16:
          p = reserve(6);
          Put16(Put32(p, 2), static_cast<uint16_t>(Load<int16_t>(col.data, row)));
          pos += 6;
          break;
        case Kind::kInt32:
          p = reserve(8);
          Put32(Put32(p, 4), static_cast<uint32_t>(Load<int32_t>(col.data, row)));
          pos += 8;
          break;
        case Kind::kInt64:
          p = reserve(12);
          Put64(Put32(p, 8), static_cast<uint64_t>(Load<int64_t>(col.data, row)));
          pos += 12;
          break;
        case Kind::kFloat:
          p = reserve(8);
          Put32(Put32(p, 4), Load<uint32_t>(col.data, row));
          pos += 8;
          break;
        case Kind::kDouble:
          p = reserve(12);
          Put64(Put32(p, 8), Load<uint64_t>(col.data, row));
          pos += 12;
          break;
        case Kind::kDateBinary: {
          int32_t d = Load<int32_t>(col.data, row);
          constexpr int32_t kInf = std::numeric_limits<int32_t>::max();
          int32_t w = d == kInf ? kInf : d == -kInf ? std::numeric_limits<int32_t>::min() : d - kPgEpochDays;
          p = reserve(8);
          Put32(Put32(p, 4), static_cast<uint32_t>(w));
          pos += 8;
          break;
        }
        case Kind::kTimestampBinary: {
          int64_t us = Load<int64_t>(col.data, row);
          constexpr int64_t kInf = std::numeric_limits<int64_t>::max();
          int64_t w = us == kInf ? kInf : us == -kInf ? std::numeric_limits<int64_t>::min() : us - kPgEpochMicros;
          p = reserve(12);
          Put64(Put32(p, 8), static_cast<uint64_t>(w));
          pos += 12;
          break;
        }
        case Kind::kIntText8:
          p = reserve(4 + 24);
          pos = PutIntText(p, static_cast<int>(Load<int8_t>(col.data, row))) - base;
          break;
        case Kind::kIntText16:
          p = reserve(4 + 24);
          pos = PutIntText(p, Load<int16_t>(col.data, row)) - base;
          break;
        case Kind::kIntText32:
          p = reserve(4 + 24);
          pos = PutIntText(p, Load<int32_t>(col.data, row)) - base;
          break;
        case Kind::kIntText64:
          p = reserve(4 + 24);
          pos = PutIntText(p, Load<int64_t>(col.data, row)) - base;
          break;
        case Kind::kGenericText:
        case Kind::kGenericBinary:
          scratch_.clear();
          if (col.kind == Kind::kGenericText) {
            EncodeText(*col.view, row, &scratch_);
          } else {
            EncodeBinary(*col.view, row, &scratch_);
          }
          p = reserve(4 + scratch_.size());
          Put32(p, static_cast<uint32_t>(scratch_.size()));
          std::memcpy(p + 4, scratch_.data(), scratch_.size());
          pos += 4 + scratch_.size();
          break;
      }
    }
    Put32(base + msg_start + 1, static_cast<uint32_t>(pos - msg_start - 1));
    if (pos > limit) {
      ++row;
      break;
    }
  }
  out->resize(pos);
  return row - begin;
}

namespace {

// COPY text format: backslash, the delimiter and the control characters PostgreSQL escapes
// (CopyAttributeOutText). Returns the end of the written value; `p` has room for 2 × size.
char* PutCopyText(char* p, std::string_view v, char delim) {
  for (char c : v) {
    char e = 0;
    switch (c) {
      case '\\': e = '\\'; break;
      case '\n': e = 'n'; break;
      case '\r': e = 'r'; break;
      case '\t': e = 't'; break;
      case '\b': e = 'b'; break;
      case '\f': e = 'f'; break;
      case '\v': e = 'v'; break;
      default:
        if (c == delim) e = c;
    }
    if (e) {
      *p++ = '\\';
      *p++ = e;
    } else {
      *p++ = c;
    }
  }
  return p;
}

// COPY CSV: quoted when it contains the delimiter, a quote, CR or LF, or equals the NULL string
// (so that it reads back as a value); quotes inside are doubled. `p` has room for 2 × size + 2.
char* PutCsv(char* p, std::string_view v, char delim, const std::string& null) {
  bool quote = v == null;
  for (char c : v) quote = quote || c == delim || c == '"' || c == '\n' || c == '\r';
  if (!quote) {
    std::memcpy(p, v.data(), v.size());
    return p + v.size();
  }
  *p++ = '"';
  for (char c : v) {
    if (c == '"') *p++ = '"';
    *p++ = c;
  }
  *p++ = '"';
  return p;
}

}  // namespace

size_t RowEncoder::EncodeCopyText(size_t begin, size_t end, const CopyTextFormat& f, std::string* out,
                                  size_t limit) {
  size_t pos = out->size();
  size_t cap = out->size();
  char* base = out->data();
  auto reserve = [&](size_t n) -> char* {
    if (pos + n > cap) {
      cap = std::max(pos + n + 4096, cap * 2);
      out->resize(cap);
      base = out->data();
    }
    return base + pos;
  };
  // Integers need neither escapes nor quotes unless the delimiter or the NULL string could be
  // taken for one.
  auto numeric = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '-'; };
  bool ints_plain = !numeric(f.delimiter);
  if (!f.null.empty()) {
    bool all_numeric = true;
    for (char c : f.null) all_numeric = all_numeric && numeric(c);
    ints_plain = ints_plain && !all_numeric;
  }
  auto put_value = [&](std::string_view v) {
    char* p = reserve(2 * v.size() + 2);
    char* e = f.csv ? PutCsv(p, v, f.delimiter, f.null) : PutCopyText(p, v, f.delimiter);
    pos = e - base;
  };
  const size_t ncols = columns_.size();
  size_t row = begin;
  char ibuf[24];
  for (; row < end; ++row) {
    char* p = reserve(5);
    size_t msg_start = pos;
    p[0] = 'd';
    pos += 5;
    for (size_t c = 0; c < ncols; ++c) {
      if (c) {
        *reserve(1) = f.delimiter;
        ++pos;
      }
      const Column& col = columns_[c];
      if (col.validity && !((col.validity[row >> 6] >> (row & 63)) & 1)) {
        p = reserve(f.null.size());
        std::memcpy(p, f.null.data(), f.null.size());
        pos += f.null.size();
        continue;
      }
      std::string_view digits;
      switch (col.kind) {
        case Kind::kString: put_value(col.view->GetString(row)); continue;
        case Kind::kBoolText:
          *reserve(1) = Load<bool>(col.data, row) ? 't' : 'f';
          ++pos;
          continue;
        case Kind::kIntText8:
          digits = std::string_view(ibuf, std::to_chars(ibuf, ibuf + 24, static_cast<int>(Load<int8_t>(col.data, row))).ptr - ibuf);
          break;
        case Kind::kIntText16:
          digits = std::string_view(ibuf, std::to_chars(ibuf, ibuf + 24, Load<int16_t>(col.data, row)).ptr - ibuf);
          break;
        case Kind::kIntText32:
          digits = std::string_view(ibuf, std::to_chars(ibuf, ibuf + 24, Load<int32_t>(col.data, row)).ptr - ibuf);
          break;
        case Kind::kIntText64:
          digits = std::string_view(ibuf, std::to_chars(ibuf, ibuf + 24, Load<int64_t>(col.data, row)).ptr - ibuf);
          break;
        default:
          scratch_.clear();
          EncodeText(*col.view, row, &scratch_);
          put_value(scratch_);
          continue;
      }
      if (ints_plain) {
        p = reserve(digits.size());
        std::memcpy(p, digits.data(), digits.size());
        pos += digits.size();
      } else {
        put_value(digits);
      }
    }
    *reserve(1) = '\n';
    ++pos;
    Put32(base + msg_start + 1, static_cast<uint32_t>(pos - msg_start - 1));
    if (pos > limit) {
      ++row;
      break;
    }
  }
  out->resize(pos);
  return row - begin;
}

}  // namespace tarn::sql::pgwire
