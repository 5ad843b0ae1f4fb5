// MQTT load generator for bench/mqtt: the same scenarios against any MQTT 3.1.1 broker
// (Tarn and mosquitto in one run, see run.py). Plain blocking sockets, one thread per client.
//
//   mqtt_bench throughput --port P --qos 0|1 --pubs N --subs M [--seconds S] [--payload 64]
//                         [--json 1]   (JSON sensor readings instead of opaque bytes; half of
//                                       them "hot", temperature > 50 — for bench/rules)
//   mqtt_bench latency    --port P --qos 0|1 --rate R [--seconds S]
//   mqtt_bench idle       --port P --clients N --hold S       (prints when all are connected)
//   mqtt_bench publish    --port P --pubs N [--window W] [--rate R] [--subs M] [--seconds S]
//       QoS 1 publishers of ~200-byte JSON sensor readings (topic bench/<n>), each with up to W
//       PUBACKs outstanding (default 64), open loop at R messages/s in total when --rate is
//       given; counts PUBACKs per second and PUBACK latency per message (packet id → send
//       time), and with --subs what M QoS 1 subscribers to bench/# receive. For a broker whose
//       PUBACK means "durable" (Tarn with a rule into a delivery stream) the PUBACK rate is the
//       delivered rate; for one that acknowledges on receipt, the subscribers' rate is.
//
// Output: one JSON object per run on stdout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

std::string g_host = "127.0.0.1";
int g_port = 1883;
std::string g_user, g_pass;
std::atomic<bool> g_stopping{false};  // connections are being torn down: I/O errors expected

void Die(const char* what) {
  std::perror(what);
  std::exit(1);
}

void PutStr(std::string* o, const std::string& s) {
  o->push_back(char(s.size() >> 8));
  o->push_back(char(s.size() & 0xff));
  *o += s;
}

std::string Packet(uint8_t h, const std::string& body) {
  std::string o(1, char(h));
  size_t n = body.size();
  do {
    uint8_t b = n & 0x7f;
    n >>= 7;
    if (n) b |= 0x80;
    o.push_back(char(b));
  } while (n);
  return o + body;
}

class Conn {
 public:
  explicit Conn(const std::string& client_id, bool check = true) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) Die("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(g_port));
    inet_pton(AF_INET, g_host.c_str(), &a.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) Die("connect");
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::string body;
    PutStr(&body, "MQTT");
    uint8_t flags = 0x02;
    if (!g_user.empty()) flags |= 0xC0;
    body += char(4);
    body += char(flags);
    body += char(0);
    body += char(0);  // keep-alive 0: no pings needed
    PutStr(&body, client_id);
    if (!g_user.empty()) {
      PutStr(&body, g_user);
      PutStr(&body, g_pass);
    }
    Send(Packet(0x10, body));
    if (check) {
      uint8_t h;
      std::string b;
      if (!Read(&h, &b) || (h >> 4) != 2 || b.size() < 2 || b[1] != 0) {
        std::fprintf(stderr, "CONNECT refused\n");
        std::exit(1);
      }
    }
  }
  ~Conn() { ::close(fd_); }
  int fd() const { return fd_; }

  void Send(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        if (g_stopping) return;
        Die("send");
      }
      off += size_t(n);
    }
  }
  // Reads one packet; false on EOF.
  bool Read(uint8_t* h, std::string* body) {
    for (;;) {
      if (buf_.size() - pos_ >= 2) {
        size_t n = 0, mult = 1, i = pos_ + 1;
        bool ok = false;
        while (i < buf_.size() && i < pos_ + 5) {
          uint8_t b = uint8_t(buf_[i++]);
          n += (b & 0x7f) * mult;
          mult *= 128;
          if (!(b & 0x80)) {
            ok = true;
            break;
          }
        }
        if (ok && buf_.size() - i >= n) {
          *h = uint8_t(buf_[pos_]);
          body->assign(buf_, i, n);
          pos_ = i + n;
          if (pos_ > (1 << 20)) {
            buf_.erase(0, pos_);
            pos_ = 0;
          }
          return true;
        }
      }
      char tmp[65536];
      ssize_t r = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (r <= 0) return false;
      buf_.append(tmp, size_t(r));
    }
  }

 private:
  int fd_;
  std::string buf_;
  size_t pos_ = 0;
};

std::string Subscribe(const std::string& filter, int qos) {
  std::string b;
  b += char(0);
  b += char(1);
  PutStr(&b, filter);
  b += char(qos);
  return Packet(0x82, b);
}

std::string Publish(const std::string& topic, const std::string& payload, int qos, uint16_t id) {
  std::string b;
  PutStr(&b, topic);
  if (qos) {
    b += char(id >> 8);
    b += char(id & 0xff);
  }
  b += payload;
  return Packet(uint8_t(0x30 | (qos << 1)), b);
}

struct Args {
  std::string mode;
  int qos = 0, pubs = 1, subs = 1, payload = 64, clients = 10000, window = 64;
  bool json = false;
  double seconds = 3, rate = 0, hold = 5, warmup = 0.5;
};

// Subscriber: counts messages, records latencies from the timestamp in the payload.
struct SubStats {
  std::atomic<uint64_t> received{0};
  std::mutex mu;
  std::vector<int64_t> latencies;  // ns, guarded by mu
};

void RunSubscriber(Conn* c, int /*qos*/, SubStats* st, std::atomic<bool>* stop, bool record) {
  uint8_t h;
  std::string body;
  std::vector<int64_t> local;
  while (!stop->load() && c->Read(&h, &body)) {
    if ((h >> 4) != 3) continue;
    size_t tl = (uint8_t(body[0]) << 8) | uint8_t(body[1]);
    size_t off = 2 + tl;
    int q = (h >> 1) & 3;
    if (q) {
      std::string ack("\x40\x02", 2);
      ack += body.substr(off, 2);
      c->Send(ack);
      off += 2;
    }
    if (record && body.size() >= off + 8) {
      int64_t sent;
      std::memcpy(&sent, body.data() + off, 8);
      local.push_back(NowNs() - sent);
    }
    st->received.fetch_add(1, std::memory_order_relaxed);
  }
  std::lock_guard<std::mutex> l(st->mu);
  st->latencies.insert(st->latencies.end(), local.begin(), local.end());
}

// Publisher: QoS 0 paced by what subscribers have received (a closed loop that measures the
// sustainable rate, not how fast the broker can drop); QoS 1 with up to `window` PUBACKs
// outstanding. rate > 0: paced at `rate` messages/second instead.
void RunPublisher(int idx, const Args& a, int subs_per_msg, SubStats* st,
                  std::atomic<uint64_t>* published, std::atomic<bool>* stop, int npubs) {
  Conn c("bench-pub-" + std::to_string(idx) + "-" + std::to_string(getpid()));
  std::atomic<int64_t> outstanding{0};
  std::atomic<bool> reader_stop{false};
  std::thread reader;
  if (a.qos) {
    reader = std::thread([&] {
      uint8_t h;
      std::string b;
      while (!reader_stop && c.Read(&h, &b)) {
        if ((h >> 4) == 4) outstanding.fetch_sub(1);
      }
    });
  }
  std::string topic = "bench/" + std::to_string(idx);
  std::string payload(size_t(a.payload), 'p');
  // --json: alternating hot and cold readings with six members (no send timestamp: throughput
  // only). The two documents have the same length.
  const std::string readings[2] = {
      R"({"temperature": 72.5, "humidity": 41, "pressure": 1013.2, "battery": 87, "rssi": -61, "fw": "1.4.2"})",
      R"({"temperature": 21.5, "humidity": 41, "pressure": 1013.2, "battery": 87, "rssi": -61, "fw": "1.4.2"})"};
  uint16_t id = 0;
  const int64_t window = 256;
  int64_t start = NowNs();
  uint64_t n = 0;
  while (!stop->load()) {
    if (a.rate > 0) {
      int64_t due = start + int64_t(double(n) * 1e9 * npubs / a.rate);
      while (NowNs() < due && !stop->load()) {
        int64_t w = due - NowNs();
        if (w > 200000) std::this_thread::sleep_for(std::chrono::nanoseconds(w - 100000));
      }
    } else if (a.qos == 0) {
      // Keep at most `window` messages per publisher ahead of the subscribers.
      while (!stop->load() &&
             int64_t(published->load() * uint64_t(subs_per_msg)) - int64_t(st->received.load()) >
                 window * npubs * subs_per_msg) {
        std::this_thread::yield();
      }
    }
    if (a.qos) {
      while (outstanding.load() >= window && !stop->load()) std::this_thread::yield();
    }
    if (!a.json) {
      int64_t ts = NowNs();
      std::memcpy(payload.data(), &ts, 8);
    }
    if (++id == 0) id = 1;
    if (a.qos) outstanding.fetch_add(1);
    c.Send(Publish(topic, a.json ? readings[n & 1] : payload, a.qos, id));
    published->fetch_add(1);
    ++n;
  }
  if (a.qos) {
    reader_stop = true;
    ::shutdown(c.fd(), SHUT_RDWR);
    reader.join();
  }
}

double Percentile(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, size_t(p * double(v.size())));
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return double(v[k]) / 1000.0;  // µs
}

void Throughput(const Args& a, bool latency) {
  SubStats st;
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<Conn>> subs;
  std::vector<std::thread> threads;
  for (int i = 0; i < a.subs; ++i) {
    subs.push_back(std::make_unique<Conn>("bench-sub-" + std::to_string(i) + "-" + std::to_string(getpid())));
    subs.back()->Send(Subscribe("bench/#", a.qos));
    uint8_t h;
    std::string b;
    if (!subs.back()->Read(&h, &b) || (h >> 4) != 9) Die("suback");
  }
  for (auto& s : subs) {
    threads.emplace_back(RunSubscriber, s.get(), a.qos, &st, &stop, latency);
  }
  std::atomic<uint64_t> published{0};
  std::vector<std::thread> pubs;
  for (int i = 0; i < a.pubs; ++i) {
    pubs.emplace_back(RunPublisher, i, std::cref(a), a.subs, &st, &published, &stop, a.pubs);
  }
  // Warm-up, then measure.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  uint64_t r0 = st.received.load();
  {
    std::lock_guard<std::mutex> l(st.mu);
    st.latencies.clear();
  }
  int64_t t0 = NowNs();
  std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(a.seconds * 1000)));
  uint64_t r1 = st.received.load();
  int64_t t1 = NowNs();
  g_stopping = true;
  stop = true;
  for (auto& t : pubs) t.join();
  for (auto& s : subs) ::shutdown(s->fd(), SHUT_RDWR);
  for (auto& t : threads) t.join();
  double rate = double(r1 - r0) / (double(t1 - t0) / 1e9);
  if (latency) {
    std::vector<int64_t> lat;
    {
      std::lock_guard<std::mutex> l(st.mu);
      lat = st.latencies;
    }
    double p50 = Percentile(lat, 0.50), p99 = Percentile(lat, 0.99);
    std::printf("{\"mode\": \"latency\", \"qos\": %d, \"rate\": %.0f, \"delivered_per_s\": %.0f, "
                "\"p50_us\": %.1f, \"p99_us\": %.1f, \"samples\": %zu}\n",
                a.qos, a.rate, rate, p50, p99, lat.size());
  } else {
    std::printf("{\"mode\": \"throughput\", \"qos\": %d, \"pubs\": %d, \"subs\": %d, "
                "\"delivered_per_s\": %.0f}\n", a.qos, a.pubs, a.subs, rate);
  }
  std::fflush(stdout);
}

// The `publish` scenario: one publisher of QoS 1 JSON readings.
struct PubStats {
  std::atomic<uint64_t> acked{0};
  std::atomic<bool> measuring{false};
  std::mutex mu;
  std::vector<int64_t> latencies;  // ns, guarded by mu
};

void RunAckedPublisher(int idx, const Args& a, PubStats* st, std::atomic<bool>* stop) {
  Conn c("bench-apub-" + std::to_string(idx) + "-" + std::to_string(getpid()));
  std::unique_ptr<std::atomic<int64_t>[]> sent_at(new std::atomic<int64_t>[65536]);
  std::atomic<int64_t> outstanding{0};
  std::vector<int64_t> local;
  std::thread reader([&] {
    uint8_t h;
    std::string b;
    while (c.Read(&h, &b)) {
      if ((h >> 4) != 4 || b.size() < 2) continue;
      uint16_t id = uint16_t((uint8_t(b[0]) << 8) | uint8_t(b[1]));
      int64_t lat = NowNs() - sent_at[id].load(std::memory_order_relaxed);
      outstanding.fetch_sub(1);
      if (st->measuring.load()) {
        st->acked.fetch_add(1, std::memory_order_relaxed);
        local.push_back(lat);
      }
    }
  });
  std::string topic = "bench/" + std::to_string(idx);
  static const char* kStatus[] = {"ok", "warn", "degraded"};
  uint16_t id = 0;
  int64_t start = NowNs();
  const int64_t window = a.window;
  for (uint64_t n = 0; !stop->load(); ++n) {
    if (a.rate > 0) {
      // Sleep until the message is due, never spin: at tens of thousands of messages/s the gaps
      // are shorter than a wake-up, and spinning publishers took the broker's cores on a 2-core
      // machine (PUBACK p50 2 ms). A late wake-up sends what fell due meanwhile back to back;
      // latency counts from the actual send.
      int64_t due = start + int64_t(double(n) * 1e9 * a.pubs / a.rate);
      int64_t w = due - NowNs();
      if (w > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(w));
    }
    while (outstanding.load() >= window && !stop->load()) std::this_thread::yield();
    if (stop->load()) break;
    uint64_t k = n * uint64_t(a.pubs) + uint64_t(idx);
    char payload[256];
    int len = std::snprintf(
        payload, sizeof(payload),
        "{\"device\":\"sensor-%04d\",\"ts\":%lld,\"seq\":%llu,\"temperature\":%.3f,"
        "\"humidity\":%.2f,\"pressure\":%.2f,\"battery\":%.3f,\"status\":\"%s\",\"site\":\"site-%02d\"}",
        int(k % 1000), static_cast<long long>(1764072000000LL + int64_t(k)),
        static_cast<unsigned long long>(k), -20.0 + double(k % 6500) / 100.0,
        double(k % 10000) / 100.0, 950.0 + double(k % 10000) / 100.0, 3.0 + double(k % 1200) / 1000.0,
        kStatus[k % 3], int(k % 17));
    if (++id == 0) id = 1;
    sent_at[id].store(NowNs(), std::memory_order_relaxed);
    outstanding.fetch_add(1);
    c.Send(Publish(topic, std::string(payload, size_t(len)), 1, id));
  }
  // Let the acknowledgements in flight arrive, then close.
  int64_t deadline = NowNs() + 2000000000LL;
  while (outstanding.load() > 0 && NowNs() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ::shutdown(c.fd(), SHUT_RDWR);
  reader.join();
  std::lock_guard<std::mutex> l(st->mu);
  st->latencies.insert(st->latencies.end(), local.begin(), local.end());
}

void PublishAcked(const Args& a) {
  PubStats st;
  SubStats subst;
  std::atomic<bool> stop{false}, sub_stop{false};
  std::vector<std::unique_ptr<Conn>> subs;
  std::vector<std::thread> sub_threads;
  for (int i = 0; i < a.subs; ++i) {
    subs.push_back(std::make_unique<Conn>("bench-asub-" + std::to_string(i) + "-" + std::to_string(getpid())));
    subs.back()->Send(Subscribe("bench/#", 1));
    uint8_t h;
    std::string b;
    if (!subs.back()->Read(&h, &b) || (h >> 4) != 9) Die("suback");
  }
  for (auto& s : subs) sub_threads.emplace_back(RunSubscriber, s.get(), 1, &subst, &sub_stop, false);
  std::vector<std::thread> pubs;
  for (int i = 0; i < a.pubs; ++i) pubs.emplace_back(RunAckedPublisher, i, std::cref(a), &st, &stop);
  std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(a.warmup * 1000)));
  uint64_t r0 = subst.received.load();
  st.measuring = true;
  int64_t t0 = NowNs();
  std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(a.seconds * 1000)));
  st.measuring = false;
  uint64_t acked = st.acked.load();
  uint64_t r1 = subst.received.load();
  int64_t t1 = NowNs();
  g_stopping = true;
  stop = true;
  for (auto& t : pubs) t.join();
  sub_stop = true;
  for (auto& s : subs) ::shutdown(s->fd(), SHUT_RDWR);
  for (auto& t : sub_threads) t.join();
  double secs = double(t1 - t0) / 1e9;
  std::vector<int64_t> lat;
  {
    std::lock_guard<std::mutex> l(st.mu);
    lat = st.latencies;
  }
  double p50 = Percentile(lat, 0.50), p99 = Percentile(lat, 0.99);
  std::printf("{\"mode\": \"publish\", \"pubs\": %d, \"window\": %d, \"rate\": %.0f, \"subs\": %d, "
              "\"acked_per_s\": %.0f, \"received_per_s\": %.0f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
              "\"samples\": %zu}\n",
              a.pubs, a.window, a.rate, a.subs, double(acked) / secs,
              a.subs ? double(r1 - r0) / secs : -1.0, p50, p99, lat.size());
  std::fflush(stdout);
}

void Idle(const Args& a) {
  std::vector<int> fds;
  std::string connect;
  {
    std::string body;
    PutStr(&body, "MQTT");
    body += char(4);
    body += char(g_user.empty() ? 0x02 : 0xC2);
    body += char(0);
    body += char(0);
    connect = body;
  }
  for (int i = 0; i < a.clients; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) Die("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(g_port));
    inet_pton(AF_INET, g_host.c_str(), &addr.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Die("connect");
    std::string body = connect;
    PutStr(&body, "idle-" + std::to_string(i) + "-" + std::to_string(getpid()));
    if (!g_user.empty()) {
      PutStr(&body, g_user);
      PutStr(&body, g_pass);
    }
    std::string pkt = Packet(0x10, body);
    if (::send(fd, pkt.data(), pkt.size(), MSG_NOSIGNAL) != ssize_t(pkt.size())) Die("send");
    fds.push_back(fd);
    if (fds.size() % 500 == 0) {
      // Drain CONNACKs of this batch so the broker's accept queue never overflows.
      for (size_t k = fds.size() - 500; k < fds.size(); ++k) {
        char b[4];
        if (::recv(fds[k], b, 4, MSG_WAITALL) != 4 || b[0] != 0x20) Die("connack");
      }
    }
  }
  for (size_t k = fds.size() - fds.size() % 500; k < fds.size(); ++k) {
    char b[4];
    if (::recv(fds[k], b, 4, MSG_WAITALL) != 4 || b[0] != 0x20) Die("connack");
  }
  std::printf("{\"mode\": \"idle\", \"connected\": %zu}\n", fds.size());
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(a.hold * 1000)));
  for (int fd : fds) ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: mqtt_bench throughput|latency|idle|publish --port P [options]\n");
    return 2;
  }
  Args a;
  a.mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port") g_port = std::atoi(v.c_str());
    else if (k == "--host") g_host = v;
    else if (k == "--user") g_user = v;
    else if (k == "--password") g_pass = v;
    else if (k == "--qos") a.qos = std::atoi(v.c_str());
    else if (k == "--pubs") a.pubs = std::atoi(v.c_str());
    else if (k == "--subs") a.subs = std::atoi(v.c_str());
    else if (k == "--payload") a.payload = std::max(8, std::atoi(v.c_str()));
    else if (k == "--json") a.json = v == "1";
    else if (k == "--seconds") a.seconds = std::atof(v.c_str());
    else if (k == "--rate") a.rate = std::atof(v.c_str());
    else if (k == "--clients") a.clients = std::atoi(v.c_str());
    else if (k == "--hold") a.hold = std::atof(v.c_str());
    else if (k == "--window") a.window = std::max(1, std::min(60000, std::atoi(v.c_str())));
    else if (k == "--warmup") a.warmup = std::atof(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (a.mode == "throughput") Throughput(a, false);
  else if (a.mode == "latency") Throughput(a, true);
  else if (a.mode == "idle") Idle(a);
  else if (a.mode == "publish") PublishAcked(a);
  else return 2;
  return 0;
}
