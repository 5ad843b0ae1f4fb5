// `tarn audit verify --data-dir DIR`: checks the audit trail's digest chain and log files
// (security/audit/audit.h) and reports every log file modified, deleted or inserted.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "lake/lake.h"

namespace tarn::cli {

int RunAudit(const std::vector<std::string>& args) {
  CLI::App app{"Audit trail tools.", "tarn audit"};
  app.require_subcommand(1);
  CLI::App* verify = app.add_subcommand(
      "verify", "verify the audit log files against the signed digest chain (exit 1 on any finding)");
  std::string data_dir;
  verify->add_option("--data-dir", data_dir, "data directory (the lake must not be running)")->required();
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto report = VerifyAuditTrail(data_dir);
  if (!report.ok()) {
    std::fprintf(stderr, "tarn audit verify: %s\n", report.status().message().c_str());
    return 2;
  }
  for (const std::string& p : report->problems) std::printf("%s\n", p.c_str());
  std::printf("%s: %d digest files, %d log files verified, %zu problems\n", report->problems.empty() ? "OK" : "FAILED",
              report->digests, report->log_files, report->problems.size());
  return report->problems.empty() ? 0 : 1;
}

}  // namespace tarn::cli
