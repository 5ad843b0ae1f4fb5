#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "core/strings.h"

namespace tarn {

Result<ListenAddress> ListenAddress::Parse(std::string_view s) {
  ListenAddress a;
  s = Trim(s);
  if (s == "off" || s == "false" || s == "disabled") {
    a.enabled = false;
    return a;
  }
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument,
                 "listen address '" + std::string(s) + "' is not HOST:PORT or off");
  }
  std::string host(s.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  auto port = ParseUint64(s.substr(colon + 1));
  if (!port || *port > 65535) {
    return Error(ErrorCode::kInvalidArgument,
                 "listen address '" + std::string(s) + "' has no valid port (0-65535)");
  }
  a.host = host;
  a.port = static_cast<uint16_t>(*port);
  return a;
}

std::string ListenAddress::ToString() const {
  if (!enabled) return "off";
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

bool Config::ServiceEnabled(const std::string& name) const {
  auto it = services.find(name);
  return it == services.end() || it->second;
}

namespace {

Status YamlError(const std::string& file, const YAML::Node& node, const std::string& what) {
  int line = node.Mark().line >= 0 ? node.Mark().line + 1 : 0;
  return Error(ErrorCode::kInvalidArgument, file + ":" + std::to_string(line) + ": " + what);
}

template <typename T>
Status Read(const std::string& file, const YAML::Node& node, const std::string& key, T* out) {
  try {
    *out = node.as<T>();
  } catch (const YAML::Exception&) {
    return YamlError(file, node, "field '" + key + "' has the wrong type");
  }
  return Status::OK();
}

Status ReadListen(const std::string& file, const YAML::Node& node, const std::string& key,
                  ListenAddress* out) {
  std::string s;
  RETURN_IF_ERROR(Read(file, node, key, &s));
  auto a = ListenAddress::Parse(s);
  if (!a.ok()) return YamlError(file, node, "field '" + key + "': " + a.status().message());
  *out = *a;
  return Status::OK();
}

}  // namespace

Result<Config> LoadConfigFile(const std::string& path, Config c) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return Error(ErrorCode::kNotFound, "config file " + path + " cannot be read");
  } catch (const YAML::Exception& e) {
    return Error(ErrorCode::kInvalidArgument,
                 path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  c.source_file = path;
  if (!root || root.IsNull()) return c;
  if (!root.IsMap()) return YamlError(path, root, "the top level must be a mapping");
  // Copy each pair: yaml-cpp's iterators hand out proxies whose members must not be bound
  // to references past the full expression.
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node key_node = it->first;
    const YAML::Node v = it->second;
    std::string key = key_node.as<std::string>();
    if (key == "data_dir") {
      RETURN_IF_ERROR(Read(path, v, key, &c.data_dir));
    } else if (key == "account_id") {
      RETURN_IF_ERROR(Read(path, v, key, &c.account_id));
    } else if (key == "region") {
      RETURN_IF_ERROR(Read(path, v, key, &c.region));
    } else if (key == "listen") {
      if (!v.IsMap()) return YamlError(path, v, "field 'listen' must be a mapping");
      for (auto l = v.begin(); l != v.end(); ++l) {
        std::string name = l->first.as<std::string>();
        ListenAddress* dst = name == "api"       ? &c.api
                             : name == "sql"     ? &c.sql
                             : name == "mqtt"    ? &c.mqtt
                             : name == "mqtts"   ? &c.mqtts
                             : name == "mqtt_ws" ? &c.mqtt_ws
                             : name == "console" ? &c.console
                                                 : nullptr;
        if (!dst) return YamlError(path, l->first, "unknown listener 'listen." + name + "'");
        RETURN_IF_ERROR(ReadListen(path, l->second, "listen." + name, dst));
      }
    } else if (key == "tls") {
      if (!v.IsMap()) return YamlError(path, v, "field 'tls' must be a mapping");
      for (auto t = v.begin(); t != v.end(); ++t) {
        std::string name = t->first.as<std::string>();
        std::string* dst = name == "cert_file"        ? &c.tls.cert_file
                           : name == "key_file"       ? &c.tls.key_file
                           : name == "client_ca_file" ? &c.tls.client_ca_file
                                                      : nullptr;
        if (!dst) return YamlError(path, t->first, "unknown field 'tls." + name + "'");
        RETURN_IF_ERROR(Read(path, t->second, "tls." + name, dst));
      }
    } else if (key == "http") {
      if (!v.IsMap()) return YamlError(path, v, "field 'http' must be a mapping");
      for (auto h = v.begin(); h != v.end(); ++h) {
        std::string name = h->first.as<std::string>();
        uint32_t* dst = name == "max_header_bytes"    ? &c.http.max_header_bytes
                        : name == "header_timeout_ms" ? &c.http.header_timeout_ms
                        : name == "idle_timeout_ms"   ? &c.http.idle_timeout_ms
                        : name == "max_connections"   ? &c.http.max_connections
                                                      : nullptr;
        if (!dst) return YamlError(path, h->first, "unknown field 'http." + name + "'");
        RETURN_IF_ERROR(Read(path, h->second, "http." + name, dst));
      }
    } else if (key == "mqtt_broker") {
      if (!v.IsMap()) return YamlError(path, v, "field 'mqtt_broker' must be a mapping");
      for (auto h = v.begin(); h != v.end(); ++h) {
        std::string name = h->first.as<std::string>();
        std::string k = "mqtt_broker." + name;
        auto& m = c.mqtt_broker;
        if (name == "allow_anonymous") RETURN_IF_ERROR(Read(path, h->second, k, &m.allow_anonymous));
        else if (name == "max_packet_size") RETURN_IF_ERROR(Read(path, h->second, k, &m.max_packet_size));
        else if (name == "max_queued_messages") RETURN_IF_ERROR(Read(path, h->second, k, &m.max_queued_messages));
        else if (name == "max_session_expiry") RETURN_IF_ERROR(Read(path, h->second, k, &m.max_session_expiry));
        else if (name == "cert_file") RETURN_IF_ERROR(Read(path, h->second, k, &m.cert_file));
        else if (name == "key_file") RETURN_IF_ERROR(Read(path, h->second, k, &m.key_file));
        else if (name == "client_ca_file") RETURN_IF_ERROR(Read(path, h->second, k, &m.client_ca_file));
        else if (name == "require_client_cert") RETURN_IF_ERROR(Read(path, h->second, k, &m.require_client_cert));
        else return YamlError(path, h->first, "unknown field '" + k + "'");
      }
    } else if (key == "streams") {
      if (!v.IsMap()) return YamlError(path, v, "field 'streams' must be a mapping");
      for (auto h = v.begin(); h != v.end(); ++h) {
        std::string name = h->first.as<std::string>();
        std::string k = "streams." + name;
        if (name == "wal_quota_mb") RETURN_IF_ERROR(Read(path, h->second, k, &c.streams.wal_quota_mb));
        else if (name == "wal_segment_mb") RETURN_IF_ERROR(Read(path, h->second, k, &c.streams.wal_segment_mb));
        else if (name == "wal_committers") RETURN_IF_ERROR(Read(path, h->second, k, &c.streams.wal_committers));
        else if (name == "flush_threads") RETURN_IF_ERROR(Read(path, h->second, k, &c.streams.flush_threads));
        else if (name == "dedup_window_seconds") RETURN_IF_ERROR(Read(path, h->second, k, &c.streams.dedup_window_seconds));
        else if (name == "dedup_max_entries") RETURN_IF_ERROR(Read(path, h->second, k, &c.streams.dedup_max_entries));
        else if (name == "compaction_files") RETURN_IF_ERROR(Read(path, h->second, k, &c.streams.compaction_files));
        else if (name == "compaction_grace_seconds") RETURN_IF_ERROR(Read(path, h->second, k, &c.streams.compaction_grace_seconds));
        else if (name == "zero_interval_gap_ms") RETURN_IF_ERROR(Read(path, h->second, k, &c.streams.zero_interval_gap_ms));
        else return YamlError(path, h->first, "unknown field '" + k + "'");
      }
    } else if (key == "sql") {
      if (!v.IsMap()) return YamlError(path, v, "field 'sql' must be a mapping");
      for (auto h = v.begin(); h != v.end(); ++h) {
        std::string name = h->first.as<std::string>();
        std::string k = "sql." + name;
        auto& q = c.sql_limits;
        if (name == "max_connections") RETURN_IF_ERROR(Read(path, h->second, k, &q.max_connections));
        else if (name == "max_connections_per_user") RETURN_IF_ERROR(Read(path, h->second, k, &q.max_connections_per_user));
        else if (name == "max_queries_per_user") RETURN_IF_ERROR(Read(path, h->second, k, &q.max_queries_per_user));
        else if (name == "statement_timeout_ms") RETURN_IF_ERROR(Read(path, h->second, k, &q.statement_timeout_ms));
        else if (name == "memory_limit") RETURN_IF_ERROR(Read(path, h->second, k, &q.memory_limit));
        else if (name == "threads") RETURN_IF_ERROR(Read(path, h->second, k, &q.threads));
        else if (name == "users") {
          if (!h->second.IsMap()) return YamlError(path, h->second, "field 'sql.users' must be a mapping");
          for (auto u = h->second.begin(); u != h->second.end(); ++u) {
            std::string login = u->first.as<std::string>();
            if (!u->second.IsMap()) return YamlError(path, u->second, "field 'sql.users." + login + "' must be a mapping");
            SqlConfig::UserLimits limits;
            for (auto f = u->second.begin(); f != u->second.end(); ++f) {
              std::string field = f->first.as<std::string>();
              std::string fk = "sql.users." + login + "." + field;
              uint64_t value = 0;
              if (field != "max_connections" && field != "max_queries" && field != "statement_timeout_ms") {
                return YamlError(path, f->first, "unknown field '" + fk + "'");
              }
              RETURN_IF_ERROR(Read(path, f->second, fk, &value));
              if (field == "max_connections") limits.max_connections = static_cast<int64_t>(value);
              else if (field == "max_queries") limits.max_queries = static_cast<int64_t>(value);
              else limits.statement_timeout_ms = static_cast<int64_t>(value);
            }
            q.users[login] = limits;
          }
        }
        else return YamlError(path, h->first, "unknown field '" + k + "'");
      }
    } else if (key == "log") {
      if (!v.IsMap()) return YamlError(path, v, "field 'log' must be a mapping");
      for (auto h = v.begin(); h != v.end(); ++h) {
        std::string name = h->first.as<std::string>();
        if (name == "level") RETURN_IF_ERROR(Read(path, h->second, "log.level", &c.log_level));
        else if (name == "json") RETURN_IF_ERROR(Read(path, h->second, "log.json", &c.log_json));
        else if (name == "file") RETURN_IF_ERROR(Read(path, h->second, "log.file", &c.log_file));
        else return YamlError(path, h->first, "unknown field 'log." + name + "'");
      }
    } else if (key == "services") {
      if (!v.IsMap()) return YamlError(path, v, "field 'services' must be a mapping");
      for (auto s = v.begin(); s != v.end(); ++s) {
        bool on = true;
        std::string name = s->first.as<std::string>();
        RETURN_IF_ERROR(Read(path, s->second, "services." + name, &on));
        c.services[name] = on;
      }
    } else {
      return YamlError(path, key_node, "unknown field '" + key + "'");
    }
  }
  return c;
}

Status ApplyEnvironment(Config* c) {
  auto env = [](const char* name) -> const char* {
    const char* v = std::getenv(name);
    return (v && *v) ? v : nullptr;
  };
  if (auto v = env("TARN_DATA_DIR")) c->data_dir = v;
  if (auto v = env("TARN_ACCOUNT_ID")) c->account_id = v;
  if (auto v = env("TARN_REGION")) c->region = v;
  struct { const char* var; ListenAddress* dst; } listeners[] = {
      {"TARN_API_LISTEN", &c->api},       {"TARN_SQL_LISTEN", &c->sql},
      {"TARN_MQTT_LISTEN", &c->mqtt},     {"TARN_MQTTS_LISTEN", &c->mqtts},
      {"TARN_MQTT_WS_LISTEN", &c->mqtt_ws}, {"TARN_CONSOLE_LISTEN", &c->console},
  };
  for (auto& l : listeners) {
    if (auto v = env(l.var)) {
      auto a = ListenAddress::Parse(v);
      if (!a.ok()) return a.status().WithContext(l.var);
      *l.dst = *a;
    }
  }
  if (auto v = env("TARN_LOG_LEVEL")) c->log_level = v;
  if (auto v = env("TARN_MQTT_ALLOW_ANONYMOUS")) {
    c->mqtt_broker.allow_anonymous = std::string(v) == "1" || std::string(v) == "true";
  }
  if (auto v = env("TARN_LOG_JSON")) c->log_json = std::string(v) == "1" || std::string(v) == "true";
  return Status::OK();
}

Status ValidateConfig(const Config& c) {
  if (!c.account_id.empty()) {
    bool ok = c.account_id.size() == 12;
    for (char ch : c.account_id) ok = ok && ch >= '0' && ch <= '9';
    if (!ok) return Error(ErrorCode::kInvalidArgument, "account_id must be 12 digits, got '" + c.account_id + "'");
  }
  if (c.region.empty()) return Error(ErrorCode::kInvalidArgument, "region must not be empty");
  for (char ch : c.region) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
      return Error(ErrorCode::kInvalidArgument, "region '" + c.region + "' is not a region name");
  }
  if (c.mqtt_broker.cert_file.empty() != c.mqtt_broker.key_file.empty())
    return Error(ErrorCode::kInvalidArgument, "mqtt_broker.cert_file and mqtt_broker.key_file go together");
  if (c.streams.wal_quota_mb < 1 || c.streams.wal_segment_mb < 1 ||
      c.streams.wal_segment_mb > c.streams.wal_quota_mb)
    return Error(ErrorCode::kInvalidArgument,
                 "streams.wal_segment_mb must be at least 1 and at most streams.wal_quota_mb");
  if (c.streams.wal_committers < 1 || c.streams.wal_committers > 16 || c.streams.flush_threads < 1 ||
      c.streams.flush_threads > 64)
    return Error(ErrorCode::kInvalidArgument,
                 "streams.wal_committers must be 1 to 16 and streams.flush_threads 1 to 64");
  if (c.streams.dedup_window_seconds > 86400 || c.streams.dedup_max_entries > (uint64_t{1} << 27))
    return Error(ErrorCode::kInvalidArgument,
                 "streams.dedup_window_seconds must be at most 86400 and streams.dedup_max_entries "
                 "at most 134217728");
  if (c.streams.compaction_files == 1 || c.streams.compaction_files > 64 ||
      !(c.streams.compaction_grace_seconds >= 0 && c.streams.compaction_grace_seconds <= 86400))
    return Error(ErrorCode::kInvalidArgument,
                 "streams.compaction_files must be 0 (off) or 2 to 64 and "
                 "streams.compaction_grace_seconds 0 to 86400");
  if (c.streams.zero_interval_gap_ms > 60000)
    return Error(ErrorCode::kInvalidArgument, "streams.zero_interval_gap_ms must be at most 60000");
  if (c.mqtt_broker.max_packet_size < 64)
    return Error(ErrorCode::kInvalidArgument, "mqtt_broker.max_packet_size must be at least 64 bytes");
  if (c.sql_limits.max_connections < 1)
    return Error(ErrorCode::kInvalidArgument, "sql.max_connections must be at least 1");
  if (c.tls.cert_file.empty() != c.tls.key_file.empty())
    return Error(ErrorCode::kInvalidArgument, "tls.cert_file and tls.key_file go together");
  return Status::OK();
}

}  // namespace tarn
