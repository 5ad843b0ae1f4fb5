// tarn simulate: N sensor devices publishing telemetry over MQTT, each its own thing with the
// certificate `tarn apply` wrote (mutual TLS), at a chosen total rate and QoS. Contract in
// docs/cli.md. Readings are deterministic for a --seed: every device draws from its own
// generator, so the same seed gives the same readings whatever the timing.
//
// --threads threads (default: one per core, at most one per device) each drive their own slice of
// the fleet with one epoll set, at their share of the rate. Each device is an MqttClient
// (mqtt_client.h: our own MQTT 3.1.1 client on non-blocking sockets and OpenSSL — one write()
// per publish, one read() per PUBACK; libmosquitto cost the e2e benchmark about twice the system
// calls, docs/performance.md "End to end"). A device whose connection drops (broker restart) is
// reconnected with backoff and resends its unacknowledged QoS 1 messages with DUP. A message
// counts as acked on its PUBACK (QoS 1) or once handed to the socket (QoS 0).
#include <netdb.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/apply_spec.h"
#include "cli/commands.h"
#include "cli/mqtt_client.h"

namespace tarn::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

struct Totals {
  std::atomic<int64_t> sent{0}, acked{0}, sent_malformed{0}, acked_malformed{0}, failed{0};
  std::atomic<int64_t> reconnects{0}, resent{0};
};

Totals g_totals;
std::atomic<int> g_disconnect_reports{0};

// MQTT 3.1.1 §3.2.2.3, worded as libmosquitto's mosquitto_connack_string() did.
const char* ConnackString(uint8_t rc) {
  switch (rc) {
    case 1: return "Connection Refused: unacceptable protocol version.";
    case 2: return "Connection Refused: identifier rejected.";
    case 3: return "Connection Refused: broker unavailable.";
    case 4: return "Connection Refused: bad user name or password.";
    case 5: return "Connection Refused: not authorised.";
    default: return "Connection Refused: unknown reason.";
  }
}

// The tag of a QoS 1 publish: whether the reading is malformed (for acked_malformed).
constexpr uint64_t kTagMalformed = 1;

struct Device final : MqttClient::Listener {
  std::string name;
  std::string topic;
  std::unique_ptr<MqttClient> client;
  Clock::time_point next_reconnect{};  // zero: no reconnect scheduled
  int backoff_ms = 250;
  bool ever_connected = false;
  std::mt19937_64 rng;
  std::mt19937_64 malformed_rng;  // its own, so that --seed decides the same whatever the threads
  int64_t seq = 0;
  // The sensor model: a base climate, and for a few devices a drift or a failing battery.
  double temperature, humidity, pressure, battery;
  double drift = 0;
  bool failing = false;

  void OnConnected() override {
    if (ever_connected) g_totals.reconnects++;
    ever_connected = true;
    backoff_ms = 250;
    next_reconnect = {};
  }
  void OnRefused(uint8_t rc) override {
    std::fprintf(stderr, "\nsimulate: %s: connection refused (%s)\n", name.c_str(), ConnackString(rc));
  }
  void OnLost(bool was_connected, const std::string& why) override {
    if (g_disconnect_reports++ < 5) {  // the first few say why; the counters say how many
      std::fprintf(stderr, "\nsimulate: %s: connection lost (%s)\n", name.c_str(), why.c_str());
    }
    if (was_connected) g_totals.resent += static_cast<int64_t>(client->unacked());
    next_reconnect = Clock::now() + std::chrono::milliseconds(backoff_ms);
  }
  void OnAcked(uint64_t tag) override {
    g_totals.acked++;
    if (tag & kTagMalformed) g_totals.acked_malformed++;
  }
};

double Uniform(std::mt19937_64& r, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(r);
}

// The next reading of `d`, into `out` (a buffer the worker reuses).
void Reading(Device& d, bool malformed, std::string& out) {
  d.seq++;
  auto& r = d.rng;
  d.temperature += Uniform(r, -0.15, 0.15) + d.drift;
  d.humidity = std::clamp(d.humidity + Uniform(r, -0.4, 0.4), 5.0, 99.0);
  d.pressure += Uniform(r, -0.2, 0.2);
  d.battery = std::max(0.0, d.battery - (d.failing ? 0.25 : 0.01));
  double temperature = d.temperature;
  // A failing device spikes now and then (a hot reading for the republish rule).
  if (d.failing && Uniform(r, 0, 1) < 0.05) temperature += Uniform(r, 15, 40);
  // std::to_chars rather than printf's %.2f: formatting was a tenth of the simulator's own
  // (user-space) CPU, and the simulator shares the machine with the lake it measures.
  out.clear();
  auto number = [&out](double v) {
    char num[48];
    auto res = std::to_chars(num, num + sizeof num, v, std::chars_format::fixed, 2);
    out.append(num, res.ptr);
  };
  out.append("{\"device\":\"").append(d.name).append("\",\"seq\":");
  char digits[24];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, d.seq).ptr);
  // A malformed reading is valid JSON a schema cannot take: the firmware reports a sensor
  // error as text.
  out.append(",\"temperature\":");
  if (malformed) {
    out.append("\"ERR_SENSOR\"");
  } else {
    number(temperature);
  }
  out.append(",\"humidity\":");
  number(d.humidity);
  out.append(",\"pressure\":");
  number(d.pressure);
  out.append(",\"battery\":");
  number(d.battery);
  out.push_back('}');
}

std::string ReadFile(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Usage(FILE* out) {
  std::fprintf(out,
      "Usage: tarn simulate [--endpoint-file DIR/run/endpoints.json] --devices N --rate MSGS_PER_S\n"
      "                     --duration SECONDS --qos 0|1 --seed N [--malformed-ratio R] [--json]\n"
      "                     [--certs DIR] [--ca-file FILE] [--transport mqtts|mqtt]\n"
      "                     [--topic 'sensors/{device}/telemetry'] [--drain SECONDS]\n"
      "                     [--things 'sensor-{001..050}'] [--username U --password P]\n"
      "                     [--threads N]\n\n"
      "Each device is a thing whose certificate `tarn apply` wrote to DIR/<thing>/ (default\n"
      "./certs); the first N thing folders in name order are used. Endpoint file default:\n"
      "$TARN_DATA_DIR/run/endpoints.json. CA default: DIR/keys/mqtt-server.crt next to it.\n");
  return out == stdout ? 0 : 2;
}

}  // namespace

int RunSimulate(const std::vector<std::string>& args) {
  std::string endpoint_file, certs = "certs", ca_file, transport = "mqtts";
  std::string topic_template = "sensors/{device}/telemetry";
  std::string things_pattern, username, password;
  if (const char* u = std::getenv("TARN_MQTT_USERNAME")) username = u;
  if (const char* p = std::getenv("TARN_MQTT_PASSWORD")) password = p;
  int devices = 0, qos = 1, threads = 0;
  double rate = 0, duration = 0, malformed_ratio = 0, drain = 20;
  uint64_t seed = 1;
  bool json_out = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
    try {
      if (a == "--help" || a == "-h") return Usage(stdout);
      if (a == "--json") { json_out = true; continue; }
      const std::string* v = next();
      if (!v) return Usage(stderr);
      if (a == "--endpoint-file") endpoint_file = *v;
      else if (a == "--devices") devices = std::stoi(*v);
      else if (a == "--rate") rate = std::stod(*v);
      else if (a == "--duration") duration = std::stod(*v);
      else if (a == "--qos") qos = std::stoi(*v);
      else if (a == "--seed") seed = std::stoull(*v);
      else if (a == "--malformed-ratio") malformed_ratio = std::stod(*v);
      else if (a == "--certs") certs = *v;
      else if (a == "--ca-file") ca_file = *v;
      else if (a == "--transport") transport = *v;
      else if (a == "--topic") topic_template = *v;
      else if (a == "--drain") drain = std::stod(*v);
      else if (a == "--threads") threads = std::stoi(*v);
      else if (a == "--things") things_pattern = *v;
      else if (a == "--username") username = *v;
      else if (a == "--password") password = *v;
      else {
        std::fprintf(stderr, "tarn simulate: unknown option '%s'\n", a.c_str());
        return Usage(stderr);
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "tarn simulate: bad value for %s\n", a.c_str());
      return 2;
    }
  }
  if (devices <= 0 || rate <= 0 || duration <= 0 || (qos != 0 && qos != 1) ||
      malformed_ratio < 0 || malformed_ratio > 1 || (transport != "mqtts" && transport != "mqtt") ||
      threads < 0) {
    std::fprintf(stderr, "tarn simulate: --devices, --rate and --duration must be positive, --qos 0 or 1, "
                         "--malformed-ratio in [0,1], --transport mqtts or mqtt, --threads >= 0\n");
    return 2;
  }
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::min(threads, devices);
  if (endpoint_file.empty()) {
    const char* d = std::getenv("TARN_DATA_DIR");
    if (!d) {
      std::fprintf(stderr, "tarn simulate: give --endpoint-file DIR/run/endpoints.json (or set TARN_DATA_DIR)\n");
      return 2;
    }
    endpoint_file = std::string(d) + "/run/endpoints.json";
  }
  auto eps = nlohmann::json::parse(ReadFile(endpoint_file), nullptr, false);
  if (!eps.is_object()) {
    std::fprintf(stderr, "tarn simulate: cannot read %s (is the lake running?)\n", endpoint_file.c_str());
    return 1;
  }
  if (!eps.contains(transport) || !eps[transport].is_string()) {
    std::fprintf(stderr, "tarn simulate: %s lists no \"%s\" listener (MQTT not enabled or not built)\n",
                 endpoint_file.c_str(), transport.c_str());
    return 1;
  }
  std::string addr = eps[transport];
  std::string host = addr.substr(0, addr.rfind(':'));
  int port = std::stoi(addr.substr(addr.rfind(':') + 1));
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (transport == "mqtts" && ca_file.empty()) {
    fs::path guess = fs::path(endpoint_file).parent_path().parent_path() / "keys" / "mqtt-server.crt";
    if (fs::exists(guess)) ca_file = guess.string();
  }

  // The things `tarn apply` wrote certificates for, in name order (or --things).
  std::vector<std::string> names;
  std::error_code ec;
  if (!things_pattern.empty()) {
    auto expanded = ExpandNameRange(things_pattern);
    if (!expanded.ok()) {
      std::fprintf(stderr, "tarn simulate: --things: %s\n", expanded.status().message().c_str());
      return 2;
    }
    names = *expanded;
  }
  for (const auto& e : fs::directory_iterator(certs, ec)) {
    if (!things_pattern.empty()) break;
    if (e.is_directory() && fs::exists(e.path() / "certificate.pem.crt") &&
        fs::exists(e.path() / "private.pem.key"))
      names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  if (transport == "mqtts" && username.empty()) {
    for (const auto& n : names) {
      if (!fs::exists(fs::path(certs) / n / "certificate.pem.crt")) {
        std::fprintf(stderr, "tarn simulate: no certificate for %s in %s (tarn apply writes them)\n",
                     n.c_str(), certs.c_str());
        return 1;
      }
    }
  }
  if (static_cast<int>(names.size()) < devices) {
    std::fprintf(stderr, "tarn simulate: %d devices asked for, but %s holds certificates for %zu things "
                         "(tarn apply writes them)\n", devices, certs.c_str(), names.size());
    return 1;
  }

  // The broker's address, resolved once (reconnects go to the same place).
  MqttEndpoint endpoint;
  {
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (gai != 0 || !res) {
      std::fprintf(stderr, "tarn simulate: cannot resolve %s: %s\n", host.c_str(), gai_strerror(gai));
      return 1;
    }
    std::memcpy(&endpoint.addr, res->ai_addr, res->ai_addrlen);
    endpoint.addr_len = res->ai_addrlen;
    freeaddrinfo(res);
  }
  endpoint.host = host;
  endpoint.keep_alive_s = 30;
  endpoint.max_inflight = 100;
  if (!username.empty()) {
    endpoint.has_credentials = true;
    endpoint.username = username;
    endpoint.password = password;
  }
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> tls(nullptr, SSL_CTX_free);
  if (transport == "mqtts") {
    std::string err;
    tls.reset(MakeClientTlsContext(ca_file, ca_file.empty() ? "/etc/ssl/certs" : "", &err));
    if (!tls) {
      std::fprintf(stderr, "tarn simulate: TLS setup: %s\n", err.c_str());
      return 1;
    }
    endpoint.tls = tls.get();
  }

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<Device> fleet(devices);
  std::vector<TlsIdentity> identities(transport == "mqtts" ? devices : 0);
  std::mt19937_64 master(seed);
  for (int i = 0; i < devices; ++i) {
    Device& d = fleet[i];
    d.name = names[i];
    d.topic = topic_template;
    if (auto p = d.topic.find("{device}"); p != std::string::npos) d.topic.replace(p, 8, d.name);
    d.rng.seed(master());
    d.malformed_rng.seed((seed ^ 0x9E3779B97F4A7C15ull) + static_cast<uint64_t>(i));
    d.temperature = Uniform(d.rng, 18, 26);
    d.humidity = Uniform(d.rng, 35, 60);
    d.pressure = Uniform(d.rng, 1005, 1020);
    d.battery = Uniform(d.rng, 70, 100);
    double kind = Uniform(d.rng, 0, 1);
    if (kind < 0.06) d.drift = 0.02;          // a sensor slowly drifting upward
    else if (kind < 0.10) d.failing = true;   // failing: battery drains, hot spikes
    const TlsIdentity* identity = nullptr;
    if (transport == "mqtts") {
      std::string dir = certs + "/" + d.name;
      if (fs::exists(dir + "/certificate.pem.crt")) {
        std::string err;
        if (!LoadTlsIdentity(dir + "/certificate.pem.crt", dir + "/private.pem.key", &identities[i], &err)) {
          std::fprintf(stderr, "tarn simulate: %s: TLS setup: %s\n", d.name.c_str(), err.c_str());
          return 1;
        }
        identity = &identities[i];
      }
    }
    d.client = std::make_unique<MqttClient>(&endpoint, d.name, identity, &d);
  }

  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
  const auto drain_end = end + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(drain));
  auto progress = [&](bool final) {
    int up = 0;
    for (const Device& d : fleet) up += d.client->connected();
    double t = std::chrono::duration<double>(Clock::now() - start).count();
    std::fprintf(stderr, "\rsimulate %5.1fs  devices %d/%d  sent %lld  acked %lld  malformed %lld  "
                         "reconnects %lld  failed %lld   %s",
                 t, up, devices, (long long)g_totals.sent, (long long)g_totals.acked,
                 (long long)g_totals.sent_malformed, (long long)g_totals.reconnects,
                 (long long)g_totals.failed, final ? "\n" : "");
    std::fflush(stderr);
  };

  // One worker per slice of the fleet, each with its own epoll set, at the slice's share of the
  // rate; worker 0 also prints the progress line. Each device (its client, generators) is
  // touched by its own worker only, until the workers have ended.
  std::vector<int> epoll_fds(threads, -1);
  auto worker = [&](size_t index, size_t lo, size_t hi) {
    const int count = static_cast<int>(hi - lo);
    const double interval = 1.0 / (rate * count / devices);
    const int ep = epoll_fds[index];
    int64_t ticks = 0;
    size_t rr = 0;
    auto last_progress = start;
    auto last_misc = start;
    std::vector<epoll_event> events(512);
    std::string payload;
    payload.reserve(256);
    for (size_t i = lo; i < hi; ++i) fleet[i].client->Connect(ep);
    for (;;) {
      auto now = Clock::now();
      bool sending = now < end && !g_stop;
      if (!sending) {
        int64_t outstanding = 0;
        for (size_t i = lo; i < hi; ++i) outstanding += static_cast<int64_t>(fleet[i].client->unacked());
        if (outstanding == 0 || now >= drain_end || (g_stop > 0 && now >= end + std::chrono::seconds(2))) break;
      }
      // Publish what the schedule says is due, round-robin over the connected devices.
      bool backlog = false;
      if (sending) {
        int64_t due = static_cast<int64_t>(std::chrono::duration<double>(now - start).count() / interval) + 1;
        int budget = 2000;
        while (ticks < due && budget-- > 0) {
          ++ticks;
          Device* d = nullptr;
          for (int k = 0; k < count && !d; ++k) {
            Device& c = fleet[lo + rr++ % count];
            if (qos == 0 ? c.client->connected() : c.client->CanPublish()) d = &c;
          }
          if (!d) break;  // nobody can take it now: the reading is not taken, nothing is skipped
          bool malformed = malformed_ratio > 0 && Uniform(d->malformed_rng, 0, 1) < malformed_ratio;
          Reading(*d, malformed, payload);
          auto r = d->client->Publish(d->topic, payload, qos, malformed ? kTagMalformed : 0);
          if (r == MqttClient::PublishResult::kLost && qos == 0) {
            // The connection died under us (a broker restart not yet noticed): the reading is
            // not taken; the device sends it again once reconnected.
            d->seq--;
            continue;
          }
          // QoS 1: kept until its PUBACK, resent after a reconnect if the connection died.
          g_totals.sent++;
          if (malformed) g_totals.sent_malformed++;
          if (qos == 0) {
            g_totals.acked++;
            if (malformed) g_totals.acked_malformed++;
          }
        }
        backlog = ticks < due && budget <= 0;
        ticks = std::max(ticks, due - 1);  // never build a backlog while disconnected
      }
      // Reconnects and keep-alives, a few hundred times a second rather than every loop.
      if (now - last_misc >= std::chrono::milliseconds(5)) {
        last_misc = now;
        for (size_t i = lo; i < hi; ++i) {
          Device& d = fleet[i];
          if (d.client->idle() && d.next_reconnect != Clock::time_point{} && now >= d.next_reconnect) {
            d.next_reconnect = {};
            d.backoff_ms = std::min(d.backoff_ms * 2, 2000);
            d.client->Connect(ep);
          }
          d.client->Tick(now);
        }
      }
      int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), backlog ? 0 : sending ? 1 : 10);
      for (int i = 0; i < n; ++i) static_cast<MqttClient*>(events[i].data.ptr)->OnEvent(events[i].events);
      if (index == 0 && std::chrono::duration<double>(Clock::now() - last_progress).count() > 0.5) {
        last_progress = Clock::now();
        progress(false);
      }
    }
  };
  for (int& ep : epoll_fds) {
    ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
      std::fprintf(stderr, "tarn simulate: epoll_create1: %s\n", std::strerror(errno));
      return 1;
    }
  }
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    size_t lo = static_cast<size_t>(devices) * t / threads, hi = static_cast<size_t>(devices) * (t + 1) / threads;
    if (t == threads - 1) {
      worker(t, lo, hi);  // the last slice on this thread
    } else {
      workers.emplace_back(worker, t, lo, hi);
    }
  }
  for (auto& w : workers) w.join();
  MqttClient::IoCounts io;
  for (Device& d : fleet) {
    g_totals.failed += static_cast<int64_t>(d.client->unacked());  // never acknowledged
    io.reads += d.client->io().reads;
    io.writes += d.client->io().writes;
    d.client->Disconnect();
  }
  for (int ep : epoll_fds) ::close(ep);
  progress(true);
  nlohmann::json summary = {{"sent", g_totals.sent.load()},
                            {"acked", g_totals.acked.load()},
                            {"sent_malformed", g_totals.sent_malformed.load()},
                            {"acked_malformed", g_totals.acked_malformed.load()},
                            {"failed", g_totals.failed.load()},
                            {"reconnects", g_totals.reconnects.load()},
                            {"resent", g_totals.resent.load()},
                            {"devices", devices},
                            {"socket_reads", io.reads},
                            {"socket_writes", io.writes},
                            {"seconds", std::chrono::duration<double>(Clock::now() - start).count()}};
  if (json_out) {
    std::printf("%s\n", summary.dump().c_str());
  } else {
    std::printf("simulate: sent %lld, acked %lld (malformed %lld/%lld), failed %lld, reconnects %lld\n",
                (long long)g_totals.sent, (long long)g_totals.acked, (long long)g_totals.acked_malformed,
                (long long)g_totals.sent_malformed, (long long)g_totals.failed,
                (long long)g_totals.reconnects);
  }
  return g_totals.failed == 0 ? 0 : 1;
}

}  // namespace tarn::cli
