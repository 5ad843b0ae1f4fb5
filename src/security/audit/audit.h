// The audit trail (DESIGN.md §5): every API call — allowed, denied or failed — becomes a
// CloudTrail-format record (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/
// cloudtrail-event-reference-record-contents.html).
//
//   AuditTrail        net::AuditSink. Record() captures the call's fields into a compact event
//                     and queues it: no formatting, no I/O, no allocation beyond the copied
//                     strings on the request's thread. One writer thread takes the queue every
//                     index interval (default 100 ms; sooner when 2 000 events wait), formats
//                     the JSON records and indexes the batch in SQLite in one transaction
//                     (table audit_events, for LookupEvents): from then on the events survive a
//                     crash of the process. Every flush interval it writes the indexed events as
//                     a gzip JSON log file {"Records":[…]} into the `audit` bucket under
//                     AWSLogs/<acct>/CloudTrail/<region>/YYYY/MM/DD/. Digest files
//                     (AWSLogs/<acct>/CloudTrail-Digest/…) list each new log file
//                     with its SHA-256, chain to the previous digest's hash and signature, and
//                     are signed with HMAC-SHA256 under <data>/keys/audit-digest.key (signature
//                     in the object's x-amz-meta-signature, as CloudTrail does). A digest is
//                     written every digest interval (default hourly) and at shutdown.
//                     Lookup() first indexes what is queued, so a caller sees every call that
//                     finished before it asked; Stop() writes everything. The queue is bounded
//                     (max_queued_events, counting events taken but not yet indexed): when it
//                     is full, Record() waits for the writer — events are never dropped.
//                     RecordServiceEvent() takes events that are not API calls (a device's
//                     MQTT operation denied by its IoT policy), optionally throttled per key
//                     (see ServiceEvent).
//   CloudTrailApi     the CloudTrail JSON 1.1 LookupEvents operation over the index.
//   VerifyAuditTrail  `tarn audit verify`: walks the digest chain and reports log files
//                     modified, deleted or inserted, and broken or forged digests.
//
// Metrics: tarn_audit_events_recorded_total, tarn_audit_events_indexed_total (their difference
// is the queue), tarn_audit_backpressure_waits_total (Record() calls that waited for room),
// tarn_audit_write_errors_total (failed index or log-file writes; retried).
//
// Thread-safety: AuditTrail and CloudTrailApi are thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/meta_store.h"
#include "net/aws_api.h"
#include "security/authz.h"
#include "storage/object_store.h"

namespace tarn::ops {
class CounterMetric;
}  // namespace tarn::ops

namespace tarn::security::audit {

struct AuditOptions {
  std::string account_id;
  std::string region;
  std::string bucket = "audit";
  std::string keys_dir;  // holds audit-digest.key
  int64_t index_interval_ms = 100;  // queued events are indexed (crash-safe) at least this often
  size_t max_queued_events = 65536;  // backpressure beyond this many events not yet indexed
  int64_t flush_seconds = 60;     // log file cadence (CloudTrail delivers about every 5 min)
  int64_t digest_seconds = 3600;  // digest cadence (CloudTrail: hourly)
  // Throttled service events: one full record per key per window, the rest summarised.
  int64_t throttle_window_seconds = 60;
  size_t throttle_max_keys = 10000;
  const Clock* clock = nullptr;
};

// An event that is not an API call, recorded in the same CloudTrail shape: e.g. a device's
// MQTT publish denied by its IoT policy (eventSource iot.amazonaws.com, eventName Publish).
//
// Throttling (`throttle_key` non-empty), so that a misbehaving device cannot flood the trail:
// the first event of a key is recorded in full and opens a window of throttle_window_seconds;
// further events of that key inside the window are only counted (not even built), and when the
// window closes one summary record is written — the window's first event with
// additionalEventData.aggregated = true, deniedCount (the events it stands for, not counting the
// first), firstEventTime / lastEventTime of those and up to 10 distinct resources. At most
// throttle_max_keys keys are tracked; beyond that, new keys share one overflow key ("*") whose
// summary names no device, so memory and records stay bounded whatever devices send.
struct ServiceEvent {
  std::string event_source;  // "iot.amazonaws.com"
  std::string event_name;    // "Publish"
  std::string principal_type, principal_id, principal_arn;  // userIdentity
  std::string username;      // LookupEvents' Username attribute
  std::string source_ip, user_agent;
  std::string resource_type, resource_arn;
  std::string error_code, error_message;  // empty = success
  std::map<std::string, std::string> request_parameters;
  std::string additional_event_data_json;  // a JSON object, or empty
  std::string throttle_key;
};

// One event as indexed for LookupEvents.
struct IndexedEvent {
  std::string event_id, event_name, event_source, username, access_key_id, resource_type,
      resource_name, record_json;
  int64_t event_time_ms = 0;
  bool read_only = false;
};

struct LookupQuery {
  std::string attribute_key, attribute_value;  // one lookup attribute, optional
  int64_t start_ms = 0, end_ms = 0;            // 0 = open
  int max_results = 50;
  int64_t before_seq = 0;  // pagination: events with seq < before_seq (0 = from newest)
};

class AuditTrail final : public net::AuditSink {
 public:
  static Result<std::unique_ptr<AuditTrail>> Open(MetaStore* meta, storage::ObjectStore* store,
                                                  AuditOptions options);
  ~AuditTrail() override;

  void Record(const net::ApiCall& call, const net::AuditContext& context, int http_status,
              const Status& error) override;
  void Record(net::ApiCall&& call, const net::AuditContext& context, int http_status,
              const Status& error) override;
  // Queues a service event (throttled by its key, see ServiceEvent). No I/O; safe to call
  // with other locks held (it may wait for room in the queue, see AuditSink).
  void RecordServiceEvent(ServiceEvent event);
  // The same, building the event only when it is recorded in full: `make` is not called for an
  // event that is only counted (the hot case of a device repeating a denied operation).
  void RecordServiceEvent(const std::string& throttle_key, std::string_view resource_arn,
                          const std::function<ServiceEvent()>& make);

  void Start();
  // Writes everything queued as a log file and a final digest; stops the thread.
  void Stop();
  // Indexes and writes queued events now (tests, shutdown).
  Status Flush(bool with_digest);

  // Newest first; returns the events and the seq to continue before (0 = no more). Indexes
  // what is queued first: every Record() that returned before this call is included.
  Result<std::pair<std::vector<IndexedEvent>, int64_t>> Lookup(const LookupQuery& q);

 private:
  struct Queued;  // an event as captured on the caller's thread (audit.cc)
  struct Throttle {
    int64_t window_start_ms = 0;
    uint64_t suppressed = 0;
    int64_t first_ms = 0, last_ms = 0;
    bool overflow = false;
    ServiceEvent first;
    std::vector<std::string> resources;
  };

  AuditTrail(MetaStore* meta, storage::ObjectStore* store, AuditOptions options, std::string key);
  void Enqueue(Queued&& q);
  // Queues the summary of a throttle window that has ended (mu_ held); `t` is left spent.
  void QueueSummary(Throttle& t);
  IndexedEvent Format(Queued& q, std::string_view ids);
  Status IndexPending();  // write_mu_ held
  // Writes the summaries of throttle windows that have ended and forgets their keys.
  void FlushThrottles(bool all);
  Status WriteLogFile();
  Status WriteDigest();
  Status RecoverUnwritten();
  void Run();

  MetaStore* meta_;
  storage::ObjectStore* store_;
  AuditOptions opt_;
  std::string digest_key_;  // HMAC key; never logged

  std::mutex mu_;
  std::condition_variable cv_;        // wakes the writer
  std::condition_variable room_cv_;   // wakes callers waiting for room in the queue
  std::vector<Queued> queue_;         // guarded by mu_: recorded, not yet taken by the writer
  size_t taken_ = 0;                  // guarded by mu_: taken by the writer, not yet indexed
  std::unordered_map<std::string, Throttle> throttles_;  // guarded by mu_
  bool stop_ = false;                 // guarded by mu_

  std::mutex write_mu_;                // serialises indexing and file writing
  std::vector<Queued> spare_;          // guarded by write_mu_: the queue's other buffer (empty)
  std::vector<IndexedEvent> unindexed_;  // guarded by write_mu_: formatted, not yet indexed
  std::vector<std::string> batch_;     // guarded by write_mu_: indexed, not yet in a log file
  int64_t batch_oldest_ms_ = 0, batch_newest_ms_ = 0;
  int64_t batch_last_seq_ = 0;         // the newest event of batch_ in audit_events
  int64_t last_flush_s_ = 0, last_digest_s_ = 0, last_throttle_ms_ = 0;
  bool failing_ = false;               // guarded by mu_: the last write failed (logged once)
  std::string time_cache_;             // writer side: eventTime of time_cache_s_
  int64_t time_cache_s_ = -1;
  ops::CounterMetric* recorded_;
  ops::CounterMetric* indexed_;
  ops::CounterMetric* backpressure_;
  ops::CounterMetric* write_errors_;
  std::thread thread_;
};

class CloudTrailApi final : public net::ApiService {
 public:
  CloudTrailApi(AuditTrail* trail, const Authorizer* authz);
  Status Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) override;

 private:
  AuditTrail* trail_;
  const Authorizer* authz_;
};

struct VerifyReport {
  int digests = 0;
  int log_files = 0;
  std::vector<std::string> problems;  // "MODIFIED <key>", "DELETED <key>", "INSERTED <key>" …
  bool ok() const { return problems.empty(); }
};

Result<VerifyReport> VerifyAuditTrail(storage::ObjectStore* store, const std::string& bucket,
                                      const std::string& account_id, const std::string& keys_dir);

// gzip (RFC 1952) helpers.
Result<std::string> Gzip(const std::string& data);
Result<std::string> Gunzip(const std::string& data);

}  // namespace tarn::security::audit
