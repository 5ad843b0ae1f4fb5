#include "gateway/mqtt/packet.h"

#include <gtest/gtest.h>

namespace tarn::gateway::mqtt {
namespace {

std::string Body(const std::string& pkt, uint8_t* header = nullptr) {
  Frame f;
  EXPECT_EQ(DecodeFrame(pkt, &f), FrameStatus::kOk);
  if (header) *header = f.header;
  return pkt.substr(f.header_size);
}

TEST(MqttPacket, RemainingLengthFiveBytesIsMalformed) {
  // MQTT 5.0 §1.5.5: at most four bytes.
  Frame f;
  EXPECT_EQ(DecodeFrame(std::string("\x30\xff\xff\xff\xff\x01", 6), &f), FrameStatus::kMalformed);
  EXPECT_EQ(DecodeFrame(std::string("\x30\xff\xff", 3), &f), FrameStatus::kNeedMore);
  EXPECT_EQ(DecodeFrame(std::string("\x30\xff\xff\xff\x7f", 5), &f), FrameStatus::kOk);
  EXPECT_EQ(f.remaining, 268435455u);
}

TEST(MqttPacket, ConnectRoundTripV5) {
  Connect c;
  c.protocol_level = 5;
  c.client_id = "dev-1";
  c.keep_alive = 30;
  c.clean_start = false;
  c.username = "root";
  c.password = "pw";
  c.props.session_expiry = 3600;
  c.props.receive_maximum = 10;
  c.props.user.emplace_back("k", "v");
  Will w;
  w.topic = "dev/1/status";
  w.payload = "gone";
  w.qos = 1;
  w.retain = true;
  w.props.will_delay = 5;
  c.will = w;
  uint8_t h;
  std::string body = Body(EncodeConnect(c), &h);
  Connect d;
  ASSERT_EQ(ParseConnect(body, h & 15, &d), 0);
  EXPECT_EQ(d.client_id, "dev-1");
  EXPECT_EQ(d.keep_alive, 30);
  EXPECT_FALSE(d.clean_start);
  EXPECT_EQ(*d.username, "root");
  EXPECT_EQ(*d.password, "pw");
  EXPECT_EQ(*d.props.session_expiry, 3600u);
  EXPECT_EQ(*d.props.receive_maximum, 10);
  ASSERT_EQ(d.props.user.size(), 1u);
  ASSERT_TRUE(d.will);
  EXPECT_EQ(d.will->topic, "dev/1/status");
  EXPECT_EQ(*d.will->props.will_delay, 5u);
  EXPECT_TRUE(d.will->retain);
}

TEST(MqttPacket, ConnectReservedFlagAndBadProtocol) {
  Connect c;
  c.client_id = "x";
  std::string pkt = EncodeConnect(c);
  std::string body = Body(pkt);
  Connect d;
  std::string bad = body;
  bad[7] |= 0x01;  // §3.1.2.3 reserved bit
  EXPECT_EQ(ParseConnect(bad, 0, &d), rc::kMalformed);
  bad = body;
  bad[6] = 3;  // protocol level 3 under the name "MQTT"
  EXPECT_EQ(ParseConnect(bad, 0, &d), rc::kUnsupportedProtocolVersion);
  EXPECT_EQ(ParseConnect(body, 1, &d), rc::kMalformed);  // fixed-header flags
}

TEST(MqttPacket, PublishChecks) {
  Publish p;
  p.topic = "a/b";
  p.qos = 1;
  p.packet_id = 7;
  p.payload = "hello";
  p.props.content_type = "text/plain";
  uint8_t h;
  std::string body = Body(EncodePublish(p, 5), &h);
  Publish d;
  ASSERT_EQ(ParsePublish(body, h & 15, 5, &d), 0);
  EXPECT_EQ(d.topic, "a/b");
  EXPECT_EQ(d.packet_id, 7);
  EXPECT_EQ(d.payload, "hello");
  EXPECT_EQ(*d.props.content_type, "text/plain");
  Publish q;
  EXPECT_EQ(ParsePublish(body, 0x06, 5, &q), rc::kMalformed);  // QoS 3
  Publish w;
  w.topic = "a/+";
  std::string wb = Body(EncodePublish(w, 4));
  Publish wd;
  EXPECT_EQ(ParsePublish(wb, 0, 4, &wd), rc::kTopicNameInvalid);
  // U+0000 in the topic: §1.5.4.
  std::string nul("\x00\x03" "a\x00" "b", 5);
  Publish nd;
  EXPECT_EQ(ParsePublish(nul, 0, 4, &nd), rc::kMalformed);
  // Truncated topic length.
  Publish td;
  EXPECT_EQ(ParsePublish(std::string("\x00\x09" "ab", 4), 0, 4, &td), rc::kMalformed);
}

TEST(MqttPacket, AppendPublishKeepsWhatTheBufferHeld) {
  // A 3.1.1 QoS 1 resend as a client writes it: DUP set, packet id, no properties.
  std::string out = "xy";
  AppendPublish(&out, "sensors/d/t", "{\"v\":1}", 1, true, false, 513, nullptr, 4);
  ASSERT_EQ(out.substr(0, 2), "xy");
  std::string pkt = out.substr(2);
  EXPECT_EQ(pkt, EncodePublishView("sensors/d/t", "{\"v\":1}", 1, true, false, 513, nullptr, 4));
  uint8_t h;
  std::string body = Body(pkt, &h);
  EXPECT_EQ(h, 0x3A);  // PUBLISH, DUP, QoS 1
  Publish d;
  ASSERT_EQ(ParsePublish(body, h & 15, 4, &d), 0);
  EXPECT_EQ(d.topic, "sensors/d/t");
  EXPECT_EQ(d.packet_id, 513);
  EXPECT_EQ(d.payload, "{\"v\":1}");
  EXPECT_TRUE(d.dup);
}

TEST(MqttPacket, Utf8) {
  EXPECT_TRUE(ValidUtf8("caf\xc3\xa9"));
  EXPECT_FALSE(ValidUtf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(ValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(ValidUtf8(std::string("a\0", 2)));
  EXPECT_FALSE(ValidUtf8("\xff"));
}

TEST(MqttPacket, TopicFilters) {
  EXPECT_TRUE(ValidTopicFilter("a/+/c"));
  EXPECT_TRUE(ValidTopicFilter("#"));
  EXPECT_TRUE(ValidTopicFilter("a/#"));
  EXPECT_FALSE(ValidTopicFilter("a/#/b"));
  EXPECT_FALSE(ValidTopicFilter("a+"));
  EXPECT_FALSE(ValidTopicFilter(""));
}

TEST(MqttPacket, SubscribeOptions) {
  Subscribe s;
  s.packet_id = 3;
  SubscribeTopic t;
  t.filter = "x/#";
  t.qos = 2;
  t.no_local = true;
  t.retain_handling = 2;
  s.topics.push_back(t);
  s.props.subscription_ids.push_back(42);
  uint8_t h;
  std::string body = Body(EncodeSubscribe(s, 5), &h);
  Subscribe d;
  ASSERT_EQ(ParseSubscribe(body, h & 15, 5, &d), 0);
  ASSERT_EQ(d.topics.size(), 1u);
  EXPECT_TRUE(d.topics[0].no_local);
  EXPECT_EQ(d.topics[0].retain_handling, 2);
  EXPECT_EQ(d.props.subscription_ids[0], 42u);
  EXPECT_EQ(ParseSubscribe(body, 0, 5, &d), rc::kMalformed);  // flags must be 0b0010
  std::string bad = body;
  bad.back() |= 0xC0;  // reserved option bits
  Subscribe bd;
  EXPECT_EQ(ParseSubscribe(bad, 2, 5, &bd), rc::kMalformed);
}

TEST(MqttPacket, DuplicatePropertyIsProtocolError) {
  std::string props("\x06\x02\x00\x00\x00\x01\x02", 7);  // message expiry twice, truncated
  std::string_view in(props);
  Properties p;
  EXPECT_NE(ParseProperties(&in, &p, AllPropertiesMask()), 0);
  std::string twice("\x0a\x02\x00\x00\x00\x01\x02\x00\x00\x00\x02", 11);
  std::string_view in2(twice);
  Properties p2;
  EXPECT_EQ(ParseProperties(&in2, &p2, AllPropertiesMask()), rc::kProtocolError);
}

}  // namespace
}  // namespace tarn::gateway::mqtt
