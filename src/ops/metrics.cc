#include "ops/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace tarn::ops {

void GaugeMetric::Add(double d) {
  double cur = value_.load(std::memory_order_relaxed);
  while (!value_.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
  }
}

HistogramMetric::HistogramMetric(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void HistogramMetric::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double cur = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

void HistogramMetric::Snapshot(std::vector<uint64_t>* cumulative, double* sum, uint64_t* count) const {
  cumulative->assign(bounds_.size() + 1, 0);
  uint64_t acc = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    acc += buckets_[i].load(std::memory_order_relaxed);
    (*cumulative)[i] = acc;
  }
  *sum = sum_.load(std::memory_order_relaxed);
  *count = acc;
}

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,    5,    10};
}

std::string RenderLabels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    for (char c : v) {
      if (c == '\\') out += "\\\\";
      else if (c == '"') out += "\\\"";
      else if (c == '\n') out += "\\n";
      else out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

MetricsRegistry::Family& MetricsRegistry::GetFamily(const std::string& name, Kind kind,
                                                    const std::string& help) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.kind = kind;
    it->second.help = help;
  }
  return it->second;
}

CounterMetric& MetricsRegistry::Counter(const std::string& name, const std::string& help,
                                        const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& fam = GetFamily(name, Kind::kCounter, help);
  auto& slot = fam.counters[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<CounterMetric>();
  return *slot;
}

GaugeMetric& MetricsRegistry::Gauge(const std::string& name, const std::string& help,
                                    const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& fam = GetFamily(name, Kind::kGauge, help);
  auto& slot = fam.gauges[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<GaugeMetric>();
  return *slot;
}

HistogramMetric& MetricsRegistry::Histogram(const std::string& name, const std::string& help,
                                            const Labels& labels, std::vector<double> bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& fam = GetFamily(name, Kind::kHistogram, help);
  auto& slot = fam.histograms[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<HistogramMetric>(std::move(bounds));
  return *slot;
}

void MetricsRegistry::GaugeFunction(const std::string& name, const std::string& help,
                                    const Labels& labels, std::function<double()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& fam = GetFamily(name, Kind::kGaugeFn, help);
  fam.functions[RenderLabels(labels)] = std::move(fn);
}

namespace {
std::string FormatDouble(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {  // shortest text that reads back as v
    std::snprintf(buf, sizeof(buf), "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// Inserts le="x" into an existing rendered label set.
std::string WithLe(const std::string& labels, const std::string& le) {
  if (labels.empty()) return "{le=\"" + le + "\"}";
  return labels.substr(0, labels.size() - 1) + ",le=\"" + le + "\"}";
}
}  // namespace

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out.reserve(16 * 1024);
  for (const auto& [name, fam] : families_) {
    const char* type = fam.kind == Kind::kCounter     ? "counter"
                       : fam.kind == Kind::kHistogram ? "histogram"
                                                      : "gauge";
    out += "# HELP " + name + " " + fam.help + "\n";
    out += "# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, c] : fam.counters) {
      out += name + labels + " " + std::to_string(c->value()) + "\n";
    }
    for (const auto& [labels, g] : fam.gauges) {
      out += name + labels + " " + FormatDouble(g->value()) + "\n";
    }
    for (const auto& [labels, fn] : fam.functions) {
      out += name + labels + " " + FormatDouble(fn()) + "\n";
    }
    for (const auto& [labels, h] : fam.histograms) {
      std::vector<uint64_t> cum;
      double sum;
      uint64_t count;
      h->Snapshot(&cum, &sum, &count);
      for (size_t i = 0; i < h->bounds().size(); ++i) {
        out += name + "_bucket" + WithLe(labels, FormatDouble(h->bounds()[i])) + " " +
               std::to_string(cum[i]) + "\n";
      }
      out += name + "_bucket" + WithLe(labels, "+Inf") + " " + std::to_string(cum.back()) + "\n";
      out += name + "_sum" + labels + " " + FormatDouble(sum) + "\n";
      out += name + "_count" + labels + " " + std::to_string(count) + "\n";
    }
  }
  return out;
}

MetricsRegistry& Metrics() {
  static MetricsRegistry* registry = new MetricsRegistry();
  return *registry;
}

}  // namespace tarn::ops
