// The broker: connection protocol state machine (Conn), sessions, routing, persistence.
//
// Locking: BrokerImpl::mu_ guards sessions, the topic tree, retained messages and the parts of
// each Conn marked "guarded by mu_". A Conn's parse state is touched only by its own
// connection's callbacks (never concurrent, see net/stream_server.h). Sending only queues bytes
// on a StreamConnection, so holding mu_ while sending never waits on a socket. In-process
// subscriber callbacks run after mu_ is released.
#include "gateway/mqtt/broker.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/strings.h"
#include "gateway/mqtt/session_log.h"
#include "gateway/mqtt/topic_tree.h"
#include "ops/metrics.h"

namespace tarn::gateway::mqtt {

bool SplitShared(std::string_view filter, std::string* group, std::string* topic_filter, bool* ok) {
  static constexpr std::string_view kPrefix = "$share/";
  if (filter.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view rest = filter.substr(kPrefix.size());
  size_t slash = rest.find('/');
  *ok = false;
  if (slash == std::string_view::npos || slash == 0) return true;
  std::string_view g = rest.substr(0, slash);
  if (g.find_first_of("+#") != std::string_view::npos) return true;  // §4.8.2
  *group = std::string(g);
  *topic_filter = std::string(rest.substr(slash + 1));
  *ok = ValidTopicFilter(*topic_filter);
  return true;
}

bool TopicMatches(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic[0] == '$' && !filter.empty() && (filter[0] == '+' || filter[0] == '#')) {
    return false;
  }
  size_t f = 0, t = 0;
  for (;;) {
    size_t fe = filter.find('/', f);
    std::string_view fl = filter.substr(f, fe == std::string_view::npos ? filter.npos : fe - f);
    if (fl == "#") return true;
    if (t == std::string_view::npos) return false;
    size_t te = topic.find('/', t);
    std::string_view tl = topic.substr(t, te == std::string_view::npos ? topic.npos : te - t);
    if (fl != "+" && fl != tl) return false;
    bool fend = fe == std::string_view::npos, tend = te == std::string_view::npos;
    if (fend && tend) return true;
    if (fend) return false;
    f = fe + 1;
    if (tend) {
      // Topic ended; the filter may still match with a trailing "/#".
      return filter.substr(f) == "#";
    }
    t = te + 1;
  }
}

namespace {

int64_t NowMs() { return Clock::Real()->NowMillis(); }

class Conn;
class BrokerImpl;

struct Outgoing {
  MessagePtr msg;
  uint8_t qos = 0;
  bool retain = false;
  std::vector<uint32_t> sub_ids;
  uint64_t seq = 0;  // session-log sequence; 0 = not persisted
  uint64_t order = 0;
  uint16_t packet_id = 0;
  bool released = false;  // QoS 2: PUBREC received, PUBREL sent
};

struct Session {
  std::string client_id;
  uint32_t expiry = 0;  // seconds; 0xFFFFFFFF = never
  bool persisted = false;
  Conn* conn = nullptr;
  ClientInfo info;
  std::map<std::string, Subscription> subs;
  std::map<uint16_t, Outgoing> inflight;
  std::deque<Outgoing> queue;
  uint16_t next_id = 1;
  std::unordered_set<uint16_t> qos2_in;
  int64_t offline_since_ms = 0;
  std::optional<Will> pending_will;
  int64_t will_at_ms = 0;
  uint64_t next_seq = 1;
  uint64_t next_order = 1;
  uint64_t dropped = 0;
};

struct LocalSub {
  uint64_t id;
  std::string filter;
  LocalCallback cb;
  bool counts_as_subscriber = true;
};

// One entry in the topic tree.
struct TreeEntry {
  Session* session = nullptr;           // a client subscription …
  const Subscription* sub = nullptr;    // … (points into session->subs)
  std::string group;                    // non-empty: shared subscription group
  std::shared_ptr<LocalSub> local;      // … or an in-process subscriber
};

// A refusal of a held acknowledgement (AckToken::Refuse), packed: reason | kRetryable.
constexpr uint16_t kRetryable = 0x100;
// Not a refusal: the entry is dropped unsent (its PUBLISH was not taken after all).
constexpr uint16_t kDiscard = 0x200;

// A connection's outgoing acknowledgements, in the order their packets arrived (MQTT 3.1.1
// §4.6, MQTT 5 §4.6): each leaves once every release it waits for has come — from the
// connection thread, the session log's writer, or an in-process subscriber's thread.
//
// An entry for a QoS 1 PUBLISH that in-process subscribers hold (SetPublish) can be found by a
// resend of the same message (Join) until its hold is released — on this connection or on a
// later one of the same client, which reaches this queue through `earlier`: the resend then
// waits for the original's outcome instead of being routed a second time.
class AckQueue {
 public:
  static constexpr uint64_t kNone = ~uint64_t{0};
  explicit AckQueue(std::shared_ptr<net::StreamConnection> sc) : sc_(std::move(sc)) {}
  // A place in line, waiting for one release (the caller's).
  uint64_t Reserve() {
    std::lock_guard<std::mutex> lock(mu_);
    q_.push_back(Entry{});
    return first_ + q_.size() - 1;
  }
  void Set(uint64_t ticket, std::string bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    q_[ticket - first_].bytes = std::move(bytes);
  }
  // What the entry acknowledges, for re-encoding a refusal and (with `msg`) for Join.
  void SetPublish(uint64_t ticket, uint8_t ack_type, uint16_t packet_id, MessagePtr msg) {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = q_[ticket - first_];
    e.ack_type = ack_type;
    e.packet_id = packet_id;
    e.msg = std::move(msg);
  }
  // Hold + SetPublish in one step (one lock per PUBLISH); kNone reserves a place first.
  // Returns the ticket.
  uint64_t HoldPublish(uint64_t ticket, uint8_t ack_type, uint16_t packet_id, MessagePtr msg) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ticket == kNone) {
      q_.push_back(Entry{});
      ticket = first_ + q_.size() - 1;
    }
    Entry& e = q_[ticket - first_];
    e.waits++;
    e.ack_type = ack_type;
    e.packet_id = packet_id;
    e.msg = std::move(msg);
    return ticket;
  }
  // Set, `extra_holds` times Hold, then the caller's Release, in one step; kNone reserves a
  // place first. Returns the ticket (for the holds' releases).
  uint64_t Complete(uint64_t ticket, std::string bytes, int extra_holds) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ticket == kNone) {
      q_.push_back(Entry{});
      ticket = first_ + q_.size() - 1;
    }
    Entry& e = q_[ticket - first_];
    e.bytes = std::move(bytes);
    e.waits += extra_holds;
    ReleaseLocked(ticket, 0);
    return ticket;
  }
  void Release(uint64_t ticket, uint16_t refusal = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    ReleaseLocked(ticket, refusal);
  }
  // The in-process subscribers' hold of a SetPublish entry is released: no resend can join it
  // any more; those that did get the same outcome.
  void ReleaseHold(uint64_t ticket, uint16_t refusal) {
    std::vector<std::function<void(uint16_t)>> joined;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Entry& e = q_[ticket - first_];
      e.msg.reset();
      joined.swap(e.joined);
      ReleaseLocked(ticket, refusal);
    }
    for (auto& f : joined) f(refusal);
  }
  // If a QoS 1 PUBLISH with this packet id, topic and payload is still held here, `then` runs
  // with its outcome when the hold is released, and this returns true.
  bool Join(uint16_t packet_id, const std::string& topic, const std::string& payload,
            std::function<void(uint16_t refusal)>& then) {
    std::lock_guard<std::mutex> lock(mu_);
    for (Entry& e : q_) {
      if (e.msg && e.packet_id == packet_id && e.msg->topic == topic && e.msg->payload == payload) {
        e.joined.push_back(std::move(then));
        return true;
      }
    }
    return false;
  }
  void set_version(int v) { version_ = v; }

  // This client's earlier connections' queues, newest last; written before the connection's
  // first PUBLISH is handled, read only by its own thread.
  std::vector<std::weak_ptr<AckQueue>> earlier;

 private:
  struct Entry {
    std::string bytes;
    int waits = 1;
    uint16_t refusal = 0;
    uint8_t ack_type = 0;  // kPuback / kPubrec when SetPublish was called
    uint16_t packet_id = 0;
    MessagePtr msg;  // set while the PUBLISH is held and may be joined
    std::vector<std::function<void(uint16_t)>> joined;
  };
  void ReleaseLocked(uint64_t ticket, uint16_t refusal) {
    Entry& e = q_[ticket - first_];
    if (refusal && !e.refusal) e.refusal = refusal;
    if (--e.waits > 0) return;
    while (!q_.empty() && q_.front().waits == 0) {
      Entry& f = q_.front();
      if (!closed_) Send(f);
      q_.pop_front();
      ++first_;
    }
  }
  void Send(Entry& e) {
    if (e.refusal & kDiscard) return;
    // QoS 1 only. A QoS 2 PUBLISH's packet id is already the session's until PUBREL (§4.3.3), so a
    // refused one's resend would be taken for a retransmission and dropped: QoS 2 (which AWS
    // IoT does not offer) keeps the plain PUBREC.
    if (e.refusal && e.ack_type == kPuback) {
      if (version_ == 5) {
        // MQTT 5.0 §3.4.2.1 / §3.5.2.1: the reason code says why the message was not taken.
        Ack r;
        r.packet_id = e.packet_id;
        r.reason = uint8_t(e.refusal & 0xFF);
        sc_->Send(EncodeAck(e.ack_type, r, 5));
        return;
      }
      if (e.refusal & kRetryable) {
        // MQTT 3.1.1 has no negative acknowledgement. Withhold it and close the connection
        // (after the acknowledgements before it): the client resends the message with DUP set
        // once it has reconnected (§4.4) — an open connection would leave it unacknowledged
        // in the client's window for good, since 3.1.1 clients resend only on reconnect.
        closed_ = true;
        sc_->Close(true);
        return;
      }
    }
    sc_->Send(std::move(e.bytes));
  }
  std::mutex mu_;
  std::deque<Entry> q_;  // guarded by mu_; q_[i] has ticket first_ + i
  uint64_t first_ = 0;   // guarded by mu_
  bool closed_ = false;  // guarded by mu_: a withheld acknowledgement closed the connection
  int version_ = 4;      // set at CONNECT, before any acknowledgement of a PUBLISH
  std::shared_ptr<net::StreamConnection> sc_;
};

// The in-process subscribers' hold of one PUBLISH's acknowledgement (broker.h AckToken).
class HeldAck final : public AckToken {
 public:
  HeldAck(std::shared_ptr<AckQueue> q, uint64_t ticket) : q_(std::move(q)), ticket_(ticket) {}
  ~HeldAck() override { q_->ReleaseHold(ticket_, refusal_.load()); }
  void Refuse(uint8_t reason, bool retryable) override {
    // MQTT 5.0 §3.4.2.1 / §3.5.2.1: the failure codes a PUBACK / PUBREC may carry.
    switch (reason) {
      case 0x80: case 0x83: case 0x87: case 0x90: case 0x91: case 0x97: case 0x99: break;
      default: reason = 0x80;
    }
    uint16_t none = 0;
    refusal_.compare_exchange_strong(none, uint16_t(reason | (retryable ? kRetryable : 0)));
  }

 private:
  std::shared_ptr<AckQueue> q_;
  uint64_t ticket_;
  std::atomic<uint16_t> refusal_{0};
};

// Collected under the lock, acted on after it is released.
struct After {
  std::vector<std::pair<std::shared_ptr<LocalSub>, MessagePtr>> local;
  AckHold hold;  // given to the in-process subscribers (empty: nothing to hold)
  uint64_t lsn = 0;
  bool matched = false;
};

struct Metrics {
  ops::CounterMetric* received;
  ops::CounterMetric* sent;
  ops::CounterMetric* dropped_queue_full;
  ops::CounterMetric* dropped_too_large;
  ops::CounterMetric* dropped_expired;
  ops::CounterMetric* protocol_errors;
  ops::CounterMetric* keepalive_timeouts;
  ops::CounterMetric* auth_failures;
  ops::GaugeMetric* connected;
  ops::GaugeMetric* sessions;
  ops::GaugeMetric* retained;
};

class BrokerImpl final : public Broker {
 public:
  BrokerImpl(const BrokerOptions& o, Authenticator* authn, AuthorizationHook* authz)
      : opts_(o), authn_(authn), authz_(authz) {
    auto& r = ops::Metrics();
    const char* dropped = "tarn_mqtt_messages_dropped_total";
    const char* dropped_help = "Messages not delivered to a subscriber, by reason";
    m_.received = &r.Counter("tarn_mqtt_messages_received_total", "PUBLISH packets received");
    m_.sent = &r.Counter("tarn_mqtt_messages_sent_total", "PUBLISH packets sent");
    m_.dropped_queue_full = &r.Counter(dropped, dropped_help, {{"reason", "queue_full"}});
    m_.dropped_too_large = &r.Counter(dropped, dropped_help, {{"reason", "too_large_for_client"}});
    m_.dropped_expired = &r.Counter(dropped, dropped_help, {{"reason", "expired"}});
    m_.protocol_errors = &r.Counter("tarn_mqtt_protocol_errors_total",
                                    "Connections closed for malformed packets or protocol errors");
    m_.keepalive_timeouts = &r.Counter("tarn_mqtt_keepalive_timeouts_total",
                                       "Connections closed by the keep-alive (1.5x) rule");
    m_.auth_failures = &r.Counter("tarn_mqtt_auth_failures_total", "CONNECTs refused by authentication");
    m_.connected = &r.Gauge("tarn_mqtt_connected_clients", "Clients connected to the MQTT broker");
    m_.sessions = &r.Gauge("tarn_mqtt_sessions", "MQTT sessions (connected and persistent)");
    m_.retained = &r.Gauge("tarn_mqtt_retained_messages", "Retained MQTT messages");
  }
  ~BrokerImpl() override { Stop(); }

  Status Init() {
    if (!opts_.data_dir.empty()) {
      RecoveredState st;
      ASSIGN_OR_RETURN(log_, SessionLog::Open(opts_.data_dir, &st));
      int64_t now = NowMs();
      size_t queued = 0;
      for (auto& [cid, rs] : st.sessions) {
        auto s = std::make_unique<Session>();
        s->client_id = cid;
        s->info.client_id = cid;
        s->info.identity = rs.identity;
        s->info.username = rs.username;
        s->expiry = rs.expiry_interval;
        s->persisted = true;
        s->offline_since_ms = now;
        s->next_seq = rs.next_seq;
        s->qos2_in.insert(rs.qos2_received.begin(), rs.qos2_received.end());
        for (auto& [f, sub] : rs.subscriptions) {
          auto it = s->subs.emplace(f, sub).first;
          AddToTree(s.get(), &it->second);
        }
        for (auto& [seq, sm] : rs.messages) {
          Outgoing o;
          o.msg = std::make_shared<Message>(std::move(sm.msg));
          o.qos = sm.qos;
          o.retain = sm.retain;
          o.sub_ids = sm.subscription_ids;
          o.seq = seq;
          o.order = s->next_order++;
          s->queue.push_back(std::move(o));
          ++queued;
        }
        sessions_[cid] = std::move(s);
      }
      for (auto& [topic, msg] : st.retained) {
        retained_[topic] = std::make_shared<Message>(std::move(msg));
      }
      TLOG_INFO("mqtt", "recovered {} persistent sessions, {} queued messages, {} retained "
                "messages from {} log records", st.sessions.size(), queued, st.retained.size(),
                st.records);
    }
    sweeper_ = std::thread([this] { SweepLoop(); });
    return Status::OK();
  }

  std::unique_ptr<net::StreamHandler> Accept(std::shared_ptr<net::StreamConnection> c) override;

  Status Publish(const std::string& topic, std::string payload, int qos, bool retain,
                 Properties props) override {
    return PublishInProcess(topic, std::move(payload), qos, retain, std::move(props), nullptr);
  }

  Status PublishDurable(const std::string& topic, std::string payload, int qos,
                        std::function<void()> durable) override {
    return PublishInProcess(topic, std::move(payload), qos, false, Properties(), &durable);
  }

  Status PublishInProcess(const std::string& topic, std::string payload, int qos, bool retain,
                          Properties props, std::function<void()>* durable) {
    if (!ValidUtf8(topic) || !ValidTopicName(topic)) {
      return Error(ErrorCode::kInvalidArgument, "invalid MQTT topic name '" + topic + "'");
    }
    if (qos < 0 || qos > 2) return Error(ErrorCode::kInvalidArgument, "QoS must be 0, 1 or 2");
    auto msg = MakeMessage(topic, std::move(payload), uint8_t(qos), retain, std::move(props), "");
    After a;
    {
      std::lock_guard<std::mutex> lock(mu_);
      RouteLocked(msg, &a);
    }
    const uint64_t lsn = a.lsn;  // the log records routing wrote (queued messages, retained)
    RunAfter(&a);
    if (durable) {
      if (log_ && lsn) {
        log_->WhenDurable(lsn, std::move(*durable));
      } else {
        (*durable)();
      }
    }
    return Status::OK();
  }

  Result<uint64_t> Subscribe(const std::string& filter, LocalCallback cb,
                             bool counts_as_subscriber) override {
    if (!ValidUtf8(filter) || !ValidTopicFilter(filter)) {
      return Error(ErrorCode::kInvalidArgument, "invalid MQTT topic filter '" + filter + "'");
    }
    auto ls = std::make_shared<LocalSub>();
    ls->filter = filter;
    ls->cb = std::move(cb);
    ls->counts_as_subscriber = counts_as_subscriber;
    std::lock_guard<std::mutex> lock(mu_);
    ls->id = ++next_local_id_;
    TreeEntry e;
    e.local = ls;
    tree_.Add(filter, e);
    locals_[ls->id] = ls;
    return ls->id;
  }

  void Unsubscribe(uint64_t handle) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = locals_.find(handle);
    if (it == locals_.end()) return;
    auto ls = it->second;
    locals_.erase(it);
    tree_.Remove(ls->filter, [&](const TreeEntry& e) { return e.local == ls; });
  }

  bool DisconnectClient(const std::string& client_id, uint8_t reason) override;
  size_t DisconnectCertificate(std::string_view fingerprint_sha256, uint8_t reason) override;

  void Stop() override;

  size_t connected_clients() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return connected_;
  }
  size_t sessions() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return sessions_.size();
  }
  size_t retained_messages() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return retained_.size();
  }

  // ---- used by Conn ----
  MessagePtr MakeMessage(std::string topic, std::string payload, uint8_t qos, bool retain,
                         Properties props, std::string origin, uint16_t packet_id = 0,
                         bool dup = false) {
    auto m = std::make_shared<Message>();
    m->topic = std::move(topic);
    m->payload = std::move(payload);
    m->qos = qos;
    m->retain = retain;
    // Only message properties travel with the message (MQTT 5.0 §3.3.2.3).
    props.topic_alias.reset();
    props.subscription_ids.clear();
    if (props.message_expiry) m->expiry_ms = NowMs() + int64_t(*props.message_expiry) * 1000;
    m->props = std::move(props);
    m->origin = std::move(origin);
    m->packet_id = packet_id;
    m->dup = dup;
    return m;
  }

  void RouteLocked(const MessagePtr& msg, After* a);
  void DeliverLocked(Session* s, const MessagePtr& msg, uint8_t qos, bool retain,
                     std::vector<uint32_t> sub_ids, After* a);
  bool SendPublishLocked(Conn* c, const Outgoing& o, bool dup);
  void SendInflightLocked(Session* s, Outgoing o);
  void PumpLocked(Session* s);
  void AckOutgoingLocked(Session* s, std::map<uint16_t, Outgoing>::iterator it);
  void DestroySessionLocked(Session* s, After* a);
  void WillLocked(Session* s, Will will, const ClientInfo& info, After* a);
  void PublishWillLocked(const Will& w, const ClientInfo& info, After* a);
  // The authorisation hook's answer for publishing `topic` (and retaining it, if `retain`).
  bool MayPublish(const ClientInfo& info, std::string_view topic, bool retain) {
    if (!authz_) return true;
    if (!authz_->Allow(AuthzAction::kPublish, info, topic)) return false;
    return !retain || authz_->Allow(AuthzAction::kRetainPublish, info, topic);
  }
  void AddToTree(Session* s, const Subscription* sub) {
    TreeEntry e;
    e.session = s;
    e.sub = sub;
    std::string group, tf;
    bool ok = true;
    if (SplitShared(sub->filter, &group, &tf, &ok)) {
      e.group = group;
      tree_.Add(tf, e);
    } else {
      tree_.Add(sub->filter, e);
    }
  }
  void RemoveFromTree(Session* s, const Subscription* sub) {
    std::string group, tf;
    bool ok = true;
    std::string_view where = sub->filter;
    if (SplitShared(sub->filter, &group, &tf, &ok)) where = tf;
    tree_.Remove(where, [&](const TreeEntry& e) { return e.session == s && e.sub == sub; });
  }
  uint64_t LogLocked(std::string rec) { return log_ ? log_->Append(std::move(rec)) : 0; }
  void PersistSessionLocked(Session* s);

  void RunAfter(After* a) {
    for (auto& [ls, msg] : a->local) ls->cb(*msg, a->hold);
    a->local.clear();
    a->hold.reset();
  }

  void SweepLoop();
  void CompactLocked();

  BrokerOptions opts_;
  Authenticator* authn_;
  AuthorizationHook* authz_;
  Metrics m_;
  std::unique_ptr<SessionLog> log_;

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Session>> sessions_;  // guarded by mu_
  std::unordered_set<Conn*> conns_;                                     // guarded by mu_
  size_t connected_ = 0;                                                // guarded by mu_
  TopicTree<TreeEntry> tree_;                                           // guarded by mu_
  std::map<std::string, MessagePtr> retained_;                          // guarded by mu_
  std::unordered_map<uint64_t, std::shared_ptr<LocalSub>> locals_;      // guarded by mu_
  std::map<std::string, size_t> shared_rr_;                             // guarded by mu_
  // Per client id, the acknowledgement queues of its connections that may still hold a PUBLISH
  // (for a resend on a later connection to join, AckQueue::Join); pruned by the sweeper.
  std::unordered_map<std::string, std::vector<std::weak_ptr<AckQueue>>> recent_acks_;  // mu_
  uint64_t next_local_id_ = 0;                                          // guarded by mu_
  bool stopping_ = false;                                               // guarded by mu_

  std::mutex sweep_mu_;
  std::condition_variable sweep_cv_;
  bool sweep_stop_ = false;  // guarded by sweep_mu_
  std::thread sweeper_;
  std::atomic<bool> stopped_{false};
};

class Conn final : public net::StreamHandler {
 public:
  Conn(BrokerImpl* b, std::shared_ptr<net::StreamConnection> sc)
      : b_(b), sc_(std::move(sc)), created_ms_(NowMs()), acks_(std::make_shared<AckQueue>(sc_)) {
    last_rx_ms_ = created_ms_;
    const auto& p = sc_->peer();
    info_.listener = p.listener;
    info_.remote_ip = p.remote_ip;
    info_.has_client_cert = p.has_client_cert;
    info_.cert_subject_cn = p.cert_subject_cn;
    info_.cert_fingerprint_sha256 = p.cert_fingerprint_sha256;
  }

  void OnData(std::string_view data) override {
    last_rx_ms_.store(NowMs(), std::memory_order_relaxed);
    if (closing_) return;
    if (in_.empty()) {
      size_t used = Process(data);
      if (!closing_ && used < data.size()) in_.assign(data.substr(used));
    } else {
      in_.append(data);
      size_t used = Process(in_);
      if (closing_) {
        in_.clear();
      } else {
        in_.erase(0, used);
        if (in_.empty()) std::string().swap(in_);
      }
    }
  }

  void OnClose() override;

  // Disconnects with an MQTT 5 reason code (3.1.1: just closes). Any thread, mu_ held.
  void KickLocked(uint8_t reason) {
    if (dead_) return;
    dead_ = true;
    if (connected_.load() && version_ == 5) sc_->Send(EncodeDisconnect(reason, {}, 5));
    sc_->Close(true);
  }

  // ---- state shared with the broker (guarded by b_->mu_ unless noted) ----
  BrokerImpl* b_;
  std::shared_ptr<net::StreamConnection> sc_;  // valid until OnClose
  int version_ = 4;                            // set before the session is attached
  std::atomic<bool> connected_{false};
  std::atomic<int64_t> last_rx_ms_{0};
  int64_t created_ms_;
  uint16_t keep_alive_ = 0;
  Session* session_ = nullptr;
  std::optional<Will> will_;
  bool dead_ = false;
  uint16_t client_receive_max_ = 65535;
  uint32_t client_max_packet_ = 0xFFFFFFFF;
  uint16_t client_alias_max_ = 0;
  std::unordered_map<std::string, uint16_t> out_alias_;
  // The peer fields (listener, remote_ip, has_client_cert, cert_*) are set by the constructor
  // and never change; the rest is written by the connection's thread before the session is
  // attached and is read-only after.
  ClientInfo info_;

 private:
  size_t Process(std::string_view buf) {
    size_t off = 0;
    while (!closing_ && off < buf.size()) {
      Frame f;
      FrameStatus fs = DecodeFrame(buf.substr(off), &f);
      if (fs == FrameStatus::kMalformed) {
        Fail(rc::kMalformed);
        break;
      }
      // MQTT 5.0 §4.8 / 3.1.1 §3.1.0: the first packet must be CONNECT.
      if (!connected_ && !got_connect_ && (uint8_t(buf[off]) >> 4) != kConnect) {
        Fail(rc::kProtocolError);
        break;
      }
      if (fs == FrameStatus::kNeedMore) break;
      uint64_t total = uint64_t(f.header_size) + f.remaining;
      if (total > b_->opts_.max_packet_size) {
        Fail(rc::kPacketTooLarge);  // §3.1.2.11.4
        break;
      }
      if (buf.size() - off < total) break;
      Handle(f.header, buf.substr(off + f.header_size, f.remaining));
      off += size_t(total);
    }
    return off;
  }

  void Fail(uint8_t reason) {
    if (closing_) return;
    closing_ = true;
    b_->m_.protocol_errors->Inc();
    std::lock_guard<std::mutex> lock(b_->mu_);
    KickLocked(reason);
  }

  void Handle(uint8_t header, std::string_view body) {
    uint8_t type = header >> 4, flags = header & 0x0F;
    if (type == kConnect) {
      if (got_connect_) return Fail(rc::kProtocolError);  // §3.1.0: a second CONNECT
      got_connect_ = true;
      return HandleConnect(flags, body);
    }
    if (!connected_) return Fail(rc::kProtocolError);
    switch (type) {
      case kPublish: return HandlePublish(flags, body);
      case kPuback:
      case kPubrec:
      case kPubrel:
      case kPubcomp: return HandleAck(type, flags, body);
      case kSubscribe: return HandleSubscribe(flags, body);
      case kUnsubscribe: return HandleUnsubscribe(flags, body);
      case kPingreq:
        if (flags != 0 || !body.empty()) return Fail(rc::kMalformed);
        return SendAck(EncodePingresp(), 0);
      case kDisconnect: return HandleDisconnect(flags, body);
      case kAuth:
        // §4.12: no Authentication Method was accepted on this connection (CONNECT with one
        // is refused), so an AUTH packet is a protocol error; 3.1.1 has no type 15.
        return Fail(version_ == 5 ? rc::kProtocolError : rc::kMalformed);
      default:
        return Fail(type == 0 ? rc::kMalformed : rc::kProtocolError);
    }
  }

  void SendConnackAndClose(uint8_t v5_reason, uint8_t v3_code) {
    closing_ = true;
    Connack ca;
    ca.reason = version_ == 5 ? v5_reason : v3_code;
    sc_->Send(EncodeConnack(ca, version_));
    sc_->Close(true);
  }

  void HandleConnect(uint8_t flags, std::string_view body);
  void HandlePublish(uint8_t flags, std::string_view body);
  void HandleAck(uint8_t type, uint8_t flags, std::string_view body);
  void HandleSubscribe(uint8_t flags, std::string_view body);
  void HandleUnsubscribe(uint8_t flags, std::string_view body);
  void HandleDisconnect(uint8_t flags, std::string_view body);

  // Sends an acknowledgement in order with earlier ones, once it (and every earlier one) is
  // released: by the session log's group commit when it acknowledges something on its way to
  // disk (`lsn`), and by every AckHold of its PUBLISH (`ticket` from AckQueue::Reserve).
  void SendAck(std::string bytes, uint64_t lsn, uint64_t ticket = AckQueue::kNone) {
    bool durable_hold = b_->log_ && lsn;
    ticket = acks_->Complete(ticket, std::move(bytes), durable_hold ? 1 : 0);
    if (durable_hold) b_->log_->WhenDurable(lsn, [q = acks_, ticket] { q->Release(ticket); });
  }

  // Joins `ticket` to a still-held original of this QoS 1 resend (see HandlePublish): on this
  // connection, or on an earlier one of the same client.
  bool JoinHeld(const Publish& p, uint64_t ticket) {
    std::function<void(uint16_t)> then = [q = acks_, ticket](uint16_t refusal) {
      q->Release(ticket, refusal);
    };
    if (acks_->Join(p.packet_id, p.topic, p.payload, then)) return true;
    for (auto it = acks_->earlier.rbegin(); it != acks_->earlier.rend(); ++it) {
      auto q = it->lock();
      if (q && q->Join(p.packet_id, p.topic, p.payload, then)) return true;
    }
    return false;
  }

  // The authorisation hook's answer for a PUBLISH; the connection's last allowed (non-retained)
  // topic is remembered while the hook's PublishDecisionEpoch stays the same, so a device that
  // publishes to one topic costs the hook one question, not one per message.
  bool MayPublish(const std::string& topic, bool retain) {
    if (!b_->authz_) return true;
    if (retain) return b_->MayPublish(info_, topic, true);
    // Read before asking: a policy change during the question makes the answer stale at once.
    uint64_t epoch = b_->authz_->PublishDecisionEpoch(info_);
    if (epoch != 0 && epoch == allowed_pub_epoch_ && topic == allowed_pub_topic_) return true;
    bool ok = b_->MayPublish(info_, topic, false);
    allowed_pub_epoch_ = ok ? epoch : 0;
    if (ok && epoch != 0) allowed_pub_topic_ = topic;
    return ok;
  }

  // Conn-thread only.
  std::string allowed_pub_topic_;
  uint64_t allowed_pub_epoch_ = 0;  // 0: nothing remembered
  std::string in_;
  bool closing_ = false;
  bool got_connect_ = false;
  bool clean_disconnect_ = false;
  bool session_expiry_was_zero_ = false;
  std::unordered_map<uint16_t, std::string> in_alias_;
  std::shared_ptr<AckQueue> acks_;
};

std::unique_ptr<net::StreamHandler> BrokerImpl::Accept(std::shared_ptr<net::StreamConnection> c) {
  auto conn = std::make_unique<Conn>(this, std::move(c));
  std::lock_guard<std::mutex> lock(mu_);
  conns_.insert(conn.get());
  if (stopping_) conn->KickLocked(0x8B);
  return conn;
}

void Conn::HandleConnect(uint8_t flags, std::string_view body) {
  Connect c;
  uint8_t e = ParseConnect(body, flags, &c);
  version_ = c.protocol_level == 5 ? 5 : 4;
  if (e == rc::kUnsupportedProtocolVersion) {
    // §3.1.2.2: answer in a form the client can read (3.1.1 CONNACK, return code 1).
    version_ = 4;
    return SendConnackAndClose(e, rc::kV3UnacceptableProtocol);
  }
  if (e) {
    b_->m_.protocol_errors->Inc();
    if (version_ == 5) return SendConnackAndClose(e, 0);
    closing_ = true;
    sc_->Close(false);
    return;
  }
  if (c.props.auth_method) {
    // Enhanced authentication (§4.12) is not supported: say so cleanly.
    return SendConnackAndClose(rc::kBadAuthMethod, 0);
  }
  Properties ack_props;
  if (c.client_id.empty()) {
    if (version_ == 4 && !c.clean_start) {
      return SendConnackAndClose(0, rc::kV3IdentifierRejected);  // 3.1.1 §3.1.3.1
    }
    c.client_id = "auto-" + RandomString(16);
    if (version_ == 5) ack_props.assigned_client_id = c.client_id;
  }
  info_.client_id = c.client_id;
  info_.username = c.username.value_or("");
  info_.protocol_version = version_;
  info_.persistent_session = version_ == 5 ? c.props.session_expiry.value_or(0) > 0 : !c.clean_start;
  info_.has_will = c.will.has_value();
  auto id = b_->authn_->Authenticate(info_, c.username, c.password);
  if (!id.ok()) {
    b_->m_.auth_failures->Inc();
    TLOG_INFO("mqtt", "CONNECT from {} (client id '{}') refused: {}", info_.remote_ip, c.client_id,
              id.status().message());
    bool bad_pw = id.status().code() == ErrorCode::kInvalidPassword;
    return SendConnackAndClose(bad_pw ? rc::kBadUserNameOrPassword : rc::kNotAuthorized,
                               bad_pw ? rc::kV3BadUserNameOrPassword : rc::kV3NotAuthorized);
  }
  info_.identity = *id;
  if (b_->authz_ && !b_->authz_->Allow(AuthzAction::kConnect, info_, "")) {
    b_->m_.auth_failures->Inc();
    return SendConnackAndClose(rc::kNotAuthorized, rc::kV3NotAuthorized);
  }
  uint32_t expiry = 0;
  if (version_ == 5) {
    expiry = c.props.session_expiry.value_or(0);
  } else {
    expiry = c.clean_start ? 0 : 0xFFFFFFFF;
  }
  if (expiry > b_->opts_.max_session_expiry) {
    expiry = b_->opts_.max_session_expiry;
    if (version_ == 5) ack_props.session_expiry = expiry;
  }
  session_expiry_was_zero_ = expiry == 0;
  keep_alive_ = c.keep_alive;
  if (version_ == 5) {
    ack_props.receive_maximum = b_->opts_.receive_maximum;
    ack_props.topic_alias_maximum = b_->opts_.topic_alias_maximum;
    ack_props.maximum_packet_size = b_->opts_.max_packet_size;
  }
  After a;
  {
    std::lock_guard<std::mutex> lock(b_->mu_);
    if (dead_) return;
    client_receive_max_ = c.props.receive_maximum.value_or(65535);
    client_max_packet_ = c.props.maximum_packet_size.value_or(0xFFFFFFFF);
    client_alias_max_ = c.props.topic_alias_maximum.value_or(0);
    will_ = std::move(c.will);
    Session* s = nullptr;
    auto it = b_->sessions_.find(c.client_id);
    if (it != b_->sessions_.end()) s = it->second.get();
    if (s && s->conn) {
      // §3.1.4 (4): session takeover. The old connection's will goes out (after its delay).
      Conn* old = s->conn;
      old->KickLocked(rc::kSessionTakenOver);
      old->session_ = nullptr;
      s->conn = nullptr;
      --b_->connected_;
      if (old->will_) {
        b_->WillLocked(s, std::move(*old->will_), old->info_, &a);
        old->will_.reset();
      }
    }
    if (s && !s->conn && s->expiry != 0xFFFFFFFF &&
        NowMs() - s->offline_since_ms >= int64_t(s->expiry) * 1000) {
      // Expired between two sweeps: it is gone (§3.1.2.11.2), whatever the sweeper says.
      b_->DestroySessionLocked(s, &a);
      s = nullptr;
    }
    if (s && c.clean_start) {
      b_->DestroySessionLocked(s, &a);
      s = nullptr;
    }
    bool present = s != nullptr;
    if (!s) {
      auto ns = std::make_unique<Session>();
      ns->client_id = c.client_id;
      s = ns.get();
      b_->sessions_[c.client_id] = std::move(ns);
    } else {
      s->pending_will.reset();  // §3.1.3.2.2: the session resumed before the will delay ended
    }
    s->expiry = expiry;
    s->info = info_;
    s->conn = this;
    s->offline_since_ms = 0;
    session_ = s;
    acks_->set_version(version_);
    auto& earlier = b_->recent_acks_[c.client_id];
    earlier.erase(std::remove_if(earlier.begin(), earlier.end(),
                                 [](const std::weak_ptr<AckQueue>& q) { return q.expired(); }),
                  earlier.end());
    acks_->earlier = earlier;
    earlier.push_back(acks_);
    ++b_->connected_;
    b_->PersistSessionLocked(s);
    Connack ca;
    ca.session_present = present;
    ca.props = std::move(ack_props);
    sc_->Send(EncodeConnack(ca, version_));
    connected_ = true;
    // §4.4: resend unacknowledged PUBLISH (DUP) and PUBREL, in their original order.
    std::vector<Outgoing*> resend;
    for (auto& [pid, o] : s->inflight) resend.push_back(&o);
    std::sort(resend.begin(), resend.end(), [](auto* x, auto* y) { return x->order < y->order; });
    for (Outgoing* o : resend) {
      if (o->released) {
        Ack r;
        r.packet_id = o->packet_id;
        sc_->Send(EncodeAck(kPubrel, r, version_));
      } else {
        b_->SendPublishLocked(this, *o, true);
      }
    }
    b_->PumpLocked(s);
  }
  b_->RunAfter(&a);
}

void Conn::HandlePublish(uint8_t flags, std::string_view body) {
  Publish p;
  if (uint8_t e = ParsePublish(body, flags, version_, &p)) return Fail(e);
  b_->m_.received->Inc();
  if (version_ == 5 && p.props.topic_alias) {
    uint16_t alias = *p.props.topic_alias;
    // §3.3.2.3.4: 0 or above the maximum we announced is an error.
    if (alias == 0 || alias > b_->opts_.topic_alias_maximum) return Fail(rc::kTopicAliasInvalid);
    if (p.topic.empty()) {
      auto it = in_alias_.find(alias);
      if (it == in_alias_.end()) return Fail(rc::kProtocolError);
      p.topic = it->second;
    } else {
      in_alias_[alias] = p.topic;
    }
  }
  if (version_ == 5 && p.props.payload_format.value_or(0) == 1 && !ValidUtf8(p.payload)) {
    // §3.3.2.3.2: the receiver may check a payload that claims to be UTF-8.
    if (p.qos == 0) return Fail(rc::kPayloadFormatInvalid);
    Ack r;
    r.packet_id = p.packet_id;
    r.reason = rc::kPayloadFormatInvalid;
    return SendAck(EncodeAck(p.qos == 1 ? kPuback : kPubrec, r, 5), 0);
  }
  if (!MayPublish(p.topic, p.retain)) {
    if (version_ != 5) {
      // MQTT 3.1.1 has no negative acknowledgement; AWS IoT closes the connection of a client
      // that publishes where its policy does not allow it, and so do we (the will goes out).
      TLOG_INFO("mqtt", "client '{}' closed: PUBLISH to '{}' not authorized", info_.client_id, p.topic);
      closing_ = true;
      std::lock_guard<std::mutex> lock(b_->mu_);
      KickLocked(rc::kNotAuthorized);
      return;
    }
    // MQTT 5.0 §3.4.2.1 / §3.5.2.1: PUBACK / PUBREC 0x87 Not authorized; QoS 0 is dropped.
    if (p.qos == 0) return;
    Ack r;
    r.packet_id = p.packet_id;
    r.reason = rc::kNotAuthorized;
    return SendAck(EncodeAck(p.qos == 1 ? kPuback : kPubrec, r, version_), 0);
  }
  // A resend (DUP) of a QoS 1 message that in-process subscribers still hold — the connection
  // dropped before its PUBACK — waits for the original's outcome rather than being routed
  // again (docs/streams.md "Exactly once from devices").
  uint64_t ticket = AckQueue::kNone;
  if (p.qos == 1 && p.dup) {
    ticket = acks_->Reserve();
    Ack r;
    r.packet_id = p.packet_id;
    acks_->Set(ticket, EncodeAck(kPuback, r, version_));
    acks_->SetPublish(ticket, kPuback, p.packet_id, nullptr);
    if (JoinHeld(p, ticket)) return;
  }
  After a;
  MessagePtr msg;
  {
    std::lock_guard<std::mutex> lock(b_->mu_);
    Session* s = session_;
    if (!s || dead_) {  // closed by the broker (e.g. certificate revoked): route nothing
      if (ticket != AckQueue::kNone) acks_->Release(ticket, kDiscard);
      return;
    }
    if (p.qos == 2) {
      if (s->qos2_in.count(p.packet_id)) {
        // A retransmission of a QoS 2 PUBLISH we already own (§4.3.3): acknowledge only.
        Ack r;
        r.packet_id = p.packet_id;
        sc_->Send(EncodeAck(kPubrec, r, version_));
        return;
      }
      if (s->qos2_in.size() >= b_->opts_.receive_maximum) {
        closing_ = true;
        b_->m_.protocol_errors->Inc();
        KickLocked(rc::kReceiveMaximumExceeded);  // §3.3.4
        return;
      }
      s->qos2_in.insert(p.packet_id);
      if (s->persisted) {
        a.lsn = std::max(a.lsn, b_->LogLocked(logrec::Qos2InPut(s->client_id, p.packet_id)));
      }
    }
    msg = b_->MakeMessage(std::move(p.topic), std::move(p.payload), p.qos, p.retain,
                          std::move(p.props), info_.client_id, p.qos > 0 ? p.packet_id : 0, p.dup);
    b_->RouteLocked(msg, &a);
    if (p.qos > 0 && !a.local.empty()) {
      // Joinable before the broker lock is released: a resend on a newer connection, whose
      // CONNECT takes this lock, always finds it.
      ticket = acks_->HoldPublish(ticket, p.qos == 1 ? kPuback : kPubrec, p.packet_id,
                                  p.qos == 1 ? msg : nullptr);
    }
  }
  if (p.qos > 0 && !a.local.empty()) a.hold = std::make_shared<HeldAck>(acks_, ticket);
  b_->RunAfter(&a);
  if (p.qos > 0) {
    Ack r;
    r.packet_id = p.packet_id;
    if (!a.matched && version_ == 5) r.reason = rc::kNoMatchingSubscribers;
    SendAck(EncodeAck(p.qos == 1 ? kPuback : kPubrec, r, version_), a.lsn, ticket);
  }
}

void Conn::HandleAck(uint8_t type, uint8_t flags, std::string_view body) {
  Ack ack;
  if (uint8_t e = ParseAck(body, type, flags, version_, &ack)) return Fail(e);
  std::lock_guard<std::mutex> lock(b_->mu_);
  Session* s = session_;
  if (!s) return;
  if (type == kPubrel) {
    Ack r;
    r.packet_id = ack.packet_id;
    if (s->qos2_in.erase(ack.packet_id)) {
      if (s->persisted) b_->LogLocked(logrec::Qos2InDel(s->client_id, ack.packet_id));
    } else if (version_ == 5) {
      r.reason = rc::kPacketIdNotFound;
    }
    SendAck(EncodeAck(kPubcomp, r, version_), 0);
    return;
  }
  auto it = s->inflight.find(ack.packet_id);
  if (type == kPuback) {
    if (it != s->inflight.end() && it->second.qos == 1) b_->AckOutgoingLocked(s, it);
  } else if (type == kPubrec) {
    if (it == s->inflight.end() || it->second.qos != 2) {
      Ack r;
      r.packet_id = ack.packet_id;
      if (version_ == 5) r.reason = rc::kPacketIdNotFound;
      sc_->Send(EncodeAck(kPubrel, r, version_));
    } else if (ack.reason >= 0x80) {
      b_->AckOutgoingLocked(s, it);  // §4.3.3: the receiver refused it; the flow ends here
    } else {
      it->second.released = true;
      Ack r;
      r.packet_id = ack.packet_id;
      sc_->Send(EncodeAck(kPubrel, r, version_));
    }
  } else if (type == kPubcomp) {
    if (it != s->inflight.end() && it->second.released) b_->AckOutgoingLocked(s, it);
  }
}

void Conn::HandleSubscribe(uint8_t flags, std::string_view body) {
  Subscribe sub;
  if (uint8_t e = ParseSubscribe(body, flags, version_, &sub)) return Fail(e);
  uint32_t sub_id = sub.props.subscription_ids.empty() ? 0 : sub.props.subscription_ids[0];
  std::vector<uint8_t> reasons;
  After a;
  bool protocol_error = false;
  {
    std::lock_guard<std::mutex> lock(b_->mu_);
    Session* s = session_;
    if (!s || dead_) return;
    std::vector<const Subscription*> want_retained;
    for (auto& t : sub.topics) {
      std::string group, tf;
      bool ok = true;
      bool shared = SplitShared(t.filter, &group, &tf, &ok);
      if (!shared) {
        tf = t.filter;
        ok = ValidTopicFilter(tf);
      }
      if (!ok) {
        reasons.push_back(version_ == 5 ? rc::kTopicFilterInvalid : 0x80);
        continue;
      }
      if (shared && t.no_local) {
        protocol_error = true;  // §3.8.3.1
        break;
      }
      if (b_->authz_ && !b_->authz_->Allow(AuthzAction::kSubscribe, info_, tf)) {
        reasons.push_back(version_ == 5 ? rc::kNotAuthorized : 0x80);
        continue;
      }
      Subscription ns;
      ns.filter = t.filter;
      ns.qos = t.qos;
      ns.no_local = t.no_local;
      ns.retain_as_published = t.retain_as_published;
      ns.retain_handling = t.retain_handling;
      ns.subscription_id = sub_id;
      auto it = s->subs.find(t.filter);
      bool existed = it != s->subs.end();
      if (existed) {
        it->second = ns;  // §3.8.4: replaces the existing subscription, tree entry points here
      } else {
        it = s->subs.emplace(t.filter, ns).first;
        b_->AddToTree(s, &it->second);
      }
      if (s->persisted) a.lsn = std::max(a.lsn, b_->LogLocked(logrec::SubPut(s->client_id, ns)));
      if (!shared && (t.retain_handling == 0 || (t.retain_handling == 1 && !existed))) {
        want_retained.push_back(&it->second);
      }
      reasons.push_back(t.qos);
    }
    if (!protocol_error) {
      // SUBACK first, then the retained messages (§3.8.4).
      SendAck(EncodeSuback(sub.packet_id, reasons, {}, version_), 0);
      int64_t now = NowMs();
      for (const Subscription* ws : want_retained) {
        for (auto& [topic, msg] : b_->retained_) {
          if (msg->expiry_ms && now >= msg->expiry_ms) continue;
          if (!TopicMatches(ws->filter, topic)) continue;
          std::vector<uint32_t> ids;
          if (ws->subscription_id) ids.push_back(ws->subscription_id);
          b_->DeliverLocked(s, msg, std::min(msg->qos, ws->qos), true, std::move(ids), &a);
        }
      }
    }
  }
  if (protocol_error) return Fail(rc::kProtocolError);
  b_->RunAfter(&a);
}

void Conn::HandleUnsubscribe(uint8_t flags, std::string_view body) {
  Unsubscribe u;
  if (uint8_t e = ParseUnsubscribe(body, flags, version_, &u)) return Fail(e);
  std::vector<uint8_t> reasons;
  std::lock_guard<std::mutex> lock(b_->mu_);
  Session* s = session_;
  if (!s) return;
  for (const auto& f : u.filters) {
    auto it = s->subs.find(f);
    if (it == s->subs.end()) {
      reasons.push_back(rc::kNoSubscriptionExisted);
      continue;
    }
    b_->RemoveFromTree(s, &it->second);
    s->subs.erase(it);
    if (s->persisted) b_->LogLocked(logrec::SubDel(s->client_id, f));
    reasons.push_back(rc::kSuccess);
  }
  SendAck(EncodeUnsuback(u.packet_id, reasons, {}, version_), 0);
}

void Conn::HandleDisconnect(uint8_t flags, std::string_view body) {
  Ack d;
  if (uint8_t e = ParseDisconnect(body, kDisconnect, flags, version_, &d)) return Fail(e);
  std::lock_guard<std::mutex> lock(b_->mu_);
  if (d.props.session_expiry && session_) {
    // §3.14.2.2.2: a session that was to end with the connection cannot be extended here.
    if (session_expiry_was_zero_ && *d.props.session_expiry != 0) {
      closing_ = true;
      b_->m_.protocol_errors->Inc();
      KickLocked(rc::kProtocolError);
      return;
    }
    session_->expiry = std::min(*d.props.session_expiry, b_->opts_.max_session_expiry);
    b_->PersistSessionLocked(session_);
  }
  // §3.14.4: a normal DISCONNECT discards the will; 0x04 asks for it to be published.
  if (d.reason != rc::kDisconnectWithWill) will_.reset();
  closing_ = true;
  clean_disconnect_ = true;
  dead_ = true;
  sc_->Close(true);
}

void Conn::OnClose() {
  After a;
  {
    std::lock_guard<std::mutex> lock(b_->mu_);
    dead_ = true;
    b_->conns_.erase(this);
    Session* s = session_;
    if (s && s->conn == this) {
      s->conn = nullptr;
      --b_->connected_;
      s->offline_since_ms = NowMs();
      if (will_) {
        b_->WillLocked(s, std::move(*will_), info_, &a);
        will_.reset();
      }
      if (s->expiry == 0) b_->DestroySessionLocked(s, &a);
    }
    session_ = nullptr;
  }
  b_->RunAfter(&a);
  sc_.reset();
}

void BrokerImpl::PersistSessionLocked(Session* s) {
  if (!log_) return;
  if (s->expiry > 0) {
    LogLocked(logrec::SessionPut(s->client_id, s->expiry, s->info.identity, s->info.username));
    if (!s->persisted) {
      s->persisted = true;
      for (const auto& [f, sub] : s->subs) LogLocked(logrec::SubPut(s->client_id, sub));
      // Everything the session holds becomes durable from now on.
      auto persist = [&](Outgoing& o) {
        if (o.seq) return;
        o.seq = s->next_seq++;
        StoredMessage sm{o.seq, o.qos, o.retain, o.sub_ids, *o.msg};
        LogLocked(logrec::MsgPut(s->client_id, sm));
      };
      for (auto& [pid, o] : s->inflight) persist(o);
      for (auto& o : s->queue) persist(o);
      for (uint16_t id : s->qos2_in) LogLocked(logrec::Qos2InPut(s->client_id, id));
    }
  } else if (s->persisted) {
    LogLocked(logrec::SessionDel(s->client_id));
    s->persisted = false;
  }
}

void BrokerImpl::WillLocked(Session* s, Will will, const ClientInfo& info, After* a) {
  uint32_t delay = will.props.will_delay.value_or(0);
  if (delay == 0 || s->expiry == 0) {
    PublishWillLocked(will, info, a);
    return;
  }
  // §3.1.3.2.2: published when the delay or the session ends, whichever is first; cancelled
  // if the client reconnects to the session before.
  s->pending_will = std::move(will);
  s->will_at_ms = NowMs() + int64_t(std::min(delay, s->expiry)) * 1000;
}

void BrokerImpl::PublishWillLocked(const Will& w, const ClientInfo& info, After* a) {
  // The will is published on the client's behalf, so the client's publish rights apply to it
  // when it is published (a policy changed since CONNECT counts).
  if (!MayPublish(info, w.topic, w.retain)) {
    TLOG_INFO("mqtt", "will of client '{}' on '{}' not published: not authorized", info.client_id, w.topic);
    return;
  }
  Properties props = w.props;
  props.will_delay.reset();
  auto msg = MakeMessage(w.topic, w.payload, w.qos, w.retain, std::move(props), info.client_id);
  RouteLocked(msg, a);
}

void BrokerImpl::DestroySessionLocked(Session* s, After* a) {
  if (s->pending_will) {
    Will w = std::move(*s->pending_will);
    s->pending_will.reset();
    PublishWillLocked(w, s->info, a);
  }
  for (auto& [f, sub] : s->subs) RemoveFromTree(s, &sub);
  if (s->persisted) LogLocked(logrec::SessionDel(s->client_id));
  sessions_.erase(s->client_id);
}

void BrokerImpl::RouteLocked(const MessagePtr& msg, After* a) {
  if (msg->retain) {
    // §3.3.1.3: a retained message replaces the previous one; an empty payload removes it.
    if (msg->payload.empty()) {
      if (retained_.erase(msg->topic) && log_) a->lsn = std::max(a->lsn, LogLocked(logrec::RetainDel(msg->topic)));
    } else {
      retained_[msg->topic] = msg;
      if (log_) a->lsn = std::max(a->lsn, LogLocked(logrec::RetainPut(*msg)));
    }
  }
  struct Target {
    Session* s;
    uint8_t qos;
    bool retain;
    std::vector<uint32_t> ids;
  };
  std::vector<Target> targets;
  auto add = [&](Session* s, const Subscription* sub) {
    uint8_t q = std::min(msg->qos, sub->qos);
    bool ret = sub->retain_as_published ? msg->retain : false;
    for (auto& t : targets) {
      if (t.s == s) {
        // Overlapping subscriptions: one copy, highest QoS, every identifier (§3.3.4).
        t.qos = std::max(t.qos, q);
        t.retain = t.retain || ret;
        if (sub->subscription_id) t.ids.push_back(sub->subscription_id);
        return;
      }
    }
    Target t{s, q, ret, {}};
    if (sub->subscription_id) t.ids.push_back(sub->subscription_id);
    targets.push_back(std::move(t));
  };
  std::map<std::string, std::vector<const TreeEntry*>>* groups = nullptr;
  std::map<std::string, std::vector<const TreeEntry*>> group_members;
  tree_.Match(msg->topic, [&](std::vector<TreeEntry>& entries) {
    for (const TreeEntry& e : entries) {
      if (e.local) {
        a->local.emplace_back(e.local, msg);
        if (e.local->counts_as_subscriber) a->matched = true;
      } else if (!e.group.empty()) {
        group_members[e.group + '\0' + e.sub->filter].push_back(&e);
        groups = &group_members;
      } else {
        if (e.sub->no_local && e.session->client_id == msg->origin) continue;  // §3.8.3.1
        add(e.session, e.sub);
      }
    }
  });
  if (groups) {
    // §4.8.2: one member of each share group gets the message; prefer connected members,
    // round-robin among them.
    for (auto& [key, members] : group_members) {
      size_t& rr = shared_rr_[key];
      const TreeEntry* pick = nullptr;
      for (size_t i = 0; i < members.size(); ++i) {
        const TreeEntry* e = members[(rr + i) % members.size()];
        if (e->session->conn) {
          pick = e;
          rr = (rr + i + 1) % members.size();
          break;
        }
      }
      if (!pick) pick = members[rr++ % members.size()];
      add(pick->session, pick->sub);
    }
  }
  if (!targets.empty()) a->matched = true;
  for (auto& t : targets) DeliverLocked(t.s, msg, t.qos, t.retain, std::move(t.ids), a);
}

void BrokerImpl::DeliverLocked(Session* s, const MessagePtr& msg, uint8_t qos, bool retain,
                               std::vector<uint32_t> sub_ids, After* a) {
  if (authz_ && !authz_->Allow(AuthzAction::kReceive, s->info, msg->topic)) return;
  if (msg->expiry_ms && NowMs() >= msg->expiry_ms) {
    m_.dropped_expired->Inc();
    return;
  }
  Outgoing o;
  o.msg = msg;
  o.qos = qos;
  o.retain = retain;
  o.sub_ids = std::move(sub_ids);
  if (qos == 0) {
    // QoS 0 is not queued for offline sessions (§4.3.1 "at most once").
    if (s->conn && !s->conn->dead_) SendPublishLocked(s->conn, o, false);
    return;
  }
  o.order = s->next_order++;
  bool online = s->conn && !s->conn->dead_;
  if (online && s->queue.empty() && s->inflight.size() < s->conn->client_receive_max_) {
    if (s->persisted) {
      o.seq = s->next_seq++;
      StoredMessage sm{o.seq, o.qos, o.retain, o.sub_ids, *msg};
      a->lsn = std::max(a->lsn, LogLocked(logrec::MsgPut(s->client_id, sm)));
    }
    SendInflightLocked(s, std::move(o));
    return;
  }
  if (s->queue.size() >= opts_.max_queued_messages) {
    // Policy: the queue keeps the oldest messages; the new one is dropped, counted, logged.
    m_.dropped_queue_full->Inc();
    if (s->dropped++ % 1000 == 0) {
      TLOG_WARN("mqtt", "session '{}': queue full ({} messages), dropped a QoS {} message on '{}' "
                "({} dropped so far)", s->client_id, s->queue.size(), int(qos), msg->topic, s->dropped);
    }
    return;
  }
  if (s->persisted) {
    o.seq = s->next_seq++;
    StoredMessage sm{o.seq, o.qos, o.retain, o.sub_ids, *msg};
    a->lsn = std::max(a->lsn, LogLocked(logrec::MsgPut(s->client_id, sm)));
  }
  s->queue.push_back(std::move(o));
}

bool BrokerImpl::SendPublishLocked(Conn* c, const Outgoing& o, bool dup) {
  const Message& m = *o.msg;
  Properties props;
  const Properties* pp = nullptr;
  std::string_view topic = m.topic;
  if (c->version_ == 5) {
    props = m.props;
    if (m.expiry_ms) {
      int64_t left = (m.expiry_ms - NowMs() + 999) / 1000;
      props.message_expiry = uint32_t(std::max<int64_t>(left, 1));  // §3.3.2.3.3
    }
    props.subscription_ids = o.sub_ids;
    if (c->client_alias_max_ > 0) {
      auto it = c->out_alias_.find(m.topic);
      if (it != c->out_alias_.end()) {
        props.topic_alias = it->second;
        topic = std::string_view();
      } else if (c->out_alias_.size() < c->client_alias_max_) {
        uint16_t alias = uint16_t(c->out_alias_.size() + 1);
        c->out_alias_.emplace(m.topic, alias);
        props.topic_alias = alias;
      }
    }
    pp = &props;
  }
  std::string bytes = EncodePublishView(topic, m.payload, o.qos, dup, o.retain, o.packet_id, pp,
                                        c->version_);
  if (bytes.size() > c->client_max_packet_) {
    m_.dropped_too_large->Inc();  // §3.1.2.11.4: never sent; as if delivered
    return false;
  }
  m_.sent->Inc();
  c->sc_->Send(std::move(bytes));
  return true;
}

void BrokerImpl::SendInflightLocked(Session* s, Outgoing o) {
  uint16_t id = s->next_id;
  while (id == 0 || s->inflight.count(id)) ++id;
  s->next_id = uint16_t(id + 1);
  o.packet_id = id;
  if (!SendPublishLocked(s->conn, o, false)) {
    if (o.seq) LogLocked(logrec::MsgDel(s->client_id, o.seq));
    return;
  }
  s->inflight.emplace(id, std::move(o));
}

void BrokerImpl::PumpLocked(Session* s) {
  int64_t now = NowMs();
  while (s->conn && !s->conn->dead_ && !s->queue.empty() &&
         s->inflight.size() < s->conn->client_receive_max_) {
    Outgoing o = std::move(s->queue.front());
    s->queue.pop_front();
    if (o.msg->expiry_ms && now >= o.msg->expiry_ms) {
      m_.dropped_expired->Inc();
      if (o.seq) LogLocked(logrec::MsgDel(s->client_id, o.seq));
      continue;
    }
    SendInflightLocked(s, std::move(o));
  }
}

void BrokerImpl::AckOutgoingLocked(Session* s, std::map<uint16_t, Outgoing>::iterator it) {
  if (it->second.seq) LogLocked(logrec::MsgDel(s->client_id, it->second.seq));
  s->inflight.erase(it);
  PumpLocked(s);
}

void BrokerImpl::SweepLoop() {
  pthread_setname_np(pthread_self(), "mqtt-sweep");
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(sweep_mu_);
      sweep_cv_.wait_for(lock, std::chrono::milliseconds(opts_.sweep_interval_ms),
                         [this] { return sweep_stop_; });
      if (sweep_stop_) return;
    }
    After a;
    {
      std::lock_guard<std::mutex> lock(mu_);
      int64_t now = NowMs();
      for (Conn* c : conns_) {
        if (c->dead_) continue;
        if (!c->connected_) {
          if (now - c->created_ms_ > int64_t(opts_.connect_timeout_ms)) {
            c->dead_ = true;
            c->sc_->Close(false);
          }
        } else if (c->keep_alive_ &&
                   now - c->last_rx_ms_.load(std::memory_order_relaxed) > int64_t(c->keep_alive_) * 1500) {
          // §3.1.2.10: nothing received for 1.5 x keep-alive.
          m_.keepalive_timeouts->Inc();
          c->KickLocked(rc::kKeepAliveTimeout);
        }
      }
      std::vector<Session*> expired;
      for (auto& [cid, s] : sessions_) {
        if (s->conn) continue;
        if (s->pending_will && now >= s->will_at_ms) {
          Will w = std::move(*s->pending_will);
          s->pending_will.reset();
          PublishWillLocked(w, s->info, &a);
        }
        if (s->expiry != 0xFFFFFFFF && now - s->offline_since_ms >= int64_t(s->expiry) * 1000) {
          expired.push_back(s.get());
        }
      }
      for (Session* s : expired) DestroySessionLocked(s, &a);
      for (auto it = recent_acks_.begin(); it != recent_acks_.end();) {
        auto& v = it->second;
        v.erase(std::remove_if(v.begin(), v.end(), [](const auto& q) { return q.expired(); }),
                v.end());
        it = v.empty() ? recent_acks_.erase(it) : std::next(it);
      }
      if (log_) CompactLocked();
      m_.connected->Set(double(connected_));
      m_.sessions->Set(double(sessions_.size()));
      m_.retained->Set(double(retained_.size()));
    }
    RunAfter(&a);
  }
}

void BrokerImpl::CompactLocked() {
  uint64_t gen = log_->generation_bytes();
  if (gen < opts_.compact_min_bytes || gen < 2 * log_->snapshot_bytes()) return;
  std::vector<std::string> snap;
  for (auto& [cid, s] : sessions_) {
    if (!s->persisted) continue;
    snap.push_back(logrec::SessionPut(cid, s->expiry, s->info.identity, s->info.username));
    for (auto& [f, sub] : s->subs) snap.push_back(logrec::SubPut(cid, sub));
    for (uint16_t id : s->qos2_in) snap.push_back(logrec::Qos2InPut(cid, id));
    std::vector<const Outgoing*> msgs;
    for (auto& [pid, o] : s->inflight) msgs.push_back(&o);
    for (auto& o : s->queue) msgs.push_back(&o);
    for (const Outgoing* o : msgs) {
      if (!o->seq) continue;
      StoredMessage sm{o->seq, o->qos, o->retain, o->sub_ids, *o->msg};
      snap.push_back(logrec::MsgPut(cid, sm));
    }
  }
  for (auto& [topic, msg] : retained_) snap.push_back(logrec::RetainPut(*msg));
  TLOG_INFO("mqtt", "compacting the session log: {} bytes -> snapshot of {} records", gen, snap.size());
  log_->Rotate(std::move(snap));
}

bool BrokerImpl::DisconnectClient(const std::string& client_id, uint8_t reason) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(client_id);
  if (it == sessions_.end() || !it->second->conn || it->second->conn->dead_) return false;
  it->second->conn->KickLocked(reason);
  return true;
}

size_t BrokerImpl::DisconnectCertificate(std::string_view fingerprint_sha256, uint8_t reason) {
  if (fingerprint_sha256.empty()) return 0;
  size_t n = 0;
  std::lock_guard<std::mutex> lock(mu_);
  for (Conn* c : conns_) {
    // cert_fingerprint_sha256 is set when the Conn is created and never written again, so it
    // may be read here while the connection's own thread is still parsing its CONNECT.
    if (c->dead_ || !c->info_.has_client_cert ||
        !EqualsIgnoreCase(c->info_.cert_fingerprint_sha256, fingerprint_sha256)) {
      continue;
    }
    c->KickLocked(reason);
    ++n;
  }
  return n;
}

void BrokerImpl::Stop() {
  if (stopped_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (Conn* c : conns_) c->KickLocked(0x8B);  // §4.13: Server shutting down
  }
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (conns_.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard<std::mutex> lock(sweep_mu_);
    sweep_stop_ = true;
  }
  sweep_cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  if (log_) {
    log_->Sync();
    log_->Close();
  }
}

}  // namespace

Result<std::unique_ptr<Broker>> Broker::Open(const BrokerOptions& options,
                                             Authenticator* authenticator,
                                             AuthorizationHook* authorizer) {
  auto b = std::make_unique<BrokerImpl>(options, authenticator, authorizer);
  RETURN_IF_ERROR(b->Init());
  return std::unique_ptr<Broker>(std::move(b));
}

}  // namespace tarn::gateway::mqtt
