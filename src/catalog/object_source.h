// What a crawler needs from the object store: list the objects under a prefix and get a
// local file for one (DuckDB reads local paths only, DESIGN.md §6). The lake adapts
// storage::ObjectStore to this; DirectoryObjectSource serves unit tests from a directory
// laid out as <root>/<bucket>/<key>.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"

namespace tarn::storage {
class ObjectStore;
}

namespace tarn::catalog {

struct ListedObject {
  std::string key;
  uint64_t size = 0;
  std::string etag;  // changes whenever the bytes change
  int64_t last_modified_ms = 0;
};

class ObjectSource {
 public:
  virtual ~ObjectSource() = default;
  // Calls `fn` for every object whose key starts with `prefix`, in key order.
  virtual Status List(const std::string& bucket, const std::string& prefix,
                      const std::function<Status(const ListedObject&)>& fn) = 0;
  // A local file with the object's bytes, readable until the object changes.
  virtual Result<std::string> LocalPath(const std::string& bucket, const std::string& key) = 0;
};

class DirectoryObjectSource final : public ObjectSource {
 public:
  explicit DirectoryObjectSource(std::string root) : root_(std::move(root)) {}
  Status List(const std::string& bucket, const std::string& prefix,
              const std::function<Status(const ListedObject&)>& fn) override;
  Result<std::string> LocalPath(const std::string& bucket, const std::string& key) override;

 private:
  std::string root_;
};

// The lake's object store as a crawler source (the store must outlive it). Objects the store
// cannot give a local file for (remote backends) are reported unreadable by the crawler.
std::unique_ptr<ObjectSource> NewObjectStoreSource(storage::ObjectStore* store);

}  // namespace tarn::catalog
