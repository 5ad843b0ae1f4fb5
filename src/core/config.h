// The lake's configuration: tarn.yaml, then TARN_* environment variables, then command-line
// flags, each overriding the one before. Plain data; copy freely.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/status.h"

namespace tarn {

// A listener address: "HOST:PORT", "[::1]:PORT", port 0 = pick a free port, "off" = disabled.
struct ListenAddress {
  bool enabled = true;
  std::string host = "127.0.0.1";
  uint16_t port = 0;

  static Result<ListenAddress> Parse(std::string_view s);
  std::string ToString() const;  // "off" or "host:port"
};

struct TlsConfig {
  std::string cert_file;       // PEM certificate chain; empty = TLS off for the HTTP API
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // PEM CA bundle for client certificates (mutual TLS)
};

struct HttpLimits {
  uint32_t max_header_bytes = 64 * 1024;
  uint32_t header_timeout_ms = 10'000;  // whole request head must arrive within this
  uint32_t idle_timeout_ms = 60'000;    // keep-alive idle and per-read body progress
  uint32_t max_connections = 1024;
};

// The MQTT broker (gateway/mqtt). YAML section `mqtt_broker:`.
struct MqttConfig {
  bool allow_anonymous = false;        // accept CONNECT without credentials or certificate
  uint32_t max_packet_size = 1 << 20;  // bytes; larger packets end the connection (0x95)
  uint32_t max_queued_messages = 1000; // per session; when full, new messages are dropped
  uint32_t max_session_expiry = 0xFFFFFFFF;  // seconds a client may ask for
  // MQTTS: certificate and key (default: tls.cert_file/key_file, else a self-signed one
  // generated at <data>/keys/mqtt-server.crt), CA for client certificates (default:
  // tls.client_ca_file) and whether a client certificate is required (mutual TLS).
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
  bool require_client_cert = false;
};

// Delivery streams (docs/streams.md): each stream's write-ahead log under <data>/wal/<stream>/.
struct StreamsConfig {
  uint64_t wal_quota_mb = 1024;   // per stream; beyond it producers get ServiceUnavailable
  uint64_t wal_segment_mb = 64;   // a new segment file starts after this much
  uint64_t wal_committers = 3;    // fdatasyncs in flight at once per stream (pipelined commit)
  uint64_t flush_threads = 2;     // partitions converted and delivered in parallel
  // Device resends recognised by their origin (docs/streams.md "Exactly once from devices").
  uint64_t dedup_window_seconds = 600;
  uint64_t dedup_max_entries = 1048576;  // per stream
  // Compaction of small Parquet objects (docs/streams.md "Compaction"): fan-in (0 = off) and
  // how long merged inputs stay for queries that listed them (0 = delete at once).
  uint64_t compaction_files = 8;
  double compaction_grace_seconds = 30;
  // IntervalInSeconds 0: the least time between two flushes of one partition, so that a busy
  // stream writes a few objects a second rather than one per commit (0 = back to back).
  uint64_t zero_interval_gap_ms = 250;
};

// The SQL endpoint's limits (docs/sql.md "Limits"). YAML section `sql:`.
struct SqlConfig {
  uint32_t max_connections = 256;         // sessions at once; more get 53300
  uint32_t max_connections_per_user = 0;  // per SQL login; 0 = no limit; more get 53300
  uint32_t max_queries_per_user = 0;      // statements running at once per login across its
                                          // sessions; 0 = no limit; more get 53400
  uint64_t statement_timeout_ms = 0;      // default statement_timeout of every session; 0 = none
  std::string memory_limit;               // the warehouse's DuckDB memory_limit ("4GB", "512MB");
                                          // empty = DuckDB's default (80% of RAM)
  uint32_t threads = 0;                   // DuckDB worker threads; 0 = one per core
  // Per-login overrides of the limits above (YAML `sql.users.<login>:`, like PostgreSQL's
  // ALTER ROLE … CONNECTION LIMIT / SET statement_timeout); -1 = the default above, 0 = none.
  struct UserLimits {
    int64_t max_connections = -1;
    int64_t max_queries = -1;
    int64_t statement_timeout_ms = -1;
  };
  std::map<std::string, UserLimits> users;
};

struct Config {
  std::string data_dir = "tarn-data";
  std::string account_id;  // 12 digits; generated at init when empty
  std::string region = "us-east-1";

  ListenAddress api{true, "127.0.0.1", 9000};
  ListenAddress sql{true, "127.0.0.1", 5439};
  ListenAddress mqtt{true, "127.0.0.1", 1883};
  ListenAddress mqtts{true, "127.0.0.1", 8883};
  ListenAddress mqtt_ws{true, "127.0.0.1", 8083};
  ListenAddress console{true, "127.0.0.1", 9001};

  TlsConfig tls;
  HttpLimits http;
  MqttConfig mqtt_broker;
  StreamsConfig streams;
  SqlConfig sql_limits;  // YAML `sql:` (the listener itself is `listen.sql`)

  std::string log_level = "info";
  bool log_json = false;
  std::string log_file;

  // Services switched off in the config ("services: {mqtt: false}"); absent = on.
  std::map<std::string, bool> services;
  bool ServiceEnabled(const std::string& name) const;

  // Where the config came from, for error messages.
  std::string source_file;
};

// Reads `path` (YAML). Unknown keys and wrong types are errors naming the file, line and key.
Result<Config> LoadConfigFile(const std::string& path, Config base = Config());
// Applies TARN_* environment variables: TARN_DATA_DIR, TARN_ACCOUNT_ID, TARN_REGION,
// TARN_API_LISTEN, TARN_SQL_LISTEN, TARN_MQTT_LISTEN, TARN_MQTTS_LISTEN, TARN_MQTT_WS_LISTEN,
// TARN_CONSOLE_LISTEN, TARN_LOG_LEVEL, TARN_LOG_JSON, TARN_MQTT_ALLOW_ANONYMOUS.
Status ApplyEnvironment(Config* config);
// Checks values that no single field can (account id shape, region).
Status ValidateConfig(const Config& config);

}  // namespace tarn
