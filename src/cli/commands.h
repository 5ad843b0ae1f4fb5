// Entry points of the `tarn` sub-commands (the table is in main.cc). Each takes the
// arguments after the sub-command name and returns the process exit status.
#pragma once

#include <string>
#include <vector>

namespace tarn::cli {

int RunServe(const std::vector<std::string>& args);
int RunInit(const std::vector<std::string>& args);
int RunVersion(const std::vector<std::string>& args);
int RunAudit(const std::vector<std::string>& args);
int RunSqlLocal(const std::vector<std::string>& args);
int RunApply(const std::vector<std::string>& args);
int RunSimulate(const std::vector<std::string>& args);
int RunRules(const std::vector<std::string>& args);

}  // namespace tarn::cli
