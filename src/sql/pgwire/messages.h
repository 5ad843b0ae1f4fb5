// PostgreSQL frontend/backend protocol v3 framing ("Message Formats" chapter of the
// PostgreSQL documentation): a bounds-checked reader for message bodies the client sends and
// a writer for the messages the server sends. No I/O here, so the parser can be fuzzed.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tarn::sql::pgwire {

// Protocol codes in the startup packet (§55.7 StartupMessage, SSLRequest, CancelRequest).
constexpr int32_t kProtocolV3 = 196608;        // 3 << 16
constexpr int32_t kSslRequestCode = 80877103;
constexpr int32_t kGssEncRequestCode = 80877104;
constexpr int32_t kCancelRequestCode = 80877102;

// Limits: a message longer than this is a protocol violation (PostgreSQL allows 1 GB for
// data messages; a startup packet is at most 10000 bytes).
constexpr uint32_t kMaxStartupLength = 10000;
constexpr uint32_t kMaxMessageLength = 256u << 20;

// Reads fields out of one message body; every read is bounds-checked and sets the reader
// to failed instead of running past the end.
class MessageReader {
 public:
  explicit MessageReader(std::string_view body) : body_(body) {}
  int16_t Int16();
  int32_t Int32();
  uint8_t Byte();
  // A NUL-terminated string.
  std::string_view CString();
  // n raw bytes.
  std::string_view Bytes(size_t n);
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == body_.size(); }
  size_t remaining() const { return body_.size() - pos_; }

 private:
  std::string_view body_;
  size_t pos_ = 0;
  bool ok_ = true;
};

struct StartupPacket {
  int32_t code = 0;  // kProtocolV3, kSslRequestCode, kGssEncRequestCode, kCancelRequestCode
  std::map<std::string, std::string> params;  // user, database, options, application_name …
  int32_t cancel_pid = 0;
  int32_t cancel_secret = 0;
};
// Parses a startup-phase packet body (after the 4-byte length).
Result<StartupPacket> ParseStartupPacket(std::string_view body);

// The frontend messages of the extended query protocol, parsed.
struct ParseMessage {
  std::string name;
  std::string query;
  std::vector<int32_t> param_types;
};
struct BindMessage {
  std::string portal;
  std::string statement;
  std::vector<int16_t> param_formats;
  std::vector<std::optional<std::string>> params;  // nullopt = NULL
  std::vector<int16_t> result_formats;
};
Result<ParseMessage> ParseParse(std::string_view body);
Result<BindMessage> ParseBind(std::string_view body);

// True when `s` is valid UTF-8 (queries and identifiers must be; server_encoding is UTF8).
bool IsValidUtf8(std::string_view s);

// Builds backend messages into one buffer, flushed by the caller.
class MessageWriter {
 public:
  // Starts a message of `type`; End() patches its length.
  void Begin(char type);
  void Int16(int16_t v);
  void Int32(int32_t v);
  void Int64(int64_t v);
  void Byte(uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  void CString(std::string_view s) {
    buf_.append(s.data(), s.size());
    buf_.push_back('\0');
  }
  void Bytes(std::string_view s) { buf_.append(s.data(), s.size()); }
  void End();

  // Frequent whole messages.
  void ParameterStatus(std::string_view name, std::string_view value);
  void ReadyForQuery(char status);
  void CommandComplete(std::string_view tag);
  void Empty(char type);  // a message with no body (ParseComplete '1', BindComplete '2' …)
  // ErrorResponse ('E') or NoticeResponse ('N') with the standard fields.
  struct Fields {
    std::string severity = "ERROR";
    std::string sqlstate;
    std::string message;
    std::string detail;
    std::string hint;
    int position = 0;  // 1-based character position in the query; 0 = none
  };
  void Error(const Fields& f, char type = 'E');

  std::string& buffer() { return buf_; }
  size_t size() const { return buf_.size(); }
  void Clear() { buf_.clear(); }

 private:
  std::string buf_;
  size_t start_ = 0;
};

}  // namespace tarn::sql::pgwire
