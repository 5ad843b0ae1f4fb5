#include "catalog/snappy_text.h"

#include <snappy.h>

#include <cstdio>

namespace tarn::catalog {

namespace {

constexpr std::string_view kStreamId("\xff\x06\x00\x00sNaPpY", 10);

Status NotSnappy(const std::string& what) {
  return Error(ErrorCode::kInvalidInput, "not a snappy stream: " + what);
}

uint32_t Be32(std::string_view d, size_t pos) {
  return uint32_t(uint8_t(d[pos])) << 24 | uint32_t(uint8_t(d[pos + 1])) << 16 |
         uint32_t(uint8_t(d[pos + 2])) << 8 | uint32_t(uint8_t(d[pos + 3]));
}

// Appends the raw snappy block `in` to `out`; false when it is not valid snappy data.
bool UncompressAppend(std::string_view in, size_t max_len, std::string* out) {
  size_t len = 0;
  if (!snappy::GetUncompressedLength(in.data(), in.size(), &len) || len > max_len) return false;
  size_t at = out->size();
  out->resize(at + len);
  return snappy::RawUncompress(in.data(), in.size(), out->data() + at);
}

}  // namespace

bool IsSnappyFramed(std::string_view head) {
  return head.size() >= kStreamId.size() && head.substr(0, kStreamId.size()) == kStreamId;
}

Result<std::string> DecompressSnappyText(std::string_view d, bool framed, size_t max_out,
                                         bool complete) {
  constexpr size_t kMaxBlock = 256u << 20;
  std::string out;
  bool more = false;  // the text goes on beyond `out`
  size_t pos = 0;
  if (framed) {
    if (!IsSnappyFramed(d)) return NotSnappy("no stream identifier");
    pos = kStreamId.size();
    while (out.size() < max_out) {
      if (pos == d.size()) break;
      if (pos + 4 > d.size()) {
        more = true;  // cut by the read limit
        break;
      }
      auto type = uint8_t(d[pos]);
      size_t len = size_t(uint8_t(d[pos + 1])) | size_t(uint8_t(d[pos + 2])) << 8 |
                   size_t(uint8_t(d[pos + 3])) << 16;
      pos += 4;
      if (pos + len > d.size()) {
        more = true;
        break;
      }
      std::string_view body = d.substr(pos, len);
      pos += len;
      if (type == 0x00 || type == 0x01) {
        if (len < 4) return NotSnappy("chunk shorter than its checksum");
        if (type == 0x01) {
          out.append(body.substr(4));
        } else if (!UncompressAppend(body.substr(4), kMaxBlock, &out)) {
          return NotSnappy("corrupt compressed chunk");
        }
      } else if (type >= 0x02 && type <= 0x7f) {
        return NotSnappy("reserved unskippable chunk type " + std::to_string(type));
      }  // 0x80–0xfe: skippable; 0xff: the stream identifier again
    }
    if (pos < d.size()) more = true;
  } else {
    while (out.size() < max_out && pos < d.size()) {
      if (pos + 4 > d.size()) {
        more = true;
        break;
      }
      uint32_t block = Be32(d, pos);
      if (block > kMaxBlock) return NotSnappy("block larger than 256 MiB");
      pos += 4;
      size_t got = 0;
      while (got < block) {
        if (pos + 4 > d.size()) {
          more = true;
          break;
        }
        uint32_t clen = Be32(d, pos);
        if (clen == 0) return NotSnappy("empty chunk");
        if (pos + 4 + clen > d.size()) {
          if (out.empty() && clen > d.size()) return NotSnappy("chunk longer than the file");
          more = true;
          break;
        }
        size_t before = out.size();
        if (!UncompressAppend(d.substr(pos + 4, clen), block - got, &out)) {
          return NotSnappy("corrupt block");
        }
        got += out.size() - before;
        pos += 4 + clen;
      }
      if (more) break;
    }
    if (pos < d.size()) more = true;
  }
  if (out.size() > max_out) {
    out.resize(max_out);
    more = true;
  }
  if (!complete) more = true;
  if (more) {
    size_t nl = out.rfind('\n');
    out.resize(nl == std::string::npos ? 0 : nl + 1);
  }
  return out;
}

Result<std::string> ReadSnappyText(const std::string& path, size_t max_in, size_t max_out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Error(ErrorCode::kIoError, "cannot open " + path);
  std::string data(max_in, '\0');
  size_t got = std::fread(data.data(), 1, max_in, f);
  std::fclose(f);
  data.resize(got);
  return DecompressSnappyText(data, IsSnappyFramed(data), max_out, got < max_in);
}

}  // namespace tarn::catalog
