#include "ops/metrics.h"

#include <gtest/gtest.h>

namespace tarn::ops {
namespace {

TEST(MetricsTest, PrometheusText) {
  MetricsRegistry r;
  r.Counter("reqs_total", "Requests", {{"service", "s3"}}).Inc(3);
  r.Counter("reqs_total", "Requests", {{"service", "s3"}}).Inc();  // same series
  r.Gauge("open", "Open things").Set(2);
  r.GaugeFunction("computed", "Computed", {}, [] { return 1.5; });
  auto& h = r.Histogram("lat_seconds", "Latency", {{"a", "x\"y"}}, {0.1, 1});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);
  std::string text = r.RenderPrometheus();
  EXPECT_NE(text.find("# TYPE reqs_total counter\nreqs_total{service=\"s3\"} 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("open 2\n"), std::string::npos);
  EXPECT_NE(text.find("computed 1.5\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{a=\"x\\\"y\",le=\"0.1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{a=\"x\\\"y\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_count{a=\"x\\\"y\"} 3\n"), std::string::npos);
}

}  // namespace
}  // namespace tarn::ops
