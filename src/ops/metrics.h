// Process metrics in the Prometheus text format (served at GET /metrics).
//
// Metrics are created once (registration takes a lock) and updated lock-free on hot paths:
// keep the returned reference. A metric is identified by name + label set; asking again
// returns the same object. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tarn::ops {

using Labels = std::vector<std::pair<std::string, std::string>>;

class CounterMetric {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class GaugeMetric {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A histogram with fixed upper bounds (seconds, bytes …).
class HistogramMetric {
 public:
  explicit HistogramMetric(std::vector<double> bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts per bound, +Inf last; sum and count.
  void Snapshot(std::vector<uint64_t>* cumulative, double* sum, uint64_t* count) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Latency buckets in seconds, 50 µs … 10 s.
std::vector<double> LatencyBuckets();

class MetricsRegistry {
 public:
  CounterMetric& Counter(const std::string& name, const std::string& help, const Labels& labels = {});
  GaugeMetric& Gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  HistogramMetric& Histogram(const std::string& name, const std::string& help,
                             const Labels& labels = {}, std::vector<double> bounds = LatencyBuckets());
  // A gauge computed when scraped.
  void GaugeFunction(const std::string& name, const std::string& help, const Labels& labels,
                     std::function<double()> fn);

  std::string RenderPrometheus() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram, kGaugeFn };
  struct Family {
    Kind kind;
    std::string help;
    std::map<std::string, std::unique_ptr<CounterMetric>> counters;  // key: rendered labels
    std::map<std::string, std::unique_ptr<GaugeMetric>> gauges;
    std::map<std::string, std::unique_ptr<HistogramMetric>> histograms;
    std::map<std::string, std::function<double()>> functions;
  };
  Family& GetFamily(const std::string& name, Kind kind, const std::string& help);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;  // guarded by mu_
};

// The process-wide registry.
MetricsRegistry& Metrics();

// Renders {a="1",b="2"} with Prometheus escaping; empty labels render as "".
std::string RenderLabels(const Labels& labels);

}  // namespace tarn::ops
