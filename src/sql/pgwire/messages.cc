#include "sql/pgwire/messages.h"

#include <cstring>

namespace tarn::sql::pgwire {

int16_t MessageReader::Int16() {
  if (!ok_ || remaining() < 2) {
    ok_ = false;
    return 0;
  }
  auto p = reinterpret_cast<const unsigned char*>(body_.data() + pos_);
  pos_ += 2;
  return static_cast<int16_t>((p[0] << 8) | p[1]);
}

int32_t MessageReader::Int32() {
  if (!ok_ || remaining() < 4) {
    ok_ = false;
    return 0;
  }
  auto p = reinterpret_cast<const unsigned char*>(body_.data() + pos_);
  pos_ += 4;
  return static_cast<int32_t>((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]);
}

uint8_t MessageReader::Byte() {
  if (!ok_ || remaining() < 1) {
    ok_ = false;
    return 0;
  }
  return static_cast<uint8_t>(body_[pos_++]);
}

std::string_view MessageReader::CString() {
  if (!ok_) return {};
  size_t end = body_.find('\0', pos_);
  if (end == std::string_view::npos) {
    ok_ = false;
    return {};
  }
  std::string_view s = body_.substr(pos_, end - pos_);
  pos_ = end + 1;
  return s;
}

std::string_view MessageReader::Bytes(size_t n) {
  if (!ok_ || remaining() < n) {
    ok_ = false;
    return {};
  }
  std::string_view s = body_.substr(pos_, n);
  pos_ += n;
  return s;
}

Result<StartupPacket> ParseStartupPacket(std::string_view body) {
  MessageReader r(body);
  StartupPacket p;
  p.code = r.Int32();
  if (!r.ok()) return Error(ErrorCode::kInvalidArgument, "startup packet too short");
  if (p.code == kSslRequestCode || p.code == kGssEncRequestCode) {
    if (!r.at_end()) return Error(ErrorCode::kInvalidArgument, "malformed SSLRequest");
    return p;
  }
  if (p.code == kCancelRequestCode) {
    p.cancel_pid = r.Int32();
    p.cancel_secret = r.Int32();
    if (!r.ok() || !r.at_end()) return Error(ErrorCode::kInvalidArgument, "malformed CancelRequest");
    return p;
  }
  if ((p.code >> 16) != 3) {
    return Error(ErrorCode::kInvalidArgument,
                 "unsupported frontend protocol " + std::to_string(p.code >> 16) + "." +
                     std::to_string(p.code & 0xffff) + ": server supports 3.0");
  }
  // §55.7 StartupMessage: name/value pairs, terminated by an empty name.
  for (;;) {
    std::string_view name = r.CString();
    if (!r.ok()) return Error(ErrorCode::kInvalidArgument, "startup packet: unterminated parameter list");
    if (name.empty()) break;
    std::string_view value = r.CString();
    if (!r.ok()) return Error(ErrorCode::kInvalidArgument, "startup packet: missing value for " + std::string(name));
    if (!IsValidUtf8(name) || !IsValidUtf8(value)) {
      return Error(ErrorCode::kInvalidArgument, "startup packet: invalid UTF-8");
    }
    p.params[std::string(name)] = std::string(value);
  }
  if (!r.at_end()) return Error(ErrorCode::kInvalidArgument, "startup packet: trailing bytes");
  return p;
}

Result<ParseMessage> ParseParse(std::string_view body) {
  MessageReader r(body);
  ParseMessage m;
  m.name = std::string(r.CString());
  m.query = std::string(r.CString());
  int16_t n = r.Int16();
  if (!r.ok() || n < 0) return Error(ErrorCode::kInvalidArgument, "malformed Parse message");
  for (int i = 0; i < n; ++i) m.param_types.push_back(r.Int32());
  if (!r.ok() || !r.at_end()) return Error(ErrorCode::kInvalidArgument, "malformed Parse message");
  return m;
}

Result<BindMessage> ParseBind(std::string_view body) {
  MessageReader r(body);
  BindMessage m;
  m.portal = std::string(r.CString());
  m.statement = std::string(r.CString());
  int16_t nf = r.Int16();
  if (!r.ok() || nf < 0) return Error(ErrorCode::kInvalidArgument, "malformed Bind message");
  for (int i = 0; i < nf; ++i) m.param_formats.push_back(r.Int16());
  int16_t np = r.Int16();
  if (!r.ok() || np < 0) return Error(ErrorCode::kInvalidArgument, "malformed Bind message");
  for (int i = 0; i < np; ++i) {
    int32_t len = r.Int32();
    if (!r.ok()) break;
    if (len == -1) {
      m.params.emplace_back(std::nullopt);
      continue;
    }
    if (len < 0) return Error(ErrorCode::kInvalidArgument, "Bind: negative parameter length");
    std::string_view v = r.Bytes(static_cast<size_t>(len));
    if (!r.ok()) break;
    m.params.emplace_back(std::string(v));
  }
  int16_t nr = r.Int16();
  if (!r.ok() || nr < 0) return Error(ErrorCode::kInvalidArgument, "malformed Bind message");
  for (int i = 0; i < nr; ++i) m.result_formats.push_back(r.Int16());
  if (!r.ok() || !r.at_end()) return Error(ErrorCode::kInvalidArgument, "malformed Bind message");
  for (int16_t f : m.param_formats) {
    if (f != 0 && f != 1) return Error(ErrorCode::kInvalidArgument, "Bind: unsupported format code " + std::to_string(f));
  }
  for (int16_t f : m.result_formats) {
    if (f != 0 && f != 1) return Error(ErrorCode::kInvalidArgument, "Bind: unsupported format code " + std::to_string(f));
  }
  // §55.7 Bind: the format count is 0, 1 (applies to all) or the parameter count.
  if (m.param_formats.size() > 1 && m.param_formats.size() != m.params.size()) {
    return Error(ErrorCode::kInvalidArgument, "bind message has " + std::to_string(m.param_formats.size()) +
                                                  " parameter formats but " + std::to_string(m.params.size()) +
                                                  " parameters");
  }
  return m;
}

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      if (c == 0) return false;
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

void MessageWriter::Begin(char type) {
  buf_.push_back(type);
  start_ = buf_.size();
  buf_.append(4, '\0');
}

void MessageWriter::Int16(int16_t v) {
  auto u = static_cast<uint16_t>(v);
  buf_.push_back(static_cast<char>(u >> 8));
  buf_.push_back(static_cast<char>(u));
}

void MessageWriter::Int32(int32_t v) {
  auto u = static_cast<uint32_t>(v);
  char b[4] = {static_cast<char>(u >> 24), static_cast<char>(u >> 16), static_cast<char>(u >> 8),
               static_cast<char>(u)};
  buf_.append(b, 4);
}

void MessageWriter::Int64(int64_t v) {
  auto u = static_cast<uint64_t>(v);
  Int32(static_cast<int32_t>(u >> 32));
  Int32(static_cast<int32_t>(u));
}

void MessageWriter::End() {
  auto len = static_cast<uint32_t>(buf_.size() - start_);
  buf_[start_] = static_cast<char>(len >> 24);
  buf_[start_ + 1] = static_cast<char>(len >> 16);
  buf_[start_ + 2] = static_cast<char>(len >> 8);
  buf_[start_ + 3] = static_cast<char>(len);
}

void MessageWriter::ParameterStatus(std::string_view name, std::string_view value) {
  Begin('S');
  CString(name);
  CString(value);
  End();
}

void MessageWriter::ReadyForQuery(char status) {
  Begin('Z');
  Byte(static_cast<uint8_t>(status));
  End();
}

void MessageWriter::CommandComplete(std::string_view tag) {
  Begin('C');
  CString(tag);
  End();
}

void MessageWriter::Empty(char type) {
  Begin(type);
  End();
}

void MessageWriter::Error(const Fields& f, char type) {
  // §55.8 Error and Notice Message Fields.
  Begin(type);
  Byte('S');
  CString(f.severity);
  Byte('V');
  CString(f.severity);
  Byte('C');
  CString(f.sqlstate.empty() ? "XX000" : f.sqlstate);
  Byte('M');
  CString(f.message);
  if (!f.detail.empty()) {
    Byte('D');
    CString(f.detail);
  }
  if (!f.hint.empty()) {
    Byte('H');
    CString(f.hint);
  }
  if (f.position > 0) {
    Byte('P');
    CString(std::to_string(f.position));
  }
  Byte(0);
  End();
}

}  // namespace tarn::sql::pgwire
