// Microbenchmark of the two per-record codecs of the PutRecordBatch path, each against the code it
// replaced, in the same run: base64 decoding of a record (core/strings Base64DecodeTo, AVX2,
// against its portable decoder) and the log record's CRC-32C (streams/wal WalCrc32c, three
// interleaved crc32 streams from 128 bytes on, against one stream).
//
//   codec_bench [--reps 15]
//
// Records as bench/streams/load.py writes them (200-byte JSON readings: 268 base64 characters;
// a log record body, record plus metadata, is ~230 bytes), 256 of them at varied alignments.
// Each figure is the best of --reps timed passes over all records (ns per call), so a
// neighbour's load on a shared machine inflates it less; the ratio is old / new.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/strings.h"
#include "streams/wal.h"

namespace {

constexpr int kRecords = 256;

std::string Record(int i, std::mt19937_64& rnd) {
  auto uniform = [&](double lo, double hi) {
    return lo + (hi - lo) * double(rnd() % 1000000) / 1e6;
  };
  const char* status[] = {"ok", "warn", "degraded"};
  char buf[256];
  int n = std::snprintf(buf, sizeof buf,
                        "{\"device\":\"sensor-%04d\",\"ts\":%lld,\"seq\":%d,\"temperature\":%.3f,"
                        "\"humidity\":%.2f,\"pressure\":%.2f,\"battery\":%.3f,\"status\":\"%s\","
                        "\"site\":\"site-%02d\"}",
                        i % 1000, 1764072000000LL + i, i, uniform(-20, 45), uniform(0, 100),
                        uniform(950, 1050), uniform(3, 4.2), status[rnd() % 3], i % 17);
  std::string s(buf, size_t(n));
  if (s.size() < 199) s.append(199 - s.size(), ' ');
  return s + "\n";
}

// Best of `reps` passes, ns per call; `sink` keeps the results alive.
template <typename F>
double BestNs(int reps, int calls_per_pass, F&& pass) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    pass();
    auto t1 = std::chrono::steady_clock::now();
    double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / calls_per_pass;
    if (ns < best) best = ns;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 15;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
  }
  std::mt19937_64 rnd(7);
  // Encoded records laid out one after another at odd offsets, as in a request body.
  std::string body;
  std::vector<std::string_view> b64;
  std::vector<std::pair<size_t, size_t>> spans;
  for (int i = 0; i < kRecords; ++i) {
    body += std::string(1 + rnd() % 13, ' ');
    std::string e = tarn::Base64Encode(Record(i, rnd));
    spans.emplace_back(body.size(), e.size());
    body += e;
  }
  for (auto [at, n] : spans) b64.emplace_back(body.data() + at, n);

  std::string out;
  out.reserve(512);
  uint64_t sink = 0;
  auto decode = [&](auto fn) {
    return BestNs(reps, 16 * kRecords, [&] {
      for (int k = 0; k < 16; ++k) {
        for (auto s : b64) {
          if (!fn(s, &out)) std::abort();
          sink += uint8_t(out[7]);
        }
      }
    });
  };
  // Interleave old and new so that both see the same neighbours.
  double dec_old = 1e30, dec_new = 1e30;
  for (int round = 0; round < 3; ++round) {
    dec_old = std::min(dec_old, decode(tarn::internal::Base64DecodeToPortable));
    dec_new = std::min(dec_new, decode(tarn::Base64DecodeTo));
  }
  std::printf("base64 decode, %zu characters: old (portable, 4 per step) %.1f ns, new %.1f ns, "
              "%.2fx\n",
              b64[0].size(), dec_old, dec_new, dec_old / dec_new);

  // Log record bodies: the decoded record plus ~30 bytes of metadata, at varied alignments.
  std::string raw(64 * 1024, '\0');
  for (char& c : raw) c = char(rnd());
  // Independent calls (the CPU overlaps one record's crc32 chain with the next one's), or each
  // record's address depending on the previous CRC (one record's latency, nothing to overlap).
  auto crc = [&](uint32_t (*fn)(std::string_view), size_t len, bool chained = false) {
    std::vector<std::string_view> recs;
    for (int i = 0; i < kRecords; ++i) recs.emplace_back(raw.data() + rnd() % 4096, len);
    if (!chained) {
      return BestNs(reps, 16 * kRecords, [&] {
        for (int k = 0; k < 16; ++k) {
          for (auto r : recs) sink += fn(r);
        }
      });
    }
    return BestNs(reps, 16 * kRecords, [&] {
      uint32_t prev = 0;
      for (int k = 0; k < 16; ++k) {
        for (auto r : recs) {
          prev = fn(std::string_view(r.data() + (prev & 1), r.size()));
          sink += prev;
        }
      }
    });
  };
  for (bool chained : {false, true}) {
    double crc_old = 1e30, crc_new = 1e30;
    for (int round = 0; round < 3; ++round) {
      crc_old = std::min(crc_old, crc(tarn::streams::internal::WalCrc32cOneStream, 230, chained));
      crc_new = std::min(crc_new, crc(tarn::streams::WalCrc32c, 230, chained));
    }
    std::printf("crc32c, 230 bytes, %s: old (one crc32 chain) %.1f ns, new %.1f ns, %.2fx\n",
                chained ? "each call waiting for the last" : "independent calls", crc_old, crc_new,
                crc_old / crc_new);
  }
  std::printf("crc32c by length, ns (one stream / three streams), independent | chained calls:\n");
  for (size_t len : {32, 64, 96, 128, 160, 192, 256, 512, 1024, 4096, 16384}) {
    double one = crc(tarn::streams::internal::WalCrc32cOneStream, len);
    double three = crc(tarn::streams::internal::WalCrc32cThreeWay, len);
    double one_c = crc(tarn::streams::internal::WalCrc32cOneStream, len, true);
    double three_c = crc(tarn::streams::internal::WalCrc32cThreeWay, len, true);
    std::printf("  %6zu  %8.1f %8.1f %5.2fx | %8.1f %8.1f %5.2fx\n", len, one, three, one / three,
                one_c, three_c, one_c / three_c);
  }
  std::printf("(checksum %llu)\n", static_cast<unsigned long long>(sink));
  return 0;
}
