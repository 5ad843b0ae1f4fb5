// Small string helpers shared by every module (no allocation surprises, no locale).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tarn {

std::string ToLower(std::string_view s);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
bool StartsWith(std::string_view s, std::string_view prefix);
bool EndsWith(std::string_view s, std::string_view suffix);
std::string_view Trim(std::string_view s);
std::vector<std::string> Split(std::string_view s, char sep);
std::string Join(const std::vector<std::string>& parts, std::string_view sep);

// JSON string escaping, as AppendJsonString but without the surrounding quotes.
std::string JsonEscape(std::string_view s);
// Appends `s` as a quoted JSON string (RFC 8259 §7). Bytes that are not well-formed UTF-8 each
// become U+FFFD, so the output is valid JSON whatever the input (record text taken from the
// network: SQL statements, user agents, error messages).
void AppendJsonString(std::string* out, std::string_view s);
// XML text/attribute escaping.
std::string XmlEscape(std::string_view s);

// RFC 3986 percent-encoding. With encode_slash=false, '/' is kept (S3 object keys in paths).
std::string UriEncode(std::string_view s, bool encode_slash = true);
// Percent-decoding; with plus_as_space, '+' decodes to ' ' (form encoding). nullopt on a bad
// escape sequence.
std::optional<std::string> UriDecode(std::string_view s, bool plus_as_space = false);
// Parses "a=1&b=2" into decoded pairs, keeping order (form bodies, query strings).
std::vector<std::pair<std::string, std::string>> ParseQueryString(std::string_view query,
                                                                   bool plus_as_space = true);

std::string HexEncode(std::string_view bytes);
std::optional<std::string> HexDecode(std::string_view hex);
std::string Base64Encode(std::string_view bytes);
// Base64 (RFC 4648 §4, standard alphabet, padded to a multiple of four characters; surrounding
// whitespace ignored). '=' is accepted only as the padding of the last group (OpenSSL's
// EVP_DecodeBlock reads it as zero bits anywhere); unused bits before the padding are ignored.
std::optional<std::string> Base64Decode(std::string_view b64);
// The same into `out` (replacing its contents); false, with `out` empty, for invalid input.
// Decodes 32 characters per step with AVX2 where the CPU has it.
bool Base64DecodeTo(std::string_view b64, std::string* out);

// Strict parse of a decimal integer (whole string).
std::optional<int64_t> ParseInt64(std::string_view s);
std::optional<uint64_t> ParseUint64(std::string_view s);

// True when `s` is well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

namespace internal {
// Base64DecodeTo without its vector path (the decoder on CPUs without AVX2): the reference for
// tests and benchmarks.
bool Base64DecodeToPortable(std::string_view b64, std::string* out);
}  // namespace internal

}  // namespace tarn
