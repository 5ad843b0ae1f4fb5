// Compaction of small Parquet objects (docs/streams.md "Compaction"). At IntervalInSeconds 0 a
// partition flushes a small object every few tens of milliseconds; readers open every object, so
// without merging a busy partition's queries slow down by the minute. Here the objects of a data
// partition's folder are merged, as the policy in compaction.h picks them, into one object named
// by the union of their sequence ranges.
//
// Order of one merge (what keeps readers exact and the lake clean under kill -9):
//   1. only objects whose records the checkpoint already marks delivered are inputs, so a WAL
//      replay never writes one of them again;
//   2. the folder is recorded in <wal dir>/compactions (atomic replace + fsync);
//   3. DuckDB merges the inputs into a temp file, which is PUT (atomic) under the merged name;
//   4. after the grace period (streams.compaction_grace_seconds) the inputs are deleted, then the
//      folder leaves <wal dir>/compactions.
// From 3 on, a reader that lists the folder keeps only objects no other object covers
// (CoveredObjects), so it sees each row once at every instant. After a crash between 3 and 4,
// start-up lists the folders named in <wal dir>/compactions and deletes what is covered.
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/data_dir.h"
#include "core/log.h"
#include "storage/object_store.h"
#include "streams/compaction.h"
#include "streams/flush_internal.h"
#include "streams/service.h"
#include "streams/stream.h"

namespace tarn::streams {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string FolderId(const std::string& bucket, const std::string& prefix) {
  return bucket + "/" + prefix;
}

std::string CompactionsPath(const std::string& wal_root, const std::string& stream) {
  return wal_root + "/" + stream + "/compactions";
}

// Test hook (tests/streams/test_compaction.py): TARN_TEST_COMPACTION_KILL=after-put kills the
// process with SIGKILL right after a merged object is PUT, before its inputs are deleted.
bool KillAfterPut() {
  static const bool kill = [] {
    const char* v = std::getenv("TARN_TEST_COMPACTION_KILL");
    return v && std::string(v) == "after-put";
  }();
  return kill;
}

}  // namespace

void StreamService::NoteObject(DeliveryStream& s, const std::string& partition,
                               const DestinationConfig& config, FolderObject object) {
  if (options_.compaction_files == 0 || partition.compare(0, 2, "D:") != 0) return;
  size_t slash = object.key.rfind('/');
  std::string prefix = slash == std::string::npos ? "" : object.key.substr(0, slash + 1);
  // A prefix with !{firehose:random-string} puts every flush in a folder of its own: nothing to
  // merge there. The name must also parse back (a custom FileExtension with a '-' would not).
  if (partition.compare(2, std::string::npos, prefix) != 0) return;
  auto name = ParseStreamObjectName(object.key);
  if (!name || name->stream != s.name || name->extension.empty()) return;
  PartitionFolder& f = s.folders[FolderId(config.bucket, prefix)];
  if (f.bucket.empty()) {
    f.partition = partition;
    f.bucket = config.bucket;
    f.prefix = prefix;
  }
  f.extension = name->extension;
  f.parquet_compression = config.parquet_compression;
  f.last_object_mono = options_.clock->MonotonicNanos();
  // A repeated flush (after a failure past the PUT) writes the same key again.
  for (auto it = f.objects.rbegin(); it != f.objects.rend() && it->last >= object.first; ++it) {
    if (it->key == object.key) {
      it->size = object.size;
      f.wanted = true;
      return;
    }
  }
  f.objects.push_back(std::move(object));
  f.wanted = true;
}

void StreamService::ScheduleCompactions(const std::shared_ptr<DeliveryStream>& sp) {
  // Tests without the background flusher call Compact() themselves.
  if (options_.compaction_files == 0 || !options_.background_flush || flush_->stopping) return;
  DeliveryStream& s = *sp;
  std::vector<std::string> folders;
  bool delete_due = false;
  {
    std::lock_guard<std::mutex> l(s.mu);
    if (s.deleted || s.paused || !s.wal) return;
    int64_t now = options_.clock->MonotonicNanos();
    if (!s.deleting) {
      for (const auto& d : s.pending_deletes) delete_due = delete_due || d.due_mono <= now;
      if (delete_due) {
        s.deleting = true;
        ++s.jobs_running;
      }
    }
    // Forget folders of partitions that have gone quiet for 10 minutes (an hour that ended): a
    // partition that receives records again is listed again.
    constexpr int64_t kQuietNanos = 600LL * 1000000000;
    for (auto it = s.folders.begin(); it != s.folders.end();) {
      const PartitionFolder& f = it->second;
      if (!f.wanted && !f.compacting && !s.uncleaned.count(it->first) &&
          now - f.last_object_mono > kQuietNanos) {
        it = s.folders.erase(it);
      } else {
        ++it;
      }
    }
    const int slots = std::max(1, options_.flush_threads / 2);
    for (auto& [id, f] : s.folders) {
      if (!f.wanted || f.compacting) continue;
      int running = flush_->compactions_running.load();
      if (running >= slots || !flush_->compactions_running.compare_exchange_strong(running, running + 1)) {
        break;  // the flusher's next pass (every 100 ms) tries again
      }
      f.compacting = true;
      ++s.jobs_running;
      folders.push_back(id);
    }
  }
  auto submit = [this](std::function<void()> task) {
    if (!flush_->pool->Submit(task)) task();  // shutting down: run it here
  };
  if (delete_due) {
    submit([this, sp] {
      Status st = DeleteMergedInputs(*sp, false);
      if (!st.ok()) TLOG_WARN("streams", "{}: deleting merged objects: {}", sp->name, st.ToString());
      std::lock_guard<std::mutex> l(sp->mu);
      sp->deleting = false;
      if (--sp->jobs_running == 0) sp->jobs_cv.notify_all();
    });
  }
  for (const auto& id : folders) {
    submit([this, sp, id] {
      auto merged = CompactFolder(*sp, id);
      if (!merged.ok()) {
        TLOG_WARN("streams", "{}: compacting {} failed (will retry with the next flush): {}",
                  sp->name, id, merged.status().ToString());
      }
      {
        std::lock_guard<std::mutex> l(sp->mu);
        auto it = sp->folders.find(id);
        if (it != sp->folders.end()) it->second.compacting = false;
        if (--sp->jobs_running == 0) sp->jobs_cv.notify_all();
      }
      --flush_->compactions_running;
      // One merge per job, so flush jobs interleave with a cascade of merges; go on with the next.
      if (merged.ok() && *merged) ScheduleCompactions(sp);
    });
  }
}

Status StreamService::ListFolder(const DeliveryStream& s, const std::string& bucket,
                                 const std::string& prefix, const std::string& extension,
                                 std::vector<FolderObject>* live, std::vector<std::string>* covered) {
  std::vector<storage::ObjectInfo> objects;
  storage::ListOptions lo;
  lo.prefix = prefix;
  lo.delimiter = "/";
  for (;;) {
    ASSIGN_OR_RETURN(storage::ListResult page, store_->ListObjects(bucket, lo));
    for (auto& o : page.objects) objects.push_back(std::move(o));
    if (!page.truncated) break;
    lo.start_after = page.next_start_after;
  }
  std::vector<std::string> keys;
  std::vector<uint64_t> sizes;
  for (const auto& o : objects) {
    auto n = ParseStreamObjectName(o.key);
    if (!n || n->stream != s.name || (!extension.empty() && n->extension != extension)) continue;
    keys.push_back(o.key);
    sizes.push_back(o.size);
  }
  auto is_covered = CoveredObjects(keys);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (is_covered[i]) {
      covered->push_back(keys[i]);
      continue;
    }
    if (!live) continue;
    auto n = ParseStreamObjectName(keys[i]);
    live->push_back({keys[i], n->first, n->last, sizes[i]});
  }
  if (live) {
    std::sort(live->begin(), live->end(),
              [](const FolderObject& a, const FolderObject& b) { return a.first < b.first; });
  }
  return Status::OK();
}

Result<bool> StreamService::CompactFolder(DeliveryStream& s, const std::string& id) {
  std::string bucket, prefix, extension, compression;
  bool listed;
  {
    std::lock_guard<std::mutex> l(s.mu);
    auto it = s.folders.find(id);
    if (it == s.folders.end() || s.deleted) return false;
    bucket = it->second.bucket;
    prefix = it->second.prefix;
    extension = it->second.extension;
    compression = it->second.parquet_compression;
    listed = it->second.listed;
  }
  if (!listed) {
    // Objects written before this process started: merge them too. Covered ones were left by a
    // merge of an earlier process (this one merges only in folders it has listed), so no reader
    // of this process can be using them.
    std::vector<FolderObject> found;
    std::vector<std::string> covered;
    RETURN_IF_ERROR(ListFolder(s, bucket, prefix, extension, &found, &covered));
    for (const auto& k : covered) {
      auto d = store_->DeleteObject(bucket, k, "");
      if (!d.ok()) return d.status();
    }
    std::lock_guard<std::mutex> l(s.mu);
    PartitionFolder& f = s.folders[id];
    for (auto& o : f.objects) {  // written by this process's flushes meanwhile
      bool known = false;
      for (const auto& x : found) known = known || x.key == o.key;
      if (!known) found.push_back(std::move(o));
    }
    std::sort(found.begin(), found.end(),
              [](const FolderObject& a, const FolderObject& b) { return a.first < b.first; });
    f.objects = std::move(found);
    f.listed = true;
  }

  // Pick the next run among the objects whose records are durably delivered.
  std::vector<FolderObject> inputs;
  {
    std::lock_guard<std::mutex> l(s.mu);
    PartitionFolder& f = s.folders[id];
    uint64_t durable = s.durable_low;
    if (auto d = s.durable_delivered.find(f.partition); d != s.durable_delivered.end()) {
      durable = std::max(durable, d->second);
    }
    std::vector<CompactionFile> files;
    for (const auto& o : f.objects) {
      if (o.last > durable) break;
      files.push_back({o.first, o.last, o.size});
    }
    CompactionPolicy policy;
    policy.min_files = options_.compaction_files;
    policy.target_bytes = std::max<uint64_t>(1, s.config->size_bytes);
    auto pick = PickMerge(files, policy);
    if (!pick) {
      f.wanted = false;  // until the next flush adds an object
      return false;
    }
    inputs.assign(f.objects.begin() + long(pick->first), f.objects.begin() + long(pick->second));
    ++s.uncleaned[id];
  }
  auto forget_intent = [&] {
    {
      std::lock_guard<std::mutex> l(s.mu);
      if (--s.uncleaned[id] <= 0) s.uncleaned.erase(id);
    }
    WriteCompactionsFile(s).IgnoreError();  // an extra entry only costs a listing at start
  };
  Status st = WriteCompactionsFile(s);
  if (!st.ok()) {
    forget_intent();
    return st.WithContext("recording a compaction");
  }

  auto first_name = ParseStreamObjectName(inputs.front().key);
  std::string merged_key = prefix + s.name + "-" + first_name->time + "-" +
                           SeqText(inputs.front().first) + "-" + SeqText(inputs.back().last) +
                           extension;
  std::vector<std::string> paths;
  for (const auto& in : inputs) {
    auto p = store_->LocalPath(bucket, in.key);
    if (!p.ok()) {
      forget_intent();
      return p.status().WithContext("compaction reads objects from the local store only");
    }
    paths.push_back(*p);
  }
  std::string tmp = options_.wal_root + "/.tmp/" + s.name + "-compact-" +
                    std::to_string(flush_->tmp_counter++) + ".parquet";
  auto merge = [&]() -> Result<storage::ObjectInfo> {
    ASSIGN_OR_RETURN(std::unique_ptr<ParquetWriter> writer, flush_->BorrowWriter());
    auto rows = writer->Merge(paths, compression.empty() ? "SNAPPY" : compression, tmp);
    flush_->ReturnWriter(std::move(writer));
    if (!rows.ok()) return rows.status();
    ASSIGN_OR_RETURN(auto src, storage::FileSource::Open(tmp));
    storage::PutOptions po;
    po.attrs.content_type = "application/vnd.apache.parquet";
    return store_->PutObject(bucket, merged_key, *src, po);
  };
  auto info = merge();
  std::error_code ec;
  fs::remove(tmp, ec);
  if (!info.ok()) {
    forget_intent();
    return info.status();
  }
  if (KillAfterPut()) {
    TLOG_WARN("streams", "{}: TARN_TEST_COMPACTION_KILL: killed after PUT {}", s.name, merged_key);
    ::raise(SIGKILL);
  }
  uint64_t in_bytes = 0;
  for (const auto& in : inputs) in_bytes += in.size;
  {
    std::lock_guard<std::mutex> l(s.mu);
    PartitionFolder& f = s.folders[id];
    auto at = std::find_if(f.objects.begin(), f.objects.end(),
                           [&](const FolderObject& o) { return o.key == inputs.front().key; });
    // Only flushes append (after the inputs), so the run is still where it was.
    if (at != f.objects.end() && size_t(f.objects.end() - at) >= inputs.size()) {
      at = f.objects.erase(at, at + long(inputs.size()));
      f.objects.insert(at, FolderObject{merged_key, inputs.front().first, inputs.back().last,
                                        info->size});
    }
    f.wanted = true;  // the merged object may complete a run of the next level
    PendingDelete d{bucket, prefix, {}, options_.clock->MonotonicNanos() +
                                            options_.compaction_grace_ms * 1000000};
    for (const auto& in : inputs) d.keys.push_back(in.key);
    s.pending_deletes.push_back(std::move(d));
  }
  s.compactions->Inc();
  s.compacted_objects->Inc(inputs.size());
  s.compacted_bytes->Inc(info->size);
  TLOG_DEBUG("streams", "{}: merged {} objects ({} bytes) into {} ({} bytes)", s.name,
             inputs.size(), in_bytes, merged_key, info->size);
  return true;
}

Status StreamService::DeleteMergedInputs(DeliveryStream& s, bool all) {
  std::vector<PendingDelete> due;
  {
    std::lock_guard<std::mutex> l(s.mu);
    int64_t now = options_.clock->MonotonicNanos();
    for (auto it = s.pending_deletes.begin(); it != s.pending_deletes.end();) {
      if (all || it->due_mono <= now) {
        due.push_back(std::move(*it));
        it = s.pending_deletes.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (due.empty()) return Status::OK();
  Status first;
  for (auto& d : due) {
    Status st;
    for (const auto& k : d.keys) {
      auto r = store_->DeleteObject(d.bucket, k, "");
      if (!r.ok()) {
        st = r.status();
        break;
      }
    }
    std::lock_guard<std::mutex> l(s.mu);
    if (!st.ok()) {
      // Readers skip covered objects anyway; try again a little later.
      if (first.ok()) first = st;
      d.due_mono = options_.clock->MonotonicNanos() + 5000000000LL;
      s.pending_deletes.push_back(std::move(d));
      continue;
    }
    std::string id = FolderId(d.bucket, d.prefix);
    if (--s.uncleaned[id] <= 0) s.uncleaned.erase(id);
  }
  Status wst = WriteCompactionsFile(s);
  return first.ok() ? wst : first;
}

Status StreamService::WriteCompactionsFile(DeliveryStream& s) {
  std::lock_guard<std::mutex> fl(s.compactions_file_mu);
  json folders = json::array();
  {
    std::lock_guard<std::mutex> l(s.mu);
    if (s.deleted) return Status::OK();
    for (const auto& [id, n] : s.uncleaned) {
      auto f = s.folders.find(id);
      if (f != s.folders.end()) folders.push_back({{"bucket", f->second.bucket}, {"prefix", f->second.prefix}});
    }
  }
  return WriteFileAtomic(CompactionsPath(options_.wal_root, s.name), folders.dump());
}

Status StreamService::RecoverCompactions(DeliveryStream& s) {
  std::string path = CompactionsPath(options_.wal_root, s.name);
  if (!fs::exists(path)) return Status::OK();
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  json folders = json::parse(text, nullptr, false);
  if (!folders.is_array()) {
    // Written atomically, so this is outside damage; readers skip covered objects regardless.
    TLOG_WARN("streams", "{}: unreadable {} ignored", s.name, path);
    return Status::OK();
  }
  size_t deleted = 0;
  Status first;
  for (const json& f : folders) {
    if (!f.is_object() || !f.contains("bucket") || !f.contains("prefix")) continue;
    std::string bucket = f.value("bucket", ""), prefix = f.value("prefix", "");
    std::vector<std::string> covered;
    Status st = ListFolder(s, bucket, prefix, "", nullptr, &covered);
    for (size_t i = 0; st.ok() && i < covered.size(); ++i) {
      auto r = store_->DeleteObject(bucket, covered[i], "");
      if (!r.ok()) st = r.status();
      if (r.ok()) ++deleted;
    }
    if (!st.ok()) {
      // Kept for the next start; the folder is listed again when compaction next visits it.
      if (first.ok()) first = st;
      std::lock_guard<std::mutex> l(s.mu);
      PartitionFolder& pf = s.folders[FolderId(bucket, prefix)];
      pf.bucket = bucket;
      pf.prefix = prefix;
      ++s.uncleaned[FolderId(bucket, prefix)];
    }
  }
  if (deleted > 0) {
    TLOG_INFO("streams", "{}: deleted {} objects that an interrupted compaction had merged",
              s.name, deleted);
  }
  Status wst = WriteCompactionsFile(s);
  return first.ok() ? wst : first;
}

Status StreamService::Compact() {
  std::vector<std::shared_ptr<DeliveryStream>> all;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [n, s] : streams_) all.push_back(s);
  }
  for (auto& s : all) {
    std::vector<std::string> ids;
    {
      std::lock_guard<std::mutex> l(s->mu);
      for (const auto& [id, f] : s->folders) {
        if (f.wanted && !f.compacting) ids.push_back(id);
      }
    }
    for (const auto& id : ids) {
      for (;;) {
        ASSIGN_OR_RETURN(bool merged, CompactFolder(*s, id));
        if (!merged) break;
      }
    }
    RETURN_IF_ERROR(DeleteMergedInputs(*s, false));
  }
  return Status::OK();
}

}  // namespace tarn::streams
