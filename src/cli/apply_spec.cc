#include "cli/apply_spec.h"

#include <yaml-cpp/yaml.h>

#include <set>

#include "core/strings.h"

namespace tarn::cli {
namespace {

using nlohmann::json;

const char* kKindNames[] = {"bucket", "database", "table", "crawler",
                            "stream", "policy",   "thing", "rule"};

struct Ctx {
  std::string file;
  Status Fail(const YAML::Node& at, const std::string& field, const std::string& what) const {
    YAML::Mark m = at.Mark();
    return Error(ErrorCode::kInvalidArgument, file + ":" + std::to_string(m.line + 1) + ":" +
                                                  std::to_string(m.column + 1) + ": " + field +
                                                  ": " + what);
  }
};

// YAML scalars are untyped; quoted ones stay strings, plain ones become numbers, booleans or
// null when they read as such (YAML 1.2 core schema).
json ScalarToJson(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s == "null" || s == "~" || s == "Null" || s == "NULL") return nullptr;
  if (auto i = ParseInt64(s); i && !s.empty() && (s[0] != '0' || s.size() == 1)) return *i;
  if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '.')) {
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end && *end == '\0' && s.find_first_of("eE.") != std::string::npos) return d;
  }
  return s;
}

Result<json> ToJson(const Ctx& ctx, const YAML::Node& n, const std::string& field) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return json(nullptr);
    case YAML::NodeType::Scalar:
      return ScalarToJson(n);
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (size_t i = 0; i < n.size(); ++i) {
        ASSIGN_OR_RETURN(json v, ToJson(ctx, n[i], field + "[" + std::to_string(i) + "]"));
        a.push_back(std::move(v));
      }
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (auto it = n.begin(); it != n.end(); ++it) {
        YAML::Node k = it->first;
        YAML::Node v = it->second;
        if (!k.IsScalar()) return ctx.Fail(k, field, "keys must be plain names");
        ASSIGN_OR_RETURN(json jv, ToJson(ctx, v, field + "." + k.Scalar()));
        o[k.Scalar()] = std::move(jv);
      }
      return o;
    }
    default:
      return ctx.Fail(n, field, "unsupported YAML node");
  }
}

// Checks that `map` has only `allowed` keys (+ any key when `allow_other`) and returns them.
Status CheckKeys(const Ctx& ctx, const YAML::Node& map, const std::string& field,
                 const std::set<std::string>& allowed) {
  if (!map.IsMap()) return ctx.Fail(map, field, "must be a mapping");
  for (auto it = map.begin(); it != map.end(); ++it) {
    YAML::Node k = it->first;
    if (!allowed.count(k.Scalar())) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return ctx.Fail(k, field + "." + k.Scalar(), "unknown field (expected one of: " + list + ")");
    }
  }
  return Status::OK();
}

Result<std::string> RequiredString(const Ctx& ctx, const YAML::Node& map, const std::string& key,
                                   const std::string& field) {
  YAML::Node v = map[key];
  if (!v) return ctx.Fail(map, field + "." + key, "required");
  if (!v.IsScalar() || v.Scalar().empty()) return ctx.Fail(v, field + "." + key, "must be a non-empty string");
  return v.Scalar();
}

Result<YAML::Node> Sequence(const Ctx& ctx, const YAML::Node& parent, const std::string& key,
                            const std::string& field) {
  YAML::Node v = parent[key];
  if (!v || v.IsNull()) return YAML::Node(YAML::NodeType::Sequence);
  if (!v.IsSequence()) return ctx.Fail(v, field, "must be a list");
  return v;
}

// Copies every key of `item` except `skip` into a JSON body.
Result<json> Body(const Ctx& ctx, const YAML::Node& item, const std::string& field,
                  const std::set<std::string>& skip) {
  json body = json::object();
  for (auto it = item.begin(); it != item.end(); ++it) {
    YAML::Node k = it->first;
    YAML::Node v = it->second;
    if (skip.count(k.Scalar())) continue;
    ASSIGN_OR_RETURN(json jv, ToJson(ctx, v, field + "." + k.Scalar()));
    body[k.Scalar()] = std::move(jv);
  }
  return body;
}

}  // namespace

const char* KindName(ResourceKind kind) { return kKindNames[static_cast<int>(kind)]; }

Result<std::vector<std::string>> ExpandNameRange(const std::string& pattern) {
  auto open = pattern.find('{');
  if (open == std::string::npos) return std::vector<std::string>{pattern};
  auto close = pattern.find('}', open);
  auto dots = pattern.find("..", open);
  if (close == std::string::npos || dots == std::string::npos || dots > close) {
    return Error(ErrorCode::kInvalidArgument, "a name range reads {FIRST..LAST}, e.g. sensor-{001..050}");
  }
  std::string a = pattern.substr(open + 1, dots - open - 1);
  std::string b = pattern.substr(dots + 2, close - dots - 2);
  auto from = ParseInt64(a), to = ParseInt64(b);
  if (!from || !to || *from < 0 || *to < *from || *to - *from >= 100000) {
    return Error(ErrorCode::kInvalidArgument, "bad name range {" + a + ".." + b + "}");
  }
  size_t width = (a.size() > 1 && a[0] == '0') ? a.size() : 0;
  std::vector<std::string> out;
  for (int64_t i = *from; i <= *to; ++i) {
    std::string n = std::to_string(i);
    if (n.size() < width) n.insert(0, width - n.size(), '0');
    out.push_back(pattern.substr(0, open) + n + pattern.substr(close + 1));
  }
  return out;
}

std::string SubsetDifference(const json& desired, const json& actual, const std::string& path) {
  const std::string here = path.empty() ? "(top)" : path;
  if (desired.is_object()) {
    if (!actual.is_object()) return here;
    for (auto it = desired.begin(); it != desired.end(); ++it) {
      std::string sub = path.empty() ? it.key() : path + "." + it.key();
      auto a = actual.find(it.key());
      if (a == actual.end()) {
        if (it.value().is_null()) continue;
        return sub;
      }
      std::string d = SubsetDifference(it.value(), *a, sub);
      if (!d.empty()) return d;
    }
    return "";
  }
  if (desired.is_array()) {
    if (!actual.is_array() || actual.size() != desired.size()) return here;
    for (size_t i = 0; i < desired.size(); ++i) {
      std::string d = SubsetDifference(desired[i], actual[i], path + "[" + std::to_string(i) + "]");
      if (!d.empty()) return d;
    }
    return "";
  }
  if (desired == actual) return "";
  auto text = [](const json& j) {
    if (j.is_string()) return j.get<std::string>();
    if (j.is_number_float()) {
      double d = j.get<double>();
      if (d == static_cast<double>(static_cast<int64_t>(d))) return std::to_string(static_cast<int64_t>(d));
    }
    return j.dump();
  };
  if (desired.is_primitive() && actual.is_primitive() && text(desired) == text(actual)) return "";
  return here;
}

Result<ApplySpec> ParseApplySpec(const std::string& file, const std::string& text) {
  Ctx ctx{file};
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Error(ErrorCode::kInvalidArgument, file + ":" + std::to_string(e.mark.line + 1) + ":" +
                                                  std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  ApplySpec spec;
  spec.file = file;
  if (root.IsNull()) return spec;
  RETURN_IF_ERROR(CheckKeys(ctx, root, "(top)", {"buckets", "catalog", "streams", "iot"}));
  std::set<std::string> seen;
  auto add = [&](Resource r, const YAML::Node& at, const std::string& field) -> Status {
    if (!seen.insert(r.Key()).second) return ctx.Fail(at, field, "duplicate " + r.Key());
    spec.resources.push_back(std::move(r));
    return Status::OK();
  };

  ASSIGN_OR_RETURN(YAML::Node buckets, Sequence(ctx, root, "buckets", "buckets"));
  for (size_t i = 0; i < buckets.size(); ++i) {
    std::string f = "buckets[" + std::to_string(i) + "]";
    YAML::Node b = buckets[i];
    RETURN_IF_ERROR(CheckKeys(ctx, b, f, {"name"}));
    Resource r;
      r.kind = ResourceKind::kBucket;
    ASSIGN_OR_RETURN(r.name, RequiredString(ctx, b, "name", f));
    r.line = b.Mark().line + 1;
    RETURN_IF_ERROR(add(std::move(r), b, f + ".name"));
  }

  if (YAML::Node cat = root["catalog"]; cat && !cat.IsNull()) {
    RETURN_IF_ERROR(CheckKeys(ctx, cat, "catalog", {"databases", "tables", "crawlers"}));
    ASSIGN_OR_RETURN(YAML::Node dbs, Sequence(ctx, cat, "databases", "catalog.databases"));
    for (size_t i = 0; i < dbs.size(); ++i) {
      std::string f = "catalog.databases[" + std::to_string(i) + "]";
      YAML::Node d = dbs[i];
      RETURN_IF_ERROR(CheckKeys(ctx, d, f, {"name", "Description", "LocationUri", "Parameters"}));
      Resource r;
      r.kind = ResourceKind::kDatabase;
      ASSIGN_OR_RETURN(r.name, RequiredString(ctx, d, "name", f));
      ASSIGN_OR_RETURN(r.body, Body(ctx, d, f, {"name"}));
      r.line = d.Mark().line + 1;
      RETURN_IF_ERROR(add(std::move(r), d, f + ".name"));
    }
    ASSIGN_OR_RETURN(YAML::Node tables, Sequence(ctx, cat, "tables", "catalog.tables"));
    for (size_t i = 0; i < tables.size(); ++i) {
      std::string f = "catalog.tables[" + std::to_string(i) + "]";
      YAML::Node t = tables[i];
      RETURN_IF_ERROR(CheckKeys(ctx, t, f,
                                {"database", "name", "Description", "Owner", "Retention",
                                 "StorageDescriptor", "PartitionKeys", "TableType", "Parameters"}));
      Resource r;
      r.kind = ResourceKind::kTable;
      ASSIGN_OR_RETURN(r.database, RequiredString(ctx, t, "database", f));
      ASSIGN_OR_RETURN(std::string name, RequiredString(ctx, t, "name", f));
      r.name = r.database + "." + name;
      ASSIGN_OR_RETURN(r.body, Body(ctx, t, f, {"database", "name"}));
      r.body["Name"] = name;
      if (!t["StorageDescriptor"]) return ctx.Fail(t, f + ".StorageDescriptor", "required");
      r.line = t.Mark().line + 1;
      RETURN_IF_ERROR(add(std::move(r), t, f + ".name"));
    }
    ASSIGN_OR_RETURN(YAML::Node crawlers, Sequence(ctx, cat, "crawlers", "catalog.crawlers"));
    for (size_t i = 0; i < crawlers.size(); ++i) {
      std::string f = "catalog.crawlers[" + std::to_string(i) + "]";
      YAML::Node c = crawlers[i];
      RETURN_IF_ERROR(CheckKeys(ctx, c, f,
                                {"name", "Role", "DatabaseName", "Description", "Targets",
                                 "Schedule", "TablePrefix", "SchemaChangePolicy",
                                 "RecrawlPolicy", "Configuration"}));
      Resource r;
      r.kind = ResourceKind::kCrawler;
      ASSIGN_OR_RETURN(r.name, RequiredString(ctx, c, "name", f));
      if (!c["Targets"]) return ctx.Fail(c, f + ".Targets", "required");
      ASSIGN_OR_RETURN(r.body, Body(ctx, c, f, {"name"}));
      r.line = c.Mark().line + 1;
      RETURN_IF_ERROR(add(std::move(r), c, f + ".name"));
    }
  }

  ASSIGN_OR_RETURN(YAML::Node streams, Sequence(ctx, root, "streams", "streams"));
  for (size_t i = 0; i < streams.size(); ++i) {
    std::string f = "streams[" + std::to_string(i) + "]";
    YAML::Node s = streams[i];
    RETURN_IF_ERROR(CheckKeys(ctx, s, f, {"name", "ExtendedS3DestinationConfiguration", "Tags"}));
    Resource r;
      r.kind = ResourceKind::kStream;
    ASSIGN_OR_RETURN(r.name, RequiredString(ctx, s, "name", f));
    if (!s["ExtendedS3DestinationConfiguration"]) {
      return ctx.Fail(s, f + ".ExtendedS3DestinationConfiguration", "required");
    }
    ASSIGN_OR_RETURN(r.body, Body(ctx, s, f, {"name"}));
    r.line = s.Mark().line + 1;
    RETURN_IF_ERROR(add(std::move(r), s, f + ".name"));
  }

  if (YAML::Node iot = root["iot"]; iot && !iot.IsNull()) {
    RETURN_IF_ERROR(CheckKeys(ctx, iot, "iot", {"certificates_dir", "policies", "things", "rules"}));
    spec.certificates_dir = "certs";
    if (YAML::Node cd = iot["certificates_dir"]) {
      if (!cd.IsScalar() || cd.Scalar().empty()) return ctx.Fail(cd, "iot.certificates_dir", "must be a path");
      spec.certificates_dir = cd.Scalar();
    }
    ASSIGN_OR_RETURN(YAML::Node policies, Sequence(ctx, iot, "policies", "iot.policies"));
    std::set<std::string> policy_names;
    for (size_t i = 0; i < policies.size(); ++i) {
      std::string f = "iot.policies[" + std::to_string(i) + "]";
      YAML::Node p = policies[i];
      RETURN_IF_ERROR(CheckKeys(ctx, p, f, {"name", "document"}));
      Resource r;
      r.kind = ResourceKind::kPolicy;
      ASSIGN_OR_RETURN(r.name, RequiredString(ctx, p, "name", f));
      YAML::Node doc = p["document"];
      if (!doc || !doc.IsMap()) return ctx.Fail(doc ? doc : p, f + ".document", "required: an IAM-style policy document");
      if (!doc["Statement"]) return ctx.Fail(doc, f + ".document.Statement", "required");
      ASSIGN_OR_RETURN(r.body, ToJson(ctx, doc, f + ".document"));
      r.line = p.Mark().line + 1;
      policy_names.insert(r.name);
      RETURN_IF_ERROR(add(std::move(r), p, f + ".name"));
    }
    ASSIGN_OR_RETURN(YAML::Node things, Sequence(ctx, iot, "things", "iot.things"));
    for (size_t i = 0; i < things.size(); ++i) {
      std::string f = "iot.things[" + std::to_string(i) + "]";
      YAML::Node t = things[i];
      RETURN_IF_ERROR(CheckKeys(ctx, t, f, {"name", "policy", "attributes", "thingTypeName"}));
      ASSIGN_OR_RETURN(std::string pattern, RequiredString(ctx, t, "name", f));
      auto names = ExpandNameRange(pattern);
      if (!names.ok()) return ctx.Fail(t["name"], f + ".name", names.status().message());
      std::string policy;
      if (YAML::Node p = t["policy"]) {
        if (!p.IsScalar()) return ctx.Fail(p, f + ".policy", "must be a policy name");
        policy = p.Scalar();
        if (!policy_names.count(policy)) {
          return ctx.Fail(p, f + ".policy", "no policy '" + policy + "' in iot.policies");
        }
      }
      json attrs = json::object();
      if (YAML::Node a = t["attributes"]) {
        if (!a.IsMap()) return ctx.Fail(a, f + ".attributes", "must be a mapping of strings");
        for (auto it = a.begin(); it != a.end(); ++it) {
          YAML::Node v = it->second;
          if (!v.IsScalar()) return ctx.Fail(v, f + ".attributes." + it->first.Scalar(), "must be a string");
          attrs[it->first.Scalar()] = v.Scalar();
        }
      }
      for (const std::string& n : *names) {
        Resource r;
      r.kind = ResourceKind::kThing;
        r.name = n;
        r.policy = policy;
        r.body = json::object();
        r.body["attributes"] = attrs;
        if (YAML::Node tt = t["thingTypeName"]) r.body["thingTypeName"] = tt.Scalar();
        r.line = t.Mark().line + 1;
        RETURN_IF_ERROR(add(std::move(r), t, f + ".name"));
      }
    }
    ASSIGN_OR_RETURN(YAML::Node rules, Sequence(ctx, iot, "rules", "iot.rules"));
    for (size_t i = 0; i < rules.size(); ++i) {
      std::string f = "iot.rules[" + std::to_string(i) + "]";
      YAML::Node r0 = rules[i];
      RETURN_IF_ERROR(CheckKeys(ctx, r0, f,
                                {"name", "sql", "description", "actions", "errorAction",
                                 "ruleDisabled", "awsIotSqlVersion"}));
      Resource r;
      r.kind = ResourceKind::kRule;
      ASSIGN_OR_RETURN(r.name, RequiredString(ctx, r0, "name", f));
      ASSIGN_OR_RETURN(std::string sql, RequiredString(ctx, r0, "sql", f));
      (void)sql;
      YAML::Node actions = r0["actions"];
      if (!actions || !actions.IsSequence() || actions.size() == 0) {
        return ctx.Fail(actions ? actions : r0, f + ".actions", "required: a list of at least one action");
      }
      ASSIGN_OR_RETURN(r.body, Body(ctx, r0, f, {"name"}));
      if (!r.body.contains("ruleDisabled")) r.body["ruleDisabled"] = false;
      if (!r.body.contains("awsIotSqlVersion")) r.body["awsIotSqlVersion"] = "2016-03-23";
      r.line = r0.Mark().line + 1;
      RETURN_IF_ERROR(add(std::move(r), r0, f + ".name"));
    }
  }
  // Dependencies first: buckets, catalog, streams (need a bucket and a table), policies,
  // things (attach a policy), rules (name streams and topics).
  std::stable_sort(spec.resources.begin(), spec.resources.end(),
                   [](const Resource& a, const Resource& b) { return a.kind < b.kind; });
  return spec;
}

}  // namespace tarn::cli
