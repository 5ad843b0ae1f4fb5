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

#include <cstdio>
#include <filesystem>

#include "catalog/store.h"
#include "core/log.h"
#include "core/strings.h"
#include "storage/object_store.h"
#include "streams/convert.h"
#include "streams/service.h"
#include "streams/stream.h"

namespace tarn::streams {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Streams a local file into the object store.
class FileSource final : public storage::ByteSource {
 public:
  explicit FileSource(FILE* f) : f_(f) {}
  ~FileSource() override {
    if (f_) std::fclose(f_);
  }
  Result<size_t> Read(char* buf, size_t n) override {
    size_t got = std::fread(buf, 1, n, f_);
    if (got == 0 && std::ferror(f_)) return Error(ErrorCode::kIoError, "reading a Parquet file");
    return got;
  }

 private:
  FILE* f_;
};

std::string SeqText(uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%020llu", static_cast<unsigned long long>(seq));
  return buf;
}

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

struct StreamService::Flush {
  std::mutex writer_mu;
  std::unique_ptr<ParquetWriter> writer;  // guarded by writer_mu
  std::atomic<uint64_t> tmp_counter{0};
};

StreamService::~StreamService() {
  {
    std::lock_guard<std::mutex> l(flusher_mu_);
    stop_ = true;
  }
  flusher_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  std::lock_guard<std::mutex> l(mu_);
  streams_.clear();  // closes each WAL (pending appends are written and synced first)
}

Status StreamService::InitFlush() {
  flush_ = std::make_shared<Flush>();
  return Status::OK();
}

namespace {

struct Job {
  std::string key;
  std::vector<BufferedRecord> records;
};

}  // namespace

Status StreamService::FlushStream(DeliveryStream& s, bool all) {
  std::lock_guard<std::mutex> fl(s.flush_mu);
  std::vector<Job> jobs;
  std::shared_ptr<const DestinationConfig> config;
  Wal* wal = nullptr;
  bool new_intent = false;
  std::string state;
  uint64_t low = 0;
  {
    std::lock_guard<std::mutex> l(s.mu);
    if (s.deleted || !s.wal) return Status::OK();
    wal = s.wal.get();
    config = s.config;
    int64_t now = options_.clock->MonotonicNanos();
    int64_t interval = int64_t(config->interval_seconds) * 1000000000LL;
    for (auto& [key, p] : s.buffers) {
      if (!p.redo.empty()) {  // an exact repeat; its intent is already recorded
        jobs.push_back({key, std::move(p.redo)});
        p.redo.clear();
        continue;
      }
      if (p.records.empty()) continue;
      if (!all && double(p.bytes) * s.output_ratio < double(config->size_bytes) &&
          now - p.first_mono < interval) {
        continue;
      }
      Job j{key, std::move(p.records)};
      p.records.clear();
      p.bytes = 0;
      PartitionMark& m = s.marks[key];
      m.inflight_first = j.records.front().rec.seq;
      m.inflight_last = j.records.back().rec.seq;
      new_intent = true;
      jobs.push_back(std::move(j));
    }
    if (jobs.empty()) return Status::OK();
    low = s.LowWater();
    state = s.SerializeMarks(low);
  }
  if (new_intent) {
    Status st = wal->Checkpoint(low, state);
    if (!st.ok()) {
      // Nothing was written: put the records back as exact repeats of the recorded intents.
      std::lock_guard<std::mutex> l(s.mu);
      for (auto& j : jobs) s.buffers[j.key].redo = std::move(j.records);
      s.delivery_errors->Inc();
      return st.WithContext("recording a flush intent");
    }
  }
  Status first_error;
  for (auto& j : jobs) {
    uint64_t out_bytes = 0, in_bytes = 0;
    for (const auto& b : j.records) in_bytes += b.rec.data.size();
    Status st = WriteJob(s, *config, j.key, j.records, &out_bytes);
    std::lock_guard<std::mutex> l(s.mu);
    if (st.ok()) {
      if (j.key.compare(0, 2, "D:") == 0 && in_bytes > 0 && out_bytes > 0) {
        s.output_ratio = 0.5 * s.output_ratio + 0.5 * (double(out_bytes) / double(in_bytes));
      }
      PartitionMark& m = s.marks[j.key];
      m.delivered_last = j.records.back().rec.seq;
      m.inflight_first = m.inflight_last = 0;
    } else {
      TLOG_WARN("streams", "{}: delivering {} records to {} failed (will retry): {}", s.name,
                j.records.size(), j.key.substr(2), st.ToString());
      s.delivery_errors->Inc();
      s.buffers[j.key].redo = std::move(j.records);
      if (first_error.ok()) first_error = st;
    }
  }
  {
    std::lock_guard<std::mutex> l(s.mu);
    for (auto it = s.buffers.begin(); it != s.buffers.end();) {
      if (it->second.records.empty() && it->second.redo.empty()) {
        it = s.buffers.erase(it);
      } else {
        ++it;
      }
    }
    low = s.LowWater();
    state = s.SerializeMarks(low);
  }
  Status st = wal->Checkpoint(low, state);
  if (!st.ok() && first_error.ok()) first_error = st.WithContext("checkpointing the WAL");
  s.wal_bytes->Set(double(wal->disk_bytes()));
  return first_error;
}

Status StreamService::WriteJob(DeliveryStream& s, const DestinationConfig& config,
                               const std::string& key, const std::vector<BufferedRecord>& recs,
                               uint64_t* output_bytes) {
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
    for (const auto& b : recs) failed.push_back({&b.rec, b.error_code, b.error_message});
    RETURN_IF_ERROR(write_errors(failed, type, key.substr(colon + 1), ""));
    return Status::OK();
  }
  std::string partition = FillRandomString(key.substr(2), first);
  std::vector<const WalRecord*> records;
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
  ASSIGN_OR_RETURN(json table, catalog_->GetTable(config.schema_database, config.schema_table));
  ASSIGN_OR_RETURN(std::vector<ColumnSpec> columns, SchemaFromGlueTable(table, config));
  std::string tmp = options_.wal_root + "/.tmp/" + s.name + "-" + SeqText(first) + "-" +
                    std::to_string(flush_->tmp_counter++) + ".parquet";
  std::vector<FailedRecord> failed;
  size_t rows = 0;
  {
    std::lock_guard<std::mutex> l(flush_->writer_mu);
    if (!flush_->writer) {
      ASSIGN_OR_RETURN(flush_->writer, ParquetWriter::Create());
    }
    auto w = flush_->writer->Write(columns, records, config.parquet_compression, tmp, &failed);
    if (!w.ok()) {
      std::error_code ec;
      fs::remove(tmp, ec);
      return w.status();
    }
    rows = *w;
  }
  Status st;
  if (rows > 0) {
    FILE* f = std::fopen(tmp.c_str(), "rb");
    if (!f) return Error(ErrorCode::kIoError, "opening " + tmp);
    FileSource src(f);
    storage::PutOptions po;
    po.attrs.content_type = "application/vnd.apache.parquet";
    std::string ext = config.file_extension.empty() ? ".parquet" : config.file_extension;
    auto info = store_->PutObject(config.bucket, partition + name + ext, src, po);
    std::error_code ec;
    fs::remove(tmp, ec);
    if (!info.ok()) return info.status();
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
  Status first;
  for (auto& s : all) {
    Status st = FlushStream(*s, false);
    if (!st.ok() && first.ok()) first = st;
    UpdateFreshness(*s);
  }
  return first;
}

Status StreamService::FlushAll() {
  std::vector<std::shared_ptr<DeliveryStream>> all;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [n, s] : streams_) all.push_back(s);
  }
  Status first;
  for (auto& s : all) {
    Status st = FlushStream(*s, true);
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
  // woken at once when a buffer fills or a zero-interval stream receives records. A failing
  // delivery is retried on the next pass, backing off up to 5 s.
  int64_t backoff_ms = 100;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(flusher_mu_);
      flusher_cv_.wait_for(l, std::chrono::milliseconds(backoff_ms), [&] { return stop_ || wake_; });
      if (stop_) return;
      wake_ = false;
    }
    Status st = FlushDue();
    backoff_ms = st.ok() ? 100 : std::min<int64_t>(backoff_ms * 2, 5000);
  }
}

}  // namespace tarn::streams
