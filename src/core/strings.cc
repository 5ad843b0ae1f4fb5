#include "core/strings.h"

#include <openssl/evp.h>

#include <cctype>
#include <charconv>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tarn {

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool EndsWith(std::string_view s, std::string_view x) {
  return s.size() >= x.size() && s.substr(s.size() - x.size()) == x;
}

std::string_view Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) --e;
  return s.substr(b, e - b);
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      return out;
    }
    out.emplace_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  AppendJsonString(&out, s);
  return out.substr(1, out.size() - 2);  // without the quotes
}

std::string XmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      case '\r': out += "&#13;"; break;
      case '\n': out += "&#10;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string UriEncode(std::string_view s, bool encode_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~' || (c == '/' && !encode_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

static int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> UriDecode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = HexVal(s[i + 1]), lo = HexVal(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseQueryString(std::string_view query,
                                                                   bool plus_as_space) {
  std::vector<std::pair<std::string, std::string>> out;
  if (query.empty()) return out;
  for (const std::string& part : Split(query, '&')) {
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string_view k = eq == std::string::npos ? std::string_view(part) : std::string_view(part).substr(0, eq);
    std::string_view v = eq == std::string::npos ? std::string_view() : std::string_view(part).substr(eq + 1);
    auto dk = UriDecode(k, plus_as_space);
    auto dv = UriDecode(v, plus_as_space);
    out.emplace_back(dk ? *dk : std::string(k), dv ? *dv : std::string(v));
  }
  return out;
}

std::string HexEncode(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = kHex[c >> 4];
    out[2 * i + 1] = kHex[c & 15];
  }
  return out;
}

std::optional<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = HexVal(hex[2 * i]), lo = HexVal(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

namespace {

// Base64 decoding (RFC 4648 §4, standard alphabet) four characters at a time: kBase64Groups[k][c]
// is the 6-bit value of character c already shifted to its place among the 24 bits of a group
// when c is the group's k-th character, or kBase64Bad when c is not in the alphabet. ORing a
// group's four look-ups gives its three bytes, with kBase64Bad set if any character was bad.
constexpr uint32_t kBase64Bad = 1u << 31;
struct Base64Groups {
  uint32_t t[4][256];
};
constexpr Base64Groups MakeBase64Groups() {
  Base64Groups g{};
  for (int c = 0; c < 256; ++c) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    for (int k = 0; k < 4; ++k) {
      g.t[k][c] = v < 0 ? kBase64Bad : uint32_t(v) << (6 * (3 - k));
    }
  }
  return g;
}
constexpr Base64Groups kBase64Groups = MakeBase64Groups();

inline uint32_t Base64Group(const unsigned char* p) {
  return kBase64Groups.t[0][p[0]] | kBase64Groups.t[1][p[1]] | kBase64Groups.t[2][p[2]] |
         kBase64Groups.t[3][p[3]];
}

// Decodes `groups` whole groups of four alphabet characters (no padding); returns kBase64Bad's
// bit when one of them was not in the alphabet.
uint32_t Base64DecodeGroups(const unsigned char* p, size_t groups, unsigned char* o) {
  uint32_t bad = 0;
  for (size_t g = 0; g < groups; ++g, p += 4, o += 3) {
    uint32_t v = Base64Group(p);
    bad |= v;
    o[0] = uint8_t(v >> 16);
    o[1] = uint8_t(v >> 8);
    o[2] = uint8_t(v);
  }
  return bad & kBase64Bad;
}

#if defined(__x86_64__)
// AVX2 decoding of 32 characters into 24 bytes per step, after Muła and Lemire, "Faster Base64
// Encoding and Decoding Using AVX2 Instructions" (ACM TOW 2018): each character is classified by
// its high and its low nibble with two 16-entry byte look-ups (vpshufb) whose AND is non-zero
// exactly for characters outside the alphabet; a third look-up by the high nibble gives the
// offset from the character to its 6-bit value; two multiply-adds join four 6-bit values into 24
// bits and two shuffles squeeze out the empty fourth bytes.
//
// The classes of the validity look-up: for each high nibble, the low nibbles that complete a
// character of the alphabet. One bit per distinct class; bit 4 for the high nibbles with none.
constexpr bool Base64InAlphabet(int c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}
constexpr uint8_t Base64HighClass(int hi) {
  switch (hi) {
    case 0x2: return 1 << 0;               // '+' '/'
    case 0x3: return 1 << 1;               // '0'-'9'
    case 0x4: case 0x6: return 1 << 2;     // 'A'-'O', 'a'-'o'
    case 0x5: case 0x7: return 1 << 3;     // 'P'-'Z', 'p'-'z'
    default: return 1 << 4;                // no character of the alphabet
  }
}
struct Base64Nibbles {
  uint8_t high[16];  // the class bit of a high nibble
  uint8_t low[16];   // the class bits in which a low nibble does *not* make an alphabet character
};
constexpr Base64Nibbles MakeBase64Nibbles() {
  Base64Nibbles n{};
  for (int hi = 0; hi < 16; ++hi) n.high[hi] = Base64HighClass(hi);
  for (int lo = 0; lo < 16; ++lo) {
    for (int hi = 0; hi < 16; ++hi) {
      if (!Base64InAlphabet(hi * 16 + lo)) n.low[lo] |= Base64HighClass(hi);
    }
  }
  return n;
}
constexpr Base64Nibbles kBase64Nibbles = MakeBase64Nibbles();
// The check that the classes are exact: every byte is flagged iff it is outside the alphabet.
constexpr bool Base64NibblesExact() {
  for (int c = 0; c < 256; ++c) {
    bool flagged = (kBase64Nibbles.high[c >> 4] & kBase64Nibbles.low[c & 15]) != 0;
    if (flagged == Base64InAlphabet(c)) return false;
  }
  return true;
}
static_assert(Base64NibblesExact());
// Value minus character, by high nibble; '/' (0x2F) shares its high nibble with '+' (0x2B) and
// is looked up one entry lower.
constexpr int8_t kBase64Offsets[16] = {0, 63 - '/', 62 - '+', 52 - '0', 0 - 'A', 0 - 'A',
                                       26 - 'a', 26 - 'a'};

__attribute__((target("avx2"))) size_t Base64DecodeAvx2(const unsigned char* p, size_t n,
                                                        unsigned char* o) {
  const __m256i high_class = _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(kBase64Nibbles.high)));
  const __m256i low_class = _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(kBase64Nibbles.low)));
  const __m256i offsets = _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(kBase64Offsets)));
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i slash = _mm256_set1_epi8('/');
  // (a, b, c, d) -> a * 64 + b, c * 64 + d as 16-bit lanes -> (a * 64 + b) << 12 | c * 64 + d.
  const __m256i join_pairs = _mm256_set1_epi32(0x01400140);
  const __m256i join_quads = _mm256_set1_epi32(0x00011000);
  // Each 32-bit lane holds its three bytes little-endian: take bytes 2, 1, 0 of each lane.
  const __m256i squeeze = _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1,
                                           2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
  size_t done = 0;
  for (; done + 32 <= n; done += 32, o += 24) {
    __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + done));
    __m256i hi = _mm256_and_si256(_mm256_srli_epi32(c, 4), nibble);
    __m256i lo = _mm256_and_si256(c, nibble);
    __m256i flags = _mm256_and_si256(_mm256_shuffle_epi8(high_class, hi),
                                     _mm256_shuffle_epi8(low_class, lo));
    if (!_mm256_testz_si256(flags, flags)) break;  // the portable decoder reports it
    __m256i index = _mm256_add_epi8(hi, _mm256_cmpeq_epi8(c, slash));
    __m256i v = _mm256_add_epi8(c, _mm256_shuffle_epi8(offsets, index));
    v = _mm256_madd_epi16(_mm256_maddubs_epi16(v, join_pairs), join_quads);
    v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, squeeze), lanes);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(v));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(o + 16), _mm256_extracti128_si256(v, 1));
  }
  return done;
}

const bool kHaveAvx2 = [] {
  __builtin_cpu_init();  // may run before libgcc's own constructor
  return __builtin_cpu_supports("avx2") != 0;
}();
#endif

// The decoder behind Base64DecodeTo; `fast` allows the vector path.
bool Base64DecodeImpl(std::string_view b64, std::string* out, bool fast) {
  std::string_view in = Trim(b64);
  out->clear();
  if (in.size() % 4) return false;
  if (in.empty()) return true;
  // Padding: one or two '=' close the last group, and only the last one.
  size_t pad = in.back() == '=' ? (in[in.size() - 2] == '=' ? 2 : 1) : 0;
  size_t groups = in.size() / 4;
  out->resize(groups * 3 - pad);
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  auto* o = reinterpret_cast<unsigned char*>(out->data());
  // Every group but the last: alphabet characters only.
  size_t body = (groups - 1) * 4;
#if defined(__x86_64__)
  if (fast && kHaveAvx2 && body >= 32) {
    size_t done = Base64DecodeAvx2(p, body, o);
    p += done;
    o += done / 4 * 3;
    body -= done;
  }
#else
  (void)fast;
#endif
  uint32_t bad = Base64DecodeGroups(p, body / 4, o);
  p += body;
  o += body / 4 * 3;
  // The last group, its padding read as 'A' (zero bits); the unused low bits before the padding
  // are ignored, as OpenSSL's decoder does.
  unsigned char last[4] = {p[0], p[1], pad == 2 ? uint8_t('A') : p[2], pad ? uint8_t('A') : p[3]};
  uint32_t v = Base64Group(last);
  bad |= v;
  o[0] = uint8_t(v >> 16);
  if (pad < 2) o[1] = uint8_t(v >> 8);
  if (pad < 1) o[2] = uint8_t(v);
  if (bad & kBase64Bad) {
    out->clear();
    return false;
  }
  return true;
}

}  // namespace

bool Base64DecodeTo(std::string_view b64, std::string* out) {
  return Base64DecodeImpl(b64, out, /*fast=*/true);
}

namespace internal {
bool Base64DecodeToPortable(std::string_view b64, std::string* out) {
  return Base64DecodeImpl(b64, out, /*fast=*/false);
}
}  // namespace internal

std::optional<std::string> Base64Decode(std::string_view b64) {
  std::string out;
  if (!Base64DecodeTo(b64, &out)) return std::nullopt;
  return out;
}

std::optional<int64_t> ParseInt64(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<uint64_t> ParseUint64(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

namespace {

// The length of the well-formed multi-byte UTF-8 sequence at s[i] (lead byte >= 0x80), or 0
// (truncated, overlong, surrogate, beyond U+10FFFF, stray continuation byte).
size_t Utf8SequenceAt(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
  else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
  else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
  else return 0;
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    if (static_cast<unsigned char>(s[i]) < 0x80) { ++i; continue; }
    size_t len = Utf8SequenceAt(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

void AppendJsonString(std::string* out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  out->push_back('"');
  size_t i = 0, n = s.size(), plain = 0;  // s[plain, i) is copied as it is
  auto copy_plain = [&] { out->append(s.data() + plain, i - plain); };
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) { ++i; continue; }
    if (c >= 0x80) {
      size_t len = Utf8SequenceAt(s, i);
      if (len) { i += len; continue; }
      copy_plain();
      out->append("\\ufffd");
      plain = ++i;
      continue;
    }
    copy_plain();
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
    }
    plain = ++i;
  }
  copy_plain();
  out->push_back('"');
}

}  // namespace tarn
