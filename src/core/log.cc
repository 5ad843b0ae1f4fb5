#include "core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>

#include "core/clock.h"
#include "core/strings.h"

namespace tarn::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_json{false};
std::mutex g_mu;
std::shared_ptr<spdlog::logger> g_logger;  // guarded by g_mu for replacement

std::shared_ptr<spdlog::logger> Logger() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_logger) {
    g_logger = std::make_shared<spdlog::logger>(
        "tarn", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    g_logger->set_pattern("%v");
    g_logger->set_level(spdlog::level::trace);
  }
  return g_logger;
}

const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
    default: return "off";
  }
}
}  // namespace

void Init(const Options& options) {
  g_level = static_cast<int>(options.level);
  g_json = options.json;
  std::shared_ptr<spdlog::logger> logger;
  if (options.file.empty()) {
    logger = std::make_shared<spdlog::logger>(
        "tarn", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  } else {
    logger = std::make_shared<spdlog::logger>(
        "tarn", std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file));
  }
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::trace);
  logger->flush_on(spdlog::level::trace);
  std::lock_guard<std::mutex> lock(g_mu);
  g_logger = std::move(logger);
}

bool Enabled(Level level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

bool ParseLevel(std::string_view s, Level* out) {
  if (s == "debug") *out = Level::kDebug;
  else if (s == "info") *out = Level::kInfo;
  else if (s == "warn" || s == "warning") *out = Level::kWarn;
  else if (s == "error") *out = Level::kError;
  else if (s == "off") *out = Level::kOff;
  else return false;
  return true;
}

void Write(Level level, std::string_view component, std::string_view message) {
  std::string ts = FormatIso8601Millis(Clock::Real()->NowMicros());
  std::string line;
  if (g_json.load(std::memory_order_relaxed)) {
    line = fmt::format(R"({{"time":"{}","level":"{}","component":"{}","msg":"{}"}})", ts,
                       LevelName(level), JsonEscape(component), JsonEscape(message));
  } else {
    line = fmt::format("{} {:5} [{}] {}", ts, LevelName(level), component, message);
  }
  Logger()->info(line);
}

}  // namespace tarn::log
