// tarn simulate: N sensor devices publishing telemetry over MQTT, each its own thing with the
// certificate `tarn apply` wrote (mutual TLS), at a chosen total rate and QoS. Contract in
// docs/cli.md. Readings are deterministic for a --seed: every device draws from its own
// generator, so the same seed gives the same readings whatever the timing.
//
// --threads threads (default: one per core, at most one per device) each drive their own slice of
// the fleet through libmosquitto's non-blocking loop, at their share of the rate: one thread
// spends ~25-45 us of CPU per QoS 1 message over TLS, which alone would cap a run below the
// e2e benchmark's goal on any core. A device whose
// connection drops (broker restart) is reconnected with backoff and libmosquitto resends its
// unacknowledged QoS 1 messages (mosquitto.h, mosquitto_new: "Calling mosquitto_reconnect will
// cause the messages to be resent"). A message counts as acked on its PUBACK (QoS 1) or once
// written to the socket (QoS 0).
#include <mosquitto.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/apply_spec.h"
#include "cli/commands.h"

namespace tarn::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

struct Pending {
  int64_t seq;
  bool malformed;
};

struct Device {
  std::string name;
  std::string topic;
  mosquitto* mosq = nullptr;
  std::atomic<bool> connected{false};  // read by the progress line's thread
  Clock::time_point next_reconnect{};
  int backoff_ms = 250;
  std::mt19937_64 rng;
  std::mt19937_64 malformed_rng;  // its own, so that --seed decides the same whatever the threads
  int64_t seq = 0;
  // The sensor model: a base climate, and for a few devices a drift or a failing battery.
  double temperature, humidity, pressure, battery;
  double drift = 0;
  bool failing = false;
  std::map<int, Pending> pending;  // by message id, until PUBACK
};

struct Totals {
  std::atomic<int64_t> sent{0}, acked{0}, sent_malformed{0}, acked_malformed{0}, failed{0};
  std::atomic<int64_t> reconnects{0}, resent{0};
};

Totals g_totals;

void OnPublish(mosquitto*, void* obj, int mid) {
  auto* d = static_cast<Device*>(obj);
  auto it = d->pending.find(mid);
  if (it == d->pending.end()) return;
  g_totals.acked++;
  if (it->second.malformed) g_totals.acked_malformed++;
  d->pending.erase(it);
}

void OnConnect(mosquitto*, void* obj, int rc) {
  auto* d = static_cast<Device*>(obj);
  if (rc == 0) {
    d->connected = true;
    d->backoff_ms = 250;
  } else {
    std::fprintf(stderr, "\nsimulate: %s: connection refused (%s)\n", d->name.c_str(),
                 mosquitto_connack_string(rc));
  }
}

std::atomic<int> g_disconnect_reports{0};

void OnDisconnect(mosquitto*, void* obj, int rc) {
  auto* d = static_cast<Device*>(obj);
  if (rc != 0 && g_disconnect_reports++ < 5) {  // the first few say why; the counters say how many
    std::fprintf(stderr, "\nsimulate: %s: connection lost (%s)\n", d->name.c_str(), mosquitto_strerror(rc));
  }
  if (d->connected) g_totals.resent += static_cast<int64_t>(d->pending.size());
  d->connected = false;
  d->next_reconnect = Clock::now() + std::chrono::milliseconds(d->backoff_ms);
}

double Uniform(std::mt19937_64& r, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(r);
}

std::string Reading(Device& d, bool malformed) {
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
  std::string out;
  out.reserve(160);
  auto number = [&out](double v) {
    char num[48];
    auto res = std::to_chars(num, num + sizeof num, v, std::chars_format::fixed, 2);
    out.append(num, res.ptr);
  };
  out.append("{\"device\":\"").append(d.name).append("\",\"seq\":").append(std::to_string(d.seq));
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
  return out;
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

  mosquitto_lib_init();
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<Device> fleet(devices);
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
    d.mosq = mosquitto_new(d.name.c_str(), true, &d);
    if (!d.mosq) {
      std::fprintf(stderr, "tarn simulate: mosquitto_new failed\n");
      return 1;
    }
    mosquitto_int_option(d.mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_max_inflight_messages_set(d.mosq, 100);
    mosquitto_connect_callback_set(d.mosq, OnConnect);
    mosquitto_disconnect_callback_set(d.mosq, OnDisconnect);
    mosquitto_publish_callback_set(d.mosq, OnPublish);
    if (!username.empty()) mosquitto_username_pw_set(d.mosq, username.c_str(), password.c_str());
    if (transport == "mqtts") {
      std::string dir = certs + "/" + d.name;
      bool have_cert = fs::exists(dir + "/certificate.pem.crt");
      std::string crt = dir + "/certificate.pem.crt", key = dir + "/private.pem.key";
      int rc = mosquitto_tls_set(d.mosq, ca_file.empty() ? nullptr : ca_file.c_str(),
                                 ca_file.empty() ? "/etc/ssl/certs" : nullptr,
                                 have_cert ? crt.c_str() : nullptr, have_cert ? key.c_str() : nullptr,
                                 nullptr);
      if (rc != MOSQ_ERR_SUCCESS) {
        std::fprintf(stderr, "tarn simulate: %s: TLS setup: %s\n", d.name.c_str(), mosquitto_strerror(rc));
        return 1;
      }
    }
    int rc = mosquitto_connect(d.mosq, host.c_str(), port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
      std::fprintf(stderr, "\ntarn simulate: %s: connect to %s: %s\n", d.name.c_str(), addr.c_str(),
                   mosquitto_strerror(rc));
      d.next_reconnect = Clock::now() + std::chrono::milliseconds(d.backoff_ms);
    }
  }

  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
  const auto drain_end = end + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(drain));
  auto progress = [&](bool final) {
    int up = 0;
    for (const Device& d : fleet) up += d.connected;
    double t = std::chrono::duration<double>(Clock::now() - start).count();
    std::fprintf(stderr, "\rsimulate %5.1fs  devices %d/%d  sent %lld  acked %lld  malformed %lld  "
                         "reconnects %lld  failed %lld   %s",
                 t, up, devices, (long long)g_totals.sent, (long long)g_totals.acked,
                 (long long)g_totals.sent_malformed, (long long)g_totals.reconnects,
                 (long long)g_totals.failed, final ? "\n" : "");
    std::fflush(stderr);
  };

  // One worker per slice of the fleet, at the slice's share of the rate; worker 0 also prints
  // the progress line. Each device (its libmosquitto client, pending map and generators) is
  // touched by its own worker only.
  auto worker = [&](size_t index, size_t lo, size_t hi) {
    const int count = static_cast<int>(hi - lo);
    const double interval = 1.0 / (rate * count / devices);
    int64_t ticks = 0;
    size_t rr = 0;
    auto last_progress = start;
    auto last_misc = start;
    std::vector<pollfd> pfds;
    std::vector<Device*> owners;
    for (;;) {
      auto now = Clock::now();
      bool sending = now < end && !g_stop;
      if (!sending) {
        int64_t outstanding = 0;
        for (size_t i = lo; i < hi; ++i) outstanding += static_cast<int64_t>(fleet[i].pending.size());
        if (outstanding == 0 || now >= drain_end || (g_stop > 0 && now >= end + std::chrono::seconds(2))) break;
      }
      // Publish what the schedule says is due, round-robin over the connected devices.
      if (sending) {
        int64_t due = static_cast<int64_t>(std::chrono::duration<double>(now - start).count() / interval) + 1;
        int budget = 2000;
        while (ticks < due && budget-- > 0) {
          ++ticks;
          Device* d = nullptr;
          for (int k = 0; k < count && !d; ++k) {
            Device& c = fleet[lo + rr++ % count];
            if (c.connected && c.pending.size() < 100) d = &c;
          }
          if (!d) break;  // nobody can take it now: the reading is not taken, nothing is skipped
          bool malformed = malformed_ratio > 0 && Uniform(d->malformed_rng, 0, 1) < malformed_ratio;
          std::string payload = Reading(*d, malformed);
          int mid = 0;
          int rc = mosquitto_publish(d->mosq, &mid, d->topic.c_str(), static_cast<int>(payload.size()),
                                     payload.data(), qos, false);
          bool conn_lost = rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO;
          if (conn_lost && (qos == 0 || mid == 0)) {
            // The connection died under us (a broker restart not yet noticed): the reading is
            // not taken; the device sends it again once reconnected.
            d->seq--;
            d->connected = false;
            if (d->next_reconnect == Clock::time_point{}) d->next_reconnect = Clock::now();
            continue;
          }
          g_totals.sent++;
          if (malformed) g_totals.sent_malformed++;
          if (conn_lost) rc = MOSQ_ERR_SUCCESS;  // queued with its id: libmosquitto resends it on reconnect
          if (rc == MOSQ_ERR_SUCCESS) {
            if (qos == 0) {
              g_totals.acked++;
              if (malformed) g_totals.acked_malformed++;
            } else {
              d->pending[mid] = Pending{d->seq, malformed};
            }
          } else {
            g_totals.failed++;
          }
        }
        ticks = std::max(ticks, due - 1);  // never build a backlog while disconnected
      }
      // Network I/O for the slice's clients in one poll() (libmosquitto's own loop uses
      // select(), which cannot watch descriptors above 1024 — a thousand devices have more);
      // reconnect the ones that dropped.
      pfds.clear();
      owners.clear();
      for (size_t i = lo; i < hi; ++i) {
        Device& d = fleet[i];
        if (!d.connected && Clock::now() >= d.next_reconnect && d.next_reconnect != Clock::time_point{}) {
          d.next_reconnect = Clock::now() + std::chrono::milliseconds(d.backoff_ms);
          d.backoff_ms = std::min(d.backoff_ms * 2, 2000);
          if (mosquitto_reconnect(d.mosq) == MOSQ_ERR_SUCCESS) g_totals.reconnects++;
        }
        int fd = mosquitto_socket(d.mosq);
        if (fd < 0) continue;
        pfds.push_back({fd, static_cast<short>(POLLIN | (mosquitto_want_write(d.mosq) ? POLLOUT : 0)), 0});
        owners.push_back(&d);
      }
      ::poll(pfds.data(), pfds.size(), sending ? 1 : 10);
      bool misc = std::chrono::duration<double>(Clock::now() - last_misc).count() > 0.1;
      if (misc) last_misc = Clock::now();
      for (size_t i = 0; i < pfds.size(); ++i) {
        Device& d = *owners[i];
        int rc = MOSQ_ERR_SUCCESS;
        if (pfds[i].revents & (POLLIN | POLLERR | POLLHUP)) rc = mosquitto_loop_read(d.mosq, 1);
        if (rc == MOSQ_ERR_SUCCESS && (pfds[i].revents & POLLOUT)) rc = mosquitto_loop_write(d.mosq, 1);
        if (rc == MOSQ_ERR_SUCCESS && misc) rc = mosquitto_loop_misc(d.mosq);
        if (rc != MOSQ_ERR_SUCCESS && d.connected) OnDisconnect(d.mosq, &d, rc);
        if (rc != MOSQ_ERR_SUCCESS && d.next_reconnect == Clock::time_point{})
          d.next_reconnect = Clock::now() + std::chrono::milliseconds(d.backoff_ms);
      }
      if (index == 0 && std::chrono::duration<double>(Clock::now() - last_progress).count() > 0.5) {
        last_progress = Clock::now();
        progress(false);
      }
    }
  };
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
  for (Device& d : fleet) {
    g_totals.failed += static_cast<int64_t>(d.pending.size());  // never acknowledged
    if (d.connected) {
      mosquitto_disconnect(d.mosq);
      mosquitto_loop(d.mosq, 10, 1);
    }
    mosquitto_destroy(d.mosq);
  }
  mosquitto_lib_cleanup();
  progress(true);
  nlohmann::json summary = {{"sent", g_totals.sent.load()},
                            {"acked", g_totals.acked.load()},
                            {"sent_malformed", g_totals.sent_malformed.load()},
                            {"acked_malformed", g_totals.acked_malformed.load()},
                            {"failed", g_totals.failed.load()},
                            {"reconnects", g_totals.reconnects.load()},
                            {"resent", g_totals.resent.load()},
                            {"devices", devices},
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
