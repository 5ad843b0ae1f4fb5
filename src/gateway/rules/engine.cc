#include "gateway/rules/engine.h"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <future>

#include "core/hash.h"
#include "core/log.h"
#include "core/strings.h"
#include "ops/metrics.h"
#include "storage/object_store.h"
#include "streams/record_sink.h"

namespace tarn::gateway::rules {

using json = nlohmann::json;
// Output never throws: a byte that is not UTF-8 (from a binary payload) becomes U+FFFD.
constexpr auto kReplaceInvalid = json::error_handler_t::replace;

namespace {

constexpr std::string_view kBasicIngestPrefix = "$aws/rules/";

// Per-rule counters. They add up: matched = filtered + delivered + failed, where "failed"
// messages are the ones handed to the error action (or dropped with a log line when the rule
// has none).
struct RuleMetrics {
  ops::CounterMetric* matched;
  ops::CounterMetric* filtered;
  ops::CounterMetric* delivered;
  ops::CounterMetric* failed;
  ops::CounterMetric* actions_ok;
  ops::CounterMetric* actions_failed;
  ops::CounterMetric* error_action_failed;
  ops::HistogramMetric* latency;

  explicit RuleMetrics(const std::string& rule) {
    auto& m = ops::Metrics();
    ops::Labels l{{"rule", rule}};
    matched = &m.Counter("tarn_iot_rule_messages_matched_total", "Messages whose topic matched the rule", l);
    filtered = &m.Counter("tarn_iot_rule_messages_filtered_total", "Matched messages the WHERE clause dropped", l);
    delivered = &m.Counter("tarn_iot_rule_messages_delivered_total", "Matched messages every action delivered", l);
    failed = &m.Counter("tarn_iot_rule_messages_failed_total",
                        "Matched messages handed to the error action (SQL error or a failed action)", l);
    actions_ok = &m.Counter("tarn_iot_rule_actions_succeeded_total", "Rule actions that succeeded", l);
    actions_failed = &m.Counter("tarn_iot_rule_actions_failed_total", "Rule actions that failed", l);
    error_action_failed = &m.Counter("tarn_iot_rule_error_action_failed_total", "Error actions that failed too", l);
    latency = &m.Histogram("tarn_iot_rule_latency_seconds", "Rule evaluation and actions, per matched message", l);
  }
};

// One compiled action.
struct Action {
  enum Kind { kRepublish, kS3, kFirehose } kind;
  std::string type_name;  // "RepublishAction" … as AWS names them in failure documents
  Template topic_or_key;  // republish topic / s3 key
  std::string resource;   // bucket / delivery stream
  int qos = 0;
  std::string separator;
  bool batch_mode = false;
};

Result<Action> CompileAction(const json& a) {
  if (!a.is_object() || a.size() != 1) {
    return Error(ErrorCode::kIotInvalidRequest, "each action must be an object with exactly one action type");
  }
  const std::string& type = a.begin().key();
  const json& p = a.begin().value();
  if (!p.is_object()) return Error(ErrorCode::kIotInvalidRequest, "action " + type + " must be an object");
  auto str = [&](const char* k) -> std::string {
    auto it = p.find(k);
    return it != p.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  Action act{Action::kRepublish, "", Template(), "", 0, "", false};
  if (type == "republish") {
    act.kind = Action::kRepublish;
    act.type_name = "RepublishAction";
    if (str("topic").empty()) return Error(ErrorCode::kIotInvalidRequest, "republish.topic is required");
    ASSIGN_OR_RETURN(act.topic_or_key, Template::Compile(str("topic")));
    if (p.contains("qos")) {
      if (!p["qos"].is_number_integer() || p["qos"].get<int>() < 0 || p["qos"].get<int>() > 1) {
        return Error(ErrorCode::kIotInvalidRequest, "republish.qos must be 0 or 1");
      }
      act.qos = p["qos"].get<int>();
    }
  } else if (type == "s3") {
    act.kind = Action::kS3;
    act.type_name = "S3Action";
    act.resource = str("bucketName");
    if (act.resource.empty() || str("key").empty()) {
      return Error(ErrorCode::kIotInvalidRequest, "s3.bucketName and s3.key are required");
    }
    ASSIGN_OR_RETURN(act.topic_or_key, Template::Compile(str("key")));
  } else if (type == "firehose") {
    act.kind = Action::kFirehose;
    act.type_name = "FirehoseAction";
    act.resource = str("deliveryStreamName");
    if (act.resource.empty()) return Error(ErrorCode::kIotInvalidRequest, "firehose.deliveryStreamName is required");
    act.separator = str("separator");
    // AWS allows only these separators (IoT API FirehoseAction.separator).
    if (!act.separator.empty() && act.separator != "\n" && act.separator != "\t" &&
        act.separator != "\r\n" && act.separator != ",") {
      return Error(ErrorCode::kIotInvalidRequest, "firehose.separator must be one of '\\n', '\\t', '\\r\\n', ','");
    }
    act.batch_mode = p.value("batchMode", false);
  } else {
    return Error(ErrorCode::kIotInvalidRequest,
                 "action type '" + type + "' is not implemented (supported: republish, s3, firehose)");
  }
  return act;
}

}  // namespace

class CompiledRule {
 public:
  std::string name;
  bool disabled = false;
  std::shared_ptr<const RuleQuery> query;
  // The FROM filter's literal text before its first wildcard ("sensors/" for
  // "sensors/+/telemetry"): most topics are told apart by it without walking the levels. A
  // filter ending in "/#" also matches its parent ("a/#" matches "a"), kept in `parent`.
  std::string prefix, parent;

  bool Matches(std::string_view topic) const {
    if (disabled) return false;
    if (topic.compare(0, prefix.size(), prefix) != 0 && topic != parent) return false;
    return TopicMatches(query->topic_filter(), topic);
  }
  std::vector<Action> actions;
  std::optional<Action> error_action;
  std::shared_ptr<RuleMetrics> metrics;
  uint64_t name_hash = 0;  // StableHash64(name): the base of its records' origin slots
};

namespace {

Result<std::shared_ptr<CompiledRule>> CompileRule(const TopicRuleSpec& spec) {
  if (!spec.sql_version.empty() && spec.sql_version != "2016-03-23" && spec.sql_version != "2015-10-08") {
    return Error(ErrorCode::kIotInvalidRequest, "awsIotSqlVersion " + spec.sql_version + " is not supported");
  }
  auto rule = std::make_shared<CompiledRule>();
  rule->name = spec.name;
  rule->name_hash = StableHash64(spec.name);
  rule->disabled = spec.disabled;
  ASSIGN_OR_RETURN(rule->query, RuleQuery::Compile(spec.sql));
  const std::string& filter = rule->query->topic_filter();
  rule->prefix = filter.substr(0, filter.find_first_of("+#"));
  if (filter.size() >= 2 && filter.compare(filter.size() - 2, 2, "/#") == 0) {
    rule->parent = filter.substr(0, filter.size() - 2);
    // The parent may be shorter than the prefix ("a/#": prefix "a/", parent "a").
  }
  if (!spec.actions.is_array()) return Error(ErrorCode::kIotInvalidRequest, "actions must be a list");
  if (spec.actions.size() > 10) return Error(ErrorCode::kIotInvalidRequest, "a rule has at most 10 actions");
  for (const auto& a : spec.actions) {
    ASSIGN_OR_RETURN(Action act, CompileAction(a));
    rule->actions.push_back(std::move(act));
  }
  if (!spec.error_action.is_null()) {
    ASSIGN_OR_RETURN(Action act, CompileAction(spec.error_action));
    rule->error_action = std::move(act);
  }
  return rule;
}

}  // namespace

namespace {
// Set on the engine's own threads: they must never wait for queue space they would free.
thread_local bool t_engine_thread = false;
std::atomic<uint64_t> g_rules_version{0};
// Batching: a woken thread waits up to kLinger for kWakeBatch messages before it starts, and
// producers wake a thread only for the first message and at kWakeBatch. At 100k msg/s that is
// two wake-ups per 64 messages instead of one per message; a lone message waits at most 1 ms.
// A message whose publisher waits for it (done set: a QoS 1/2 PUBACK held until the actions
// are durable) is never kept waiting for a batch.
constexpr size_t kWakeBatch = 64;
constexpr auto kLinger = std::chrono::milliseconds(1);
}  // namespace

// Completions being waited for: firehose appends (their WAL fsync) and republishes (the broker's
// session log). Whoever waits outlives every callback: Wait returns once `left` is 0, and a
// callback touches nothing after it has decremented it (under `mu`).
struct CompletionWait {
  std::mutex mu;
  std::condition_variable cv;
  size_t left = 0;   // guarded by mu
  size_t added = 0;  // guarded by mu: every Add so far
  void Add(size_t n) {
    std::lock_guard<std::mutex> l(mu);
    left += n;
    added += n;
  }
  void Done() {
    std::lock_guard<std::mutex> l(mu);
    if (--left == 0) cv.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return left == 0; });
  }
  size_t Added() {
    std::lock_guard<std::mutex> l(mu);
    return added;
  }
  bool Outstanding() {
    std::lock_guard<std::mutex> l(mu);
    return left > 0;
  }
};

// Firehose appends and republishes issued while a batch is processed, and the rule runs and
// messages that wait for them. The callbacks (on a WAL committer or the broker's log writer)
// only record a status and count down `pending`.
struct RulesEngine::Batch {
  struct Append {
    const Action* action;
    size_t first = 0, count = 0;  // its records' slots in `statuses`
  };
  struct Run {
    const CompiledRule* rule;  // alive: the batch's rule-set snapshot holds it
    const InboundMessage* msg;  // alive until the batch is finished
    MessageContext ctx;         // its `parsed` is not kept: FinishBatch parses again if needed
    json failures;              // of the actions that already ran
    Status action_error;        // the first of them that failed
    int64_t start_us = 0;
    std::vector<Append> appends;
  };
  CompletionWait pending;
  std::deque<Status> statuses;  // one per appended record; a deque keeps their addresses
  std::vector<Run> runs;
  std::vector<const InboundMessage*> done_after;  // their `done` waits for the appends
};

RulesEngine::RulesEngine(ActionTargets targets, Clock* clock, size_t threads, size_t max_queued,
                         int64_t max_block_ms)
    : targets_(std::move(targets)),
      clock_(clock),
      rules_(std::make_shared<const RuleSet>()),
      version_(++g_rules_version),
      max_queued_(std::max<size_t>(1, max_queued)),
      max_block_ms_(max_block_ms) {
  for (size_t i = 0; i < std::max<size_t>(1, threads); ++i) {
    workers_.emplace_back([this, i] {
      pthread_setname_np(pthread_self(), ("rules-" + std::to_string(i)).c_str());
      t_engine_thread = true;
      Work();
    });
  }
}

RulesEngine::~RulesEngine() { Shutdown(); }

void RulesEngine::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(q_mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
  }
  work_cv_.notify_all();
  space_cv_.notify_all();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  std::lock_guard<std::mutex> lock(q_mu_);
  workers_.clear();
}

void RulesEngine::Work() {
  std::vector<InboundMessage> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(q_mu_);
      if (!batch.empty()) {
        in_flight_ -= static_cast<int64_t>(batch.size());
        if (in_flight_ == 0) drain_cv_.notify_all();
        batch.clear();
      }
      ++idle_workers_;
      work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (!stopping_ && draining_ == 0 && urgent_ == 0 && queue_.size() < kWakeBatch) {
        work_cv_.wait_for(lock, kLinger, [this] {
          return stopping_ || draining_ > 0 || urgent_ > 0 || queue_.size() >= kWakeBatch;
        });
      }
      --idle_workers_;
      // Queued messages are still processed at shutdown (Shutdown() drains the queue).
      if (queue_.empty()) return;
      batch.swap(queue_);
      urgent_ = 0;
      if (blocked_producers_) space_cv_.notify_all();
    }
    // One snapshot per batch: a rule change applies from the next batch on.
    // A copy: a republish inside Process() may refresh this thread's cached snapshot.
    std::shared_ptr<const RuleSet> rules = CurrentRules();
    Batch appends;
    for (const InboundMessage& m : batch) Process(*rules, m, &appends);
    FinishBatch(appends);
  }
}

Status RulesEngine::Validate(const TopicRuleSpec& spec) { return CompileRule(spec).status(); }

Status RulesEngine::Put(const TopicRuleSpec& spec) {
  ASSIGN_OR_RETURN(auto rule, CompileRule(spec));
  rule->metrics = std::make_shared<RuleMetrics>(spec.name);
  std::lock_guard<std::mutex> lock(mu_);
  auto next = std::make_shared<RuleSet>(*rules_);
  (*next)[spec.name] = std::move(rule);
  rules_ = std::move(next);
  version_.store(++g_rules_version, std::memory_order_release);
  return Status::OK();
}

void RulesEngine::Remove(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto next = std::make_shared<RuleSet>(*rules_);
  next->erase(name);
  rules_ = std::move(next);
  version_.store(++g_rules_version, std::memory_order_release);
}

std::shared_ptr<const RulesEngine::RuleSet> RulesEngine::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rules_;
}

const std::shared_ptr<const RulesEngine::RuleSet>& RulesEngine::CurrentRules() const {
  struct Cache {
    uint64_t version = 0;
    std::shared_ptr<const RuleSet> rules;
  };
  thread_local Cache cache;
  uint64_t v = version_.load(std::memory_order_acquire);
  if (cache.version != v) {
    cache.rules = Snapshot();
    cache.version = v;
  }
  return cache.rules;
}

bool RulesEngine::AnyRuleFor(std::string_view topic) const {
  if (StartsWith(topic, kBasicIngestPrefix)) return true;
  for (const auto& [name, r] : *CurrentRules()) {
    if (r->Matches(topic)) return true;
  }
  return false;
}

void RulesEngine::Submit(InboundMessage msg) {
  std::unique_lock<std::mutex> lock(q_mu_);
  if (queue_.size() >= max_queued_ && !stopping_ && !t_engine_thread) {
    // Back-pressure: the publisher's network thread waits for the engine to catch up.
    ++blocked_producers_;
    space_cv_.wait_for(lock, std::chrono::milliseconds(max_block_ms_),
                       [this] { return stopping_ || queue_.size() < max_queued_; });
    --blocked_producers_;
  }
  if (stopping_ || (queue_.size() >= max_queued_ && !t_engine_thread)) {
    bool stopped = stopping_;
    uint64_t n = stopped ? 0 : ++dropped_;
    lock.unlock();
    if (!stopped) {
      static ops::CounterMetric& dropped = ops::Metrics().Counter(
          "tarn_iot_rule_messages_dropped_total", "Messages not evaluated because the rules engine's queue stayed full");
      dropped.Inc();
      if (n % 1000 == 1) {
        TLOG_WARN("rules", "rules engine queue full for {} ms: dropped a message on '{}' ({} so far)",
                  max_block_ms_, msg.topic, n);
      }
    }
    // Not evaluated: the publisher must not take it for handled (MQTT 5 0x97; 3.1.1 resends).
    if (msg.done) {
      msg.done(Error(stopped ? ErrorCode::kUnavailable : ErrorCode::kResourceExhausted,
                     stopped ? "the rules engine is shutting down" : "the rules engine is overloaded"));
    }
    return;
  }
  bool urgent = static_cast<bool>(msg.done);
  queue_.push_back(std::move(msg));
  ++in_flight_;
  if (urgent) ++urgent_;
  // Wake a thread for the first message, when a batch is full, and for the first message a
  // publisher waits on (see kWakeBatch).
  bool wake = idle_workers_ > 0 &&
              (queue_.size() == 1 || queue_.size() == kWakeBatch || (urgent && urgent_ == 1));
  lock.unlock();
  if (wake) work_cv_.notify_one();
}

void RulesEngine::Drain() {
  std::unique_lock<std::mutex> lock(q_mu_);
  ++draining_;  // no lingering while someone waits
  work_cv_.notify_all();
  drain_cv_.wait(lock, [this] { return in_flight_ == 0; });
  --draining_;
}

void RulesEngine::ProcessNow(const InboundMessage& msg) { Process(*Snapshot(), msg, nullptr); }

void RulesEngine::Process(const RuleSet& rules_ref, const InboundMessage& msg, Batch* batch) {
  const RuleSet* rules = &rules_ref;
  std::string_view topic = msg.topic;
  const CompiledRule* only = nullptr;
  if (StartsWith(topic, kBasicIngestPrefix)) {
    // $aws/rules/<rule-name>/<topic…>: the rule sees <topic…>.
    std::string_view rest = topic.substr(kBasicIngestPrefix.size());
    size_t slash = rest.find('/');
    std::string name(rest.substr(0, slash));
    topic = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    auto it = rules->find(name);
    if (it == rules->end() || it->second->disabled) {
      if (msg.done) msg.done(Status::OK());
      return;
    }
    only = it->second.get();
  }
  // The payload is parsed once, only if some rule matches, and shared by all of them; the
  // parser's buffers are reused from message to message on this thread.
  thread_local ParsedPayload payload;
  bool parsed = false;
  MessageContext ctx;
  ctx.topic = topic;
  ctx.client_id = msg.client_id;
  ctx.principal = msg.principal;
  ctx.payload = msg.payload;
  int64_t start_us = 0;
  size_t runs_before = batch ? batch->runs.size() : 0;
  size_t waits_before = batch ? batch->pending.Added() : 0;
  auto run = [&](const CompiledRule& r) {
    if (!parsed) {
      // One clock read per matched message: timestamp() and the latency's start.
      start_us = clock_->NowMicros();
      ctx.timestamp_ms = msg.timestamp_ms ? msg.timestamp_ms : start_us / 1000;
      payload.Parse(msg.payload, msg.payload.capacity() - msg.payload.size());
      parsed = true;
      ctx.parsed = &payload;
    }
    RunRule(r, ctx, msg, start_us, batch);
  };
  if (only) {
    run(*only);
  } else {
    for (const auto& [name, r] : *rules) {
      if (r->Matches(topic)) run(*r);
    }
  }
  if (!msg.done) return;
  // A PUBACK waits until its records and republishes are durable. A republish that stored
  // nothing (QoS 0, no persistent subscriber) was counted down before it returned: unless the
  // batch still waits for something, the message is acknowledged at once.
  if (batch && (batch->runs.size() > runs_before ||
                (batch->pending.Added() > waits_before && batch->pending.Outstanding()))) {
    batch->done_after.push_back(&msg);
  } else {
    msg.done(msg.unhandled);
  }
}

namespace {

// The records a firehose action appends for the rule's output `body`. `last_use`: nothing reads
// `body` after this action, so it becomes the record itself instead of being copied.
Status FirehoseRecords(const Action& a, std::string& body, bool last_use, std::vector<std::string>* records) {
  if (a.batch_mode) {
    // batchMode: the output must be a JSON array; each element is one record.
    json arr;
    if (!ParsePayload(body, &arr) || !arr.is_array()) {
      return Error(ErrorCode::kFirehoseInvalidArgument, "batchMode needs the rule to emit a JSON array");
    }
    for (const auto& e : arr) records->push_back(e.dump(-1, ' ', false, kReplaceInvalid) + a.separator);
  } else if (last_use) {
    body.append(a.separator);
    records->push_back(std::move(body));
  } else {
    // With room for simdjson's padding: the stream's MetadataExtraction parses it in place.
    std::string r;
    r.reserve(body.size() + a.separator.size() + ParsedPayload::kPadding);
    r.append(body).append(a.separator);
    records->push_back(std::move(r));
  }
  return Status::OK();
}

// Action index of the error action in origin slots (rules have at most 10 actions).
constexpr uint64_t kErrorActionSlot = 1000;

// The origin of record `index` of an action whose slot base is `slot_base` (rule, action), or
// null for a message without a packet id (QoS 0, in-process, HTTPS publishes).
const streams::RecordOrigin* OriginOf(const InboundMessage& msg, uint64_t slot_base, size_t index,
                                      streams::RecordOrigin* out) {
  if (msg.packet_id == 0) return nullptr;
  out->client_id = msg.client_id;
  out->packet_id = msg.packet_id;
  out->dup = msg.dup;
  out->payload_hash = msg.payload_hash;
  out->slot = StableHashCombine(slot_base, index);
  return out;
}

// With an error action to tell (`failures` set): a failure entry for each of a firehose
// action's records that its stream will not be able to convert (docs/iot.md "Records a stream
// cannot convert"). The records are appended all the same — the stream writes them under its
// error output prefix — so the entries never make the message unhandled.
void NoteUnconvertible(const Action& a, streams::RecordSink* sink,
                       const std::vector<std::string>& records, json* failures) {
  if (!failures) return;
  for (const std::string& r : records) {
    Status st = sink->CheckConversion(a.resource, r);
    if (st.ok()) continue;
    failures->push_back({{"failedAction", a.type_name},
                         {"failedResource", a.resource},
                         {"errorMessage", "the record will not convert to the stream's format (" +
                                              st.message() +
                                              "); it is delivered to the stream's error output prefix"}});
  }
}

// Runs one action; the error says what failed, for the failure document. `slot_base`: see
// OriginOf. `unconvertible`: see NoteUnconvertible. A republish is durable in the broker when
// `wait` (a batch's) has counted it down, or, without `wait`, when RunAction returns.
Status RunAction(const Action& a, const ActionTargets& t, const MessageContext& ctx,
                 const std::string& body, const InboundMessage& msg, uint64_t slot_base,
                 json* unconvertible = nullptr, CompletionWait* wait = nullptr) {
  switch (a.kind) {
    case Action::kRepublish: {
      if (!t.republish) {
        return Error(ErrorCode::kUnavailable, "the MQTT broker is not running; cannot republish");
      }
      std::string topic = a.topic_or_key.Expand(ctx);
      // AWS IoT: a republish to a $-topic other than $aws/… is rejected.
      if (topic.empty() || topic.find_first_of("+#") != std::string::npos) {
        return Error(ErrorCode::kIotInvalidRequest, "republish topic '" + topic + "' is not a valid topic name");
      }
      CompletionWait own;
      CompletionWait* w = wait ? wait : &own;
      w->Add(1);
      Status st = t.republish(topic, body, a.qos, [w] { w->Done(); });
      if (!st.ok()) {
        w->Done();  // not published: nothing to wait for
        return st;
      }
      if (!wait) own.Wait();
      return st;
    }
    case Action::kS3: {
      if (!t.store) return Error(ErrorCode::kUnavailable, "object storage is not available");
      std::string key = a.topic_or_key.Expand(ctx);
      if (key.empty()) return Error(ErrorCode::kInvalidObjectName, "the s3 key template expanded to an empty key");
      storage::StringSource src(body);
      storage::PutOptions opts;
      opts.attrs.content_type = "application/json";
      auto r = t.store->PutObject(a.resource, key, src, opts);
      return r.status();
    }
    case Action::kFirehose: {
      if (!t.streams) return Error(ErrorCode::kFirehoseResourceNotFound, "delivery streams are not available");
      std::vector<std::string> records;
      std::string copy = body;
      RETURN_IF_ERROR(FirehoseRecords(a, copy, /*last_use=*/true, &records));
      NoteUnconvertible(a, t.streams, records, unconvertible);
      for (size_t i = 0; i < records.size(); ++i) {
        // Wait for the WAL fsync: the action succeeds only once the record is durable.
        auto p = std::make_shared<std::promise<Status>>();
        auto f = p->get_future();
        streams::RecordOrigin o;
        t.streams->Append(a.resource, std::move(records[i]),
                          [p](const Status& st) { p->set_value(st); }, OriginOf(msg, slot_base, i, &o));
        Status st = f.get();
        if (!st.ok()) return st;
      }
      return Status::OK();
    }
  }
  return Error(ErrorCode::kInternal, "unknown action");
}

}  // namespace

void RulesEngine::RunRule(const CompiledRule& rule, const MessageContext& ctx, const InboundMessage& msg,
                          int64_t start, Batch* batch) {
  RuleMetrics& m = *rule.metrics;
  m.matched->Inc();
  json failures;  // null until something fails (no allocation on the common path)
  // The output usually becomes a firehose record (moved, not copied: FirehoseRecords) which the
  // stream's MetadataExtraction parses in place if simdjson's padding fits after it: room for
  // the payload, what the query adds and the padding, so that it is not grown while written.
  std::string body;
  body.reserve(msg.payload.size() + 128 + ParsedPayload::kPadding);
  auto out = rule.query->EvaluateText(ctx, &body);
  if (out.ok() && !*out) {
    m.filtered->Inc();
    m.latency->Observe(static_cast<double>(clock_->NowMicros() - start) / 1e6);
    return;
  }
  Batch::Run* deferred = nullptr;
  Status action_error;
  if (!out.ok()) {
    failures.push_back({{"failedAction", "SqlEvaluation"},
                        {"failedResource", rule.name},
                        {"errorMessage", out.status().message()}});
  } else {
    for (size_t ai = 0; ai < rule.actions.size(); ++ai) {
      const Action& a = rule.actions[ai];
      uint64_t slot_base = StableHashCombine(rule.name_hash, ai);
      if (a.kind == Action::kFirehose && batch && targets_.streams) {
        // Issued now, waited for with the rest of the batch (see Process).
        std::vector<std::string> records;
        Status st = FirehoseRecords(a, body, /*last_use=*/ai + 1 == rule.actions.size(), &records);
        if (st.ok()) {
          NoteUnconvertible(a, targets_.streams, records, rule.error_action ? &failures : nullptr);
          if (!deferred) {
            batch->runs.push_back({&rule, &msg, ctx, json(), Status(), start, {}});
            batch->runs.back().ctx.parsed = nullptr;
            deferred = &batch->runs.back();
          }
          Batch::Append ap{&a, batch->statuses.size(), records.size()};
          CompletionWait* pending = &batch->pending;
          pending->Add(records.size());
          for (size_t i = 0; i < records.size(); ++i) {
            Status* status = &batch->statuses.emplace_back();
            streams::RecordOrigin o;
            targets_.streams->Append(
                a.resource, std::move(records[i]),
                [status, pending](const Status& s) {
                  *status = s;
                  pending->Done();
                },
                OriginOf(msg, slot_base, i, &o));
          }
          deferred->appends.push_back(std::move(ap));
          continue;
        }
        m.actions_failed->Inc();
        if (action_error.ok()) action_error = st;
        failures.push_back({{"failedAction", a.type_name}, {"failedResource", a.resource},
                            {"errorMessage", st.ToString()}});
        continue;
      }
      Status st = RunAction(a, targets_, ctx, body, msg, slot_base,
                            rule.error_action ? &failures : nullptr, batch ? &batch->pending : nullptr);
      if (st.ok()) {
        m.actions_ok->Inc();
      } else {
        m.actions_failed->Inc();
        if (action_error.ok()) action_error = st;
        failures.push_back({{"failedAction", a.type_name},
                            {"failedResource", a.resource.empty() ? a.topic_or_key.Expand(ctx) : a.resource},
                            {"errorMessage", st.ToString()}});
      }
    }
  }
  if (deferred) {
    // batch->runs may grow (and move) later: `deferred` is not used past this point.
    deferred->failures = std::move(failures);
    deferred->action_error = std::move(action_error);
    return;
  }
  FinishRule(rule, ctx, msg, std::move(failures), std::move(action_error), start,
             batch ? &batch->pending : nullptr);
}

bool RetryMaySucceed(const Status& error) {
  switch (error.code()) {
    case ErrorCode::kFirehoseInvalidArgument:
    case ErrorCode::kIotInvalidRequest:
    case ErrorCode::kInvalidObjectName:
    case ErrorCode::kInvalidArgument:
      return false;
    default:
      return true;
  }
}

void RulesEngine::FinishRule(const CompiledRule& rule, const MessageContext& ctx, const InboundMessage& msg,
                             json failures, Status action_error, int64_t start, CompletionWait* wait) {
  RuleMetrics& m = *rule.metrics;
  if (failures.empty()) {
    m.delivered->Inc();
  } else {
    m.failed->Inc();
    // The error action receives AWS's failure document (developerguide/rule-error-handling).
    json doc = {{"ruleName", rule.name},
                {"topic", std::string(ctx.topic)},
                {"clientId", msg.client_id},
                {"base64OriginalPayload", Base64Encode(msg.payload)},
                {"failures", failures}};
    bool handled = false;
    if (rule.error_action) {
      Status st = RunAction(*rule.error_action, targets_, ctx,
                            doc.dump(-1, ' ', false, kReplaceInvalid), msg,
                            StableHashCombine(rule.name_hash, kErrorActionSlot), nullptr, wait);
      if (!st.ok()) {
        m.error_action_failed->Inc();
        TLOG_WARN("rules", "rule {}: error action failed too: {}", rule.name, st.ToString());
      }
      handled = st.ok();
    } else {
      TLOG_WARN("rules", "rule {}: {} (no error action)", rule.name, failures.dump(-1, ' ', false, kReplaceInvalid));
    }
    // A failed action whose error action did not take the message over: the message was not
    // handled, and its publisher is told so (AWS's model: the error action handles it).
    if (!handled && !action_error.ok() && msg.unhandled.ok()) msg.unhandled = std::move(action_error);
  }
  m.latency->Observe(static_cast<double>(clock_->NowMicros() - start) / 1e6);
}

void RulesEngine::FinishBatch(Batch& batch) {
  if (batch.runs.empty() && batch.done_after.empty()) return;
  batch.pending.Wait();
  for (Batch::Run& r : batch.runs) {
    RuleMetrics& m = *r.rule->metrics;
    for (const Batch::Append& ap : r.appends) {
      Status st;
      for (size_t i = ap.first; i < ap.first + ap.count && st.ok(); ++i) st = batch.statuses[i];
      if (st.ok()) {
        m.actions_ok->Inc();
      } else {
        m.actions_failed->Inc();
        if (r.action_error.ok()) r.action_error = st;
        r.failures.push_back({{"failedAction", ap.action->type_name},
                              {"failedResource", ap.action->resource},
                              {"errorMessage", st.ToString()}});
      }
    }
    // The error action's templates may read the payload: parse it again (a failure is rare;
    // the thread's parse was reused for the batch's later messages).
    std::optional<ParsedPayload> again;
    if (!r.failures.empty()) {
      again.emplace();
      again->Parse(r.msg->payload);
      r.ctx.parsed = &*again;
    }
    FinishRule(*r.rule, r.ctx, *r.msg, std::move(r.failures), std::move(r.action_error), r.start_us,
               &batch.pending);
  }
  batch.pending.Wait();  // the error actions' republishes
  for (const InboundMessage* msg : batch.done_after) msg->done(msg->unhandled);
}

Result<std::optional<json>> RulesEngine::Test(const std::string& sql, const std::string& topic,
                                              const std::string& payload,
                                              const std::string& client_id, int64_t now_ms) {
  ASSIGN_OR_RETURN(auto q, RuleQuery::Compile(sql));
  if (!TopicMatches(q->topic_filter(), topic)) {
    return Error(ErrorCode::kIotInvalidRequest,
                 "topic '" + topic + "' does not match the rule's topic filter '" + q->topic_filter() + "'");
  }
  json doc;
  bool is_json = ParsePayload(payload, &doc);
  MessageContext ctx;
  ctx.topic = topic;
  ctx.client_id = client_id;
  ctx.timestamp_ms = now_ms;
  ctx.payload = payload;
  ctx.json = is_json ? &doc : nullptr;
  return q->Evaluate(ctx);
}

}  // namespace tarn::gateway::rules
