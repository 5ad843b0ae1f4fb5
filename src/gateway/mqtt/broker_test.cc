#include "gateway/mqtt/broker.h"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <future>
#include <mutex>

namespace tarn::gateway::mqtt {
namespace {

class AllowAll : public Authenticator {
 public:
  Result<std::string> Authenticate(const ClientInfo&, const std::optional<std::string>& user,
                                   const std::optional<std::string>& pw) override {
    if (user && (!pw || *pw != "secret")) return Error(ErrorCode::kInvalidPassword, "bad");
    return user.value_or("");
  }
};

class FakeConn : public net::StreamConnection {
 public:
  bool Send(std::string b) override {
    std::lock_guard<std::mutex> l(mu);
    if (closed) return false;
    out += b;
    return true;
  }
  size_t queued_bytes() const override { return 0; }
  void Close(bool) override {
    std::lock_guard<std::mutex> l(mu);
    closed = true;
  }
  const net::StreamPeer& peer() const override { return peer_; }

  // Pops complete packets sent to the client.
  std::vector<std::pair<uint8_t, std::string>> Packets() {
    std::lock_guard<std::mutex> l(mu);
    std::vector<std::pair<uint8_t, std::string>> r;
    for (;;) {
      Frame f;
      if (DecodeFrame(out, &f) != FrameStatus::kOk || out.size() < f.header_size + f.remaining) break;
      r.emplace_back(f.header, out.substr(f.header_size, f.remaining));
      out.erase(0, f.header_size + f.remaining);
    }
    return r;
  }

  std::mutex mu;
  std::string out;
  bool closed = false;
  net::StreamPeer peer_;
};

struct Client {
  std::shared_ptr<FakeConn> conn = std::make_shared<FakeConn>();
  std::unique_ptr<net::StreamHandler> h;
  int version;
  Client(Broker* b, int v) : version(v) {
    if (b) h = b->Accept(conn);
  }
  void Send(const std::string& bytes) { h->OnData(bytes); }
  void Close() {
    if (h) {
      h->OnClose();
      h.reset();
    }
  }
};

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BrokerOptions o;
    o.max_packet_size = 4096;
    o.max_queued_messages = 3;
    auto b = Broker::Open(o, &authn_, nullptr);
    ASSERT_TRUE(b.ok());
    broker_ = std::move(*b);
  }
  void TearDown() override {
    for (auto& c : clients_) c->Close();
    broker_->Stop();
  }
  Client* Connect(const std::string& id, int v, bool clean = true, uint32_t expiry = 0) {
    clients_.push_back(std::make_unique<Client>(broker_.get(), v));
    Client* c = clients_.back().get();
    mqtt::Connect cp;
    cp.protocol_level = uint8_t(v);
    cp.client_id = id;
    cp.clean_start = clean;
    if (v == 5 && expiry) cp.props.session_expiry = expiry;
    c->Send(EncodeConnect(cp));
    auto p = c->conn->Packets();
    EXPECT_EQ(p.size(), 1u);
    if (!p.empty()) {
      EXPECT_EQ(p[0].first >> 4, kConnack);
    }
    return c;
  }
  void Sub(Client* c, const std::string& filter, uint8_t qos, bool no_local = false) {
    Subscribe s;
    s.packet_id = 1;
    SubscribeTopic t;
    t.filter = filter;
    t.qos = qos;
    t.no_local = no_local;
    s.topics.push_back(t);
    c->Send(EncodeSubscribe(s, c->version));
  }
  void Pub(Client* c, const std::string& topic, const std::string& payload, uint8_t qos,
           bool retain = false, uint16_t id = 1) {
    Publish p;
    p.topic = topic;
    p.payload = payload;
    p.qos = qos;
    p.retain = retain;
    p.packet_id = qos ? id : 0;
    c->Send(EncodePublish(p, c->version));
  }
  std::vector<Publish> Received(Client* c) {
    std::vector<Publish> r;
    for (auto& [h, body] : c->conn->Packets()) {
      if ((h >> 4) != kPublish) continue;
      Publish p;
      EXPECT_EQ(ParsePublish(body, h & 15, c->version, &p), 0);
      r.push_back(p);
    }
    return r;
  }

  AllowAll authn_;
  std::unique_ptr<Broker> broker_;
  std::vector<std::unique_ptr<Client>> clients_;
};

TEST_F(BrokerTest, WildcardsAndDollarTopics) {
  Client* sub = Connect("sub", 4);
  Sub(sub, "#", 0);
  Sub(sub, "s/+/t", 0);
  sub->conn->Packets();
  Client* pub = Connect("pub", 4);
  Pub(pub, "s/1/t", "a", 0);
  Pub(pub, "$SYS/x", "b", 0);  // §4.7.2: not matched by '#'
  auto got = Received(sub);
  ASSERT_EQ(got.size(), 1u);  // overlapping subscriptions deliver once
  EXPECT_EQ(got[0].payload, "a");
}

TEST_F(BrokerTest, RetainedSetReplaceDelete) {
  Client* pub = Connect("pub", 5);
  Pub(pub, "cfg/a", "1", 1, true);
  Pub(pub, "cfg/a", "2", 1, true, 2);
  EXPECT_EQ(broker_->retained_messages(), 1u);
  Client* sub = Connect("sub", 5);
  Sub(sub, "cfg/#", 1);
  auto got = Received(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "2");
  EXPECT_TRUE(got[0].retain);
  Pub(pub, "cfg/a", "", 0, true);
  EXPECT_EQ(broker_->retained_messages(), 0u);
}

TEST_F(BrokerTest, SecondConnectIsProtocolError) {
  Client* c = Connect("c", 5);
  mqtt::Connect cp;
  cp.protocol_level = 5;
  cp.client_id = "c";
  c->Send(EncodeConnect(cp));
  auto p = c->conn->Packets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first >> 4, kDisconnect);
  EXPECT_EQ(uint8_t(p[0].second[0]), rc::kProtocolError);
  EXPECT_TRUE(c->conn->closed);
}

TEST_F(BrokerTest, PublishBeforeConnectCloses) {
  clients_.push_back(std::make_unique<Client>(broker_.get(), 4));
  Client* c = clients_.back().get();
  Publish p;
  p.topic = "a";
  c->Send(EncodePublish(p, 4));
  EXPECT_TRUE(c->conn->closed);
  EXPECT_TRUE(c->conn->Packets().empty());
}

TEST_F(BrokerTest, OversizePacketV5) {
  Client* c = Connect("c", 5);
  Pub(c, "a", std::string(5000, 'x'), 0);
  auto p = c->conn->Packets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(uint8_t(p[0].second[0]), rc::kPacketTooLarge);
}

TEST_F(BrokerTest, PersistentSessionQueuesQos1AndBounds) {
  Client* s = Connect("dev", 4, false);
  Sub(s, "q", 1);
  s->Close();
  Client* pub = Connect("pub", 4);
  for (int i = 0; i < 5; ++i) Pub(pub, "q", std::to_string(i), 1, false, uint16_t(i + 1));
  clients_.push_back(std::make_unique<Client>(broker_.get(), 4));
  Client* s2 = clients_.back().get();
  mqtt::Connect cp;
  cp.client_id = "dev";
  cp.clean_start = false;
  s2->Send(EncodeConnect(cp));
  auto got = Received(s2);
  ASSERT_EQ(got.size(), 3u);  // max_queued_messages = 3: the newest two were dropped
  EXPECT_EQ(got[0].payload, "0");
  EXPECT_EQ(got[2].payload, "2");
}

// PublishDurable's callback runs once the QoS 1 message it queued for an offline persistent
// session is in the session log: a copy of the log directory taken in the callback delivers it
// when a broker is opened on it. With nothing stored it runs at once; after an error, never.
TEST(BrokerDurable, PublishDurableRunsOnceTheQueuedMessageIsInTheLog) {
  char tmpl[] = "/tmp/tarn-broker-durable-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  AllowAll authn;
  BrokerOptions o;
  o.data_dir = dir + "/live";
  auto connect = [](Broker* b, const std::string& id) {
    auto c = std::make_unique<Client>(b, 4);
    mqtt::Connect cp;
    cp.protocol_level = 4;
    cp.client_id = id;
    cp.clean_start = false;
    c->Send(EncodeConnect(cp));
    return c;
  };
  {
    auto b = std::move(Broker::Open(o, &authn, nullptr)).value();
    bool ran = false;
    ASSERT_TRUE(b->PublishDurable("err/none", "nobody listens", 1, [&] { ran = true; }).ok());
    EXPECT_TRUE(ran) << "nothing stored: durable at once";
    EXPECT_FALSE(b->PublishDurable("err/+", "x", 1, [] { ADD_FAILURE() << "ran after an error"; }).ok());
    auto w = connect(b.get(), "watcher");
    Subscribe s;
    s.packet_id = 1;
    SubscribeTopic t;
    t.filter = "err/#";
    t.qos = 1;
    s.topics.push_back(t);
    w->Send(EncodeSubscribe(s, 4));
    w->Close();  // offline: the next message is queued in its session
    std::promise<void> durable;
    ASSERT_TRUE(b->PublishDurable("err/x", "report", 1, [&] {
      std::filesystem::copy(dir + "/live", dir + "/copy", std::filesystem::copy_options::recursive);
      durable.set_value();
    }).ok());
    ASSERT_EQ(durable.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
    b->Stop();
  }
  o.data_dir = dir + "/copy";
  auto b = std::move(Broker::Open(o, &authn, nullptr)).value();
  auto w = connect(b.get(), "watcher");
  std::vector<std::string> got;
  for (auto& [h, body] : w->conn->Packets()) {
    if ((h >> 4) != kPublish) continue;
    Publish p;
    ASSERT_EQ(ParsePublish(body, h & 15, 4, &p), 0);
    got.push_back(p.topic + " " + p.payload);
  }
  EXPECT_EQ(got, std::vector<std::string>{"err/x report"});
  w->Close();
  b->Stop();
  std::filesystem::remove_all(dir);
}

TEST_F(BrokerTest, TakeoverDisconnectsOld) {
  Client* a = Connect("same", 5);
  Connect("same", 5);
  auto p = a->conn->Packets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(uint8_t(p[0].second[0]), rc::kSessionTakenOver);
}

TEST_F(BrokerTest, NoLocalAndInProcessApi) {
  std::vector<std::string> seen;
  auto h = broker_->Subscribe("in/#", [&](const Message& m, AckHold) { seen.push_back(m.payload); });
  ASSERT_TRUE(h.ok());
  Client* c = Connect("c", 5);
  Sub(c, "in/x", 0, true);
  c->conn->Packets();
  Pub(c, "in/x", "mine", 0);
  EXPECT_TRUE(Received(c).empty());
  ASSERT_TRUE(broker_->Publish("in/x", "from-process", 0).ok());
  auto got = Received(c);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "from-process");
  EXPECT_EQ(seen, (std::vector<std::string>{"mine", "from-process"}));
  EXPECT_FALSE(broker_->Publish("in/+", "x", 0).ok());
  broker_->Unsubscribe(*h);
}

// Keeps the acknowledgement holds an in-process subscriber (the rules engine) receives.
struct Holder {
  std::mutex mu;
  std::vector<AckHold> holds;
  std::vector<std::string> seen;
  LocalCallback Callback() {
    return [this](const Message& m, AckHold h) {
      std::lock_guard<std::mutex> l(mu);
      seen.push_back(m.payload);
      if (h) holds.push_back(std::move(h));
    };
  }
  // Releases hold `i`, refused with `reason` unless it is 0.
  void Release(size_t i, uint8_t reason = 0, bool retryable = true) {
    AckHold h;
    {
      std::lock_guard<std::mutex> l(mu);
      h = std::move(holds.at(i));
    }
    if (reason) h->Refuse(reason, retryable);
  }
};

std::vector<std::pair<uint16_t, uint8_t>> PubAcks(Client* c) {
  std::vector<std::pair<uint16_t, uint8_t>> r;
  for (auto& [h, body] : c->conn->Packets()) {
    if (h >> 4 != kPuback) continue;
    r.emplace_back(uint16_t((uint8_t(body[0]) << 8) | uint8_t(body[1])),
                   body.size() > 2 ? uint8_t(body[2]) : 0);
  }
  return r;
}

// #7: a message the in-process subscriber could not take is not acknowledged as taken. MQTT 5
// gets the reason code, in the order of the PUBLISHes (§4.6).
TEST_F(BrokerTest, RefusedHoldGivesTheMqtt5ReasonCodeInOrder) {
  Holder holder;
  ASSERT_TRUE(broker_->Subscribe("held/#", holder.Callback(), false).ok());
  Client* c = Connect("dev", 5);
  Pub(c, "held/1", "a", 1, false, 1);
  Pub(c, "plain", "b", 1, false, 2);  // nothing holds it, but it waits behind id 1
  Pub(c, "held/2", "c", 1, false, 3);
  EXPECT_TRUE(PubAcks(c).empty());
  holder.Release(0, 0x97);  // quota exceeded
  auto acks = PubAcks(c);
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0], (std::pair<uint16_t, uint8_t>{1, 0x97}));
  EXPECT_EQ(acks[1].first, 2);
  EXPECT_LT(acks[1].second, 0x80);
  holder.Release(1, 0x88);  // not a PUBACK reason code (§3.4.2.1): sent as 0x80
  acks = PubAcks(c);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0], (std::pair<uint16_t, uint8_t>{3, 0x80}));
  EXPECT_FALSE(c->conn->closed);
}

// QoS 2 keeps its PUBREC: the packet id is the session's until PUBREL, so a refused message's
// resend would be taken for a retransmission (§4.3.3) and lost.
TEST_F(BrokerTest, RefusalDoesNotApplyToQos2) {
  Holder holder;
  ASSERT_TRUE(broker_->Subscribe("held/#", holder.Callback(), false).ok());
  Client* c = Connect("dev", 5);
  Pub(c, "held/1", "a", 2, false, 4);
  EXPECT_TRUE(c->conn->Packets().empty());
  holder.Release(0, 0x97);
  auto p = c->conn->Packets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first >> 4, kPubrec);
  EXPECT_TRUE(p[0].second.size() <= 2 || uint8_t(p[0].second[2]) < 0x80);
}

// MQTT 3.1.1 has no negative acknowledgement: a retryable refusal withholds the PUBACK and
// closes the connection after the acknowledgements before it; later ones are not sent (the
// client resends them after reconnecting). A refusal a resend cannot cure is acknowledged.
TEST_F(BrokerTest, RefusedHoldOnMqtt311WithholdsThePubackAndCloses) {
  Holder holder;
  ASSERT_TRUE(broker_->Subscribe("held/#", holder.Callback(), false).ok());
  Client* c = Connect("dev", 4);
  Pub(c, "plain", "a", 1, false, 1);
  Pub(c, "held/1", "b", 1, false, 2);
  Pub(c, "plain", "c", 1, false, 3);
  holder.Release(0, 0x97, /*retryable=*/true);
  auto acks = PubAcks(c);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].first, 1);
  EXPECT_TRUE(c->conn->closed);

  Client* d = Connect("dev2", 4);
  Pub(d, "held/2", "x", 1, false, 5);
  holder.Release(1, 0x83, /*retryable=*/false);  // e.g. a record over the size limit
  acks = PubAcks(d);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0], (std::pair<uint16_t, uint8_t>{5, 0}));
  EXPECT_FALSE(d->conn->closed);
}

// A resend (DUP) of a message still held — its connection dropped before the PUBACK — is not
// routed again: it gets the original's outcome on the new connection.
TEST_F(BrokerTest, ResendOfAHeldMessageWaitsForTheOriginalOnTheNewConnection) {
  Holder holder;
  ASSERT_TRUE(broker_->Subscribe("held/#", holder.Callback(), false).ok());
  Client* first = Connect("dev", 4);
  Pub(first, "held/1", "reading-1", 1, false, 7);
  first->Close();  // the connection drops with the PUBACK still held
  Client* second = Connect("dev", 4);
  Publish dup;
  dup.topic = "held/1";
  dup.payload = "reading-1";
  dup.qos = 1;
  dup.packet_id = 7;
  dup.dup = true;
  second->Send(EncodePublish(dup, 4));
  EXPECT_EQ(holder.seen.size(), 1u) << "the resend was routed a second time";
  EXPECT_TRUE(PubAcks(second).empty()) << "acknowledged before the original was done";
  holder.Release(0);
  auto acks = PubAcks(second);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].first, 7);
  // A DUP with another payload is another message; one whose original is done is routed (the
  // delivery stream recognises its record, docs/streams.md).
  dup.payload = "reading-2";
  second->Send(EncodePublish(dup, 4));
  dup.payload = "reading-1";
  second->Send(EncodePublish(dup, 4));
  EXPECT_EQ(holder.seen.size(), 3u);
  holder.Release(1);
  holder.Release(2);
  EXPECT_EQ(PubAcks(second).size(), 2u);

  // The joined resend gets the original's refusal too (MQTT 5, same connection).
  Client* v5 = Connect("dev5", 5);
  Pub(v5, "held/9", "r", 1, false, 3);
  dup.topic = "held/9";
  dup.payload = "r";
  dup.packet_id = 3;
  v5->Send(EncodePublish(dup, 5));
  EXPECT_EQ(holder.seen.size(), 4u);
  holder.Release(3, 0x97);
  acks = PubAcks(v5);
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0], (std::pair<uint16_t, uint8_t>{3, 0x97}));
  EXPECT_EQ(acks[1], (std::pair<uint16_t, uint8_t>{3, 0x97}));
}

TEST_F(BrokerTest, TopicAliasZeroIsInvalid) {
  Client* c = Connect("c", 5);
  Publish p;
  p.topic = "t";
  p.props.topic_alias = 0;
  c->Send(EncodePublish(p, 5));
  auto pk = c->conn->Packets();
  ASSERT_EQ(pk.size(), 1u);
  EXPECT_EQ(uint8_t(pk[0].second[0]), rc::kTopicAliasInvalid);
}

TEST_F(BrokerTest, Qos2Handshake) {
  Client* sub = Connect("sub", 5);
  Sub(sub, "x", 2);
  sub->conn->Packets();
  Client* pub = Connect("pub", 5);
  Pub(pub, "x", "once", 2, false, 9);
  Pub(pub, "x", "once", 2, false, 9);  // duplicate before PUBREL: not routed again
  auto acks = pub->conn->Packets();
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0].first >> 4, kPubrec);
  Ack rel;
  rel.packet_id = 9;
  pub->Send(EncodeAck(kPubrel, rel, 5));
  acks = pub->conn->Packets();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].first >> 4, kPubcomp);
  auto got = Received(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].qos, 2);
}

}  // namespace
}  // namespace tarn::gateway::mqtt

namespace tarn::gateway::mqtt {
namespace {

// The authorisation hook sees every action with client id, identity and topic, and its "no"
// gets the protocol's refusal.
class DenySecrets : public AuthorizationHook {
 public:
  bool Allow(AuthzAction a, const ClientInfo& c, std::string_view topic) override {
    std::lock_guard<std::mutex> l(mu);
    calls.push_back(std::string(AuthzActionName(a)) + ":" + c.client_id + ":" + c.identity + ":" +
                    std::string(topic));
    if (a == AuthzAction::kConnect) return c.client_id != "banned";
    return topic.rfind("secret", 0) != 0;
  }
  std::mutex mu;
  std::vector<std::string> calls;
};

TEST(BrokerAuthz, HookDecidesConnectPublishSubscribeReceive) {
  AllowAll authn;
  DenySecrets authz;
  auto b = Broker::Open(BrokerOptions(), &authn, &authz);
  ASSERT_TRUE(b.ok());
  Broker* broker = b->get();

  Client banned(broker, 5);
  mqtt::Connect cp;
  cp.protocol_level = 5;
  cp.client_id = "banned";
  banned.Send(EncodeConnect(cp));
  auto p = banned.conn->Packets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(uint8_t(p[0].second[1]), rc::kNotAuthorized);
  banned.Close();

  Client c(broker, 5);
  cp.client_id = "dev";
  cp.username = "alice";
  cp.password = "secret";
  c.Send(EncodeConnect(cp));
  c.conn->Packets();
  Subscribe s;
  s.packet_id = 1;
  s.topics.push_back({"secret/#", 1});
  s.topics.push_back({"open/#", 1});
  c.Send(EncodeSubscribe(s, 5));
  p = c.conn->Packets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].second.substr(3), std::string("\x87\x01", 2));  // SUBACK: refused, granted 1
  Publish pub;
  pub.topic = "secret/x";
  pub.qos = 1;
  pub.packet_id = 5;
  c.Send(EncodePublish(pub, 5));
  p = c.conn->Packets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first >> 4, kPuback);
  EXPECT_EQ(uint8_t(p[0].second[2]), rc::kNotAuthorized);
  c.Close();
  broker->Stop();
  std::lock_guard<std::mutex> l(authz.mu);
  EXPECT_NE(std::find(authz.calls.begin(), authz.calls.end(), "connect:dev:alice:"), authz.calls.end());
  EXPECT_NE(std::find(authz.calls.begin(), authz.calls.end(), "subscribe:dev:alice:open/#"),
            authz.calls.end());
  EXPECT_NE(std::find(authz.calls.begin(), authz.calls.end(), "publish:dev:alice:secret/x"),
            authz.calls.end());
}

}  // namespace
}  // namespace tarn::gateway::mqtt

namespace tarn::gateway::mqtt {
namespace {

// Denies publishing to "secret/…" and retaining on "noretain/…"; records every question.
class PolicyLike : public AuthorizationHook {
 public:
  bool Allow(AuthzAction a, const ClientInfo& c, std::string_view topic) override {
    std::lock_guard<std::mutex> l(mu);
    calls.push_back(std::string(AuthzActionName(a)) + ":" + c.client_id + ":" + std::string(topic) +
                    (a == AuthzAction::kConnect ? std::string(c.persistent_session ? ":persistent" : "") +
                                                      (c.has_will ? ":will" : "")
                                                : std::string()));
    if (a == AuthzAction::kRetainPublish) return topic.rfind("noretain/", 0) != 0;
    return topic.rfind("secret", 0) != 0;
  }
  bool Asked(const std::string& call) {
    std::lock_guard<std::mutex> l(mu);
    return std::find(calls.begin(), calls.end(), call) != calls.end();
  }
  std::mutex mu;
  std::vector<std::string> calls;
};

class BrokerPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = Broker::Open(BrokerOptions(), &authn_, &authz_);
    ASSERT_TRUE(b.ok());
    broker_ = std::move(*b);
  }
  void TearDown() override {
    for (auto& c : clients_) c->Close();
    broker_->Stop();
  }
  // A client whose TLS peer presented a certificate with `fingerprint` ("" = none).
  Client* Open(int v, const std::string& fingerprint = "") {
    auto conn = std::make_shared<FakeConn>();
    if (!fingerprint.empty()) {
      conn->peer_.has_client_cert = true;
      conn->peer_.cert_fingerprint_sha256 = fingerprint;
    }
    clients_.push_back(std::make_unique<Client>(nullptr, v));
    Client* c = clients_.back().get();
    c->conn = conn;
    c->h = broker_->Accept(conn);
    return c;
  }
  Client* Connect(const std::string& id, int v, const std::string& fingerprint = "",
                  std::optional<Will> will = std::nullopt) {
    Client* c = Open(v, fingerprint);
    mqtt::Connect cp;
    cp.protocol_level = uint8_t(v);
    cp.client_id = id;
    cp.will = std::move(will);
    c->Send(EncodeConnect(cp));
    auto p = c->conn->Packets();
    EXPECT_EQ(p.size(), 1u);
    return c;
  }
  std::vector<std::pair<uint8_t, std::string>> Pub(Client* c, const std::string& topic, uint8_t qos,
                                                   bool retain = false) {
    Publish p;
    p.topic = topic;
    p.payload = "x";
    p.qos = qos;
    p.retain = retain;
    p.packet_id = qos ? 7 : 0;
    c->Send(EncodePublish(p, c->version));
    return c->conn->Packets();
  }
  bool Closed(Client* c) {
    std::lock_guard<std::mutex> l(c->conn->mu);
    return c->conn->closed;
  }

  AllowAll authn_;
  PolicyLike authz_;
  std::unique_ptr<Broker> broker_;
  std::vector<std::unique_ptr<Client>> clients_;
};

TEST_F(BrokerPolicyTest, DeniedPublishDisconnectsMqtt311) {
  // 3.1.1 has no negative PUBACK: the connection is closed, as AWS IoT does.
  Client* c = Connect("dev", 4);
  auto p = Pub(c, "secret/x", 1);
  EXPECT_TRUE(p.empty());
  EXPECT_TRUE(Closed(c));
  Client* q0 = Connect("dev0", 4);
  Pub(q0, "secret/x", 0);
  EXPECT_TRUE(Closed(q0));
  Client* ok = Connect("ok", 4);
  p = Pub(ok, "open/x", 1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first >> 4, kPuback);
  EXPECT_FALSE(Closed(ok));
}

// A hook whose publish decisions may be remembered while its epoch stays the same.
class EpochPolicy : public AuthorizationHook {
 public:
  bool Allow(AuthzAction a, const ClientInfo& c, std::string_view topic) override {
    std::lock_guard<std::mutex> l(mu);
    if (a == AuthzAction::kPublish) ++publish_asks;
    if (a == AuthzAction::kRetainPublish) ++retain_asks;
    return a == AuthzAction::kConnect || topic.rfind(denied, 0) != 0;
  }
  uint64_t PublishDecisionEpoch(const ClientInfo&) override { return epoch.load(); }
  void Change(const std::string& prefix) {
    std::lock_guard<std::mutex> l(mu);
    denied = prefix;
    ++epoch;
  }
  int Asks() {
    std::lock_guard<std::mutex> l(mu);
    return publish_asks;
  }
  std::mutex mu;
  std::string denied = "secret";  // guarded by mu
  int publish_asks = 0;           // guarded by mu
  int retain_asks = 0;            // guarded by mu
  std::atomic<uint64_t> epoch{1};
};

TEST(BrokerPolicyEpoch, AllowIsRememberedPerConnectionUntilTheEpochChanges) {
  AllowAll authn;
  EpochPolicy authz;
  auto b = Broker::Open(BrokerOptions(), &authn, &authz);
  ASSERT_TRUE(b.ok());
  Client c(b->get(), 4);
  mqtt::Connect cp;
  cp.protocol_level = 4;
  cp.client_id = "dev";
  c.Send(EncodeConnect(cp));
  ASSERT_EQ(c.conn->Packets().size(), 1u);
  auto pub = [&](const std::string& topic, bool retain = false) {
    Publish p;
    p.topic = topic;
    p.payload = "x";
    p.qos = 1;
    p.packet_id = 9;
    p.retain = retain;
    c.Send(EncodePublish(p, 4));
    return c.conn->Packets();
  };
  for (int i = 0; i < 3; ++i) ASSERT_EQ(pub("dev/t").size(), 1u);
  EXPECT_EQ(authz.Asks(), 1);  // asked once for three PUBLISHes to one topic
  ASSERT_EQ(pub("dev/u").size(), 1u);
  ASSERT_EQ(pub("dev/t").size(), 1u);
  EXPECT_EQ(authz.Asks(), 3);  // another topic is asked (only the last one is remembered)
  // Retained publishes are always asked (kRetainPublish too).
  ASSERT_EQ(pub("dev/t", true).size(), 1u);
  EXPECT_EQ(authz.Asks(), 4);
  {
    std::lock_guard<std::mutex> l(authz.mu);
    EXPECT_EQ(authz.retain_asks, 1);
  }
  // A policy change applies to the next packet: 3.1.1 closes the connection of a denied
  // publisher.
  authz.Change("dev/");
  EXPECT_TRUE(pub("dev/t").empty());
  EXPECT_EQ(authz.Asks(), 5);
  bool closed;
  {
    std::lock_guard<std::mutex> l(c.conn->mu);
    closed = c.conn->closed;
  }
  EXPECT_TRUE(closed);
  c.Close();
  (*b)->Stop();
}

TEST_F(BrokerPolicyTest, DeniedPublishIsNotAuthorizedInMqtt5) {
  Client* c = Connect("dev", 5);
  auto p = Pub(c, "secret/x", 1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first >> 4, kPuback);
  EXPECT_EQ(uint8_t(p[0].second[2]), rc::kNotAuthorized);
  p = Pub(c, "secret/x", 2);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first >> 4, kPubrec);
  EXPECT_EQ(uint8_t(p[0].second[2]), rc::kNotAuthorized);
  // QoS 0 has no acknowledgement: dropped, the connection stays.
  EXPECT_TRUE(Pub(c, "secret/x", 0).empty());
  EXPECT_FALSE(Closed(c));
}

TEST_F(BrokerPolicyTest, RetainedPublishNeedsRetainPublish) {
  Client* sub = Connect("sub", 5);
  Subscribe s;
  s.packet_id = 1;
  s.topics.push_back({"#", 0});
  sub->Send(EncodeSubscribe(s, 5));
  sub->conn->Packets();
  Client* c = Connect("dev", 5);
  auto p = Pub(c, "noretain/x", 1, /*retain=*/true);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(uint8_t(p[0].second[2]), rc::kNotAuthorized);
  EXPECT_EQ(broker_->retained_messages(), 0u);
  EXPECT_TRUE(sub->conn->Packets().empty());
  p = Pub(c, "noretain/x", 1, /*retain=*/false);  // not retained: iot:Publish is enough
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].second.size(), 2u);  // PUBACK success (reason omitted)
  p = Pub(c, "open/x", 1, /*retain=*/true);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].second.size(), 2u);
  EXPECT_EQ(broker_->retained_messages(), 1u);
  EXPECT_TRUE(authz_.Asked("retain-publish:dev:open/x"));
  EXPECT_TRUE(authz_.Asked("retain-publish:dev:noretain/x"));
}

TEST_F(BrokerPolicyTest, ConnectAttributesReachTheHook) {
  Will w;
  w.topic = "open/will";
  w.payload = "bye";
  Client* c = Open(5);
  mqtt::Connect cp;
  cp.protocol_level = 5;
  cp.client_id = "pw";
  cp.will = w;
  cp.props.session_expiry = 60;
  c->Send(EncodeConnect(cp));
  EXPECT_TRUE(authz_.Asked("connect:pw::persistent:will"));
  Connect("plain", 4);
  EXPECT_TRUE(authz_.Asked("connect:plain:"));
}

TEST_F(BrokerPolicyTest, WillIsPublishedOnlyWhereTheClientMayPublish) {
  Client* sub = Connect("sub", 5);
  Subscribe s;
  s.packet_id = 1;
  s.topics.push_back({"#", 0});
  sub->Send(EncodeSubscribe(s, 5));
  sub->conn->Packets();
  Will denied;
  denied.topic = "secret/will";
  denied.payload = "bye";
  Client* a = Connect("a", 5, "", denied);
  a->Close();
  Will allowed;
  allowed.topic = "open/will";
  allowed.payload = "bye";
  Client* b = Connect("b", 5, "", allowed);
  b->Close();
  std::vector<std::string> topics;
  for (auto& [h, body] : sub->conn->Packets()) {
    Publish p;
    if ((h >> 4) == kPublish && ParsePublish(body, h & 15, 5, &p) == 0) topics.push_back(p.topic);
  }
  EXPECT_EQ(topics, std::vector<std::string>{"open/will"});
}

TEST_F(BrokerPolicyTest, DisconnectCertificateClosesItsConnections) {
  Client* dev = Connect("dev", 5, "AB12CD");
  Client* dev311 = Connect("dev311", 4, "ab12cd");
  Client* other = Connect("other", 5, "FFFF");
  Subscribe s;
  s.packet_id = 1;
  s.topics.push_back({"#", 0});
  other->Send(EncodeSubscribe(s, 5));
  other->conn->Packets();
  Client* pending = Open(5, "AB12CD");  // TLS done, CONNECT not yet sent
  EXPECT_EQ(broker_->DisconnectCertificate("ab12CD", rc::kAdministrativeAction), 3u);
  auto p = dev->conn->Packets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first >> 4, kDisconnect);
  EXPECT_EQ(uint8_t(p[0].second[0]), rc::kAdministrativeAction);
  EXPECT_TRUE(Closed(dev));
  EXPECT_TRUE(Closed(dev311));
  EXPECT_TRUE(dev311->conn->Packets().empty());  // 3.1.1: no server DISCONNECT
  EXPECT_FALSE(Closed(other));
  EXPECT_TRUE(Closed(pending));
  // Whatever the closed connections still send is not acted upon.
  mqtt::Connect cp;
  cp.protocol_level = 5;
  cp.client_id = "late";
  pending->Send(EncodeConnect(cp));
  EXPECT_EQ(broker_->connected_clients(), 3u);  // dev, dev311 (until their sockets close), other
  Pub(dev, "open/x", 1);
  EXPECT_TRUE(other->conn->Packets().empty());
  for (Client* c : {dev, dev311, pending}) c->Close();
  EXPECT_EQ(broker_->connected_clients(), 1u);
  EXPECT_EQ(broker_->DisconnectCertificate("ab12cd", rc::kAdministrativeAction), 0u);
  EXPECT_EQ(broker_->DisconnectCertificate("", rc::kAdministrativeAction), 0u);

  EXPECT_TRUE(broker_->DisconnectClient("other", rc::kAdministrativeAction));
  EXPECT_TRUE(Closed(other));
  EXPECT_FALSE(broker_->DisconnectClient("other", rc::kAdministrativeAction));
  EXPECT_FALSE(broker_->DisconnectClient("nobody", rc::kAdministrativeAction));
}

}  // namespace
}  // namespace tarn::gateway::mqtt
