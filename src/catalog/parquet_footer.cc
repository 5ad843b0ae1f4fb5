#include "catalog/parquet_footer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tarn::catalog {

namespace {

constexpr int kMaxDepth = 64;
constexpr size_t kTailRead = 64 * 1024;            // one read holds most footers
constexpr uint64_t kMaxFooter = 64 * 1024 * 1024;  // beyond this the file is not read

Status Bad(const std::string& what) {
  return Error(ErrorCode::kInvalidInput, "malformed Parquet footer: " + what);
}

// Thrift compact protocol types (thrift/doc/specs/thrift-compact-protocol.md).
enum : int {
  kStop = 0,
  kTrue = 1,
  kFalse = 2,
  kByte = 3,
  kI16 = 4,
  kI32 = 5,
  kI64 = 6,
  kDouble = 7,
  kBinary = 8,
  kList = 9,
  kSet = 10,
  kMap = 11,
  kStruct = 12,
  kUuid = 13,
};

class CompactReader {
 public:
  explicit CompactReader(std::string_view b) : b_(b) {}
  size_t pos() const { return pos_; }
  size_t left() const { return b_.size() - pos_; }

  Result<uint8_t> Byte() {
    if (pos_ >= b_.size()) return Bad("truncated");
    return static_cast<uint8_t>(b_[pos_++]);
  }
  Result<uint64_t> Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      ASSIGN_OR_RETURN(uint8_t b, Byte());
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    return Bad("varint longer than 10 bytes");
  }
  Result<int64_t> ZigZag() {
    ASSIGN_OR_RETURN(uint64_t n, Varint());
    return static_cast<int64_t>(n >> 1) ^ -static_cast<int64_t>(n & 1);
  }
  Status Skip(uint64_t n) {
    if (n > left()) return Bad("length beyond the footer");
    pos_ += size_t(n);
    return Status::OK();
  }

  // A field header: its type (kStop ends the struct) and id.
  Status Field(int16_t* last_id, int* type, int16_t* id) {
    ASSIGN_OR_RETURN(uint8_t b, Byte());
    *type = b & 0x0f;
    if (*type == kStop) return Status::OK();
    int delta = b >> 4;
    if (delta == 0) {
      ASSIGN_OR_RETURN(int64_t v, ZigZag());
      *id = static_cast<int16_t>(v);
    } else {
      *id = static_cast<int16_t>(*last_id + delta);
    }
    *last_id = *id;
    return Status::OK();
  }

  // Skips one value of `type`. Booleans are in the field header, except inside collections.
  Status SkipValue(int type, int depth, bool in_collection) {
    if (depth > kMaxDepth) return Bad("nested too deeply");
    switch (type) {
      case kTrue:
      case kFalse: return in_collection ? Skip(1) : Status::OK();
      case kByte: return Skip(1);
      case kI16:
      case kI32:
      case kI64: return Varint().status();
      case kDouble: return Skip(8);
      case kUuid: return Skip(16);
      case kBinary: {
        ASSIGN_OR_RETURN(uint64_t n, Varint());
        return Skip(n);
      }
      case kList:
      case kSet: {
        ASSIGN_OR_RETURN(uint8_t h, Byte());
        uint64_t n = h >> 4;
        int elem = h & 0x0f;
        if (n == 15) {
          ASSIGN_OR_RETURN(n, Varint());
        }
        if (n > left()) return Bad("list longer than the footer");  // every element takes a byte
        for (uint64_t i = 0; i < n; ++i) RETURN_IF_ERROR(SkipValue(elem, depth + 1, true));
        return Status::OK();
      }
      case kMap: {
        ASSIGN_OR_RETURN(uint64_t n, Varint());
        if (n == 0) return Status::OK();
        ASSIGN_OR_RETURN(uint8_t kv, Byte());
        if (n > left()) return Bad("map longer than the footer");
        for (uint64_t i = 0; i < n; ++i) {
          RETURN_IF_ERROR(SkipValue(kv >> 4, depth + 1, true));
          RETURN_IF_ERROR(SkipValue(kv & 0x0f, depth + 1, true));
        }
        return Status::OK();
      }
      case kStruct: {
        int16_t last = 0;
        while (true) {
          int t = 0;
          int16_t id = 0;
          RETURN_IF_ERROR(Field(&last, &t, &id));
          if (t == kStop) return Status::OK();
          RETURN_IF_ERROR(SkipValue(t, depth + 1, false));
        }
      }
      default: return Bad("unknown Thrift type " + std::to_string(type));
    }
  }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

void AppendPart(std::string* key, std::string_view part) {
  uint64_t n = part.size();
  key->append(reinterpret_cast<const char*>(&n), sizeof(n));
  key->append(part);
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Status ReadAt(int fd, char* buf, size_t n, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, buf + done, n - done, off_t(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Error(ErrorCode::kIoError, "reading " + path + ": " + std::strerror(errno));
    if (r == 0) return Error(ErrorCode::kInvalidInput, "file shrank while being read");
    done += size_t(r);
  }
  return Status::OK();
}

}  // namespace

Result<ParquetFooter> ParseParquetFileMetaData(std::string_view metadata) {
  CompactReader r(metadata);
  ParquetFooter out;
  std::string_view schema, kv;
  bool have_schema = false;
  int16_t last = 0;
  while (true) {
    int type = 0;
    int16_t id = 0;
    RETURN_IF_ERROR(r.Field(&last, &type, &id));
    if (type == kStop) break;
    size_t start = r.pos();
    if (id == 3 && type == kI64) {
      ASSIGN_OR_RETURN(out.num_rows, r.ZigZag());
      continue;
    }
    RETURN_IF_ERROR(r.SkipValue(type, 0, false));
    std::string_view bytes = metadata.substr(start, r.pos() - start);
    if (id == 2 && type == kList) {
      schema = bytes;
      have_schema = true;
    } else if (id == 5 && type == kList) {
      kv = bytes;
    }
  }
  if (!have_schema) return Bad("no schema");
  AppendPart(&out.schema_key, schema);
  AppendPart(&out.schema_key, kv);
  return out;
}

Result<ParquetFooter> ReadParquetFooter(const std::string& path, uint64_t size) {
  Fd f;
  // O_NOATIME: a crawl reads every new file once; updating each one's access time would make
  // the read a write (allowed for the files' owner, which the lake is; else a plain open).
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOATIME);
  if (f.fd < 0 && errno == EPERM) f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) return Error(ErrorCode::kIoError, "opening " + path + ": " + std::strerror(errno));
  if (size == 0) {
    struct stat st;
    if (::fstat(f.fd, &st) != 0) {
      return Error(ErrorCode::kIoError, "stat " + path + ": " + std::strerror(errno));
    }
    size = uint64_t(st.st_size);
  }
  // "PAR1" <data> <footer> <4-byte length> "PAR1"
  if (size < 12) return Error(ErrorCode::kInvalidInput, "too small to be a Parquet file");
  char head[4];
  RETURN_IF_ERROR(ReadAt(f.fd, head, 4, 0, path));
  if (std::memcmp(head, "PAR1", 4) != 0)
    return Error(ErrorCode::kInvalidInput, "not a Parquet file");
  size_t tail_len = size_t(std::min<uint64_t>(size - 4, kTailRead));
  std::string tail(tail_len, '\0');
  RETURN_IF_ERROR(ReadAt(f.fd, tail.data(), tail_len, size - tail_len, path));
  const char* end = tail.data() + tail_len;
  if (std::memcmp(end - 4, "PARE", 4) == 0) {
    return Error(ErrorCode::kInvalidInput, "encrypted Parquet footers are not supported");
  }
  if (std::memcmp(end - 4, "PAR1", 4) != 0) {
    return Error(ErrorCode::kInvalidInput, "no Parquet footer (truncated file?)");
  }
  uint32_t len = 0;
  for (int i = 0; i < 4; ++i) len |= uint32_t(static_cast<uint8_t>(end[-8 + i])) << (8 * i);
  if (uint64_t(len) + 12 > size) return Bad("footer length beyond the file");
  if (len > kMaxFooter) return Bad("footer larger than 64 MiB");
  if (uint64_t(len) + 8 <= tail_len) {
    return ParseParquetFileMetaData(std::string_view(end - 8 - len, len));
  }
  std::string footer(len, '\0');
  RETURN_IF_ERROR(ReadAt(f.fd, footer.data(), len, size - 8 - len, path));
  return ParseParquetFileMetaData(footer);
}

}  // namespace tarn::catalog
