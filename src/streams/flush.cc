// Buffer flushing: due partitions → objects in the landing bucket (Parquet through DuckDB, or
// raw), the error prefix for records that failed, catalog partitions for new Hive partitions,
// and the WAL checkpoint that lets the log forget what was delivered.
//
// Order of a flush (what makes it idempotent under kill -9 at any point):
//   1. take the partition's buffered records [first, last]; record the intent (partition,
//      first, last) in the WAL checkpoint (atomic file replace + fsync);
//   2. write the objects: key = <partition><stream>-<arrival time of first>-<first>-<last><ext>,
//      a pure function of the records, so a repeat overwrites the same key with the same bytes;
//   3. mark the partition delivered through `last`, advance the low-water mark, checkpoint
//      (segments entirely below it are deleted).
// On recovery, records of a partition at or below its delivered mark are skipped, and an
// intent without its completion is repeated with exactly its records before anything else.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>

#include "catalog/store.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "core/strings.h"
#include "storage/object_store.h"
#include "streams/convert.h"
#include "streams/flush_internal.h"
#include "streams/service.h"
#include "streams/stream.h"

namespace tarn::streams {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// "<stream>-<yyyy-MM-dd-HH-mm-ss>-<first>-<last>" (AWS names objects
// <stream>-<version>-<time>-<uuid>; Tarn's carries the WAL range instead of a random id).
std::string ObjectName(const std::string& stream, int64_t arrival_micros, uint64_t first,
                       uint64_t last) {
  auto t = FormatTimestamp("yyyy-MM-dd-HH-mm-ss", arrival_micros);
  return stream + "-" + (t.ok() ? *t : std::string("0")) + "-" + SeqText(first) + "-" +
         SeqText(last);
}

// Hive-style `k=v` segments of a prefix, in order, with the path up to each one.
std::vector<std::pair<std::string, std::string>> HiveSegments(const std::string& prefix,
                                                              std::vector<size_t>* ends) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start < prefix.size()) {
    size_t slash = prefix.find('/', start);
    size_t end = slash == std::string::npos ? prefix.size() : slash;
    std::string seg = prefix.substr(start, end - start);
    size_t eq = seg.find('=');
    if (eq != std::string::npos && slash != std::string::npos) {
      out.emplace_back(seg.substr(0, eq), seg.substr(eq + 1));
      ends->push_back(end + 1);
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return out;
}

}  // namespace

std::string SeqText(uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%020llu", static_cast<unsigned long long>(seq));
  return buf;
}

Result<std::unique_ptr<ParquetWriter>> StreamService::Flush::BorrowWriter() {
  {
    std::lock_guard<std::mutex> l(writers_mu);
    if (!writers.empty()) {
      auto w = std::move(writers.back());
      writers.pop_back();
      return w;
    }
  }
  return ParquetWriter::Create();
}

void StreamService::Flush::ReturnWriter(std::unique_ptr<ParquetWriter> w) {
  std::lock_guard<std::mutex> l(writers_mu);
  writers.push_back(std::move(w));
}

// One partition's records on their way to objects.
struct FlushJob {
  std::shared_ptr<DeliveryStream> stream;
  std::string key;
  std::vector<BufferedRecord> records;
  std::shared_ptr<const DestinationConfig> config;
  bool new_intent = false;  // false: an exact repeat whose intent is already recorded
};

StreamService::~StreamService() {
  {
    std::lock_guard<std::mutex> l(flusher_mu_);
    stop_ = true;
  }
  flusher_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  if (flush_) flush_->stopping = true;
  if (flush_ && flush_->pool) flush_->pool->Shutdown();  // finishes jobs already queued
  std::lock_guard<std::mutex> l(mu_);
  // The SQL endpoint stopped first (lake.cc), so no query holds a merged input any more: delete
  // them now rather than leave covered objects on disk for readers of the folders themselves.
  for (auto& [n, s] : streams_) {
    Status st = DeleteMergedInputs(*s, true);
    if (!st.ok()) TLOG_WARN("streams", "{}: deleting merged objects at shutdown: {}", n, st.ToString());
  }
  streams_.clear();  // closes each WAL (pending appends are written and synced first)
}

Status StreamService::InitFlush() {
  flush_ = std::make_shared<Flush>();
  flush_->pool = std::make_unique<ThreadPool>(size_t(std::max(1, options_.flush_threads)), "flush");
  return Status::OK();
}

std::vector<FlushJob> StreamService::CollectJobs(const std::shared_ptr<DeliveryStream>& sp,
                                                 bool all, int64_t* paced_until) {
  std::vector<FlushJob> jobs;
  DeliveryStream& s = *sp;
  std::lock_guard<std::mutex> l(s.mu);
  if (s.deleted || !s.wal || s.paused) return jobs;
  int64_t now = options_.clock->MonotonicNanos();
  int64_t interval = int64_t(s.config->interval_seconds) * 1000000000LL;
  const int64_t gap = options_.zero_interval_gap_ms * 1000000LL;
  const bool paced = paced_until && interval == 0 && gap > 0;
  std::erase_if(s.recent_flushes, [&](const auto& e) { return now - e.second >= gap; });
  for (auto& [key, p] : s.buffers) {
    if (p.busy) continue;  // its next flush follows the one in flight
    if (!p.redo.empty()) {  // an exact repeat; its intent is already recorded
      if (!all && now < p.retry_after) continue;
      jobs.push_back({sp, key, std::move(p.redo), s.config, false});
      p.redo.clear();
      p.busy = true;
      continue;
    }
    if (p.records.empty()) continue;
    if (!all && double(p.bytes) * s.output_ratio < double(s.config->size_bytes) &&
        now - p.first_mono < interval) {
      continue;
    }
    if (paced) {
      auto it = s.recent_flushes.find(key);
      if (it != s.recent_flushes.end() &&
          double(p.bytes) * s.output_ratio < double(s.config->size_bytes)) {
        *paced_until = std::min(*paced_until, it->second + gap);
        continue;
      }
    }
    if (interval == 0 && gap > 0) s.recent_flushes[key] = now;
    FlushJob j{sp, key, std::move(p.records), s.config, true};
    p.records.clear();
    p.bytes = 0;
    p.busy = true;
    PartitionMark& m = s.marks[key];
    m.inflight_first = j.records.front().rec.seq;
    m.inflight_last = j.records.back().rec.seq;
    jobs.push_back(std::move(j));
  }
  s.jobs_running += int(jobs.size());
  return jobs;
}

void StreamService::PauseFlushes(DeliveryStream& s, std::unique_lock<std::mutex>& lock) {
  ++s.paused;
  s.jobs_cv.wait(lock, [&] { return s.jobs_running == 0; });
}

Status StreamService::CheckpointStream(DeliveryStream& s) {
  uint64_t ticket = s.checkpoint_requested.fetch_add(1) + 1;
  std::lock_guard<std::mutex> cl(s.checkpoint_mu);
  if (s.checkpoint_written >= ticket) return Status::OK();  // a later state is on disk
  // Every ticket up to `covers` was taken after its marks changed, so the state taken below
  // includes those changes.
  uint64_t covers = s.checkpoint_requested.load();
  Wal* wal;
  uint64_t low;
  std::string state;
  std::map<std::string, uint64_t> delivered;
  {
    std::lock_guard<std::mutex> l(s.mu);
    if (!s.wal) return Status::OK();
    wal = s.wal.get();
    low = s.LowWater();
    state = s.SerializeMarks(low);
    for (const auto& [k, m] : s.marks) delivered[k] = m.delivered_last;
  }
  RETURN_IF_ERROR(wal->Checkpoint(low, state));
  s.checkpoint_written = covers;
  {
    // What compaction may merge: records a replay will never deliver again.
    std::lock_guard<std::mutex> l(s.mu);
    s.durable_low = low;
    s.durable_delivered = std::move(delivered);
  }
  return Status::OK();
}

// Order of one job (what makes it idempotent under kill -9 at any point): intent (partition,
// first, last) in the checkpoint → objects → delivered mark → checkpoint. A partition has one
// job at a time, so its intents and objects follow sequence order; jobs of different partitions
// interleave freely, their checkpoints coalescing.
Status StreamService::RunJob(FlushJob& j) {
  DeliveryStream& s = *j.stream;
  auto finish = [&](Status st) {
    std::lock_guard<std::mutex> l(s.mu);
    auto it = s.buffers.find(j.key);
    if (it != s.buffers.end() && !it->second.busy && it->second.records.empty() &&
        it->second.redo.empty()) {
      s.buffers.erase(it);
    }
    if (--s.jobs_running == 0) s.jobs_cv.notify_all();
    return st;
  };
  if (j.new_intent) {
    Status st = CheckpointStream(s);
    if (!st.ok()) {
      // Nothing was written: the records become exact repeats of the (in-memory) intent.
      std::lock_guard<std::mutex> l(s.mu);
      PartitionBuffer& p = s.buffers[j.key];
      p.redo = std::move(j.records);
      p.busy = false;
      p.retry_backoff_ns = std::clamp<int64_t>(p.retry_backoff_ns * 2, 100000000, 5000000000);
      p.retry_after = options_.clock->MonotonicNanos() + p.retry_backoff_ns;
      s.delivery_errors->Inc();
      st = st.WithContext("recording a flush intent");
      if (--s.jobs_running == 0) s.jobs_cv.notify_all();
      return st;
    }
  }
  uint64_t out_bytes = 0, in_bytes = 0;
  for (const auto& b : j.records) in_bytes += b.rec.data.size();
  FolderObject parquet;
  Status st = WriteJob(s, *j.config, j.key, j.records, &out_bytes, &parquet);
  bool more = false;
  {
    std::lock_guard<std::mutex> l(s.mu);
    PartitionBuffer& p = s.buffers[j.key];
    p.busy = false;
    if (st.ok()) {
      if (j.key.compare(0, 2, "D:") == 0 && in_bytes > 0 && out_bytes > 0) {
        s.output_ratio = 0.5 * s.output_ratio + 0.5 * (double(out_bytes) / double(in_bytes));
      }
      PartitionMark& m = s.marks[j.key];
      m.delivered_last = j.records.back().rec.seq;
      m.inflight_first = m.inflight_last = 0;
      p.retry_backoff_ns = 0;
      if (!parquet.key.empty()) NoteObject(s, j.key, *j.config, std::move(parquet));
    } else {
      TLOG_WARN("streams", "{}: delivering {} records to {} failed (will retry): {}", s.name,
                j.records.size(), j.key.substr(2), st.ToString());
      s.delivery_errors->Inc();
      p.redo = std::move(j.records);
      p.retry_backoff_ns = std::clamp<int64_t>(p.retry_backoff_ns * 2, 100000000, 5000000000);
      p.retry_after = options_.clock->MonotonicNanos() + p.retry_backoff_ns;
    }
    more = st.ok() && !p.records.empty() && (s.config->interval_seconds == 0 ||
                                  double(p.bytes) * s.output_ratio >= double(s.config->size_bytes));
  }
  Status cst = CheckpointStream(s);
  if (!cst.ok() && st.ok()) st = cst.WithContext("checkpointing the WAL");
  {
    std::lock_guard<std::mutex> l(s.mu);
    if (s.wal) s.wal_bytes->Set(double(s.wal->disk_bytes()));
  }
  s.RecycleRecords(std::move(j.records));  // delivered (or moved to redo): the vector only
  st = finish(st);
  if (more) Wake();  // the partition filled up while this job ran
  if (st.ok()) ScheduleCompactions(j.stream);  // its new object is durably delivered now
  return st;
}

void StreamService::Dispatch(std::vector<FlushJob> jobs) {
  for (auto& j : jobs) {
    auto job = std::make_shared<FlushJob>(std::move(j));
    if (!flush_->pool->Submit([this, job] { RunJob(*job).IgnoreError(); })) {
      RunJob(*job).IgnoreError();  // shutting down: run it here
    }
  }
}

Status StreamService::RunAndWait(std::vector<FlushJob> jobs) {
  if (jobs.empty()) return Status::OK();
  struct Latch {
    std::mutex mu;
    std::condition_variable cv;
    size_t left = 0;
    Status first;
  };
  auto latch = std::make_shared<Latch>();
  latch->left = jobs.size();
  for (auto& j : jobs) {
    auto job = std::make_shared<FlushJob>(std::move(j));
    auto run = [this, job, latch] {
      Status st = RunJob(*job);
      std::lock_guard<std::mutex> l(latch->mu);
      if (!st.ok() && latch->first.ok()) latch->first = st;
      if (--latch->left == 0) latch->cv.notify_all();
    };
    if (!flush_->pool->Submit(run)) run();
  }
  std::unique_lock<std::mutex> l(latch->mu);
  latch->cv.wait(l, [&] { return latch->left == 0; });
  return latch->first;
}

Status StreamService::FlushStream(const std::shared_ptr<DeliveryStream>& s, bool all) {
  Status first = RunAndWait(CollectJobs(s, all));
  if (!all) return first;
  // Partitions that had a job in flight when this began: wait for it, then flush what they
  // buffered meanwhile, so everything buffered at the call is delivered (or failed) on return.
  {
    std::unique_lock<std::mutex> l(s->mu);
    s->jobs_cv.wait(l, [&] { return s->jobs_running == 0; });
  }
  Status st = RunAndWait(CollectJobs(s, true));
  return first.ok() ? st : first;
}

Status StreamService::WriteJob(DeliveryStream& s, const DestinationConfig& config,
                               const std::string& key, const std::vector<BufferedRecord>& recs,
                               uint64_t* output_bytes, FolderObject* parquet) {
  if (!store_) return Error(ErrorCode::kFirehoseServiceUnavailable, "no object store");
  uint64_t first = recs.front().rec.seq, last = recs.back().rec.seq;
  std::string name = ObjectName(s.name, recs.front().rec.arrival_micros, first, last);
  auto put_bytes = [&](const std::string& object_key, std::string body) -> Status {
    storage::StringSource src(std::move(body));
    storage::PutOptions po;
    ASSIGN_OR_RETURN(storage::ObjectInfo info, store_->PutObject(config.bucket, object_key, src, po));
    s.delivered_bytes->Inc(info.size);
    *output_bytes += info.size;
    return Status::OK();
  };
  auto write_errors = [&](const std::vector<FailedRecord>& failed, const std::string& type,
                          const std::string& error_partition,
                          const std::string& table_arn) -> Status {
    std::string body;
    for (const auto& f : failed) body += ErrorRecordJson(f, s.name, table_arn);
    return put_bytes(FillRandomString(error_partition, first) + name, std::move(body));
  };

  if (key.compare(0, 2, "E:") == 0) {  // records routed to the error output before delivery
    size_t colon = key.find(':', 2);
    std::string type = key.substr(2, colon - 2);
    std::vector<FailedRecord> failed;
    for (const auto& b : recs) {
      failed.push_back({&b.rec, b.error ? b.error->code : "", b.error ? b.error->message : ""});
    }
    RETURN_IF_ERROR(write_errors(failed, type, key.substr(colon + 1), ""));
    return Status::OK();
  }
  std::string partition = FillRandomString(key.substr(2), first);
  // Per flush thread and kept: a fresh pointer array of a large fill (2–5 MiB) was faulted in
  // on every flush.
  thread_local std::vector<const WalRecord*> records;
  records.clear();
  records.reserve(recs.size());
  for (const auto& b : recs) records.push_back(&b.rec);

  if (!config.convert) {
    ASSIGN_OR_RETURN(std::string body, RawOutput(records, config.append_newline, config.compression));
    std::string ext = !config.file_extension.empty() ? config.file_extension
                      : config.compression == RawCompression::kGzip ? ".gz" : "";
    RETURN_IF_ERROR(put_bytes(partition + name + ext, std::move(body)));
    s.delivered_records->Inc(records.size());
    return Status::OK();
  }

  // JSON → Parquet with the catalog table's schema as it is now.
  if (!catalog_) return Error(ErrorCode::kFirehoseServiceUnavailable, "the catalog is off");
  ASSIGN_OR_RETURN(json table, SchemaTable(s, config, records));
  ASSIGN_OR_RETURN(std::vector<ColumnSpec> columns, SchemaFromGlueTable(table, config));
  std::string tmp = options_.wal_root + "/.tmp/" + s.name + "-" + SeqText(first) + "-" +
                    std::to_string(flush_->tmp_counter++) + ".parquet";
  std::vector<FailedRecord> failed;
  size_t rows = 0;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<ParquetWriter> writer, flush_->BorrowWriter());
    auto w = writer->Write(columns, records, config.parquet_compression, tmp, &failed);
    flush_->ReturnWriter(std::move(writer));
    if (!w.ok()) {
      std::error_code ec;
      fs::remove(tmp, ec);
      return w.status();
    }
    rows = *w;
  }
  Status st;
  if (rows > 0) {
    ASSIGN_OR_RETURN(auto src, storage::FileSource::Open(tmp));
    storage::PutOptions po;
    po.attrs.content_type = "application/vnd.apache.parquet";
    std::string ext = config.file_extension.empty() ? ".parquet" : config.file_extension;
    auto info = store_->PutObject(config.bucket, partition + name + ext, *src, po);
    std::error_code ec;
    fs::remove(tmp, ec);
    if (!info.ok()) return info.status();
    *parquet = {partition + name + ext, first, last, info->size};
    s.delivered_bytes->Inc(info->size);
    *output_bytes += info->size;
    s.delivered_records->Inc(rows);
    RETURN_IF_ERROR(RegisterPartition(config, table, partition));
  }
  if (!failed.empty()) {
    s.failed_conversion->Inc(failed.size());
    auto ep = config.error_prefix.Evaluate(failed.front().record->arrival_micros, {},
                                           "format-conversion-failed");
    std::string table_arn = "arn:aws:glue:" + options_.region + ":" + options_.account_id +
                            ":table/" + config.schema_database + "/" + config.schema_table;
    RETURN_IF_ERROR(write_errors(failed, "format-conversion-failed",
                                 ep.ok() ? *ep : "errors/" + s.name + "/format-conversion-failed/",
                                 table_arn));
  }
  return Status::OK();
}

Result<json> StreamService::SchemaTable(DeliveryStream& s, const DestinationConfig& config,
                                       const std::vector<const WalRecord*>& records) {
  auto table = catalog_->GetTable(config.schema_database, config.schema_table);
  if (table.ok() || table.status().code() != ErrorCode::kEntityNotFound || !s.infer_schema) {
    return table;
  }
  // Inferred from these records: Hive `k=v` segments of the prefix become string partition
  // keys (registered as objects land), the records' other top-level keys the columns.
  std::vector<std::string> keys;
  json partition_keys = json::array();
  std::string location = config.prefix.text();
  location = location.substr(0, location.find("!{"));
  location = location.substr(0, location.rfind('/') + 1);
  for (const auto& seg : Split(config.prefix.text(), '/')) {
    size_t eq = seg.find('=');
    if (eq == std::string::npos || eq == 0 || seg.find("!{") < eq) continue;
    keys.push_back(ToLower(seg.substr(0, eq)));
    partition_keys.push_back({{"Name", keys.back()}, {"Type", "string"}});
  }
  json columns = InferGlueColumns(records, keys);
  if (columns.empty()) {
    return Error(ErrorCode::kFirehoseInvalidArgument,
                 "cannot infer a schema for " + config.schema_database + "." +
                     config.schema_table + ": none of the first records is a JSON object");
  }
  Status st = catalog_->CreateDatabase({{"Name", config.schema_database}});
  if (!st.ok() && st.code() != ErrorCode::kGlueAlreadyExists) return st;
  json input = {
      {"Name", config.schema_table},
      {"Description", "inferred by delivery stream " + s.name + " from its first records"},
      {"TableType", "EXTERNAL_TABLE"},
      {"Parameters", {{"classification", "parquet"}}},
      {"PartitionKeys", partition_keys},
      {"StorageDescriptor",
       {{"Columns", columns},
        {"Location", "s3://" + config.bucket + "/" + location},
        {"InputFormat", "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"},
        {"OutputFormat", "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"},
        {"SerdeInfo",
         {{"SerializationLibrary", "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}}}}}};
  st = catalog_->CreateTable(config.schema_database, input);
  if (!st.ok() && st.code() != ErrorCode::kGlueAlreadyExists) return st;
  if (st.ok()) {
    TLOG_INFO("streams", "{}: created catalog table {}.{} with {} inferred columns", s.name,
              config.schema_database, config.schema_table, columns.size());
  }
  return catalog_->GetTable(config.schema_database, config.schema_table);  // whoever won
}

// Registers the Hive partition an object was written into, when the schema table is partitioned
// by keys the prefix names (`year=2026/month=11/…`), so catalog readers (SQL, crawlers, Athena-
// style engines) see new data without a crawler run.
Status StreamService::RegisterPartition(const DestinationConfig& config, const json& table,
                                        const std::string& partition) {
  std::vector<catalog::PartitionKey> keys = catalog::CatalogStore::PartitionKeysOf(table);
  if (keys.empty()) return Status::OK();
  std::vector<size_t> ends;
  auto segs = HiveSegments(partition, &ends);
  std::vector<std::string> values;
  size_t path_end = 0;
  for (const auto& k : keys) {
    bool found = false;
    for (size_t i = 0; i < segs.size(); ++i) {
      if (ToLower(segs[i].first) == ToLower(k.name)) {
        values.push_back(segs[i].second);
        path_end = std::max(path_end, ends[i]);
        found = true;
        break;
      }
    }
    if (!found) return Status::OK();  // the prefix does not spell this table's partitions
  }
  ASSIGN_OR_RETURN(bool exists,
                   catalog_->HasPartition(config.schema_database, config.schema_table, values));
  if (exists) return Status::OK();
  json sd = table.value("StorageDescriptor", json::object());
  sd["Location"] = "s3://" + config.bucket + "/" + partition.substr(0, path_end);
  json input = {{"Values", values}, {"StorageDescriptor", sd}};
  Status st = catalog_->CreatePartition(config.schema_database, config.schema_table, input);
  if (st.code() == ErrorCode::kGlueAlreadyExists) return Status::OK();
  return st;
}

Status StreamService::FlushDue() {
  std::vector<std::shared_ptr<DeliveryStream>> all;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [n, s] : streams_) all.push_back(s);
  }
  std::vector<FlushJob> jobs;
  for (auto& s : all) {
    for (auto& j : CollectJobs(s, false)) jobs.push_back(std::move(j));
  }
  Status st = RunAndWait(std::move(jobs));
  for (auto& s : all) UpdateFreshness(*s);
  return st;
}

Status StreamService::FlushAll() {
  std::vector<std::shared_ptr<DeliveryStream>> all;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [n, s] : streams_) all.push_back(s);
  }
  Status first;
  for (auto& s : all) {
    Status st = FlushStream(s, true);
    if (!st.ok() && first.ok()) first = st;
    UpdateFreshness(*s);
  }
  return first;
}

void StreamService::UpdateFreshness(DeliveryStream& s) {
  std::lock_guard<std::mutex> l(s.mu);
  int64_t oldest = 0;
  for (const auto& [k, p] : s.buffers) {
    for (const auto* v : {&p.redo, &p.records}) {
      if (!v->empty() && (!oldest || v->front().rec.arrival_micros < oldest)) {
        oldest = v->front().rec.arrival_micros;
      }
    }
  }
  s.freshness->Set(oldest ? double(options_.clock->NowMicros() - oldest) / 1e6 : 0.0);
}

void StreamService::Wake() {
  {
    std::lock_guard<std::mutex> l(flusher_mu_);
    wake_ = true;
  }
  flusher_cv_.notify_one();
}

void StreamService::FlusherLoop() {
  // Polls for interval expiry every 100 ms (cheap: one pass over the partition maps) and is
  // woken at once when a buffer fills or a zero-interval stream receives records. Due
  // partitions go to the flush pool without waiting; a partition with a job in flight is
  // skipped until it finishes. A failing delivery is retried (as an exact repeat) on a later
  // pass, the partition backing off up to 5 s (PartitionBuffer::retry_after).
  // A zero-interval partition paced by zero_interval_gap_ms is due at `paced_until`: the wait
  // ends then rather than at the next 100 ms poll.
  const int64_t kPoll = 100000000;
  int64_t paced_until = INT64_MAX;
  for (;;) {
    {
      int64_t wait = kPoll;
      if (paced_until != INT64_MAX) {
        wait = std::clamp<int64_t>(paced_until - options_.clock->MonotonicNanos(), 1000000, kPoll);
      }
      std::unique_lock<std::mutex> l(flusher_mu_);
      flusher_cv_.wait_for(l, std::chrono::nanoseconds(wait), [&] { return stop_ || wake_; });
      if (stop_) return;
      wake_ = false;
    }
    std::vector<std::shared_ptr<DeliveryStream>> all;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (auto& [n, s] : streams_) all.push_back(s);
    }
    paced_until = INT64_MAX;
    for (auto& s : all) {
      Dispatch(CollectJobs(s, false, &paced_until));
      UpdateFreshness(*s);
      ScheduleCompactions(s);  // merges that found no free slot, inputs past their grace
    }
  }
}

}  // namespace tarn::streams
