#include "catalog/object_source.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "core/strings.h"
#include "storage/object_store.h"

namespace tarn::catalog {

namespace fs = std::filesystem;

Status DirectoryObjectSource::List(const std::string& bucket, const std::string& prefix,
                                   const std::function<Status(const ListedObject&)>& fn) {
  fs::path dir = fs::path(root_) / bucket;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Error(ErrorCode::kEntityNotFound, "bucket " + bucket + " does not exist");
  }
  std::vector<ListedObject> out;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    std::string key = fs::relative(it->path(), dir, ec).generic_string();
    if (!StartsWith(key, prefix)) continue;
    ListedObject o;
    o.key = key;
    o.size = it->file_size(ec);
    auto mtime = fs::last_write_time(it->path(), ec).time_since_epoch();
    o.last_modified_ms = std::chrono::duration_cast<std::chrono::milliseconds>(mtime).count();
    o.etag = std::to_string(o.size) + "-" + std::to_string(mtime.count());
    out.push_back(std::move(o));
  }
  if (ec) return Error(ErrorCode::kIoError, "listing " + dir.string() + ": " + ec.message());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  for (const auto& o : out) RETURN_IF_ERROR(fn(o));
  return Status::OK();
}

Result<std::string> DirectoryObjectSource::LocalPath(const std::string& bucket,
                                                     const std::string& key) {
  return (fs::path(root_) / bucket / key).string();
}

namespace {

class StoreSource final : public ObjectSource {
 public:
  explicit StoreSource(storage::ObjectStore* store) : store_(store) {}

  Status List(const std::string& bucket, const std::string& prefix,
              const std::function<Status(const ListedObject&)>& fn) override {
    storage::ListOptions opts;
    opts.prefix = prefix;
    opts.max_keys = 1000;
    while (true) {
      ASSIGN_OR_RETURN(storage::ListResult page, store_->ListObjects(bucket, opts));
      for (const storage::ObjectInfo& o : page.objects) {
        if (o.delete_marker) continue;
        ListedObject l;
        l.key = o.key;
        l.size = o.size;
        l.etag = o.etag + "/" + o.version_id;
        l.last_modified_ms = o.last_modified_ms;
        RETURN_IF_ERROR(fn(l));
      }
      if (!page.truncated || page.next_start_after.empty()) break;
      opts.start_after = page.next_start_after;
    }
    return Status::OK();
  }

  Result<std::string> LocalPath(const std::string& bucket, const std::string& key) override {
    return store_->LocalPath(bucket, key);
  }

 private:
  storage::ObjectStore* store_;
};

}  // namespace

std::unique_ptr<ObjectSource> NewObjectStoreSource(storage::ObjectStore* store) {
  return std::make_unique<StoreSource>(store);
}

}  // namespace tarn::catalog
