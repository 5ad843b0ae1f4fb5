// Messages and subscriptions as the broker, its session log and in-process subscribers see
// them. Plain data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "gateway/mqtt/packet.h"

namespace tarn::gateway::mqtt {

// An application message (MQTT 5.0 §1.2). `props` holds only message properties: payload
// format, message expiry (as given by the publisher), content type, response topic,
// correlation data and user properties; never topic aliases or subscription identifiers.
struct Message {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  Properties props;
  int64_t expiry_ms = 0;  // absolute unix ms when the message expires; 0 = never
  std::string origin;     // publishing client id; "" = published in-process
  // The client's PUBLISH as received: packet identifier (0 for QoS 0 and in-process) and DUP
  // flag, for recognising a resend (docs/streams.md "Exactly once from devices").
  uint16_t packet_id = 0;
  bool dup = false;
};
using MessagePtr = std::shared_ptr<const Message>;

// One subscription of a session (MQTT 5.0 §3.8.3.1 options).
struct Subscription {
  std::string filter;  // as subscribed, "$share/<group>/<filter>" included
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;
  uint32_t subscription_id = 0;  // 0 = none
};

// Splits "$share/group/filter" (MQTT 5.0 §4.8.2). Returns false if `filter` is not a shared
// subscription; sets *ok=false if it is one but malformed.
bool SplitShared(std::string_view filter, std::string* group, std::string* topic_filter, bool* ok);
// True if `topic` matches `filter` (MQTT 5.0 §4.7; '$' topics do not match leading wildcards).
bool TopicMatches(std::string_view filter, std::string_view topic);

}  // namespace tarn::gateway::mqtt
