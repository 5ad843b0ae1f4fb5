// tarn apply -f FILE: makes a running lake match a declarative file, through the lake's public
// APIs only (SigV4-signed, like terraform or kubectl), never by opening its data directory.
// Contract in docs/cli.md; the file format in apply_spec.h.
//
// Each resource is read first (HeadBucket, GetTable, DescribeDeliveryStream, GetTopicRule …):
// missing → created; present and every field of the file equal on the server → "unchanged"
// (fields the server adds are ignored) → otherwise updated with the service's update call. What
// a previous apply created but the file no longer names is listed in a small state file and
// reported; it is deleted only with --prune, so apply never deletes what it did not create.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/apply_spec.h"
#include "cli/aws_client.h"
#include "cli/commands.h"
#include "core/strings.h"

namespace tarn::cli {
namespace {

// A device key pair made here (EC P-256) and a PKCS#10 request for it, so that the private key
// never crosses the network (CreateCertificateFromCsr, as AWS recommends for fleets).
Result<std::pair<std::string, std::string>> NewKeyAndCsr(const std::string& thing) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(X509_REQ_new(), &X509_REQ_free);
  if (!key || !req) return Error(ErrorCode::kInternal, "generating a device key (OpenSSL)");
  X509_REQ_set_version(req.get(), 0);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(thing.c_str()),
                             -1, -1, 0);
  X509_REQ_set_pubkey(req.get(), key.get());
  if (X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return Error(ErrorCode::kInternal, "signing a certificate request (OpenSSL)");
  }
  auto pem = [](auto write) {
    std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new(BIO_s_mem()), &BIO_free);
    write(b.get());
    char* data = nullptr;
    long n = BIO_get_mem_data(b.get(), &data);
    return std::string(data, static_cast<size_t>(n));
  };
  std::string key_pem = pem([&](BIO* b) {
    PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  std::string csr_pem = pem([&](BIO* b) { PEM_write_bio_X509_REQ(b, req.get()); });
  return std::make_pair(key_pem, csr_pem);
}

namespace fs = std::filesystem;
using nlohmann::json;

enum class Outcome { kCreated, kChanged, kUnchanged, kDeleted, kFailed };

struct Report {
  Outcome outcome;
  std::string detail;
};

struct Applier {
  AwsClient* client;
  bool dry_run;
  std::string certs_dir;

  Report Fail(const std::string& what) { return {Outcome::kFailed, what}; }

  static bool NotFound(const AwsResponse& r) {
    return r.status == 404 || r.error_code == "EntityNotFoundException" ||
           r.error_code == "ResourceNotFoundException" || r.error_code == "NoSuchBucket";
  }

  static json Parse(const AwsResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }

  // Runs a write call unless --dry-run.
  Result<AwsResponse> Write(std::function<Result<AwsResponse>()> call) {
    if (dry_run) {
      AwsResponse r;
      r.status = 200;
      r.body = "{}";
      return r;
    }
    return call();
  }

  Report Done(Result<AwsResponse> r, Outcome ok, std::string detail = "") {
    if (!r.ok()) return Fail(r.status().message());
    if (!r->ok()) return Fail(r->ErrorText());
    return {ok, std::move(detail)};
  }

  // -- S3 (REST-XML) --
  Report Bucket(const Resource& res) {
    auto head = client->RestXml("HEAD", "/" + res.name);
    if (!head.ok()) return Fail(head.status().message());
    if (head->ok()) return {Outcome::kUnchanged, ""};
    if (!NotFound(*head)) return Fail(head->ErrorText());
    return Done(Write([&] { return client->RestXml("PUT", "/" + res.name); }), Outcome::kCreated);
  }

  // -- Glue (JSON 1.1, AWSGlue.*) --
  Report Database(const Resource& res) {
    json input = res.body;
    input["Name"] = res.name;
    auto get = client->Json("glue", "AWSGlue.GetDatabase", json{{"Name", res.name}}.dump());
    if (!get.ok()) return Fail(get.status().message());
    if (!get->ok()) {
      if (!NotFound(*get)) return Fail(get->ErrorText());
      return Done(Write([&] {
                    return client->Json("glue", "AWSGlue.CreateDatabase",
                                        json{{"DatabaseInput", input}}.dump());
                  }),
                  Outcome::kCreated);
    }
    std::string diff = SubsetDifference(input, Parse(*get)["Database"]);
    if (diff.empty()) return {Outcome::kUnchanged, ""};
    return Done(Write([&] {
                  return client->Json("glue", "AWSGlue.UpdateDatabase",
                                      json{{"Name", res.name}, {"DatabaseInput", input}}.dump());
                }),
                Outcome::kChanged, diff);
  }

  Report Table(const Resource& res) {
    std::string name = res.body["Name"];
    auto get = client->Json("glue", "AWSGlue.GetTable",
                            json{{"DatabaseName", res.database}, {"Name", name}}.dump());
    if (!get.ok()) return Fail(get.status().message());
    if (!get->ok()) {
      if (!NotFound(*get)) return Fail(get->ErrorText());
      return Done(Write([&] {
                    return client->Json("glue", "AWSGlue.CreateTable",
                                        json{{"DatabaseName", res.database}, {"TableInput", res.body}}.dump());
                  }),
                  Outcome::kCreated);
    }
    std::string diff = SubsetDifference(res.body, Parse(*get)["Table"]);
    if (diff.empty()) return {Outcome::kUnchanged, ""};
    return Done(Write([&] {
                  return client->Json("glue", "AWSGlue.UpdateTable",
                                      json{{"DatabaseName", res.database}, {"TableInput", res.body}}.dump());
                }),
                Outcome::kChanged, diff);
  }

  Report Crawler(const Resource& res) {
    json input = res.body;
    input["Name"] = res.name;
    auto get = client->Json("glue", "AWSGlue.GetCrawler", json{{"Name", res.name}}.dump());
    if (!get.ok()) return Fail(get.status().message());
    if (!get->ok()) {
      if (!NotFound(*get)) return Fail(get->ErrorText());
      return Done(Write([&] { return client->Json("glue", "AWSGlue.CreateCrawler", input.dump()); }),
                  Outcome::kCreated);
    }
    std::string diff = SubsetDifference(res.body, Parse(*get)["Crawler"]);
    if (diff.empty()) return {Outcome::kUnchanged, ""};
    return Done(Write([&] { return client->Json("glue", "AWSGlue.UpdateCrawler", input.dump()); }),
                Outcome::kChanged, diff);
  }

  // -- Firehose (JSON 1.1, Firehose_20150804.*) --
  Report Stream(const Resource& res) {
    auto get = client->Json("firehose", "Firehose_20150804.DescribeDeliveryStream",
                            json{{"DeliveryStreamName", res.name}}.dump());
    if (!get.ok()) return Fail(get.status().message());
    if (!get->ok()) {
      if (!NotFound(*get)) return Fail(get->ErrorText());
      json req = res.body;
      req["DeliveryStreamName"] = res.name;
      req["DeliveryStreamType"] = "DirectPut";
      return Done(Write([&] {
                    return client->Json("firehose", "Firehose_20150804.CreateDeliveryStream", req.dump());
                  }),
                  Outcome::kCreated);
    }
    json d = Parse(*get)["DeliveryStreamDescription"];
    json dest = json::object();
    std::string dest_id;
    if (d["Destinations"].is_array() && !d["Destinations"].empty()) {
      dest = d["Destinations"][0]["ExtendedS3DestinationDescription"];
      dest_id = d["Destinations"][0].value("DestinationId", "");
    }
    const json& want = res.body["ExtendedS3DestinationConfiguration"];
    std::string diff = SubsetDifference(want, dest, "ExtendedS3DestinationConfiguration");
    if (diff.empty()) return {Outcome::kUnchanged, ""};
    json upd = {{"DeliveryStreamName", res.name},
                {"CurrentDeliveryStreamVersionId", d.value("VersionId", "1")},
                {"DestinationId", dest_id},
                {"ExtendedS3DestinationUpdate", want}};
    return Done(Write([&] {
                  return client->Json("firehose", "Firehose_20150804.UpdateDestination", upd.dump());
                }),
                Outcome::kChanged, diff);
  }

  // -- IoT control plane (REST-JSON, signing name "iot") --
  Report Policy(const Resource& res) {
    auto get = client->RestJson("iot", "GET", "/policies/" + res.name);
    if (!get.ok()) return Fail(get.status().message());
    if (!get->ok()) {
      if (!NotFound(*get)) return Fail(get->ErrorText());
      return Done(Write([&] {
                    return client->RestJson("iot", "POST", "/policies/" + res.name,
                                            json{{"policyDocument", res.body.dump()}}.dump());
                  }),
                  Outcome::kCreated);
    }
    json current = json::parse(Parse(*get).value("policyDocument", "{}"), nullptr, false);
    if (current == res.body) return {Outcome::kUnchanged, ""};
    // A new default version (AWS keeps up to five; the server prunes or refuses beyond).
    return Done(Write([&] {
                  return client->RestJson("iot", "POST", "/policies/" + res.name + "/version",
                                          json{{"policyDocument", res.body.dump()}}.dump(),
                                          {{"setAsDefault", "true"}});
                }),
                Outcome::kChanged, "document");
  }

  std::string CertDir(const std::string& thing) const { return certs_dir + "/" + thing; }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static Status WriteFile(const std::string& path, const std::string& data, mode_t mode) {
    std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << data;
      if (!out) return Error(ErrorCode::kIoError, "cannot write " + tmp);
    }
    ::chmod(tmp.c_str(), mode);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) return Error(ErrorCode::kIoError, "cannot write " + path + ": " + ec.message());
    return Status::OK();
  }

  // A key made here → CreateCertificateFromCsr → files in CERTS/<thing>/ → AttachThingPrincipal
  // → AttachPolicy.
  Result<std::string> NewCertificate(const Resource& res) {
    if (dry_run) return std::string("new certificate");
    ASSIGN_OR_RETURN(auto key_csr, NewKeyAndCsr(res.name));
    const std::string& key = key_csr.first;
    ASSIGN_OR_RETURN(AwsResponse c, client->RestJson("iot", "POST", "/certificates",
                                                     json{{"certificateSigningRequest", key_csr.second}}.dump(),
                                                     {{"setAsActive", "true"}}));
    if (!c.ok()) return Error(ErrorCode::kInvalidRequest, "CreateCertificateFromCsr: " + c.ErrorText());
    json j = Parse(c);
    std::string arn = j.value("certificateArn", "");
    std::string pem = j.value("certificatePem", "");
    if (arn.empty() || pem.empty()) {
      return Error(ErrorCode::kInvalidRequest, "CreateCertificateFromCsr answered without a certificate");
    }
    std::string dir = CertDir(res.name);
    std::error_code ec;
    fs::create_directories(dir, ec);
    ::chmod(certs_dir.c_str(), 0700);
    ::chmod(dir.c_str(), 0700);
    RETURN_IF_ERROR(WriteFile(dir + "/private.pem.key", key, 0600));
    RETURN_IF_ERROR(WriteFile(dir + "/certificate.pem.crt", pem, 0644));
    RETURN_IF_ERROR(WriteFile(dir + "/certificate.id", j.value("certificateId", "") + "\n", 0644));
    ASSIGN_OR_RETURN(AwsResponse a, client->RestJson("iot", "PUT", "/things/" + res.name + "/principals",
                                                     "", {}, {{"x-amzn-principal", arn}}));
    if (!a.ok()) return Error(ErrorCode::kInvalidRequest, "AttachThingPrincipal: " + a.ErrorText());
    if (!res.policy.empty()) {
      ASSIGN_OR_RETURN(AwsResponse p, client->RestJson("iot", "PUT", "/target-policies/" + res.policy,
                                                       json{{"target", arn}}.dump()));
      if (!p.ok()) return Error(ErrorCode::kInvalidRequest, "AttachPolicy: " + p.ErrorText());
    }
    // The ARN file is written last: its presence means the certificate is fully set up.
    RETURN_IF_ERROR(WriteFile(dir + "/certificate.arn", arn + "\n", 0644));
    return "certificate in " + dir + "/";
  }

  Report Thing(const Resource& res) {
    auto get = client->RestJson("iot", "GET", "/things/" + res.name);
    if (!get.ok()) return Fail(get.status().message());
    json payload = json::object();
    payload["attributePayload"] = {{"attributes", res.body["attributes"]}};
    if (res.body.contains("thingTypeName")) payload["thingTypeName"] = res.body["thingTypeName"];
    Outcome outcome = Outcome::kUnchanged;
    std::string detail;
    if (!get->ok()) {
      if (!NotFound(*get)) return Fail(get->ErrorText());
      auto c = Write([&] { return client->RestJson("iot", "POST", "/things/" + res.name, payload.dump()); });
      if (!c.ok()) return Fail(c.status().message());
      if (!c->ok()) return Fail("CreateThing: " + c->ErrorText());
      outcome = Outcome::kCreated;
    } else {
      json current = Parse(*get);
      std::string diff = SubsetDifference(res.body["attributes"], current.value("attributes", json::object()),
                                          "attributes");
      if (!diff.empty()) {
        payload["attributePayload"]["merge"] = false;
        auto u = Write([&] { return client->RestJson("iot", "PATCH", "/things/" + res.name, payload.dump()); });
        if (!u.ok()) return Fail(u.status().message());
        if (!u->ok()) return Fail("UpdateThing: " + u->ErrorText());
        outcome = Outcome::kChanged;
        detail = diff;
      }
    }
    // The certificate: kept when its files are here and it is still attached to the thing.
    std::string arn(Trim(ReadFile(CertDir(res.name) + "/certificate.arn")));
    bool attached = false;
    if (!arn.empty() && outcome != Outcome::kCreated) {
      auto p = client->RestJson("iot", "GET", "/things/" + res.name + "/principals");
      if (p.ok() && p->ok()) {
        for (const auto& a : Parse(*p).value("principals", json::array()))
          if (a.is_string() && a.get<std::string>() == arn) attached = true;
      }
    }
    if (!attached) {
      auto cert = NewCertificate(res);
      if (!cert.ok()) return Fail(cert.status().message());
      if (outcome == Outcome::kUnchanged) outcome = Outcome::kChanged;
      detail += (detail.empty() ? "" : ", ") + *cert;
    }
    return {outcome, detail};
  }

  Report Rule(const Resource& res) {
    auto get = client->RestJson("iot", "GET", "/rules/" + res.name);
    if (!get.ok()) return Fail(get.status().message());
    if (!get->ok()) {
      if (!NotFound(*get)) return Fail(get->ErrorText());
      return Done(Write([&] { return client->RestJson("iot", "POST", "/rules/" + res.name, res.body.dump()); }),
                  Outcome::kCreated);
    }
    std::string diff = SubsetDifference(res.body, Parse(*get)["rule"]);
    if (diff.empty()) return {Outcome::kUnchanged, ""};
    return Done(Write([&] { return client->RestJson("iot", "PATCH", "/rules/" + res.name, res.body.dump()); }),
                Outcome::kChanged, diff);
  }

  // A service the lake does not offer (HTTP 501) is reported once, then its other resources are
  // skipped with the same reason instead of one failure line per call.
  std::map<std::string, std::string> unavailable;  // service → first error

  static std::string ServiceOf(ResourceKind k) {
    switch (k) {
      case ResourceKind::kBucket: return "S3";
      case ResourceKind::kDatabase: case ResourceKind::kTable: case ResourceKind::kCrawler: return "Glue";
      case ResourceKind::kStream: return "Firehose";
      default: return "IoT";
    }
  }

  Report Apply(const Resource& res) {
    std::string service = ServiceOf(res.kind);
    if (auto it = unavailable.find(service); it != unavailable.end()) {
      return Fail("skipped: the " + service + " API is not available on this lake (" + it->second + ")");
    }
    Report r = ApplyOne(res);
    if (r.outcome == Outcome::kFailed && (r.detail.find("(HTTP 501)") != std::string::npos)) {
      unavailable[service] = r.detail;
    }
    return r;
  }

  Report ApplyOne(const Resource& res) {
    switch (res.kind) {
      case ResourceKind::kBucket: return Bucket(res);
      case ResourceKind::kDatabase: return Database(res);
      case ResourceKind::kTable: return Table(res);
      case ResourceKind::kCrawler: return Crawler(res);
      case ResourceKind::kStream: return Stream(res);
      case ResourceKind::kPolicy: return Policy(res);
      case ResourceKind::kThing: return Thing(res);
      case ResourceKind::kRule: return Rule(res);
    }
    return Fail("unknown kind");
  }

  // Deletes what a previous apply created (key "kind/name").
  Report Delete(const std::string& kind, const std::string& name) {
    auto gone = [&](Result<AwsResponse> r) -> Report {
      if (!r.ok()) return Fail(r.status().message());
      if (!r->ok() && !NotFound(*r)) return Fail(r->ErrorText());
      return {Outcome::kDeleted, ""};
    };
    if (dry_run) return {Outcome::kDeleted, ""};
    if (kind == "bucket") return gone(client->RestXml("DELETE", "/" + name));
    if (kind == "database") return gone(client->Json("glue", "AWSGlue.DeleteDatabase", json{{"Name", name}}.dump()));
    if (kind == "table") {
      auto dot = name.find('.');
      return gone(client->Json("glue", "AWSGlue.DeleteTable",
                               json{{"DatabaseName", name.substr(0, dot)}, {"Name", name.substr(dot + 1)}}.dump()));
    }
    if (kind == "crawler") return gone(client->Json("glue", "AWSGlue.DeleteCrawler", json{{"Name", name}}.dump()));
    if (kind == "stream") {
      return gone(client->Json("firehose", "Firehose_20150804.DeleteDeliveryStream",
                               json{{"DeliveryStreamName", name}}.dump()));
    }
    if (kind == "policy") return gone(client->RestJson("iot", "DELETE", "/policies/" + name));
    if (kind == "rule") return gone(client->RestJson("iot", "DELETE", "/rules/" + name));
    if (kind == "thing") {
      // Detach and delete its certificates first (AWS refuses to delete a thing with principals).
      auto p = client->RestJson("iot", "GET", "/things/" + name + "/principals");
      if (p.ok() && p->ok()) {
        for (const auto& a : Parse(*p).value("principals", json::array())) {
          if (!a.is_string()) continue;
          std::string arn = a.get<std::string>();
          client->RestJson("iot", "DELETE", "/things/" + name + "/principals", "", {},
                           {{"x-amzn-principal", arn}}).status().IgnoreError();
          std::string id = arn.substr(arn.rfind('/') + 1);
          client->RestJson("iot", "PUT", "/certificates/" + id, "", {{"newStatus", "INACTIVE"}})
              .status().IgnoreError();
          client->RestJson("iot", "DELETE", "/certificates/" + id, "", {{"forceDelete", "true"}})
              .status().IgnoreError();
        }
      }
      Report r = gone(client->RestJson("iot", "DELETE", "/things/" + name));
      if (r.outcome == Outcome::kDeleted) {
        std::error_code ec;
        fs::remove_all(CertDir(name), ec);
      }
      return r;
    }
    return Fail("unknown kind " + kind);
  }
};

const char* Word(Outcome o, bool dry) {
  switch (o) {
    case Outcome::kCreated: return dry ? "would create" : "created";
    case Outcome::kChanged: return dry ? "would change" : "changed";
    case Outcome::kUnchanged: return "unchanged";
    case Outcome::kDeleted: return dry ? "would delete" : "deleted";
    case Outcome::kFailed: return "FAILED";
  }
  return "";
}

int Usage(FILE* out) {
  std::fprintf(out,
               "Usage: tarn apply -f FILE [--endpoint URL] [--prune] [--dry-run]\n"
               "                  [--certs-dir DIR] [--state FILE]\n\n"
               "Creates or updates what FILE describes (buckets, catalog databases/tables/crawlers,\n"
               "delivery streams, IoT policies/things/rules) through a running lake's APIs.\n"
               "Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY [, AWS_SESSION_TOKEN],\n"
               "AWS_REGION / AWS_DEFAULT_REGION. Endpoint: --endpoint, else TARN_ENDPOINT, else\n"
               "AWS_ENDPOINT_URL, else http://127.0.0.1:9000.\n");
  return out == stdout ? 0 : 2;
}

}  // namespace

int RunApply(const std::vector<std::string>& args) {
  std::string file, endpoint, certs_dir, state_file;
  bool prune = false, dry_run = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    if (a == "--help" || a == "-h") return Usage(stdout);
    if ((a == "-f" || a == "--file") && value(&file)) continue;
    if (a == "--endpoint" && value(&endpoint)) continue;
    if (a == "--certs-dir" && value(&certs_dir)) continue;
    if (a == "--state" && value(&state_file)) continue;
    if (a == "--prune") { prune = true; continue; }
    if (a == "--dry-run") { dry_run = true; continue; }
    std::fprintf(stderr, "tarn apply: unexpected argument '%s'\n", a.c_str());
    return Usage(stderr);
  }
  if (file.empty()) return Usage(stderr);
  std::string text = Applier::ReadFile(file);
  if (text.empty() && !fs::exists(file)) {
    std::fprintf(stderr, "tarn apply: cannot read %s\n", file.c_str());
    return 1;
  }
  auto spec = ParseApplySpec(file, text);
  if (!spec.ok()) {
    std::fprintf(stderr, "tarn apply: %s\n", spec.status().message().c_str());
    return 1;
  }
  auto creds = CredentialsFromEnvironment();
  if (!creds.ok()) {
    std::fprintf(stderr, "tarn apply: %s\n", creds.status().message().c_str());
    return 1;
  }
  if (endpoint.empty()) {
    for (const char* e : {"TARN_ENDPOINT", "AWS_ENDPOINT_URL"})
      if (const char* v = std::getenv(e); v && *v && endpoint.empty()) endpoint = v;
  }
  if (endpoint.empty()) endpoint = "http://127.0.0.1:9000";

  fs::path base = fs::path(file).parent_path();
  if (certs_dir.empty()) {
    fs::path c = spec->certificates_dir.empty() ? fs::path("certs") : fs::path(spec->certificates_dir);
    certs_dir = (c.is_absolute() ? c : base / c).lexically_normal().string();
  }
  if (state_file.empty()) state_file = (base / ".tarn" / "apply-state.json").lexically_normal().string();

  AwsClient client(endpoint, *creds);
  Applier applier{&client, dry_run, certs_dir, {}};

  // The state: what earlier applies of this file created or adopted.
  std::vector<std::string> previous;
  {
    json st = json::parse(Applier::ReadFile(state_file), nullptr, false);
    if (st.is_object() && st["resources"].is_array())
      for (const auto& k : st["resources"]) if (k.is_string()) previous.push_back(k);
  }
  std::set<std::string> wanted;
  for (const auto& r : spec->resources) wanted.insert(r.Key());

  int counts[5] = {0, 0, 0, 0, 0};
  std::vector<std::string> managed;
  for (const Resource& res : spec->resources) {
    Report r = applier.Apply(res);
    counts[static_cast<int>(r.outcome)]++;
    if (r.outcome != Outcome::kFailed || std::find(previous.begin(), previous.end(), res.Key()) != previous.end())
      managed.push_back(res.Key());
    if (r.outcome == Outcome::kFailed) {
      std::fprintf(stdout, "  %-13s %s %s: %s\n", Word(r.outcome, dry_run), KindName(res.kind),
                   res.name.c_str(), r.detail.c_str());
    } else {
      std::fprintf(stdout, "  %-13s %s %s%s%s%s\n", Word(r.outcome, dry_run), KindName(res.kind),
                   res.name.c_str(), r.detail.empty() ? "" : " (", r.detail.c_str(),
                   r.detail.empty() ? "" : ")");
    }
    std::fflush(stdout);
  }
  // Entries gone from the file, deleted in reverse dependency order with --prune.
  std::vector<std::string> removed;
  for (const auto& k : previous) if (!wanted.count(k)) removed.push_back(k);
  auto rank = [](const std::string& key) {
    std::string kind = key.substr(0, key.find('/'));
    for (int i = 0; i < 8; ++i) if (kind == KindName(static_cast<ResourceKind>(i))) return i;
    return 8;
  };
  std::stable_sort(removed.begin(), removed.end(),
                   [&](const std::string& a, const std::string& b) { return rank(a) > rank(b); });
  int kept_removed = 0;
  for (const auto& key : removed) {
    std::string kind = key.substr(0, key.find('/')), name = key.substr(key.find('/') + 1);
    if (!prune) {
      std::fprintf(stdout, "  %-13s %s %s: no longer in %s (kept; --prune deletes it)\n", "removed",
                   kind.c_str(), name.c_str(), file.c_str());
      managed.push_back(key);
      ++kept_removed;
      continue;
    }
    Report r = applier.Delete(kind, name);
    counts[static_cast<int>(r.outcome)]++;
    std::fprintf(stdout, "  %-13s %s %s%s%s\n", Word(r.outcome, dry_run), kind.c_str(), name.c_str(),
                 r.detail.empty() ? "" : ": ", r.detail.c_str());
    if (r.outcome == Outcome::kFailed) managed.push_back(key);
  }
  if (!dry_run) {
    std::error_code ec;
    fs::create_directories(fs::path(state_file).parent_path(), ec);
    json st = {{"file", file}, {"endpoint", endpoint}, {"resources", managed}};
    Status ws = Applier::WriteFile(state_file, st.dump(2) + "\n", 0644);
    if (!ws.ok()) std::fprintf(stderr, "tarn apply: %s\n", ws.message().c_str());
  }
  int created = counts[0], changed = counts[1], unchanged = counts[2], deleted = counts[3], failed = counts[4];
  if (created + changed + deleted + failed == 0) {
    std::fprintf(stdout, "apply: no changes, %d unchanged%s\n", unchanged,
                 kept_removed ? (", " + std::to_string(kept_removed) + " removed from the file (kept)").c_str() : "");
  } else {
    std::fprintf(stdout, "apply%s: %d created, %d changed, %d unchanged, %d deleted, %d failed\n",
                 dry_run ? " (dry run)" : "", created, changed, unchanged, deleted, failed);
  }
  return failed ? 1 : 0;
}

}  // namespace tarn::cli
