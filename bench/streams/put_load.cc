// HTTP load generator for bench/streams: replays pre-signed Firehose requests (PutRecord or
// PutRecordBatch, written by requests.py) over keep-alive connections, closed-loop (as fast as
// the server answers) or open-loop at a fixed rate, and reports calls/s and latency.
//
//   put_load --port P --requests FILE [--host 127.0.0.1] [--connections 8] [--rate CALLS_PER_S]
//            [--seconds 5] [--warmup 1]
//
// FILE: a sequence of (u64 little-endian length, raw HTTP/1.1 request bytes). Connection i sends
// requests i, i+C, i+2C, … of the file, cycling.
// Open loop (--rate > 0): connection i's k-th call is due at start + (k*C + i)/rate; latency is
// measured from the due time, so a call that had to wait for the previous one on its
// connection counts that wait (no coordinated omission). A response other than 200, or a body
// with a non-zero "FailedPutCount", counts as an error.
// Output: one JSON object on stdout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SleepUntil(int64_t t) {
  for (;;) {
    int64_t w = t - NowNs();
    if (w <= 0) return;
    if (w > 200000) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(w - 100000));
    } else {
      std::this_thread::yield();
    }
  }
}

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string requests;
  int connections = 8;
  double rate = 0;
  double seconds = 5, warmup = 1;
};

struct Shared {
  std::atomic<bool> stop{false};
  std::atomic<bool> measuring{false};
  std::atomic<uint64_t> calls{0}, errors{0};
  std::mutex mu;
  std::vector<int64_t> latency, service;  // ns, guarded by mu
  std::string first_error;                // guarded by mu
};

int Connect(const Options& o) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(o.port));
  inet_pton(AF_INET, o.host.c_str(), &a.sin_addr);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// Reads one response; returns false on EOF. Sets *ok to status 200 and no failed records.
bool ReadResponse(int fd, std::string* buf, bool* ok, std::string* head_out) {
  size_t hdr_end;
  for (;;) {
    hdr_end = buf->find("\r\n\r\n");
    if (hdr_end != std::string::npos) break;
    char tmp[65536];
    ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf->append(tmp, size_t(n));
  }
  std::string head = buf->substr(0, hdr_end);
  size_t len = 0;
  for (size_t p = 0; p < head.size();) {
    size_t e = head.find("\r\n", p);
    if (e == std::string::npos) e = head.size();
    std::string line = head.substr(p, e - p);
    if (line.size() > 15 && strncasecmp(line.c_str(), "content-length:", 15) == 0) {
      len = size_t(std::strtoull(line.c_str() + 15, nullptr, 10));
    }
    p = e + 2;
  }
  size_t total = hdr_end + 4 + len;
  while (buf->size() < total) {
    char tmp[65536];
    ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf->append(tmp, size_t(n));
  }
  std::string body = buf->substr(hdr_end + 4, len);
  buf->erase(0, total);
  *ok = head.compare(0, 12, "HTTP/1.1 200") == 0 &&
        (body.find("\"FailedPutCount\"") == std::string::npos ||
         body.find("\"FailedPutCount\":0") != std::string::npos);
  if (!*ok) *head_out = head.substr(0, head.find("\r\n")) + " " + body.substr(0, 300);
  return true;
}

void Run(int idx, const Options& o, const std::vector<std::string>& reqs, int64_t start,
         Shared* sh) {
  int fd = Connect(o);
  std::string buf;
  std::vector<int64_t> lat, svc;
  size_t next = size_t(idx) % reqs.size();
  for (uint64_t k = 0; !sh->stop.load(); ++k) {
    int64_t due = 0;
    if (o.rate > 0) {
      due = start + int64_t((double(k) * o.connections + idx) * 1e9 / o.rate);
      SleepUntil(due);
      if (sh->stop.load()) break;
    }
    const std::string& r = reqs[next];
    next = (next + size_t(o.connections)) % reqs.size();
    int64_t sent = NowNs();
    if (!due) due = sent;
    for (size_t off = 0; off < r.size();) {
      ssize_t n = ::send(fd, r.data() + off, r.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        if (sh->stop.load()) break;
        std::perror("send");
        std::exit(1);
      }
      off += size_t(n);
    }
    bool ok = false;
    std::string err;
    if (!ReadResponse(fd, &buf, &ok, &err)) {
      if (sh->stop.load()) break;
      std::fprintf(stderr, "connection closed by the server\n");
      std::exit(1);
    }
    int64_t end = NowNs();
    if (!sh->measuring.load()) continue;
    sh->calls.fetch_add(1, std::memory_order_relaxed);
    if (!ok) {
      sh->errors.fetch_add(1);
      std::lock_guard<std::mutex> l(sh->mu);
      if (sh->first_error.empty()) sh->first_error = err;
    }
    lat.push_back(end - due);
    svc.push_back(end - sent);
  }
  ::close(fd);
  std::lock_guard<std::mutex> l(sh->mu);
  sh->latency.insert(sh->latency.end(), lat.begin(), lat.end());
  sh->service.insert(sh->service.end(), svc.begin(), svc.end());
}

double Pct(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, size_t(p * double(v.size())));
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return double(v[k]) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--host") o.host = v;
    else if (k == "--port") o.port = std::atoi(v.c_str());
    else if (k == "--requests") o.requests = v;
    else if (k == "--connections") o.connections = std::max(1, std::atoi(v.c_str()));
    else if (k == "--rate") o.rate = std::atof(v.c_str());
    else if (k == "--seconds") o.seconds = std::atof(v.c_str());
    else if (k == "--warmup") o.warmup = std::atof(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (!o.port || o.requests.empty()) {
    std::fprintf(stderr, "usage: put_load --port P --requests FILE [--connections C] "
                         "[--rate CALLS_PER_S] [--seconds S] [--warmup S]\n");
    return 2;
  }
  std::vector<std::string> reqs;
  {
    std::ifstream in(o.requests, std::ios::binary);
    for (;;) {
      uint64_t n = 0;
      if (!in.read(reinterpret_cast<char*>(&n), 8)) break;
      std::string r(n, '\0');
      if (!in.read(r.data(), std::streamsize(n))) break;
      reqs.push_back(std::move(r));
    }
  }
  if (reqs.empty()) {
    std::fprintf(stderr, "no requests in %s\n", o.requests.c_str());
    return 2;
  }
  Shared sh;
  int64_t start = NowNs() + 20000000;
  std::vector<std::thread> threads;
  for (int i = 0; i < o.connections; ++i) {
    threads.emplace_back(Run, i, std::cref(o), std::cref(reqs), start, &sh);
  }
  SleepUntil(start + int64_t(o.warmup * 1e9));
  sh.measuring = true;
  int64_t t0 = NowNs();
  SleepUntil(t0 + int64_t(o.seconds * 1e9));
  sh.measuring = false;
  int64_t t1 = NowNs();
  sh.stop = true;
  for (auto& t : threads) t.join();
  double secs = double(t1 - t0) / 1e9;
  std::printf("{\"connections\": %d, \"rate\": %.0f, \"calls_per_s\": %.1f, \"errors\": %llu, "
              "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
              "\"service_p50_ms\": %.3f, \"service_p99_ms\": %.3f, \"samples\": %zu",
              o.connections, o.rate, double(sh.calls.load()) / secs,
              static_cast<unsigned long long>(sh.errors.load()), Pct(sh.latency, 0.5),
              Pct(sh.latency, 0.9), Pct(sh.latency, 0.99), Pct(sh.latency, 1.0),
              Pct(sh.service, 0.5), Pct(sh.service, 0.99), sh.latency.size());
  if (!sh.first_error.empty()) {
    std::string e;
    for (char c : sh.first_error) e += (c == '"' || c == '\\') ? '\'' : (c < 32 ? ' ' : c);
    std::printf(", \"first_error\": \"%s\"", e.c_str());
  }
  std::printf("}\n");
  return 0;
}
