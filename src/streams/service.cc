#include "streams/service.h"

#include <algorithm>
#include <bit>
#include <filesystem>
#include <tuple>

#include "catalog/store.h"
#include "core/data_dir.h"
#include "core/log.h"
#include "core/strings.h"
#include "storage/object_store.h"
#include "streams/convert.h"
#include "streams/stream.h"

namespace tarn::streams {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr size_t kMaxRecordBytes = 1000 * 1024;  // Firehose: 1,000 KiB per record
constexpr const char* kDestinationId = "destinationId-000000000001";
constexpr size_t kMaxTags = 50;

Status Invalid(const std::string& msg) { return Error(ErrorCode::kFirehoseInvalidArgument, msg); }
Status NotFound(const std::string& name) {
  return Error(ErrorCode::kFirehoseResourceNotFound,
               "Firehose " + name + " under account not found.");
}

Status ValidateStreamName(const std::string& name) {
  if (name.empty() || name.size() > 64) {
    return Invalid("DeliveryStreamName must be 1 to 64 characters");
  }
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) {
      return Invalid("DeliveryStreamName may hold only letters, digits, '_', '.' and '-'");
    }
  }
  // The name is a directory under <data>/wal/: ".", ".." and ".tmp" must never be one.
  if (name[0] == '.') return Invalid("DeliveryStreamName must not start with '.'");
  return Status::OK();
}

Status ValidateTags(const json& tags) {
  if (!tags.is_array()) return Invalid("Tags must be a list");
  if (tags.size() > kMaxTags) return Invalid("at most 50 tags per delivery stream");
  for (const json& t : tags) {
    if (!t.is_object() || !t.contains("Key") || !t["Key"].is_string() ||
        t["Key"].get<std::string>().empty() || t["Key"].get<std::string>().size() > 128) {
      return Invalid("each tag needs a Key of 1 to 128 characters");
    }
    if (t.contains("Value") && (!t["Value"].is_string() || t["Value"].get<std::string>().size() > 256)) {
      return Invalid("a tag Value holds at most 256 characters");
    }
  }
  return Status::OK();
}

double NowSeconds(Clock* c) { return double(c->NowMicros()) / 1e6; }

// The opt-in to schema inference: tag tarn:schema-inference with value "on" (or "true").
constexpr const char* kInferTag = "tarn:schema-inference";
bool InfersSchema(const json& tags) {
  if (!tags.is_array()) return false;
  for (const json& t : tags) {
    if (t.is_object() && t.value("Key", "") == kInferTag) {
      std::string v = ToLower(t.value("Value", ""));
      return v == "on" || v == "true";
    }
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// DeliveryStream

Status DeliveryStream::ExtractKeys(const WalRecord& r) {
  if (!jq) return Status::OK();
  // Records appended by the rules engine keep spare capacity for simdjson's padding: parsed
  // where they are, without a copy.
  return jq->ExtractInto(r.data, r.data.capacity() - r.data.size(), &query_keys);
}

std::string DeliveryStream::PartitionOf(const WalRecord& r, Status st, std::string* error_code,
                                        std::string* error_message) {
  static const std::map<std::string, std::string> kNoKeys;
  if (st.ok()) {
    // Without query keys the partition only changes with the arrival second: reuse it.
    int64_t sec = r.arrival_micros / 1000000;
    if (!jq && sec == cached_second && cached_config == config.get()) return cached_partition;
    auto p = config->prefix.Evaluate(r.arrival_micros, jq ? query_keys : kNoKeys);
    if (p.ok()) {
      if (!jq) {
        cached_second = sec;
        cached_config = config.get();
        cached_partition = "D:" + *p;
        return cached_partition;
      }
      return "D:" + *p;
    }
    st = p.status();
  }
  *error_code = "DynamicPartitioning.MetadataExtractionFailed";
  *error_message = st.message();
  auto e = config->error_prefix.Evaluate(r.arrival_micros, {}, "processing-failed");
  return "E:processing-failed:" + (e.ok() ? *e : std::string("errors/"));
}

std::string DeliveryStream::PartitionFor(const WalRecord& r, Status extracted, BufferedRecord* b) {
  std::string code, message;
  std::string key = PartitionOf(r, std::move(extracted), &code, &message);
  if (!code.empty()) {
    b->error = std::make_unique<RecordError>(RecordError{std::move(code), std::move(message)});
    if (failed_processing) failed_processing->Inc();
  }
  return key;
}

void DeliveryStream::Route(WalRecord&& r, int64_t now_mono, bool replay) {
  BufferedRecord b;
  std::string key = PartitionFor(r, ExtractKeys(r), &b);
  max_seen = std::max(max_seen, r.seq);
  if (replay) {
    auto m = marks.find(key);
    if (m != marks.end()) {
      if (r.seq <= m->second.delivered_last) return;  // already in an object
      if (m->second.inflight_last && r.seq >= m->second.inflight_first &&
          r.seq <= m->second.inflight_last) {
        b.rec = std::move(r);
        buffers[key].redo.push_back(std::move(b));
        return;
      }
    }
  }
  PartitionBuffer& p = buffers[key];
  b.rec = std::move(r);
  Buffer(p, std::move(b), now_mono);
}

void DeliveryStream::Buffer(PartitionBuffer& p, BufferedRecord&& b, int64_t now_mono) {
  if (p.records.empty()) {
    p.first_mono = now_mono;
    if (p.fill) p.last_fill = p.fill;  // the previous fill went to a flush
    p.fill = 0;
    // Twice the last fill: capacity never touched costs address space, not memory (a page is
    // faulted in when first written), while growing mid-fill moves every record so far.
    // Rounded up to a power of two, so that the recycled vectors settle at one capacity and
    // are reused as they are instead of being replaced by a fresh (faulting) one whenever a fill
    // is a little larger than the one before.
    const size_t want = std::bit_ceil(2 * p.last_fill);
    if (p.records.capacity() < want) {
      // The smallest spare that holds the fill: a larger one stays for a busier partition.
      auto fit = std::lower_bound(spare_records.begin(), spare_records.end(), want,
                                  [](const std::vector<BufferedRecord>& a, size_t c) {
                                    return a.capacity() < c;
                                  });
      if (fit != spare_records.end()) {
        p.records.swap(*fit);
        spare_records.erase(fit);
      }
    }
    p.records.reserve(want);
  }
  ++p.fill;
  p.bytes += b.rec.data.size();
  p.records.push_back(std::move(b));
}

void DeliveryStream::RecycleRecords(std::vector<BufferedRecord>&& records) {
  std::vector<BufferedRecord> v = std::move(records);
  const size_t filled = v.size();
  v.clear();  // the records' own memory is freed here, outside mu
  // Kept whatever its size, as long as the fill it held used a fair share of it: at a few
  // hundred thousand records/s a partition's fills reach 300–650 k records (the flush of the
  // previous fill takes that long), so its vectors hold 2^20 records (88 MiB of address space,
  // of which the fill's 30–60 MiB were written); with the earlier cap of 2^19 those were freed
  // after every flush. A vector far larger than its fill (a burst that ended) is freed, so the
  // memory held follows the load down within a fill or two.
  constexpr size_t kAlwaysKeep = 1u << 16;
  constexpr size_t kMaxSpares = 3;
  if (v.capacity() == 0 || v.capacity() > std::max(kAlwaysKeep, 16 * filled)) return;
  std::lock_guard<std::mutex> l(mu);
  // Kept sorted by capacity (Buffer takes the smallest that fits).
  auto at = std::lower_bound(spare_records.begin(), spare_records.end(), v.capacity(),
                             [](const std::vector<BufferedRecord>& a, size_t c) {
                               return a.capacity() < c;
                             });
  spare_records.insert(at, std::move(v));
  if (spare_records.size() > kMaxSpares) spare_records.erase(spare_records.begin());
}

void DeliveryStream::RouteLive(std::vector<WalRecord>&& records, int64_t now_mono) {
  // The previous record's partition, while the next record's cannot differ: a partition depends
  // only on the arrival second and the query keys, so a record with the previous one's goes to
  // the same buffer without evaluating the prefix and looking the partition up (with a query,
  // the keys are still extracted from every record). `p` stays valid while mu is held.
  PartitionBuffer* run = nullptr;
  int64_t run_second = -1;
  for (WalRecord& r : records) {
    int64_t second = r.arrival_micros / 1000000;
    Status extracted = ExtractKeys(r);
    if (run && second == run_second && (!jq || (extracted.ok() && query_keys == run_keys))) {
      max_seen = std::max(max_seen, r.seq);
      BufferedRecord b;
      b.rec = std::move(r);
      Buffer(*run, std::move(b), now_mono);
      continue;
    }
    BufferedRecord b;
    std::string key = PartitionFor(r, std::move(extracted), &b);
    max_seen = std::max(max_seen, r.seq);
    PartitionBuffer& p = buffers[key];
    run = !b.error ? &p : nullptr;
    if (run && jq) run_keys = query_keys;  // assigned in place: nodes and strings are reused
    run_second = second;
    b.rec = std::move(r);
    Buffer(p, std::move(b), now_mono);
  }
}

uint64_t DeliveryStream::LowWater() const {
  uint64_t low = max_seen + 1;
  for (const auto& [k, p] : buffers) {
    if (!p.redo.empty()) low = std::min(low, p.redo.front().rec.seq);
    if (!p.records.empty()) low = std::min(low, p.records.front().rec.seq);
  }
  for (const auto& [k, m] : marks) {
    if (m.inflight_last) low = std::min(low, m.inflight_first);
  }
  return low - 1;
}

std::string DeliveryStream::SerializeMarks(uint64_t low_water) {
  json j = json::object();
  for (auto it = marks.begin(); it != marks.end();) {
    const PartitionMark& m = it->second;
    if (!m.inflight_last && m.delivered_last <= low_water) {
      it = marks.erase(it);  // every record of it is below the low-water mark anyway
      continue;
    }
    j[it->first] = {m.delivered_last, m.inflight_first, m.inflight_last};
    ++it;
  }
  return j.dump();
}

void DeliveryStream::LoadMarks(const std::string& state) {
  if (state.empty()) return;
  json j = json::parse(state, nullptr, false);
  if (!j.is_object()) {
    TLOG_WARN("streams", "{}: unreadable delivery marks in the WAL checkpoint; records after the "
              "checkpoint will be delivered again", name);
    return;
  }
  for (auto& [k, v] : j.items()) {
    if (!v.is_array() || v.size() != 3) continue;
    marks[k] = {v[0].get<uint64_t>(), v[1].get<uint64_t>(), v[2].get<uint64_t>()};
  }
}

// ---------------------------------------------------------------------------------------------
// StreamService: control plane

StreamService::StreamService(MetaStore* meta, storage::ObjectStore* store,
                             catalog::CatalogStore* catalog, StreamServiceOptions options)
    : meta_(meta), store_(store), catalog_(catalog), options_(std::move(options)) {}

std::string StreamService::Arn(const std::string& name) const {
  return "arn:aws:firehose:" + options_.region + ":" + options_.account_id + ":deliverystream/" + name;
}

Result<std::unique_ptr<StreamService>> StreamService::Open(MetaStore* meta,
                                                           storage::ObjectStore* store,
                                                           catalog::CatalogStore* catalog,
                                                           StreamServiceOptions options) {
  RETURN_IF_ERROR(meta->Migrate("streams", {
      {1, "CREATE TABLE IF NOT EXISTS firehose_streams ("
          " name TEXT PRIMARY KEY, type TEXT NOT NULL, version INTEGER NOT NULL,"
          " created REAL NOT NULL, updated REAL NOT NULL,"
          " destination TEXT NOT NULL,"   // ExtendedS3DestinationConfiguration as given (merged)
          " tags TEXT NOT NULL DEFAULT '[]');"},
  }));
  std::unique_ptr<StreamService> s(new StreamService(meta, store, catalog, std::move(options)));
  std::error_code ec;
  // Parquet files a crash left half-written; their records are still in the WALs.
  fs::remove_all(s->options_.wal_root + "/.tmp", ec);
  fs::create_directories(s->options_.wal_root + "/.tmp", ec);
  if (ec) return Error(ErrorCode::kIoError, "creating " + s->options_.wal_root + ": " + ec.message());
  RETURN_IF_ERROR(s->InitFlush());
  RETURN_IF_ERROR(s->LoadStreams());
  if (s->options_.background_flush) s->flusher_ = std::thread([p = s.get()] { p->FlusherLoop(); });
  return s;
}

Status StreamService::LoadStreams() {
  ASSIGN_OR_RETURN(Statement q,
                   meta_->Prepare("SELECT name, destination, tags FROM firehose_streams"));
  std::vector<std::tuple<std::string, std::string, bool>> rows;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    rows.emplace_back(q.ColumnText(0), q.ColumnText(1),
                      InfersSchema(json::parse(q.ColumnText(2), nullptr, false)));
  }
  for (const auto& [name, dest, infer] : rows) {
    auto s = OpenStream(name, dest, infer);
    if (!s.ok()) {
      // One broken stream must not keep the lake from starting; its WAL stays on disk.
      TLOG_ERROR("streams", "delivery stream {} not opened: {}", name, s.status().ToString());
      continue;
    }
    std::lock_guard<std::mutex> l(mu_);
    streams_[name] = *s;
  }
  return Status::OK();
}

Result<std::shared_ptr<DeliveryStream>> StreamService::OpenStream(const std::string& name,
                                                                  const std::string& destination,
                                                                  bool infer_schema) {
  json dest = json::parse(destination, nullptr, false);
  ASSIGN_OR_RETURN(auto config, ParseDestination(dest, name));
  auto s = std::make_shared<DeliveryStream>();
  s->name = name;
  s->infer_schema = infer_schema;
  s->arn = Arn(name);
  s->config = config;
  // A first guess of the output size per input byte until deliveries measure it.
  s->output_ratio = config->convert ? 0.25 : config->compression == RawCompression::kGzip ? 0.3 : 1.0;
  if (!config->jq_query.empty()) {
    ASSIGN_OR_RETURN(std::unique_ptr<JqQuery> q, JqQuery::Compile(config->jq_query));
    s->jq = std::move(q);
  }
  ops::Labels labels{{"stream", name}};
  auto& m = ops::Metrics();
  s->incoming_records = &m.Counter("tarn_firehose_incoming_records_total",
                                   "Records accepted (durable in the WAL)", labels);
  s->incoming_bytes = &m.Counter("tarn_firehose_incoming_bytes_total",
                                 "Record bytes accepted (durable in the WAL)", labels);
  s->delivered_records = &m.Counter("tarn_firehose_delivered_records_total",
                                    "Records delivered into objects", labels);
  s->delivered_bytes = &m.Counter("tarn_firehose_delivered_bytes_total",
                                  "Bytes of objects written (after encoding and compression)",
                                  labels);
  s->failed_conversion = &m.Counter("tarn_firehose_failed_conversion_records_total",
                                    "Records that failed JSON to Parquet conversion (written to "
                                    "the error prefix)", labels);
  s->failed_processing = &m.Counter("tarn_firehose_failed_processing_records_total",
                                    "Records whose partition keys could not be extracted "
                                    "(written to the error prefix)", labels);
  s->delivery_errors = &m.Counter("tarn_firehose_delivery_errors_total",
                                  "Flush attempts that failed and will be retried", labels);
  s->freshness = &m.Gauge("tarn_firehose_data_freshness_seconds",
                          "Age of the oldest record not yet delivered", labels);
  s->wal_bytes = &m.Gauge("tarn_firehose_wal_bytes", "Bytes of write-ahead log on disk", labels);
  s->compactions = &m.Counter("tarn_firehose_compactions_total",
                              "Merges of small Parquet objects into one (compaction)", labels);
  s->compacted_objects = &m.Counter("tarn_firehose_compacted_objects_total",
                                    "Parquet objects merged away by compaction", labels);
  s->compacted_bytes = &m.Counter("tarn_firehose_compaction_bytes_total",
                                  "Bytes of merged Parquet objects written by compaction", labels);
  s->duplicates = &m.Counter("tarn_firehose_duplicate_records_total",
                             "Device resends recognised by their origin and not appended again",
                             labels);

  WalOptions wal_options = options_.wal;
  wal_options.sync_seconds = &m.Histogram("tarn_firehose_wal_sync_seconds",
                                          "Duration of the write-ahead log's fdatasync calls", labels);
  wal_options.commit_seconds = &m.Histogram(
      "tarn_firehose_wal_commit_seconds",
      "From a producer's append to its acknowledgement (write + fdatasync + waiting)", labels);

  std::vector<WalRecord> replayed;
  DeliveryStream* raw = s.get();
  Clock* clock = options_.clock;
  // The origin index: the snapshot of origins whose segments were deleted, then every record
  // still in the log (WalHooks::scan), oldest first.
  s->origins = std::make_unique<OriginIndex>(options_.dedup_window_seconds * 1000000,
                                             options_.dedup_max_entries);
  const std::string dir = options_.wal_root + "/" + name;
  const std::string origins_path = dir + "/origins";
  if (fs::exists(origins_path)) {
    auto bytes = ReadFile(origins_path);
    if (!bytes.ok() || !s->origins->Load(*bytes, clock->NowMicros())) {
      // Written atomically, so this is outside damage. Without it a resend of a record whose
      // segment is gone may land twice; nothing is lost.
      TLOG_WARN("streams", "{}: unreadable origin snapshot {} ignored", name, origins_path);
    }
  }
  WalHooks hooks;
  hooks.scan = [raw](const WalRecord& r) { raw->origins->AddMeta(r.meta, r.seq, r.arrival_micros); };
  hooks.before_delete = [raw, clock, origins_path](uint64_t last_seq) -> Status {
    std::string snapshot;
    {
      std::lock_guard<std::mutex> l(raw->mu);
      snapshot = raw->origins->Snapshot(last_seq, clock->NowMicros());
    }
    return WriteFileAtomic(origins_path, snapshot);
  };
  ASSIGN_OR_RETURN(s->wal, Wal::Open(
      dir, wal_options,
      [&](WalRecord&& r) { replayed.push_back(std::move(r)); },
      [this, raw, clock](std::vector<WalRecord>&& records) {
        bool due = false;
        {
          std::lock_guard<std::mutex> l(raw->mu);
          int64_t now = clock->MonotonicNanos();
          uint64_t bytes = 0;
          for (const auto& r : records) {
            bytes += r.data.size();
            // Indexed before the appender is acknowledged: a resend that arrives after the
            // acknowledgement always finds it.
            if (!r.meta.empty()) raw->origins->AddMeta(r.meta, r.seq, r.arrival_micros);
          }
          raw->incoming_records->Inc(records.size());
          raw->incoming_bytes->Inc(bytes);
          raw->RouteLive(std::move(records), now);
          due = raw->config->interval_seconds == 0;
          if (!due) {
            for (const auto& [k, p] : raw->buffers) {
              due |= double(p.bytes) * raw->output_ratio >= double(raw->config->size_bytes);
            }
          }
        }
        if (due) Wake();
      },
      std::move(hooks)));
  {
    std::lock_guard<std::mutex> l(s->mu);
    s->LoadMarks(s->wal->checkpoint_state());
    int64_t now = clock->MonotonicNanos();
    size_t redo = 0;
    for (auto& r : replayed) s->Route(std::move(r), now, true);
    for (const auto& [k, p] : s->buffers) redo += p.redo.size();
    s->max_seen = std::max(s->max_seen, s->wal->next_seq() - 1);
    if (!replayed.empty()) {
      TLOG_INFO("streams", "{}: replayed {} records from the WAL ({} in an interrupted flush)",
                name, replayed.size(), redo);
    }
  }
  // Interrupted flushes are repeated now, exactly (same records, same object keys).
  Status st = FlushStream(s, false);
  if (!st.ok()) TLOG_WARN("streams", "{}: recovery flush: {}", name, st.ToString());
  // Objects an interrupted compaction merged but did not delete (readers skip them already).
  if (store_) {
    st = RecoverCompactions(*s);
    if (!st.ok()) TLOG_WARN("streams", "{}: compaction recovery: {}", name, st.ToString());
  }
  return s;
}

std::shared_ptr<DeliveryStream> StreamService::Find(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = streams_.find(name);
  return it == streams_.end() ? nullptr : it->second;
}

bool StreamService::Exists(const std::string& name) { return Find(name) != nullptr; }

Status StreamService::ValidateForLake(const json& ext, const std::string& name,
                                      bool infer_schema) {
  ASSIGN_OR_RETURN(auto config, ParseDestination(ext, name));
  if (store_) {
    auto b = store_->HeadBucket(config->bucket);
    if (!b.ok()) {
      return Invalid("the destination bucket " + config->bucket + " does not exist (" +
                     b.status().message() + ")");
    }
  }
  if (!config->jq_query.empty()) {
    auto q = JqQuery::Compile(config->jq_query);
    if (!q.ok()) return Status(q.status());
  }
  if (config->convert) {
    if (!catalog_) return Invalid("format conversion needs the Glue Data Catalog, which is off");
    auto t = catalog_->GetTable(config->schema_database, config->schema_table);
    if (!t.ok() && infer_schema && t.status().code() == ErrorCode::kEntityNotFound) {
      return Status::OK();  // created from the first records converted
    }
    if (!t.ok()) {
      return Invalid("SchemaConfiguration names table " + config->schema_database + "." +
                     config->schema_table + ", which is not in the catalog (" +
                     t.status().message() + "); create it, or tag the stream " + kInferTag +
                     "=on to have it inferred from the first records");
    }
    auto schema = SchemaFromGlueTable(*t, *config);
    if (!schema.ok()) return Status(schema.status());
  }
  return Status::OK();
}

Result<std::string> StreamService::Create(const std::string& name, const std::string& type,
                                          const json& ext, const json& tags) {
  RETURN_IF_ERROR(ValidateStreamName(name));
  if (!type.empty() && type != "DirectPut") {
    return Invalid("DeliveryStreamType " + type + " is not supported: Tarn streams are DirectPut "
                   "(PutRecord, PutRecordBatch, MQTT rules)");
  }
  if (!tags.is_null()) RETURN_IF_ERROR(ValidateTags(tags));
  RETURN_IF_ERROR(ValidateForLake(ext, name, InfersSchema(tags)));
  std::lock_guard<std::mutex> create_lock(create_mu_);
  if (Exists(name)) {
    return Error(ErrorCode::kFirehoseResourceInUse, "Firehose " + name + " under account " +
                                                        options_.account_id + " already exists.");
  }
  // A WAL left by a stream of the same name that was deleted while the lake was down.
  std::error_code ec;
  fs::remove_all(options_.wal_root + "/" + name, ec);
  double now = NowSeconds(options_.clock);
  ASSIGN_OR_RETURN(Statement ins, meta_->Prepare(
      "INSERT INTO firehose_streams(name, type, version, created, updated, destination, tags) "
      "VALUES (?1, 'DirectPut', 1, ?2, ?2, ?3, ?4)"));
  ins.Bind(1, name).Bind(2, now).Bind(3, ext.dump()).Bind(4, tags.is_null() ? "[]" : tags.dump());
  RETURN_IF_ERROR(ins.Run());
  auto s = OpenStream(name, ext.dump(), InfersSchema(tags));
  if (!s.ok()) {
    meta_->Prepare("DELETE FROM firehose_streams WHERE name = ?1")->Bind(1, name).Run().IgnoreError();
    return s.status();
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    streams_[name] = *s;
  }
  TLOG_INFO("streams", "created delivery stream {} → s3://{}/{}", name, (*s)->config->bucket,
            (*s)->config->prefix.text());
  return Arn(name);
}

Result<json> StreamService::Describe(const std::string& name) {
  auto s = Find(name);
  if (!s) return NotFound(name);
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT version, created, updated FROM firehose_streams WHERE name = ?1"));
  q.Bind(1, name);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return NotFound(name);
  std::shared_ptr<const DestinationConfig> config;
  {
    std::lock_guard<std::mutex> l(s->mu);
    config = s->config;
  }
  json ext = config->Description();
  json s3 = {{"RoleARN", config->role_arn},
             {"BucketARN", config->bucket_arn},
             {"Prefix", config->prefix.text()},
             {"ErrorOutputPrefix", config->error_prefix.text()},
             {"BufferingHints", ext["BufferingHints"]},
             {"CompressionFormat", ext["CompressionFormat"]},
             {"EncryptionConfiguration", ext["EncryptionConfiguration"]},
             {"CloudWatchLoggingOptions", ext["CloudWatchLoggingOptions"]}};
  return json{
      {"DeliveryStreamName", name},
      {"DeliveryStreamARN", Arn(name)},
      {"DeliveryStreamStatus", "ACTIVE"},
      {"DeliveryStreamEncryptionConfiguration", {{"Status", "DISABLED"}}},
      {"DeliveryStreamType", "DirectPut"},
      {"VersionId", std::to_string(q.ColumnInt(0))},
      {"CreateTimestamp", q.ColumnDouble(1)},
      {"LastUpdateTimestamp", q.ColumnDouble(2)},
      {"Destinations", json::array({{{"DestinationId", kDestinationId},
                                     {"ExtendedS3DestinationDescription", ext},
                                     {"S3DestinationDescription", s3}}})},
      {"HasMoreDestinations", false},
  };
}

Result<std::vector<std::string>> StreamService::List() {
  std::vector<std::string> out;
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [n, s] : streams_) out.push_back(n);
  return out;
}

Status StreamService::Delete(const std::string& name) {
  std::shared_ptr<DeliveryStream> s;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = streams_.find(name);
    if (it == streams_.end()) return NotFound(name);
    s = it->second;
    streams_.erase(it);
  }
  // Deliver what is buffered (best effort, as AWS does before the stream goes away).
  Status st = FlushStream(s, true);
  if (!st.ok()) TLOG_WARN("streams", "{}: final flush before delete: {}", name, st.ToString());
  std::unique_ptr<Wal> wal;
  {
    std::unique_lock<std::mutex> l(s->mu);
    PauseFlushes(*s, l);  // for good: the stream is gone
    s->deleted = true;
    wal = std::move(s->wal);
  }
  ASSIGN_OR_RETURN(Statement del, meta_->Prepare("DELETE FROM firehose_streams WHERE name = ?1"));
  del.Bind(1, name);
  RETURN_IF_ERROR(del.Run());
  if (wal) RETURN_IF_ERROR(Wal::Destroy(std::move(wal)));
  TLOG_INFO("streams", "deleted delivery stream {}", name);
  return Status::OK();
}

Status StreamService::UpdateDestination(const std::string& name, const std::string& version_id,
                                        const std::string& destination_id, const json& update) {
  auto s = Find(name);
  if (!s) return NotFound(name);
  if (!destination_id.empty() && destination_id != kDestinationId) {
    return Invalid("DestinationId " + destination_id + " not found (the stream's destination is " +
                   kDestinationId + ")");
  }
  std::lock_guard<std::mutex> create_lock(create_mu_);
  int64_t version = 0;
  std::string destination;
  {
    // Finished before the flush below: the flush pool's threads write to the metadata store
    // (object metadata, catalog partitions), and an open read here would block the UPDATE.
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
        "SELECT version, destination FROM firehose_streams WHERE name = ?1"));
    q.Bind(1, name);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return NotFound(name);
    version = q.ColumnInt(0);
    destination = q.ColumnText(1);
  }
  if (version_id != std::to_string(version)) {
    return Error(ErrorCode::kConcurrentModification,
                 "CurrentDeliveryStreamVersionId " + version_id + " is not the current version " +
                     std::to_string(version));
  }
  json merged = json::parse(destination, nullptr, false);
  merged.merge_patch(update);
  RETURN_IF_ERROR(ValidateForLake(merged, name, s->infer_schema));
  ASSIGN_OR_RETURN(auto config, ParseDestination(merged, name));
  std::shared_ptr<JqQuery> jq;
  if (!config->jq_query.empty()) {
    ASSIGN_OR_RETURN(std::unique_ptr<JqQuery> compiled, JqQuery::Compile(config->jq_query));
    jq = std::move(compiled);
  }
  // Records buffered under the old prefix are delivered under it first: partitions are a
  // function of the configuration, and replay must find the same ones.
  RETURN_IF_ERROR(FlushStream(s, true));
  // No flush may run while the configuration changes; records that arrived since the flush above
  // are routed again under the new configuration, as a replay after a crash would route them.
  std::unique_lock<std::mutex> l(s->mu);
  PauseFlushes(*s, l);
  struct Resume {
    DeliveryStream* s;
    ~Resume() { --s->paused; }  // runs while `l` still holds s->mu
  } resume{s.get()};
  for (const auto& [k, p] : s->buffers) {
    if (!p.redo.empty()) {
      return Error(ErrorCode::kFirehoseServiceUnavailable,
                   "the delivery stream cannot deliver its buffered records right now; retry the "
                   "update when deliveries succeed again");
    }
  }
  ASSIGN_OR_RETURN(Statement up, meta_->Prepare(
      "UPDATE firehose_streams SET version = version + 1, updated = ?2, destination = ?3 "
      "WHERE name = ?1"));
  up.Bind(1, name).Bind(2, NowSeconds(options_.clock)).Bind(3, merged.dump());
  RETURN_IF_ERROR(up.Run());
  s->config = config;
  s->jq = jq;
  s->output_ratio = config->convert ? 0.25 : config->compression == RawCompression::kGzip ? 0.3 : 1.0;
  std::vector<BufferedRecord> pending;
  for (auto& [k, p] : s->buffers) {
    for (auto& b : p.records) pending.push_back(std::move(b));
  }
  s->buffers.clear();
  std::sort(pending.begin(), pending.end(),
            [](const BufferedRecord& a, const BufferedRecord& b) { return a.rec.seq < b.rec.seq; });
  int64_t now = options_.clock->MonotonicNanos();
  for (auto& b : pending) s->Route(std::move(b.rec), now, false);
  return Status::OK();
}

Status StreamService::Tag(const std::string& name, const json& tags) {
  RETURN_IF_ERROR(ValidateTags(tags));
  ASSIGN_OR_RETURN(json current, Tags(name));
  std::map<std::string, std::string> m;
  for (const json& t : current) m[t["Key"].get<std::string>()] = t.value("Value", "");
  for (const json& t : tags) m[t["Key"].get<std::string>()] = t.value("Value", "");
  if (m.size() > kMaxTags) {
    return Error(ErrorCode::kFirehoseLimitExceeded, "a delivery stream holds at most 50 tags");
  }
  json out = json::array();
  for (const auto& [k, v] : m) out.push_back({{"Key", k}, {"Value", v}});
  ASSIGN_OR_RETURN(Statement up, meta_->Prepare("UPDATE firehose_streams SET tags = ?2 WHERE name = ?1"));
  up.Bind(1, name).Bind(2, out.dump());
  RETURN_IF_ERROR(up.Run());
  if (auto s = Find(name)) s->infer_schema = InfersSchema(out);
  return Status::OK();
}

Status StreamService::Untag(const std::string& name, const std::vector<std::string>& keys) {
  ASSIGN_OR_RETURN(json current, Tags(name));
  json out = json::array();
  for (const json& t : current) {
    if (std::find(keys.begin(), keys.end(), t["Key"].get<std::string>()) == keys.end()) {
      out.push_back(t);
    }
  }
  ASSIGN_OR_RETURN(Statement up, meta_->Prepare("UPDATE firehose_streams SET tags = ?2 WHERE name = ?1"));
  up.Bind(1, name).Bind(2, out.dump());
  RETURN_IF_ERROR(up.Run());
  if (auto s = Find(name)) s->infer_schema = InfersSchema(out);
  return Status::OK();
}

Result<json> StreamService::Tags(const std::string& name) {
  if (!Exists(name)) return NotFound(name);
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare("SELECT tags FROM firehose_streams WHERE name = ?1"));
  q.Bind(1, name);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return NotFound(name);
  json tags = json::parse(q.ColumnText(0), nullptr, false);
  if (!tags.is_array()) tags = json::array();
  std::sort(tags.begin(), tags.end(), [](const json& a, const json& b) {
    return a["Key"].get<std::string>() < b["Key"].get<std::string>();
  });
  return tags;
}

// ---------------------------------------------------------------------------------------------
// StreamService: data plane

void StreamService::Put(const std::string& name, std::vector<std::string> records,
                        std::function<void(std::vector<PutResult>)> done) {
  std::vector<PutResult> results(records.size());
  auto s = Find(name);
  if (!s) {
    for (auto& r : results) r.status = NotFound(name);
    done(std::move(results));
    return;
  }
  // Oversized records fail alone; the rest go to the WAL as one batch (one fsync).
  std::vector<WalRecord> batch;
  std::vector<size_t> index;
  batch.reserve(records.size());
  index.reserve(records.size());
  int64_t now = options_.clock->NowMicros();
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i].size() > kMaxRecordBytes) {
      results[i].status = Invalid("Record size " + std::to_string(records[i].size()) +
                                  " bytes exceeds the limit of 1000 KiB");
      continue;
    }
    batch.push_back({0, now, std::move(records[i]), std::string()});
    index.push_back(i);
  }
  if (batch.empty()) {
    done(std::move(results));
    return;
  }
  // s->mu keeps Delete from destroying the WAL under this append; Wal::Append never waits for
  // the writer thread, which takes s->mu to route durable records.
  std::unique_lock<std::mutex> l(s->mu);
  if (s->deleted || !s->wal) {
    l.unlock();
    for (auto& r : results) {
      if (r.status.ok()) r.status = NotFound(name);
    }
    done(std::move(results));
    return;
  }
  s->wal->Append(std::move(batch), [results = std::move(results), index = std::move(index),
                                    done = std::move(done)](const Status& st, uint64_t first) mutable {
    for (size_t j = 0; j < index.size(); ++j) {
      results[index[j]].status = st;
      results[index[j]].seq = st.ok() ? first + j : 0;
    }
    done(std::move(results));
  });
}

void StreamService::Append(const std::string& stream, std::string data,
                           std::function<void(const Status&)> done, const RecordOrigin* origin) {
  if (origin) {
    auto s = Find(stream);
    if (!s) return done(NotFound(stream));
    if (data.size() > kMaxRecordBytes) {
      return done(Invalid("Record size " + std::to_string(data.size()) +
                          " bytes exceeds the limit of 1000 KiB"));
    }
    int64_t now = options_.clock->NowMicros();
    std::vector<WalRecord> one;
    one.push_back({0, now, std::move(data), OriginIndex::EncodeMeta(*origin)});
    std::unique_lock<std::mutex> l(s->mu);
    if (s->deleted || !s->wal) {
      l.unlock();
      return done(NotFound(stream));
    }
    if (origin->dup && s->origins->Contains(*origin, now)) {
      // The device resent a message whose record is durable here: its acknowledgement was lost
      // (a crash, or a dropped connection). Acknowledge without appending it again.
      s->duplicates->Inc();
      l.unlock();
      return done(Status::OK());
    }
    s->wal->Append(std::move(one), [done = std::move(done)](const Status& st, uint64_t) { done(st); });
    return;
  }
  std::vector<std::string> one;
  one.push_back(std::move(data));
  Put(stream, std::move(one), [done = std::move(done)](std::vector<PutResult> r) {
    done(r[0].status);
  });
}

Status StreamService::CheckConversion(const std::string& stream, std::string_view data) {
  auto s = Find(stream);
  if (!s || !catalog_) return Status::OK();
  std::shared_ptr<const std::vector<ColumnSpec>> columns;
  {
    std::lock_guard<std::mutex> l(s->check_mu);
    int64_t now = options_.clock->MonotonicNanos();
    if (s->check_read_mono == 0 || now - s->check_read_mono >= 1000000000) {
      std::shared_ptr<const DestinationConfig> config;
      {
        std::lock_guard<std::mutex> sl(s->mu);
        config = s->config;
      }
      s->check_columns = nullptr;
      if (config && config->convert) {
        // No table yet (schema inference before the first flush) or one Tarn cannot convert
        // to: nothing to check against; the flush reports what it finds.
        auto table = catalog_->GetTable(config->schema_database, config->schema_table);
        if (table.ok()) {
          auto cols = SchemaFromGlueTable(*table, *config);
          if (cols.ok()) {
            s->check_columns = std::make_shared<const std::vector<ColumnSpec>>(std::move(cols).value());
          }
        }
      }
      s->check_read_mono = now;
    }
    columns = s->check_columns;
  }
  if (!columns) return Status::OK();
  std::string code, why;
  if (CheckRecord(*columns, data, &code, &why)) return Status::OK();
  return Invalid(code + ": " + why);
}

}  // namespace tarn::streams
