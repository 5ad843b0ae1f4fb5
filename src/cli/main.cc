// `tarn`: one binary, a table of sub-commands (STYLE.md). Add a row to grow it.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace {

struct Command {
  const char* name;
  int (*run)(const std::vector<std::string>& args);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"serve", tarn::cli::RunServe, "run the lake: AWS APIs, SQL, MQTT and console in one process"},
    {"init", tarn::cli::RunInit, "create a data directory and its root user; print the credentials once"},
    {"version", tarn::cli::RunVersion, "print the version"},
    {"audit", tarn::cli::RunAudit, "audit trail tools: 'tarn audit verify --data-dir DIR' checks log files against signed digests"},
    {"apply", tarn::cli::RunApply, "create or update buckets, catalog, streams, things, rules from a YAML file"},
    {"simulate", tarn::cli::RunSimulate, "sensor devices publishing telemetry over MQTT (mutual TLS)"},
    {"sql-local", tarn::cli::RunSqlLocal, "debugging: run SQL on an in-memory embedded DuckDB, print CSV"},
    {"rules", tarn::cli::RunRules, "rules engine tools: `rules test` dry-runs a rule on a sample message"},
};

void Usage(FILE* out) {
  std::fprintf(out, "Tarn — a self-hosted data lake in one binary.\n\nUsage: tarn <command> [options]\n\nCommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out, "\nRun 'tarn <command> --help' for a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    Usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) return tarn::cli::RunVersion({});
  for (const Command& c : kCommands) {
    if (!std::strcmp(argv[1], c.name)) {
      std::vector<std::string> args;
      args.emplace_back(std::string("tarn ") + c.name);
      for (int i = 2; i < argc; ++i) args.emplace_back(argv[i]);
      return c.run(args);
    }
  }
  std::fprintf(stderr, "tarn: unknown command '%s'\n\n", argv[1]);
  Usage(stderr);
  return 2;
}
