// The data directory layout (DESIGN.md §3) and its single-owner lock.
//
//   <data>/objects/   local object store      <data>/meta/tarn.db  SQLite metadata
//   <data>/wal/       delivery-stream WALs    <data>/warehouse/    DuckDB warehouse
//   <data>/keys/      master key, CA          <data>/run/          lock, endpoints.json
//   <data>/mqtt/      MQTT session log
#pragma once

#include <string>

#include "core/status.h"

namespace tarn {

class DataDir {
 public:
  explicit DataDir(std::string root);
  ~DataDir();  // releases the lock
  DataDir(const DataDir&) = delete;
  DataDir& operator=(const DataDir&) = delete;

  // Creates the directory tree (mode 0700 for keys/).
  Status Create();
  // Takes an exclusive lock on <data>/run/tarn.lock for the life of this object. A second
  // process on the same directory gets kDataDirLocked naming the holder's pid.
  Status Lock();

  const std::string& root() const { return root_; }
  std::string objects() const { return root_ + "/objects"; }
  std::string meta() const { return root_ + "/meta"; }
  std::string meta_db() const { return root_ + "/meta/tarn.db"; }
  std::string wal() const { return root_ + "/wal"; }
  std::string warehouse() const { return root_ + "/warehouse"; }
  std::string keys() const { return root_ + "/keys"; }
  std::string run() const { return root_ + "/run"; }
  // MQTT broker session log (persistent sessions, queued messages, retained messages).
  std::string mqtt() const { return root_ + "/mqtt"; }
  std::string endpoints_file() const { return root_ + "/run/endpoints.json"; }

 private:
  std::string root_;
  int lock_fd_ = -1;
};

// Writes `contents` to `path` atomically and durably: temp file, fsync, rename, fsync dir.
Status WriteFileAtomic(const std::string& path, const std::string& contents, int mode = 0644);
Result<std::string> ReadFile(const std::string& path);

}  // namespace tarn
