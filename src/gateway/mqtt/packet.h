// MQTT 3.1.1 and 5.0 control packets: the data model, a parser that trusts no length on the
// wire (it is a fuzz target: fuzz/mqtt_packet_fuzz.cc), and encoders.
//
// Parsing returns an MQTT 5 reason code: 0 on success, 0x81 Malformed Packet, 0x82 Protocol
// Error, 0x90 Topic Name invalid … (MQTT 5.0 §2.4). For 3.1.1 connections the caller turns a
// non-zero code into "close the network connection" (MQTT 3.1.1 §4.8). Pure functions; no state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tarn::gateway::mqtt {

enum PacketType : uint8_t {
  kConnect = 1, kConnack = 2, kPublish = 3, kPuback = 4, kPubrec = 5, kPubrel = 6,
  kPubcomp = 7, kSubscribe = 8, kSuback = 9, kUnsubscribe = 10, kUnsuback = 11,
  kPingreq = 12, kPingresp = 13, kDisconnect = 14, kAuth = 15,
};

// MQTT 5.0 §2.4 reason codes used by the broker.
namespace rc {
constexpr uint8_t kSuccess = 0x00;
constexpr uint8_t kGrantedQos1 = 0x01;
constexpr uint8_t kGrantedQos2 = 0x02;
constexpr uint8_t kDisconnectWithWill = 0x04;
constexpr uint8_t kNoMatchingSubscribers = 0x10;
constexpr uint8_t kNoSubscriptionExisted = 0x11;
constexpr uint8_t kUnspecified = 0x80;
constexpr uint8_t kMalformed = 0x81;
constexpr uint8_t kProtocolError = 0x82;
constexpr uint8_t kImplementationSpecific = 0x83;
constexpr uint8_t kUnsupportedProtocolVersion = 0x84;
constexpr uint8_t kClientIdNotValid = 0x85;
constexpr uint8_t kBadUserNameOrPassword = 0x86;
constexpr uint8_t kNotAuthorized = 0x87;
constexpr uint8_t kServerUnavailable = 0x88;
constexpr uint8_t kServerBusy = 0x89;
constexpr uint8_t kBadAuthMethod = 0x8C;
constexpr uint8_t kKeepAliveTimeout = 0x8D;
constexpr uint8_t kSessionTakenOver = 0x8E;
constexpr uint8_t kTopicFilterInvalid = 0x8F;
constexpr uint8_t kTopicNameInvalid = 0x90;
constexpr uint8_t kPacketIdInUse = 0x91;
constexpr uint8_t kPacketIdNotFound = 0x92;
constexpr uint8_t kReceiveMaximumExceeded = 0x93;
constexpr uint8_t kTopicAliasInvalid = 0x94;
constexpr uint8_t kPacketTooLarge = 0x95;
constexpr uint8_t kQuotaExceeded = 0x97;
constexpr uint8_t kAdministrativeAction = 0x98;
constexpr uint8_t kPayloadFormatInvalid = 0x99;
constexpr uint8_t kRetainNotSupported = 0x9A;
constexpr uint8_t kQosNotSupported = 0x9B;
constexpr uint8_t kSharedSubsNotSupported = 0x9E;
constexpr uint8_t kSubIdsNotSupported = 0xA1;
constexpr uint8_t kWildcardSubsNotSupported = 0xA2;
// MQTT 3.1.1 §3.2.2.3 CONNACK return codes.
constexpr uint8_t kV3UnacceptableProtocol = 0x01;
constexpr uint8_t kV3IdentifierRejected = 0x02;
constexpr uint8_t kV3ServerUnavailable = 0x03;
constexpr uint8_t kV3BadUserNameOrPassword = 0x04;
constexpr uint8_t kV3NotAuthorized = 0x05;
}  // namespace rc

// MQTT 5.0 §2.2.2 properties. Absent = not present on the wire.
struct Properties {
  std::optional<uint8_t> payload_format;
  std::optional<uint32_t> message_expiry;
  std::optional<std::string> content_type;
  std::optional<std::string> response_topic;
  std::optional<std::string> correlation_data;
  std::vector<uint32_t> subscription_ids;
  std::optional<uint32_t> session_expiry;
  std::optional<std::string> assigned_client_id;
  std::optional<uint16_t> server_keep_alive;
  std::optional<std::string> auth_method;
  std::optional<std::string> auth_data;
  std::optional<uint8_t> request_problem_info;
  std::optional<uint32_t> will_delay;
  std::optional<uint8_t> request_response_info;
  std::optional<std::string> response_info;
  std::optional<std::string> server_reference;
  std::optional<std::string> reason_string;
  std::optional<uint16_t> receive_maximum;
  std::optional<uint16_t> topic_alias_maximum;
  std::optional<uint16_t> topic_alias;
  std::optional<uint8_t> maximum_qos;
  std::optional<uint8_t> retain_available;
  std::vector<std::pair<std::string, std::string>> user;
  std::optional<uint32_t> maximum_packet_size;
  std::optional<uint8_t> wildcard_sub_available;
  std::optional<uint8_t> sub_id_available;
  std::optional<uint8_t> shared_sub_available;

  bool empty() const;
};

struct Will {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  Properties props;
};

struct Connect {
  uint8_t protocol_level = 4;  // 4 = 3.1.1, 5 = 5.0
  bool clean_start = true;
  uint16_t keep_alive = 0;
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;
  Properties props;
};

struct Connack {
  bool session_present = false;
  uint8_t reason = 0;
  Properties props;
};

struct Publish {
  bool dup = false;
  uint8_t qos = 0;
  bool retain = false;
  std::string topic;
  uint16_t packet_id = 0;
  Properties props;
  std::string payload;
};

// PUBACK, PUBREC, PUBREL, PUBCOMP, and (reason + props) of DISCONNECT / AUTH.
struct Ack {
  uint16_t packet_id = 0;
  uint8_t reason = 0;
  Properties props;
};

struct SubscribeTopic {
  std::string filter;
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;
};

struct Subscribe {
  uint16_t packet_id = 0;
  Properties props;
  std::vector<SubscribeTopic> topics;
};

struct Unsubscribe {
  uint16_t packet_id = 0;
  Properties props;
  std::vector<std::string> filters;
};

// Frame header decoding (MQTT 5.0 §2.1): the fixed header byte and the Remaining Length.
enum class FrameStatus { kNeedMore, kOk, kMalformed };
struct Frame {
  uint8_t header = 0;
  uint32_t remaining = 0;
  uint32_t header_size = 0;  // 1 + bytes of the variable byte integer
};
FrameStatus DecodeFrame(std::string_view buf, Frame* out);

// True if `s` is well-formed UTF-8 without U+0000 and without surrogates (MQTT 5.0 §1.5.4).
bool ValidUtf8(std::string_view s);
// Topic names (no wildcards, not empty) and topic filters (MQTT 5.0 §4.7).
bool ValidTopicName(std::string_view topic);
bool ValidTopicFilter(std::string_view filter);

// Parsers: `body` is the packet after the fixed header; `flags` its low nibble.
// `version` is 4 or 5 (CONNECT reads it from the packet).
uint8_t ParseConnect(std::string_view body, uint8_t flags, Connect* out);
uint8_t ParsePublish(std::string_view body, uint8_t flags, int version, Publish* out);
uint8_t ParseAck(std::string_view body, uint8_t type, uint8_t flags, int version, Ack* out);
uint8_t ParseSubscribe(std::string_view body, uint8_t flags, int version, Subscribe* out);
uint8_t ParseUnsubscribe(std::string_view body, uint8_t flags, int version, Unsubscribe* out);
// DISCONNECT and AUTH: reason code and properties (no packet id).
uint8_t ParseDisconnect(std::string_view body, uint8_t type, uint8_t flags, int version, Ack* out);
// Client-side packets the broker never receives but the fuzzer and tests decode.
uint8_t ParseConnack(std::string_view body, int version, Connack* out);

// Encoders produce a complete packet (fixed header included).
std::string EncodeConnect(const Connect& c);
std::string EncodeConnack(const Connack& c, int version);
std::string EncodePublish(const Publish& p, int version);
// The same without copying topic and payload into a Publish first (the broker's hot path).
std::string EncodePublishView(std::string_view topic, std::string_view payload, uint8_t qos,
                              bool dup, bool retain, uint16_t packet_id, const Properties* props,
                              int version);
// The same appended to `out` (a client's reused buffer: no allocation once it has grown).
void AppendPublish(std::string* out, std::string_view topic, std::string_view payload, uint8_t qos,
                   bool dup, bool retain, uint16_t packet_id, const Properties* props, int version);
std::string EncodeAck(uint8_t type, const Ack& a, int version);
std::string EncodeSubscribe(const Subscribe& s, int version);
std::string EncodeSuback(uint16_t packet_id, const std::vector<uint8_t>& reasons,
                         const Properties& props, int version);
std::string EncodeUnsubscribe(const Unsubscribe& u, int version);
std::string EncodeUnsuback(uint16_t packet_id, const std::vector<uint8_t>& reasons,
                           const Properties& props, int version);
std::string EncodePingresp();
std::string EncodePingreq();
std::string EncodeDisconnect(uint8_t reason, const Properties& props, int version);

// Properties alone, as they appear on the wire (length prefix included), and back; used by
// the session log to store message properties.
void AppendProperties(std::string* out, const Properties& p);
// `mask`: which property ids are allowed (bit per id, see packet.cc); 0 = any.
uint8_t ParseProperties(std::string_view* in, Properties* out, uint64_t allowed_mask);
uint64_t AllPropertiesMask();

}  // namespace tarn::gateway::mqtt
