// Compaction of a delivery stream's small objects: what an object's name says about the records
// it holds, which objects a newer merged one covers, and which run of small objects to merge
// next. Pure functions over names and sizes, shared by the stream's compactor (flush.cc) and by
// the SQL endpoint's lake view (sql/lake/lake_sql.cc), which must agree on what "covered" means.
//
// A stream names each object <stream>-<yyyy-MM-dd-HH-mm-ss of its first record>-<first seq>-
// <last seq><extension> (20-digit sequence numbers, docs/streams.md). A merged object takes the
// name of the run it replaced: the first input's time and first seq, the last input's last seq.
// Until the inputs are deleted, both are listed; a reader keeps only objects whose range no
// other object of the same stream, folder and extension contains, so it sees every row once at
// any instant — before the merged PUT, between it and the deletes, after a kill -9 in between.
//
// Thread-safe (no state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tarn::streams {

struct StreamObjectName {
  std::string stream;     // the delivery stream's name (as the object names it)
  std::string time;       // yyyy-MM-dd-HH-mm-ss of the first record
  uint64_t first = 0, last = 0;
  std::string extension;  // ".parquet", ".gz", "" …
};

// Parses the last path segment of `key` when it follows the stream's object naming exactly;
// nullopt for anything else (a file a user put there, a crawler's output …).
std::optional<StreamObjectName> ParseStreamObjectName(std::string_view key);

// For each key, true when a different key of the same folder, stream name and (non-empty)
// extension covers its sequence range ([first, last] within the other's, not equal). Only such
// keys are stale copies of rows a merged object holds; keys not in the naming pattern, or
// without an extension (raw objects and error records, which compaction never merges and whose
// ranges may nest legitimately when an error prefix shares the data folder), are never covered.
std::vector<bool> CoveredObjects(const std::vector<std::string>& keys);

struct CompactionPolicy {
  size_t min_files = 8;          // merge this many objects of one level into one (fan-in)
  uint64_t target_bytes = 64 << 20;  // objects this large are final (BufferingHints SizeInMBs)
  uint64_t floor_bytes = 64 << 10;   // objects below this size count as one level (the smallest)
};

struct CompactionFile {
  uint64_t first = 0, last = 0, size = 0;
};

// The next run of objects to merge, [begin, end) of `files` (sorted by sequence, disjoint), or
// nullopt. Objects of target size or more are never inputs. Levels are log_{min_files} of the
// size; a level runs from its first object to the last one within 0.75 of the level's largest,
// so smaller objects caught between larger ones join their neighbours instead of blocking
// merges forever (LogMergePolicy's rule in Lucene). Within a level, the oldest min_files objects
// merge, fewer when they already reach the target. Repeated merging keeps a partition at about
// (min_files - 1) objects per level — O(log(target / floor)) small objects — and rewrites each
// byte about once per level.
std::optional<std::pair<size_t, size_t>> PickMerge(const std::vector<CompactionFile>& files,
                                                   const CompactionPolicy& policy);

}  // namespace tarn::streams
