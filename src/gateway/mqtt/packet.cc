// MQTT packet parsing and encoding. Every length read from the wire is checked against the
// bytes actually present before use; a short or overlong field is "Malformed Packet" (0x81).
#include "gateway/mqtt/packet.h"

#include "core/strings.h"

namespace tarn::gateway::mqtt {

namespace {

constexpr uint64_t Bit(int id) { return uint64_t{1} << id; }

// MQTT 5.0 §2.2.2.2: which properties each packet may carry.
constexpr uint64_t kPubMask = Bit(0x01) | Bit(0x02) | Bit(0x03) | Bit(0x08) | Bit(0x09) |
                              Bit(0x0B) | Bit(0x23) | Bit(0x26);
constexpr uint64_t kWillMask = Bit(0x01) | Bit(0x02) | Bit(0x03) | Bit(0x08) | Bit(0x09) |
                               Bit(0x18) | Bit(0x26);
constexpr uint64_t kConnectMask = Bit(0x11) | Bit(0x15) | Bit(0x16) | Bit(0x17) | Bit(0x19) |
                                  Bit(0x21) | Bit(0x22) | Bit(0x26) | Bit(0x27);
constexpr uint64_t kConnackMask = Bit(0x11) | Bit(0x12) | Bit(0x13) | Bit(0x15) | Bit(0x16) |
                                  Bit(0x1A) | Bit(0x1C) | Bit(0x1F) | Bit(0x21) | Bit(0x22) |
                                  Bit(0x24) | Bit(0x25) | Bit(0x26) | Bit(0x27) | Bit(0x28) |
                                  Bit(0x29) | Bit(0x2A);
constexpr uint64_t kAckMask = Bit(0x1F) | Bit(0x26);
constexpr uint64_t kSubscribeMask = Bit(0x0B) | Bit(0x26);
constexpr uint64_t kUnsubscribeMask = Bit(0x26);
constexpr uint64_t kDisconnectMask = Bit(0x11) | Bit(0x1C) | Bit(0x1F) | Bit(0x26);
constexpr uint64_t kAuthMask = Bit(0x15) | Bit(0x16) | Bit(0x1F) | Bit(0x26);

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool empty() const { return s_.empty(); }
  size_t size() const { return s_.size(); }
  std::string_view rest() const { return s_; }
  void Skip(size_t n) { s_.remove_prefix(n); }

  bool U8(uint8_t* v) {
    if (s_.size() < 1) return false;
    *v = static_cast<uint8_t>(s_[0]);
    s_.remove_prefix(1);
    return true;
  }
  bool U16(uint16_t* v) {
    if (s_.size() < 2) return false;
    *v = static_cast<uint16_t>((uint8_t(s_[0]) << 8) | uint8_t(s_[1]));
    s_.remove_prefix(2);
    return true;
  }
  bool U32(uint32_t* v) {
    if (s_.size() < 4) return false;
    *v = (uint32_t(uint8_t(s_[0])) << 24) | (uint32_t(uint8_t(s_[1])) << 16) |
         (uint32_t(uint8_t(s_[2])) << 8) | uint32_t(uint8_t(s_[3]));
    s_.remove_prefix(4);
    return true;
  }
  // MQTT 5.0 §1.5.5: at most four bytes.
  bool VarInt(uint32_t* v) {
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      if (s_.empty()) return false;
      uint8_t b = uint8_t(s_[0]);
      s_.remove_prefix(1);
      value |= uint32_t(b & 0x7f) << (7 * i);
      if (!(b & 0x80)) {
        *v = value;
        return true;
      }
    }
    return false;
  }
  bool Bin(std::string* v) {
    uint16_t n;
    if (!U16(&n) || s_.size() < n) return false;
    v->assign(s_.data(), n);
    s_.remove_prefix(n);
    return true;
  }
  // A UTF-8 string: 0 ok, 0x81 short or invalid (MQTT 5.0 §1.5.4).
  uint8_t Str(std::string* v) {
    if (!Bin(v)) return rc::kMalformed;
    return ValidUtf8(*v) ? 0 : rc::kMalformed;
  }

 private:
  std::string_view s_;
};

void PutU16(std::string* out, uint16_t v) {
  out->push_back(char(v >> 8));
  out->push_back(char(v & 0xff));
}
void PutU32(std::string* out, uint32_t v) {
  out->push_back(char(v >> 24));
  out->push_back(char((v >> 16) & 0xff));
  out->push_back(char((v >> 8) & 0xff));
  out->push_back(char(v & 0xff));
}
void PutVarInt(std::string* out, uint32_t v) {
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    if (v) b |= 0x80;
    out->push_back(char(b));
  } while (v);
}
void PutStr(std::string* out, std::string_view s) {
  size_t n = std::min<size_t>(s.size(), 65535);
  PutU16(out, uint16_t(n));
  out->append(s.data(), n);
}

// Prefixes `body` with the fixed header.
std::string Finish(uint8_t header, const std::string& body) {
  std::string out;
  out.reserve(body.size() + 5);
  out.push_back(char(header));
  PutVarInt(&out, uint32_t(body.size()));
  out += body;
  return out;
}

template <typename T>
uint8_t SetOnce(std::optional<T>* dst, T v) {
  if (dst->has_value()) return rc::kProtocolError;  // MQTT 5.0 §2.2.2.2: duplicates
  *dst = v;
  return 0;
}

uint8_t ParseOneProperty(Reader* r, uint32_t id, Properties* p) {
  uint8_t b;
  uint16_t u16;
  uint32_t u32;
  std::string s;
  auto byte01 = [&](std::optional<uint8_t>* dst) -> uint8_t {
    if (!r->U8(&b)) return rc::kMalformed;
    if (b > 1) return rc::kProtocolError;
    return SetOnce(dst, b);
  };
  auto str = [&](std::optional<std::string>* dst) -> uint8_t {
    if (uint8_t e = r->Str(&s)) return e;
    return SetOnce(dst, std::move(s));
  };
  auto bin = [&](std::optional<std::string>* dst) -> uint8_t {
    if (!r->Bin(&s)) return rc::kMalformed;
    return SetOnce(dst, std::move(s));
  };
  auto u32v = [&](std::optional<uint32_t>* dst) -> uint8_t {
    if (!r->U32(&u32)) return rc::kMalformed;
    return SetOnce(dst, u32);
  };
  auto u16v = [&](std::optional<uint16_t>* dst) -> uint8_t {
    if (!r->U16(&u16)) return rc::kMalformed;
    return SetOnce(dst, u16);
  };
  switch (id) {
    case 0x01: return byte01(&p->payload_format);
    case 0x02: return u32v(&p->message_expiry);
    case 0x03: return str(&p->content_type);
    case 0x08: return str(&p->response_topic);
    case 0x09: return bin(&p->correlation_data);
    case 0x0B:
      if (!r->VarInt(&u32)) return rc::kMalformed;
      if (u32 == 0) return rc::kProtocolError;  // §3.8.2.1.2
      p->subscription_ids.push_back(u32);
      return 0;
    case 0x11: return u32v(&p->session_expiry);
    case 0x12: return str(&p->assigned_client_id);
    case 0x13: return u16v(&p->server_keep_alive);
    case 0x15: return str(&p->auth_method);
    case 0x16: return bin(&p->auth_data);
    case 0x17: return byte01(&p->request_problem_info);
    case 0x18: return u32v(&p->will_delay);
    case 0x19: return byte01(&p->request_response_info);
    case 0x1A: return str(&p->response_info);
    case 0x1C: return str(&p->server_reference);
    case 0x1F: return str(&p->reason_string);
    case 0x21:
      if (!r->U16(&u16)) return rc::kMalformed;
      if (u16 == 0) return rc::kProtocolError;  // §3.1.2.11.3
      return SetOnce(&p->receive_maximum, u16);
    case 0x22: return u16v(&p->topic_alias_maximum);
    case 0x23: return u16v(&p->topic_alias);
    case 0x24: return byte01(&p->maximum_qos);
    case 0x25: return byte01(&p->retain_available);
    case 0x26: {
      std::string k, v;
      if (uint8_t e = r->Str(&k)) return e;
      if (uint8_t e = r->Str(&v)) return e;
      p->user.emplace_back(std::move(k), std::move(v));
      return 0;
    }
    case 0x27:
      if (!r->U32(&u32)) return rc::kMalformed;
      if (u32 == 0) return rc::kProtocolError;  // §3.1.2.11.4
      return SetOnce(&p->maximum_packet_size, u32);
    case 0x28: return byte01(&p->wildcard_sub_available);
    case 0x29: return byte01(&p->sub_id_available);
    case 0x2A: return byte01(&p->shared_sub_available);
    default: return rc::kMalformed;
  }
}

uint8_t ReadProps(Reader* r, Properties* p, uint64_t mask) {
  std::string_view in = r->rest();
  uint8_t e = ParseProperties(&in, p, mask);
  if (e) return e;
  r->Skip(r->size() - in.size());
  return 0;
}

}  // namespace

bool Properties::empty() const {
  return !payload_format && !message_expiry && !content_type && !response_topic &&
         !correlation_data && subscription_ids.empty() && !session_expiry &&
         !assigned_client_id && !server_keep_alive && !auth_method && !auth_data &&
         !request_problem_info && !will_delay && !request_response_info && !response_info &&
         !server_reference && !reason_string && !receive_maximum && !topic_alias_maximum &&
         !topic_alias && !maximum_qos && !retain_available && user.empty() &&
         !maximum_packet_size && !wildcard_sub_available && !sub_id_available &&
         !shared_sub_available;
}

uint64_t AllPropertiesMask() { return ~uint64_t{0}; }

uint8_t ParseProperties(std::string_view* in, Properties* out, uint64_t allowed_mask) {
  Reader r(*in);
  uint32_t len;
  if (!r.VarInt(&len) || r.size() < len) return rc::kMalformed;
  Reader pr(r.rest().substr(0, len));
  while (!pr.empty()) {
    uint32_t id;
    if (!pr.VarInt(&id)) return rc::kMalformed;
    if (id >= 64 || !(allowed_mask & Bit(int(id)))) {
      // An identifier that is unknown is malformed; a known one in the wrong packet is a
      // protocol error (MQTT 5.0 §2.2.2.2).
      return id < 0x2B ? rc::kProtocolError : rc::kMalformed;
    }
    if (uint8_t e = ParseOneProperty(&pr, id, out)) return e;
  }
  r.Skip(len);
  *in = r.rest();
  return 0;
}

void AppendProperties(std::string* out, const Properties& p) {
  std::string b;
  auto byte = [&](int id, const std::optional<uint8_t>& v) {
    if (v) { b.push_back(char(id)); b.push_back(char(*v)); }
  };
  auto u16 = [&](int id, const std::optional<uint16_t>& v) {
    if (v) { b.push_back(char(id)); PutU16(&b, *v); }
  };
  auto u32 = [&](int id, const std::optional<uint32_t>& v) {
    if (v) { b.push_back(char(id)); PutU32(&b, *v); }
  };
  auto str = [&](int id, const std::optional<std::string>& v) {
    if (v) { b.push_back(char(id)); PutStr(&b, *v); }
  };
  byte(0x01, p.payload_format);
  u32(0x02, p.message_expiry);
  str(0x03, p.content_type);
  str(0x08, p.response_topic);
  str(0x09, p.correlation_data);
  for (uint32_t id : p.subscription_ids) { b.push_back(0x0B); PutVarInt(&b, id); }
  u32(0x11, p.session_expiry);
  str(0x12, p.assigned_client_id);
  u16(0x13, p.server_keep_alive);
  str(0x15, p.auth_method);
  str(0x16, p.auth_data);
  byte(0x17, p.request_problem_info);
  u32(0x18, p.will_delay);
  byte(0x19, p.request_response_info);
  str(0x1A, p.response_info);
  str(0x1C, p.server_reference);
  str(0x1F, p.reason_string);
  u16(0x21, p.receive_maximum);
  u16(0x22, p.topic_alias_maximum);
  u16(0x23, p.topic_alias);
  byte(0x24, p.maximum_qos);
  byte(0x25, p.retain_available);
  for (const auto& [k, v] : p.user) {
    b.push_back(0x26);
    PutStr(&b, k);
    PutStr(&b, v);
  }
  u32(0x27, p.maximum_packet_size);
  byte(0x28, p.wildcard_sub_available);
  byte(0x29, p.sub_id_available);
  byte(0x2A, p.shared_sub_available);
  PutVarInt(out, uint32_t(b.size()));
  out->append(b);
}

FrameStatus DecodeFrame(std::string_view buf, Frame* out) {
  if (buf.empty()) return FrameStatus::kNeedMore;
  uint32_t value = 0;
  for (uint32_t i = 1; i <= 4; ++i) {
    if (buf.size() <= i) return FrameStatus::kNeedMore;
    uint8_t b = uint8_t(buf[i]);
    value |= uint32_t(b & 0x7f) << (7 * (i - 1));
    if (!(b & 0x80)) {
      out->header = uint8_t(buf[0]);
      out->remaining = value;
      out->header_size = i + 1;
      return FrameStatus::kOk;
    }
  }
  return FrameStatus::kMalformed;  // §1.5.5: a fifth continuation byte
}

// MQTT 5.0 §1.5.4 / 3.1.1 §1.5.3: well-formed UTF-8 (core's check) and no U+0000.
bool ValidUtf8(std::string_view s) {
  return s.find('\0') == std::string_view::npos && IsValidUtf8(s);
}

bool ValidTopicName(std::string_view topic) {
  if (topic.empty()) return false;
  return topic.find_first_of("+#") == std::string_view::npos;
}

bool ValidTopicFilter(std::string_view filter) {
  if (filter.empty()) return false;
  size_t start = 0;
  for (;;) {
    size_t slash = filter.find('/', start);
    std::string_view level = filter.substr(start, slash == std::string_view::npos ? filter.npos : slash - start);
    if (level.find_first_of("+#") != std::string_view::npos) {
      if (level.size() != 1) return false;
      if (level == "#" && slash != std::string_view::npos) return false;  // '#' must be last
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return true;
}

uint8_t ParseConnect(std::string_view body, uint8_t flags, Connect* out) {
  if (flags != 0) return rc::kMalformed;  // §2.1.3 reserved bits
  Reader r(body);
  std::string name;
  if (!r.Bin(&name)) return rc::kMalformed;
  uint8_t level;
  if (!r.U8(&level)) return rc::kMalformed;
  if (!((name == "MQTT" && (level == 4 || level == 5)))) return rc::kUnsupportedProtocolVersion;
  out->protocol_level = level;
  uint8_t cf;
  if (!r.U8(&cf)) return rc::kMalformed;
  if (cf & 0x01) return rc::kMalformed;  // §3.1.2.3 reserved flag
  bool will = cf & 0x04;
  uint8_t will_qos = (cf >> 3) & 3;
  bool will_retain = cf & 0x20;
  bool has_pass = cf & 0x40;
  bool has_user = cf & 0x80;
  out->clean_start = cf & 0x02;
  if (will_qos == 3) return rc::kMalformed;
  if (!will && (will_qos || will_retain)) return rc::kMalformed;
  if (level == 4 && has_pass && !has_user) return rc::kMalformed;  // 3.1.1 §3.1.2.9
  if (!r.U16(&out->keep_alive)) return rc::kMalformed;
  if (level == 5) {
    if (uint8_t e = ReadProps(&r, &out->props, kConnectMask)) return e;
  }
  if (uint8_t e = r.Str(&out->client_id)) return e;
  if (will) {
    Will w;
    w.qos = will_qos;
    w.retain = will_retain;
    if (level == 5) {
      if (uint8_t e = ReadProps(&r, &w.props, kWillMask)) return e;
    }
    if (uint8_t e = r.Str(&w.topic)) return e;
    if (!ValidTopicName(w.topic)) return rc::kTopicNameInvalid;
    if (!r.Bin(&w.payload)) return rc::kMalformed;
    out->will = std::move(w);
  }
  if (has_user) {
    std::string u;
    if (uint8_t e = r.Str(&u)) return e;
    out->username = std::move(u);
  }
  if (has_pass) {
    std::string p;
    if (!r.Bin(&p)) return rc::kMalformed;
    out->password = std::move(p);
  }
  if (!r.empty()) return rc::kMalformed;
  return 0;
}

uint8_t ParsePublish(std::string_view body, uint8_t flags, int version, Publish* out) {
  out->dup = flags & 0x08;
  out->qos = (flags >> 1) & 3;
  out->retain = flags & 0x01;
  if (out->qos == 3) return rc::kMalformed;            // §3.3.1.2
  if (out->qos == 0 && out->dup) return rc::kMalformed;  // §3.3.1.1
  Reader r(body);
  if (uint8_t e = r.Str(&out->topic)) return e;
  if (out->topic.find_first_of("+#") != std::string::npos) return rc::kTopicNameInvalid;
  if (out->qos > 0) {
    if (!r.U16(&out->packet_id)) return rc::kMalformed;
    if (out->packet_id == 0) return rc::kProtocolError;  // §2.2.1
  }
  if (version == 5) {
    if (uint8_t e = ReadProps(&r, &out->props, kPubMask)) return e;
    if (!out->props.subscription_ids.empty()) return rc::kProtocolError;  // §3.3.4
  }
  if (out->topic.empty() && !(version == 5 && out->props.topic_alias)) return rc::kProtocolError;
  out->payload.assign(r.rest().data(), r.size());
  return 0;
}

uint8_t ParseAck(std::string_view body, uint8_t type, uint8_t flags, int version, Ack* out) {
  if (flags != (type == kPubrel ? 2 : 0)) return rc::kMalformed;  // §2.1.3
  Reader r(body);
  if (!r.U16(&out->packet_id)) return rc::kMalformed;
  if (out->packet_id == 0) return rc::kProtocolError;
  if (version < 5) return r.empty() ? 0 : rc::kMalformed;
  if (r.empty()) return 0;
  if (!r.U8(&out->reason)) return rc::kMalformed;
  if (r.empty()) return 0;
  if (uint8_t e = ReadProps(&r, &out->props, kAckMask)) return e;
  return r.empty() ? 0 : rc::kMalformed;
}

uint8_t ParseSubscribe(std::string_view body, uint8_t flags, int version, Subscribe* out) {
  if (flags != 2) return rc::kMalformed;  // §3.8.1
  Reader r(body);
  if (!r.U16(&out->packet_id)) return rc::kMalformed;
  if (out->packet_id == 0) return rc::kProtocolError;
  if (version == 5) {
    if (uint8_t e = ReadProps(&r, &out->props, kSubscribeMask)) return e;
    if (out->props.subscription_ids.size() > 1) return rc::kProtocolError;
  }
  while (!r.empty()) {
    SubscribeTopic t;
    if (uint8_t e = r.Str(&t.filter)) return e;
    uint8_t o;
    if (!r.U8(&o)) return rc::kMalformed;
    t.qos = o & 3;
    if (t.qos == 3) return rc::kMalformed;
    if (version < 5) {
      if (o & 0xFC) return rc::kMalformed;  // 3.1.1 §3.8.3.1 reserved bits
    } else {
      if (o & 0xC0) return rc::kMalformed;  // 5.0 §3.8.3.1 reserved bits
      t.no_local = o & 0x04;
      t.retain_as_published = o & 0x08;
      t.retain_handling = (o >> 4) & 3;
      if (t.retain_handling == 3) return rc::kProtocolError;
    }
    out->topics.push_back(std::move(t));
  }
  if (out->topics.empty()) return version == 5 ? rc::kProtocolError : rc::kMalformed;
  return 0;
}

uint8_t ParseUnsubscribe(std::string_view body, uint8_t flags, int version, Unsubscribe* out) {
  if (flags != 2) return rc::kMalformed;
  Reader r(body);
  if (!r.U16(&out->packet_id)) return rc::kMalformed;
  if (out->packet_id == 0) return rc::kProtocolError;
  if (version == 5) {
    if (uint8_t e = ReadProps(&r, &out->props, kUnsubscribeMask)) return e;
  }
  while (!r.empty()) {
    std::string f;
    if (uint8_t e = r.Str(&f)) return e;
    out->filters.push_back(std::move(f));
  }
  if (out->filters.empty()) return version == 5 ? rc::kProtocolError : rc::kMalformed;
  return 0;
}

uint8_t ParseDisconnect(std::string_view body, uint8_t type, uint8_t flags, int version, Ack* out) {
  if (flags != 0) return rc::kMalformed;
  Reader r(body);
  if (version < 5) return r.empty() ? 0 : rc::kMalformed;
  if (r.empty()) return 0;
  if (!r.U8(&out->reason)) return rc::kMalformed;
  if (r.empty()) return 0;
  if (uint8_t e = ReadProps(&r, &out->props, type == kAuth ? kAuthMask : kDisconnectMask)) return e;
  return r.empty() ? 0 : rc::kMalformed;
}

uint8_t ParseConnack(std::string_view body, int version, Connack* out) {
  Reader r(body);
  uint8_t f;
  if (!r.U8(&f) || (f & 0xFE)) return rc::kMalformed;
  out->session_present = f & 1;
  if (!r.U8(&out->reason)) return rc::kMalformed;
  if (version == 5 && !r.empty()) {
    if (uint8_t e = ReadProps(&r, &out->props, kConnackMask)) return e;
  }
  return r.empty() ? 0 : rc::kMalformed;
}

std::string EncodeConnect(const Connect& c) {
  std::string b;
  PutStr(&b, "MQTT");
  b.push_back(char(c.protocol_level));
  uint8_t f = 0;
  if (c.clean_start) f |= 0x02;
  if (c.will) {
    f |= 0x04;
    f |= uint8_t(c.will->qos << 3);
    if (c.will->retain) f |= 0x20;
  }
  if (c.password) f |= 0x40;
  if (c.username) f |= 0x80;
  b.push_back(char(f));
  PutU16(&b, c.keep_alive);
  if (c.protocol_level == 5) AppendProperties(&b, c.props);
  PutStr(&b, c.client_id);
  if (c.will) {
    if (c.protocol_level == 5) AppendProperties(&b, c.will->props);
    PutStr(&b, c.will->topic);
    PutStr(&b, c.will->payload);
  }
  if (c.username) PutStr(&b, *c.username);
  if (c.password) PutStr(&b, *c.password);
  return Finish(kConnect << 4, b);
}

std::string EncodeConnack(const Connack& c, int version) {
  std::string b;
  b.push_back(c.session_present ? 1 : 0);
  b.push_back(char(c.reason));
  if (version == 5) AppendProperties(&b, c.props);
  return Finish(kConnack << 4, b);
}

void AppendPublish(std::string* out, std::string_view topic, std::string_view payload, uint8_t qos,
                   bool dup, bool retain, uint16_t packet_id, const Properties* props, int version) {
  size_t topic_size = std::min<size_t>(topic.size(), 65535);
  std::string props_wire;
  if (version == 5) {
    if (props) {
      AppendProperties(&props_wire, *props);
    } else {
      props_wire.push_back(0);
    }
  }
  size_t remaining = 2 + topic_size + (qos > 0 ? 2 : 0) + props_wire.size() + payload.size();
  uint8_t h = uint8_t(kPublish << 4) | uint8_t(qos << 1);
  if (dup) h |= 0x08;
  if (retain) h |= 0x01;
  out->reserve(out->size() + remaining + 5);
  out->push_back(char(h));
  PutVarInt(out, uint32_t(remaining));
  PutStr(out, topic);
  if (qos > 0) PutU16(out, packet_id);
  out->append(props_wire);
  out->append(payload.data(), payload.size());
}

std::string EncodePublishView(std::string_view topic, std::string_view payload, uint8_t qos,
                              bool dup, bool retain, uint16_t packet_id, const Properties* props,
                              int version) {
  std::string out;
  AppendPublish(&out, topic, payload, qos, dup, retain, packet_id, props, version);
  return out;
}

std::string EncodePublish(const Publish& p, int version) {
  return EncodePublishView(p.topic, p.payload, p.qos, p.dup, p.retain, p.packet_id, &p.props,
                           version);
}

std::string EncodeAck(uint8_t type, const Ack& a, int version) {
  std::string b;
  PutU16(&b, a.packet_id);
  if (version == 5 && (a.reason != 0 || !a.props.empty())) {
    b.push_back(char(a.reason));
    if (!a.props.empty()) AppendProperties(&b, a.props);
  }
  return Finish(uint8_t(type << 4) | (type == kPubrel ? 2 : 0), b);
}

std::string EncodeSubscribe(const Subscribe& s, int version) {
  std::string b;
  PutU16(&b, s.packet_id);
  if (version == 5) AppendProperties(&b, s.props);
  for (const auto& t : s.topics) {
    PutStr(&b, t.filter);
    uint8_t o = t.qos;
    if (t.no_local) o |= 0x04;
    if (t.retain_as_published) o |= 0x08;
    o |= uint8_t(t.retain_handling << 4);
    b.push_back(char(o));
  }
  return Finish((kSubscribe << 4) | 2, b);
}

std::string EncodeSuback(uint16_t packet_id, const std::vector<uint8_t>& reasons,
                         const Properties& props, int version) {
  std::string b;
  PutU16(&b, packet_id);
  if (version == 5) AppendProperties(&b, props);
  for (uint8_t r : reasons) b.push_back(char(r));
  return Finish(kSuback << 4, b);
}

std::string EncodeUnsubscribe(const Unsubscribe& u, int version) {
  std::string b;
  PutU16(&b, u.packet_id);
  if (version == 5) AppendProperties(&b, u.props);
  for (const auto& f : u.filters) PutStr(&b, f);
  return Finish((kUnsubscribe << 4) | 2, b);
}

std::string EncodeUnsuback(uint16_t packet_id, const std::vector<uint8_t>& reasons,
                           const Properties& props, int version) {
  std::string b;
  PutU16(&b, packet_id);
  if (version == 5) {
    AppendProperties(&b, props);
    for (uint8_t r : reasons) b.push_back(char(r));
  }
  return Finish(kUnsuback << 4, b);
}

std::string EncodePingresp() { return std::string("\xD0\x00", 2); }
std::string EncodePingreq() { return std::string("\xC0\x00", 2); }

std::string EncodeDisconnect(uint8_t reason, const Properties& props, int version) {
  std::string b;
  if (version == 5 && (reason != 0 || !props.empty())) {
    b.push_back(char(reason));
    if (!props.empty()) AppendProperties(&b, props);
  }
  return Finish(kDisconnect << 4, b);
}

}  // namespace tarn::gateway::mqtt
