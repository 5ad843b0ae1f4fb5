#include "storage/s3/aws_chunked.h"

#include <gtest/gtest.h>

namespace tarn::storage::s3 {
namespace {

// Feeds bytes a few at a time, as a slow socket would.
class TrickleReader final : public net::BodyReader {
 public:
  explicit TrickleReader(std::string d) : d_(std::move(d)) {}
  Result<size_t> Read(char* buf, size_t n) override {
    size_t k = std::min({n, d_.size() - pos_, size_t{3}});
    std::copy(d_.data() + pos_, d_.data() + pos_ + k, buf);
    pos_ += k;
    return k;
  }
  std::optional<uint64_t> content_length() const override { return d_.size(); }

 private:
  std::string d_;
  size_t pos_ = 0;
};

std::string ReadAll(net::BodyReader& r, Status* st) {
  std::string out;
  char buf[5];
  while (true) {
    auto n = r.Read(buf, sizeof(buf));
    if (!n.ok()) {
      *st = n.status();
      return out;
    }
    if (*n == 0) return out;
    out.append(buf, *n);
  }
}

TEST(AwsChunked, DecodesChunksAndTrailers) {
  TrickleReader inner(
      "5\r\nhello\r\n7;chunk-signature=abc\r\n, world\r\n0\r\n"
      "x-amz-checksum-crc32:AAAAAA==\r\nx-amz-trailer-signature:sig\r\n\r\n");
  net::Headers trailers;
  AwsChunkedReader r(&inner, &trailers);
  Status st;
  EXPECT_EQ(ReadAll(r, &st), "hello, world");
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(trailers.Get("x-amz-checksum-crc32"), "AAAAAA==");
}

TEST(AwsChunked, TruncatedOrMalformedBodiesFail) {
  for (std::string body : {"5\r\nhel", "zz\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n"}) {
    TrickleReader inner(body);
    net::Headers trailers;
    AwsChunkedReader r(&inner, &trailers);
    Status st;
    ReadAll(r, &st);
    EXPECT_FALSE(st.ok()) << body;
  }
}

}  // namespace
}  // namespace tarn::storage::s3
