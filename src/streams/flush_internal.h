// Shared by flush.cc (flush jobs) and compact.cc (compaction jobs): the flush pool, the idle
// DuckDB Parquet writers, and small helpers. Internal to src/streams/.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "storage/object_store.h"
#include "streams/convert.h"
#include "streams/service.h"

namespace tarn::streams {

struct StreamService::Flush {
  std::mutex writers_mu;
  // Idle DuckDB Parquet writers: a job borrows one (at most one per pool thread exist).
  std::vector<std::unique_ptr<ParquetWriter>> writers;  // guarded by writers_mu
  std::atomic<uint64_t> tmp_counter{0};
  // Compaction jobs queued or running across all streams: at most half the pool, so merges
  // never hold every flush thread and ingest keeps flowing (2-core machines).
  std::atomic<int> compactions_running{0};
  std::atomic<bool> stopping{false};  // the service is being destroyed: no new compaction jobs
  std::unique_ptr<ThreadPool> pool;

  // Borrows an idle writer (or makes one); Return gives it back.
  Result<std::unique_ptr<ParquetWriter>> BorrowWriter();
  void ReturnWriter(std::unique_ptr<ParquetWriter> w);
};

// A WAL sequence number as object names spell it: 20 digits, zero-padded.
std::string SeqText(uint64_t seq);

}  // namespace tarn::streams
