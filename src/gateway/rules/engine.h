// The rules engine: topic rules compiled once, evaluated off the network threads for every
// message the broker (or Basic Ingest, or an HTTPS publish) hands it, and their actions
// (republish, s3, firehose) with the error action receiving AWS's failure document.
//
// Thread-safety: all public methods are thread-safe. Rules are swapped in as immutable
// snapshots, so a message is evaluated against one consistent set of rules.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "gateway/rules/sql.h"

namespace tarn::storage {
class ObjectStore;
}
namespace tarn::streams {
class RecordSink;
}

namespace tarn::gateway::rules {

// A topic rule as the IoT API describes it (TopicRulePayload): `actions` and `error_action`
// keep the AWS JSON shape ({"republish": {...}}, {"s3": {...}}, {"firehose": {...}}).
struct TopicRuleSpec {
  std::string name;
  std::string sql;
  std::string description;
  std::string sql_version = "2016-03-23";
  bool disabled = false;
  nlohmann::json actions = nlohmann::json::array();
  nlohmann::json error_action;  // null when absent
  int64_t created_ms = 0;
};

// Where actions deliver. An unset target makes its action fail with a clear error, which the
// error action then receives.
struct ActionTargets {
  // Publishes through the broker (the republish action). After an OK return, `durable` runs
  // once what the publish stored for later delivery (QoS 1 messages queued for persistent
  // sessions) is on disk — at once when nothing was — and the message's `done` (its PUBACK)
  // waits for it, as for a firehose record (docs/iot.md).
  std::function<Status(const std::string& topic, const std::string& payload, int qos,
                       std::function<void()> durable)>
      republish;
  storage::ObjectStore* store = nullptr;
  streams::RecordSink* streams = nullptr;
};

// One message entering the engine.
struct InboundMessage {
  std::string topic;
  std::string payload;
  std::string client_id;
  std::string principal;
  int64_t timestamp_ms = 0;
  // The device's PUBLISH (QoS 1/2 from an MQTT client; 0 otherwise): packet id, DUP flag and
  // StableHash64 of topic and payload. With a packet id, firehose actions append their records
  // with this origin, so a resend of a message already durable is not appended again
  // (docs/streams.md "Exactly once from devices").
  uint16_t packet_id = 0;
  bool dup = false;
  uint64_t payload_hash = 0;
  // Called once all matching rules have run (PUBACK-after-durability; tests) with OK, or with
  // the first action failure that no error action handled: the message was not taken (the
  // broker refuses the acknowledgement, docs/iot.md). SQL errors and action failures whose
  // error action succeeded count as handled, as in AWS.
  std::function<void(const Status&)> done;
  // The engine's own: the first unhandled action failure so far.
  mutable Status unhandled;
};

// Whether sending a message again may succeed after its action failed with `error` (a full or
// missing stream, an unavailable store) — false when the message itself is the cause (a record
// over the size limit, a batchMode output that is not an array, a bad republish topic).
bool RetryMaySucceed(const Status& error);

class CompiledRule;    // engine.cc
struct CompletionWait;  // engine.cc

class RulesEngine {
 public:
  // `max_queued`: messages waiting for the engine's threads. When the queue is full, Submit()
  // blocks the caller (a network thread: back-pressure on the publishers, nothing is lost) for
  // up to `max_block_ms`, then drops the message, counted in
  // tarn_iot_rule_messages_dropped_total and logged; Submit() from the engine's own threads (a
  // republish that matches a rule) never blocks.
  RulesEngine(ActionTargets targets, Clock* clock, size_t threads = 2, size_t max_queued = 65536,
              int64_t max_block_ms = 1000);
  ~RulesEngine();

  // Compiles `spec` (SQL and every action's substitution templates); kIotInvalidRequest with
  // the position for a bad statement or template. Nothing changes on error.
  static Status Validate(const TopicRuleSpec& spec);
  // Installs or replaces a rule (already validated, or validated again here).
  Status Put(const TopicRuleSpec& spec);
  void Remove(const std::string& name);

  // Queues `msg` for evaluation on the engine's threads; returns at once unless the queue is
  // full (see the constructor). The threads take queued messages in batches (waiting up to
  // 1 ms for 64 of them, but not when a queued message has `done` set: its publisher is
  // waiting), so a busy engine costs no wake-up per message. A topic
  // "$aws/rules/<rule>/…" is Basic Ingest: only that rule runs, its FROM is not consulted and
  // topic() sees the topic without the prefix (developerguide/iot-basic-ingest).
  void Submit(InboundMessage msg);
  // True when some enabled rule would see `topic` (lets the broker skip the queue).
  bool AnyRuleFor(std::string_view topic) const;
  // Runs `msg` synchronously on the caller's thread (tests, benchmarks).
  void ProcessNow(const InboundMessage& msg);

  // The dry-run: the document `sql` emits for one message (nullopt when WHERE is not true).
  static Result<std::optional<nlohmann::json>> Test(const std::string& sql, const std::string& topic,
                                                    const std::string& payload,
                                                    const std::string& client_id, int64_t now_ms);

  // Waits until every queued message has been processed (tests, shutdown).
  void Drain();
  void Shutdown();

 private:
  using RuleSet = std::map<std::string, std::shared_ptr<const CompiledRule>>;
  std::shared_ptr<const RuleSet> Snapshot() const;
  // The current rules through a per-thread cache that is refreshed when version_ moves: the
  // broker asks AnyRuleFor() for every message, and this keeps that to one atomic load.
  const std::shared_ptr<const RuleSet>& CurrentRules() const;
  struct Batch;  // engine.cc: firehose appends in flight for one batch of messages
  void Work();
  // With `batch`, firehose actions do not wait for durability one record at a time: their
  // appends are issued and the rule run (metrics, error action) and the message's `done` are
  // finished by FinishBatch once every append of the batch is durable — one group commit for
  // the batch instead of one fsync per message. Without (ProcessNow), they wait in place.
  void Process(const RuleSet& rules, const InboundMessage& msg, Batch* batch);
  // `start_us`: when the engine began on the message (the latency histogram's start).
  void RunRule(const CompiledRule& rule, const MessageContext& ctx, const InboundMessage& msg,
               int64_t start_us, Batch* batch);
  // `action_error`: the first failed action's status (OK when only the SQL failed, or nothing).
  // `wait`: the batch's, for the error action's republish (null: waited for in place).
  void FinishRule(const CompiledRule& rule, const MessageContext& ctx, const InboundMessage& msg,
                  nlohmann::json failures, Status action_error, int64_t start_us,
                  CompletionWait* wait);
  void FinishBatch(Batch& batch);

  ActionTargets targets_;
  Clock* clock_;
  mutable std::mutex mu_;
  std::shared_ptr<const RuleSet> rules_;  // guarded by mu_ (the pointer; the set is immutable)
  // Changes with every Put/Remove; unique across engines (a process-wide counter).
  std::atomic<uint64_t> version_;
  const size_t max_queued_;
  const int64_t max_block_ms_;

  std::mutex q_mu_;
  std::condition_variable work_cv_;   // a message was queued (or stopping)
  std::condition_variable space_cv_;  // the queue has room again
  std::condition_variable drain_cv_;  // in_flight_ reached 0
  std::vector<InboundMessage> queue_;  // guarded by q_mu_
  size_t idle_workers_ = 0;            // guarded by q_mu_: waiting on work_cv_
  size_t blocked_producers_ = 0;       // guarded by q_mu_: waiting on space_cv_
  int draining_ = 0;                   // guarded by q_mu_: threads inside Drain()
  size_t urgent_ = 0;                  // guarded by q_mu_: queued messages with `done` set
  int64_t in_flight_ = 0;              // guarded by q_mu_: queued or being processed
  bool stopping_ = false;              // guarded by q_mu_
  uint64_t dropped_ = 0;               // guarded by q_mu_
  std::vector<std::thread> workers_;
};

}  // namespace tarn::gateway::rules
