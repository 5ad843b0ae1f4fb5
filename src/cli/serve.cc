// tarn serve / tarn init / tarn version.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "core/config.h"
#include "core/log.h"
#include "core/strings.h"
#include "lake/lake.h"

namespace tarn::cli {

namespace {

constexpr const char* kVersion = "0.1.0";

// Parses CLI11 from our argument vector (args[0] is the program name).
int ParseArgs(CLI::App& app, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return -1;
}

// Config file, then environment, then flags.
Result<Config> BuildConfig(const std::string& config_file, const std::string& data_dir,
                           const std::map<std::string, std::string>& listen_flags) {
  Config c;
  if (!config_file.empty()) {
    ASSIGN_OR_RETURN(c, LoadConfigFile(config_file, c));
  }
  RETURN_IF_ERROR(ApplyEnvironment(&c));
  if (!data_dir.empty()) c.data_dir = data_dir;
  for (const auto& [name, value] : listen_flags) {
    if (value.empty()) continue;
    auto a = ListenAddress::Parse(value);
    if (!a.ok()) return a.status().WithContext("--" + name + "-listen");
    if (name == "api") c.api = *a;
    else if (name == "sql") c.sql = *a;
    else if (name == "mqtt") c.mqtt = *a;
    else if (name == "mqtts") c.mqtts = *a;
    else if (name == "mqtt-ws") c.mqtt_ws = *a;
    else if (name == "console") c.console = *a;
  }
  RETURN_IF_ERROR(ValidateConfig(c));
  return c;
}

void InitLogging(const Config& c) {
  log::Options o;
  if (!log::ParseLevel(c.log_level, &o.level)) o.level = log::Level::kInfo;
  o.json = c.log_json;
  o.file = c.log_file;
  log::Init(o);
}

void PrintCredentials(const InitResult& r, bool json, FILE* out) {
  if (json) {
    std::fprintf(out,
                 "{\"account_id\": \"%s\", \"region\": \"%s\", \"access_key_id\": \"%s\", "
                 "\"secret_access_key\": \"%s\", \"password\": \"%s\"}\n",
                 r.account_id.c_str(), r.region.c_str(), JsonEscape(r.access_key_id).c_str(),
                 JsonEscape(r.secret_access_key).c_str(), JsonEscape(r.password).c_str());
    return;
  }
  std::fprintf(out,
               "Lake initialised (account %s, region %s). Root credentials — shown once, store them now:\n"
               "  access key id:     %s\n"
               "  secret access key: %s\n"
               "  password (user root): %s\n",
               r.account_id.c_str(), r.region.c_str(), r.access_key_id.c_str(),
               r.secret_access_key.c_str(), r.password.c_str());
}

}  // namespace

int RunVersion(const std::vector<std::string>&) {
  std::printf("tarn %s\n", kVersion);
  return 0;
}

int RunInit(const std::vector<std::string>& args) {
  CLI::App app{"Create a data directory and its root user; print the root credentials once.\n"
               "TARN_ROOT_ACCESS_KEY_ID / TARN_ROOT_SECRET_ACCESS_KEY / TARN_ROOT_PASSWORD, when set,\n"
               "are used instead of generated ones; TARN_ACCOUNT_ID and TARN_REGION set the lake's\n"
               "account id and region.",
               "tarn init"};
  std::string data_dir, config_file;
  bool json = false;
  app.add_option("--data-dir", data_dir, "data directory")->required();
  app.add_option("--config", config_file, "tarn.yaml");
  app.add_flag("--json", json, "print one JSON object: access_key_id, secret_access_key, password");
  if (int rc = ParseArgs(app, args); rc >= 0) return rc;
  auto config = BuildConfig(config_file, data_dir, {});
  if (!config.ok()) {
    std::fprintf(stderr, "tarn init: %s\n", config.status().message().c_str());
    return 1;
  }
  InitLogging(*config);
  auto r = InitializeDataDir(&*config);
  if (!r.ok()) {
    std::fprintf(stderr, "tarn init: %s\n", r.status().message().c_str());
    return 1;
  }
  if (!r->created) {
    std::fprintf(stderr, "tarn init: %s is already initialised (account %s); credentials are shown only once\n",
                 config->data_dir.c_str(), r->account_id.c_str());
    return 1;
  }
  PrintCredentials(*r, json, stdout);
  return 0;
}

int RunServe(const std::vector<std::string>& args) {
  CLI::App app{"Run the lake: every enabled service in one process.", "tarn serve"};
  std::string data_dir, config_file;
  std::map<std::string, std::string> listen;
  app.add_option("--data-dir", data_dir, "data directory (default: tarn-data, or TARN_DATA_DIR)");
  app.add_option("--config", config_file, "tarn.yaml");
  for (const char* name : {"api", "sql", "mqtt", "mqtts", "mqtt-ws", "console"}) {
    app.add_option(std::string("--") + name + "-listen", listen[name],
                   std::string("HOST:PORT for the ") + name + " listener (port 0 = any free port; off = disabled)");
  }
  if (int rc = ParseArgs(app, args); rc >= 0) return rc;
  auto config = BuildConfig(config_file, data_dir, listen);
  if (!config.ok()) {
    std::fprintf(stderr, "tarn serve: %s\n", config.status().message().c_str());
    return 1;
  }
  InitLogging(*config);

  // Block the stop signals before any thread starts, so only sigwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // An uninitialised data dir is initialised the way `tarn init` does.
  {
    auto r = InitializeDataDir(&*config);
    if (!r.ok()) {
      std::fprintf(stderr, "tarn serve: %s\n", r.status().message().c_str());
      return 1;
    }
    if (r->created) {
      PrintCredentials(*r, false, stdout);
      std::fflush(stdout);
    }
  }
  auto lake = Lake::Open(*config);
  if (!lake.ok()) {
    std::fprintf(stderr, "tarn serve: %s\n", lake.status().message().c_str());
    return 1;
  }
  if (Status s = (*lake)->Start(); !s.ok()) {
    std::fprintf(stderr, "tarn serve: %s\n", s.message().c_str());
    return 1;
  }
  std::fprintf(stdout, "tarn serve: ready %s", (*lake)->EndpointsJson().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  TLOG_INFO("lake", "signal {} received, stopping", sig);
  (*lake)->Stop();
  TLOG_INFO("lake", "stopped");
  return 0;
}

}  // namespace tarn::cli
