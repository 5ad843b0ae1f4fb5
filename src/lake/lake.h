// The composition root: one Lake owns every module of a running `tarn serve` (DESIGN.md §2),
// wires them together (storage under S3, IAM under every API, the catalog under SQL …),
// starts the listeners and writes <data>/run/endpoints.json. Modules never find each other
// through globals; they are handed what they use here.
//
// Not thread-safe: Open/Start/Stop are called from the main thread.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/status.h"

namespace tarn {

// What `tarn init` (or the first `tarn serve`) created.
struct InitResult {
  bool created = false;  // false: the data dir was already initialised
  std::string account_id;
  std::string region;
  std::string access_key_id;
  std::string secret_access_key;  // shown once, never stored in the clear
  std::string password;           // shown once, stored only as a SCRAM verifier
};

// Creates the data directory, metadata, master key and root user if missing. Takes the
// data-dir lock for its duration unless `already_locked`.
Result<InitResult> InitializeDataDir(Config* config);

// `tarn audit verify`: checks the audit trail's signed digest chain and every log file
// against it (security/audit/audit.h). Takes the data-dir lock: the lake must be stopped.
struct AuditVerifyResult {
  int digests = 0;
  int log_files = 0;
  std::vector<std::string> problems;  // "MODIFIED <key>", "DELETED <key>", "INSERTED <key>" …
};
Result<AuditVerifyResult> VerifyAuditTrail(const std::string& data_dir);

class Lake {
 public:
  static Result<std::unique_ptr<Lake>> Open(Config config);
  ~Lake();

  // Starts every enabled listener and writes endpoints.json.
  Status Start();
  // Graceful stop: listeners stop accepting, in-flight requests finish, buffers flush.
  void Stop();

  const Config& config() const;
  // The endpoints as written to endpoints.json.
  std::string EndpointsJson() const;

 private:
  Lake();
  Status StartMqttListeners(std::vector<std::pair<std::string, std::string>>* endpoints);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tarn
