// Structured logging. Every line has a time, a level, a component and a message; with
// json=true each line is one JSON object. Thread-safe. Secrets (secret keys, passwords,
// tokens, signatures) are never passed to these functions: log the access key id, not the
// secret; log "signature mismatch", not either signature.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace tarn::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

struct Options {
  Level level = Level::kInfo;
  bool json = false;
  std::string file;  // empty = stderr
};

void Init(const Options& options);
bool Enabled(Level level);
void Write(Level level, std::string_view component, std::string_view message);
// Parses "debug|info|warn|error|off".
bool ParseLevel(std::string_view s, Level* out);

template <typename... Args>
void Log(Level level, std::string_view component, fmt::format_string<Args...> f,
         Args&&... args) {
  if (!Enabled(level)) return;
  Write(level, component, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tarn::log

#define TLOG_DEBUG(component, ...) ::tarn::log::Log(::tarn::log::Level::kDebug, component, __VA_ARGS__)
#define TLOG_INFO(component, ...) ::tarn::log::Log(::tarn::log::Level::kInfo, component, __VA_ARGS__)
#define TLOG_WARN(component, ...) ::tarn::log::Log(::tarn::log::Level::kWarn, component, __VA_ARGS__)
#define TLOG_ERROR(component, ...) ::tarn::log::Log(::tarn::log::Level::kError, component, __VA_ARGS__)
