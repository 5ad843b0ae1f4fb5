// libFuzzer target for what the API port parses before any handler runs
// (src/security/sigv4/): the SigV4 verifier over arbitrary request lines, headers and query
// strings (Authorization header and presigned forms), and the aws-chunked body decoder (chunk
// sizes, extensions, chunk signatures, trailers), read with buffer sizes taken from the input.
// Nothing may crash, hang or read out of bounds; an unsigned-trailer body that decodes must
// hold no more bytes than it announced.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "security/sigv4/sigv4.h"

using namespace tarn;
namespace sv = tarn::security::sigv4;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

class OneKey final : public sv::CredentialProvider {
 public:
  Result<std::optional<sv::SigningCredential>> Lookup(const std::string& akid) override {
    if (akid != "AKIAFUZZFUZZFUZZFUZZ") return std::optional<sv::SigningCredential>();
    sv::SigningCredential c;
    c.secret_access_key = "fuzz-secret";
    c.identity.type = Identity::Type::kUser;
    c.identity.user_name = "fuzz";
    return std::optional<sv::SigningCredential>(std::move(c));
  }
};

std::string_view NextLine(std::string_view* in) {
  size_t nl = in->find('\n');
  std::string_view line = in->substr(0, nl);
  in->remove_prefix(nl == std::string_view::npos ? in->size() : nl + 1);
  return line;
}

// "METHOD TARGET\nName: value\n…\n\nbody" → a request the authenticator sees.
void FuzzAuthenticate(std::string_view in) {
  static OneKey keys;
  static ManualClock clock(int64_t(1'764'000'000) * 1'000'000);
  static sv::SigV4Authenticator auth(&keys, &clock);
  net::HttpRequest rq;
  std::string_view line = NextLine(&in);
  size_t sp = line.find(' ');
  rq.method = std::string(line.substr(0, sp));
  rq.target = sp == std::string_view::npos ? "/" : std::string(line.substr(sp + 1));
  size_t q = rq.target.find('?');
  rq.path = rq.target.substr(0, q);
  rq.query = q == std::string::npos ? "" : rq.target.substr(q + 1);
  while (!in.empty()) {
    std::string_view h = NextLine(&in);
    if (h.empty()) break;
    size_t colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view v = h.substr(colon + 1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    rq.headers.Add(std::string(h.substr(0, colon)), std::string(v));
  }
  net::MemoryBodyReader body{std::string(in)};
  rq.body = &body;
  net::ApiCall call;
  if (auth.Authenticate(call, rq).ok() && rq.body) {
    char buf[512];
    for (int i = 0; i < 10000; ++i) {
      auto n = rq.body->Read(buf, sizeof buf);
      if (!n.ok() || *n == 0) break;
    }
  }
}

// [mode][read size][decoded length?]body: the aws-chunked decoder on its own.
void FuzzChunked(std::string_view in) {
  if (in.size() < 3) return;
  uint8_t mode = uint8_t(in[0]);
  size_t read_size = 1 + uint8_t(in[1]) % 97;
  std::optional<uint64_t> decoded;
  if (in[2] & 1) decoded = uint8_t(in[2]) >> 1;
  in.remove_prefix(3);
  net::MemoryBodyReader inner{std::string(in)};
  net::Headers trailers;
  bool signed_chunks = mode & 1, signed_trailer = mode & 2;
  std::string key = sv::DeriveSigningKey("fuzz-secret", "20251125", "us-east-1", "s3");
  auto reader = sv::NewChunkedReader(&inner, decoded, &trailers, signed_chunks, signed_trailer,
                                     signed_chunks || signed_trailer ? key : std::string(),
                                     "20251125T000000Z", "20251125/us-east-1/s3/aws4_request",
                                     std::string(64, '0'));
  std::string out;
  char buf[128];
  for (int i = 0; i < 100000; ++i) {
    auto n = reader->Read(buf, read_size);
    if (!n.ok()) return;
    Check(*n <= read_size);
    if (*n == 0) break;
    out.append(buf, *n);
  }
  Check(out.size() <= in.size());
  if (decoded) Check(out.size() == *decoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: FuzzAuthenticate(in); break;
    case 1: FuzzChunked(in); break;
    default:
      sv::CanonicalQuery(in, data[0] & 4);
      sv::CanonicalUri(in, data[0] & 8);
      sv::CanonicalHeaderValue(in);
      break;
  }
  return 0;
}
