#include "sql/pgwire/session.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/crypto.h"
#include "core/log.h"
#include "core/strings.h"
#include "security/keyring.h"
#include "sql/pgwire/colnames.h"
#include "sql/pgwire/rewrite.h"
#include "sql/pgwire/row_encoder.h"
#include "sql/pgwire/scram.h"
#include "sql/pgwire/types.h"

namespace tarn::sql::pgwire {

namespace {

constexpr size_t kFlushThreshold = 64 * 1024;
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxCopyRecord = 64u << 20;  // COPY FROM STDIN: bytes of one incomplete row

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Settings PostgreSQL reports with ParameterStatus (§55.2.7), re-sent when SET changes them.
const char* const kReported[] = {"application_name", "client_encoding", "datestyle", "intervalstyle", "timezone",
                                 "standard_conforming_strings", "integer_datetimes", "server_version",
                                 "server_encoding", "is_superuser", "session_authorization",
                                 "default_transaction_read_only", "in_hot_standby"};
// Display names of the reported settings.
std::string DisplayName(const std::string& lower) {
  if (lower == "datestyle") return "DateStyle";
  if (lower == "intervalstyle") return "IntervalStyle";
  if (lower == "timezone") return "TimeZone";
  return lower;
}
bool IsReported(const std::string& name) {
  for (const char* r : kReported) {
    if (name == r) return true;
  }
  return false;
}

// PostgreSQL settings that clients set and that only the session keeps.
bool IsSessionSetting(const std::string& n) {
  static const char* const kNames[] = {
      "application_name", "client_encoding", "datestyle", "intervalstyle", "timezone", "extra_float_digits",
      "client_min_messages", "search_path", "statement_timeout", "standard_conforming_strings",
      "bytea_output", "lc_messages", "lc_monetary", "lc_numeric", "lc_time", "default_transaction_read_only",
      "default_transaction_isolation", "transaction_isolation", "transaction_read_only",
      "idle_in_transaction_session_timeout", "lock_timeout", "jit", "row_security", "synchronous_commit",
      "escape_string_warning", "integer_datetimes", "server_version", "server_version_num", "server_encoding",
      "is_superuser", "session_authorization", "max_identifier_length", "in_hot_standby", "geqo",
      "work_mem", "default_transaction_deferrable", "max_index_keys", "block_size", "enable_seqscan"};
  for (const char* k : kNames) {
    if (n == k) return true;
  }
  return false;
}

// DuckDB settings that are global to the warehouse: its resource limits and what it may
// load or read belong to the operator (tarn.yaml `sql:`), so sessions may not change them.
bool IsWarehouseSetting(std::string_view upper_name) {
  static const char* const kNames[] = {
      "MEMORY_LIMIT", "MAX_MEMORY", "THREADS", "WORKER_THREADS", "TEMP_DIRECTORY", "MAX_TEMP_DIRECTORY_SIZE",
      "ENABLE_EXTERNAL_ACCESS", "ALLOW_UNSIGNED_EXTENSIONS", "ALLOW_COMMUNITY_EXTENSIONS",
      "AUTOINSTALL_KNOWN_EXTENSIONS", "AUTOLOAD_KNOWN_EXTENSIONS", "EXTENSION_DIRECTORY", "LOCK_CONFIGURATION",
      "ALLOWED_DIRECTORIES", "ALLOWED_PATHS", "CHECKPOINT_THRESHOLD", "WAL_AUTOCHECKPOINT"};
  for (const char* k : kNames) {
    if (upper_name == k) return true;
  }
  return false;
}

// "5s", "100ms", "1min", "250" (ms) → milliseconds.
std::optional<int64_t> ParseDurationMs(std::string_view v) {
  std::string s = ToLower(Trim(v));
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  double n = std::strtod(s.substr(0, i).c_str(), nullptr);
  std::string unit(Trim(s.substr(i)));
  double mult = 1;
  if (unit.empty() || unit == "ms") mult = 1;
  else if (unit == "s") mult = 1000;
  else if (unit == "min") mult = 60000;
  else if (unit == "h") mult = 3600000;
  else if (unit == "d") mult = 86400000;
  else if (unit == "us") mult = 0.001;
  else return std::nullopt;
  return static_cast<int64_t>(n * mult);
}

std::string Unquote(std::string_view v) {
  v = Trim(v);
  if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"') && v.back() == v.front()) {
    std::string out;
    char q = v.front();
    for (size_t i = 1; i + 1 < v.size(); ++i) {
      out.push_back(v[i]);
      if (v[i] == q && i + 2 < v.size() && v[i + 1] == q) ++i;
    }
    return out;
  }
  return std::string(v);
}

// Splits a SET value list on commas outside quotes.
std::vector<std::string> SplitValues(std::string_view v) {
  std::vector<std::string> out;
  std::string cur;
  char q = 0;
  for (char c : v) {
    if (q) {
      cur.push_back(c);
      if (c == q) q = 0;
      continue;
    }
    if (c == '\'' || c == '"') q = c;
    if (c == ',') {
      out.push_back(Unquote(cur));
      cur.clear();
      continue;
    }
    cur.push_back(c);
  }
  if (!Trim(cur).empty()) out.push_back(Unquote(cur));
  return out;
}

// Finds the (1-based) error position from DuckDB's "LINE n: …\n    ^" caret in `query`.
int ErrorPosition(const std::string& msg, const std::string& query) {
  size_t l = msg.find("\nLINE ");
  if (l == std::string::npos) return 0;
  size_t colon = msg.find(": ", l);
  size_t eol = msg.find('\n', l + 1);
  if (colon == std::string::npos || eol == std::string::npos || colon > eol) return 0;
  auto line_no = ParseInt64(std::string_view(msg).substr(l + 6, colon - l - 6));
  size_t caret_eol = msg.find('\n', eol + 1);
  std::string caret = msg.substr(eol + 1, caret_eol == std::string::npos ? std::string::npos : caret_eol - eol - 1);
  size_t c = caret.find('^');
  size_t prefix = colon + 2 - (l + 1);
  if (!line_no || c == std::string::npos || c < prefix) return 0;
  std::string line_text = msg.substr(colon + 2, eol - colon - 2);
  size_t start = 0;
  for (int64_t n = 1; n < *line_no; ++n) {
    start = query.find('\n', start);
    if (start == std::string::npos) return 0;
    ++start;
  }
  // DuckDB may elide long lines; only trust the caret when the line is quoted as-is.
  if (query.compare(start, line_text.size(), line_text) != 0) return 0;
  size_t byte = start + (c - prefix);
  int chars = 0;
  for (size_t i = 0; i < byte && i < query.size(); ++i) {
    if ((static_cast<unsigned char>(query[i]) & 0xC0) != 0x80) ++chars;
  }
  return chars + 1;
}

std::string CommandTag(StatementKind kind, const std::vector<std::string>& kw, int64_t rows, bool returned_rows) {
  switch (kind) {
    case StatementKind::kInsert: return "INSERT 0 " + std::to_string(rows);
    case StatementKind::kUpdate: return "UPDATE " + std::to_string(rows);
    case StatementKind::kDelete: return "DELETE " + std::to_string(rows);
    case StatementKind::kCopy: return "COPY " + std::to_string(rows);
    case StatementKind::kCreate:
    case StatementKind::kCreateFunc:
    case StatementKind::kDrop:
    case StatementKind::kAlter: {
      std::string tag = kw.empty() ? "CREATE" : kw[0];
      for (size_t i = 1; i < kw.size(); ++i) {
        const std::string& w = kw[i];
        if (w == "OR" || w == "REPLACE" || w == "TEMP" || w == "TEMPORARY" || w == "UNIQUE" || w == "IF" ||
            w == "NOT" || w == "EXISTS" || w == "PERSISTENT")
          continue;
        return tag + " " + (w == "MACRO" ? "FUNCTION" : w);
      }
      return tag;
    }
    default:
      if (returned_rows || kind == StatementKind::kSelect) return "SELECT " + std::to_string(rows);
      return kw.empty() ? "OK" : kw[0];
  }
}

// An SQL identifier as PostgreSQL folds it: "Quoted" keeps its case, bare names fold down.
std::string FoldName(std::string_view t) {
  t = Trim(t);
  while (!t.empty() && t.back() == ';') t.remove_suffix(1);
  if (t.size() >= 2 && t.front() == '"' && t.back() == '"') return Unquote(t);
  return ToLower(t);
}

// The first name after `skip_words` leading words of `sql` (quoted or bare).
std::string NameAfter(std::string_view sql, size_t skip_words) {
  size_t i = 0;
  for (size_t w = 0; w < skip_words; ++w) {
    while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
    while (i < sql.size() && !std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
  }
  while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
  size_t j = i;
  if (j < sql.size() && sql[j] == '"') {
    j = sql.find('"', j + 1);
    j = j == std::string_view::npos ? sql.size() : j + 1;
  } else {
    while (j < sql.size() && !std::isspace(static_cast<unsigned char>(sql[j])) && sql[j] != ';') ++j;
  }
  return FoldName(sql.substr(i, j - i));
}

}  // namespace

// What a statement is once parsed.
enum class Special {
  kNone,        // runs in DuckDB
  kEmpty,       // EmptyQueryResponse
  kSet,         // SET of a session setting
  kReset,
  kBegin,
  kCommit,
  kRollback,
  kSetTransaction,
  kDiscard,
  kDeallocate,
  kCopyOut,
  kCopyIn,
  kDeclare,     // DECLARE name CURSOR FOR query
  kFetch,       // FETCH [FORWARD] [n|ALL] [FROM] name
  kMove,
  kClose,       // CLOSE name | CLOSE ALL
  kNotSupported,
  kHook,        // run by the statement hooks (UNLOAD, COPY FROM 's3://…' …)
};

// The result of a literal-only SELECT, computed once (fastpath.h), in both encodings.
struct ConstantRows {
  std::vector<TypeInfo> columns;
  std::vector<std::string> names;
  std::vector<std::vector<std::optional<std::string>>> text, binary;  // [row][column]
};

struct Session::Statement {
  std::string sql;        // as the client sent it
  std::string rewritten;  // what DuckDB runs
  std::vector<int32_t> param_types;
  std::vector<std::string> keywords;
  Special special = Special::kNone;
  std::unique_ptr<PreparedStatement> prepared;
  bool constant = false;                       // IsConstantSelect(rewritten)
  std::optional<std::vector<PgColumnName>> pg_names;  // PostgreSQL's column names (colnames.h)
  bool pg_names_ready = false;
  std::shared_ptr<const ConstantRows> constant_rows;  // filled by its first execution
  std::shared_ptr<StatementBinding> binding;  // hooks' state: refreshed before each run
  // COPY details.
  std::string copy_select;   // COPY … TO STDOUT: the query
  std::string copy_table;    // COPY … FROM STDIN: target
  std::vector<std::string> copy_columns;
  std::string copy_format = "text";
  char copy_delim = '\t';
  std::string copy_null = "\\N";
  bool copy_header = false;
  // Cursors.
  std::string cursor;          // name (lower-cased unless quoted)
  int64_t fetch_count = 1;     // 0 = ALL
  bool cursor_binary = false;  // DECLARE … BINARY CURSOR
};

struct Session::Portal {
  std::shared_ptr<Statement> stmt;
  std::vector<int16_t> result_formats;
  std::optional<QueryResult> result;
  std::optional<Chunk> chunk;
  size_t chunk_row = 0;
  size_t chunk_size = 0;
  RowEncoder encoder;          // DataRow encoding of `chunk`
  bool encoder_ready = false;  // encoder is set up for the current chunk
  bool started = false;
  bool done = false;
  int64_t rows = 0;
  std::vector<TypeInfo> columns;
  std::vector<std::string> names;
  bool returns_rows = false;
  bool closed = false;  // its DuckDB stream was closed by a later statement
  const ConstantRows* constant = nullptr;  // answered from stmt->constant_rows
  size_t constant_row = 0;
  int64_t started_us = 0;  // when it was bound (audit duration)
  bool Binary(size_t col) const {
    if (result_formats.empty()) return false;
    if (result_formats.size() == 1) return result_formats[0] == 1;
    return col < result_formats.size() && result_formats[col] == 1;
  }
};

Session::Session(SessionHost* host, net::Socket* socket) : host_(host), socket_(socket) {
  std::string r = RandomBytes(4);
  std::memcpy(&secret_, r.data(), 4);
}

Session::~Session() {
  if (query_slot_) host_->EndQuery(user_);
  if (admitted_) host_->EndSession(user_);
  if (pid_) host_->Unregister(pid_);
  cursors_.clear();
  portals_.clear();
  statements_.clear();
}

void Session::Cancel(bool timeout) {
  if (!running_.load()) return;
  if (timeout) {
    timed_out_ = true;
    deadline_ms_ = 0;
  } else {
    cancelled_ = true;
  }
  if (conn_) conn_->Interrupt();
}

Status Session::Flush() {
  if (out_.size() == 0) return Status::OK();
  Status s = socket_->WriteAll(out_.buffer());
  out_.Clear();
  return s;
}

// Messages are read through in_buf_, one recv() for as many messages as have arrived: a
// pipelined Bind/Describe/Execute/Sync costs one system call instead of eight.
Status Session::ReadMessage(char* type, std::string* body) {
  auto fill = [&](size_t need) -> Status {
    if (in_buf_.size() - in_pos_ >= need) return Status::OK();
    if (in_pos_ > 0) {
      in_buf_.erase(0, in_pos_);
      in_pos_ = 0;
    }
    while (in_buf_.size() < need) {
      size_t have = in_buf_.size();
      size_t want = std::max<size_t>(need - have, kReadChunk);
      in_buf_.resize(have + want);
      auto got = socket_->Read(in_buf_.data() + have, want);
      in_buf_.resize(have + (got.ok() ? *got : 0));
      if (!got.ok()) return got.status();
      if (*got == 0) return Error(ErrorCode::kIoError, "connection closed");
    }
    return Status::OK();
  };
  RETURN_IF_ERROR(fill(5));
  const char* header = in_buf_.data() + in_pos_;
  *type = header[0];
  uint32_t len = (uint32_t{static_cast<unsigned char>(header[1])} << 24) |
                 (uint32_t{static_cast<unsigned char>(header[2])} << 16) |
                 (uint32_t{static_cast<unsigned char>(header[3])} << 8) | static_cast<unsigned char>(header[4]);
  if (len < 4 || len > kMaxMessageLength) {
    return Error(ErrorCode::kSqlProtocolViolation, "invalid message length " + std::to_string(len));
  }
  RETURN_IF_ERROR(fill(size_t{len} + 1));
  body->assign(in_buf_.data() + in_pos_ + 5, len - 4);
  in_pos_ += size_t{len} + 1;
  if (in_pos_ == in_buf_.size()) {
    in_buf_.clear();
    in_pos_ = 0;
  }
  return Status::OK();
}

void Session::SendError(const Status& s, const std::string& query, const char* severity) {
  MessageWriter::Fields f;
  f.severity = severity;
  f.sqlstate = std::string(GetErrorInfo(s.code()).sqlstate);
  std::string msg = s.message();
  if (!query.empty()) f.position = ErrorPosition(msg, query);
  // DuckDB adds "Did you mean …" and the LINE/caret after the first line.
  size_t nl = msg.find('\n');
  if (nl != std::string::npos) {
    std::string rest = msg.substr(nl + 1);
    msg.resize(nl);
    size_t line = rest.find("LINE ");
    std::string hint(Trim(rest.substr(0, line)));
    f.hint = hint;
  }
  f.message = msg;
  out_.Error(f);
}

void Session::SendNotice(const std::string& message, const char* sqlstate, const char* severity) {
  MessageWriter::Fields f;
  f.severity = severity;
  f.sqlstate = sqlstate;
  f.message = message;
  out_.Error(f, 'N');
}

void Session::SendParameterStatus() {
  for (const char* name : kReported) {
    auto it = settings_.find(name);
    if (it != settings_.end()) out_.ParameterStatus(DisplayName(name), it->second);
  }
}

Status Session::MapCancel(Status s) {
  if (s.code() != ErrorCode::kCancelled) return s;
  if (timed_out_) return Error(ErrorCode::kCancelled, "canceling statement due to statement timeout");
  return Error(ErrorCode::kCancelled, "canceling statement due to user request");
}

Status Session::BeginStatement(bool needs_slot) {
  if (needs_slot && !query_slot_) {
    RETURN_IF_ERROR(host_->AdmitQuery(user_));
    query_slot_ = true;
  }
  cancelled_ = false;
  timed_out_ = false;
  running_ = true;
  if (statement_timeout_ms_ > 0) deadline_ms_ = NowMs() + statement_timeout_ms_;
  return Status::OK();
}

void Session::EndStatement() {
  running_ = false;
  deadline_ms_ = 0;
  if (query_slot_) {
    host_->EndQuery(user_);
    query_slot_ = false;
  }
}

Status Session::DuckExec(const std::string& sql) { return conn_->Execute(sql); }

// ---- startup ----

bool Session::Startup(bool over_limit) {
  StartupPacket packet;
  for (;;) {
    char lenbuf[4];
    if (!socket_->ReadFull(lenbuf, 4).ok()) return false;
    uint32_t len = (uint32_t{static_cast<unsigned char>(lenbuf[0])} << 24) |
                   (uint32_t{static_cast<unsigned char>(lenbuf[1])} << 16) |
                   (uint32_t{static_cast<unsigned char>(lenbuf[2])} << 8) | static_cast<unsigned char>(lenbuf[3]);
    if (len < 8 || len > kMaxStartupLength) {
      SendError(Error(ErrorCode::kSqlProtocolViolation, "invalid length of startup packet"), {}, "FATAL");
      (void)Flush();
      return false;
    }
    std::string body(len - 4, '\0');
    if (!socket_->ReadFull(body.data(), body.size()).ok()) return false;
    auto parsed = ParseStartupPacket(body);
    if (!parsed.ok()) {
      SendError(Error(ErrorCode::kSqlProtocolViolation, parsed.status().message()), {}, "FATAL");
      (void)Flush();
      return false;
    }
    packet = std::move(*parsed);
    if (packet.code == kSslRequestCode) {
      const net::TlsServerContext* ctx = host_->tls_context();
      if (socket_->tls() || !ctx || over_limit) {
        if (!socket_->WriteAll("N").ok()) return false;
        continue;
      }
      if (!socket_->WriteAll("S").ok()) return false;
      Status st = socket_->StartTls(*ctx);
      if (!st.ok()) {
        TLOG_DEBUG("sql", "TLS handshake with {} failed: {}", socket_->peer(), st.message());
        return false;
      }
      continue;
    }
    if (packet.code == kGssEncRequestCode) {
      // GSSAPI encryption is not offered; the client continues in plain text or TLS.
      if (!socket_->WriteAll("N").ok()) return false;
      continue;
    }
    if (packet.code == kCancelRequestCode) {
      host_->Cancel(packet.cancel_pid, packet.cancel_secret);
      return false;
    }
    break;
  }
  if (over_limit) {
    SendError(Error(ErrorCode::kSqlTooManyConnections, "sorry, too many clients already"), {}, "FATAL");
    (void)Flush();
    return false;
  }
  user_ = packet.params.count("user") ? packet.params["user"] : "";
  if (user_.empty()) {
    SendError(Error(ErrorCode::kSqlProtocolViolation, "no PostgreSQL user name specified in startup packet"), {},
              "FATAL");
    (void)Flush();
    return false;
  }
  std::string database = packet.params.count("database") ? packet.params["database"] : user_;
  if (!Authenticate()) return false;
  if (Status s = host_->AdmitSession(user_); !s.ok()) {
    SendError(s, {}, "FATAL");
    (void)Flush();
    return false;
  }
  admitted_ = true;
  // PostgreSQL checks the database after authentication, so names are not probed anonymously.
  if (database != host_->database_name()) {
    SendError(Error(ErrorCode::kSqlInvalidCatalogName, "database \"" + database + "\" does not exist"), {}, "FATAL");
    (void)Flush();
    return false;
  }
  auto conn = host_->TakeConnection();
  if (!conn.ok()) {
    SendError(conn.status(), {}, "FATAL");
    (void)Flush();
    return false;
  }
  conn_ = std::move(*conn);
  pid_ = host_->Register(this);
  hooks_ = host_->NewHooks(SessionInfo{user_, socket_->peer(), socket_->tls(), pid_});
  (void)DuckExec("SET VARIABLE tarn_pg_user = " + QuoteLiteral(user_) + "; SET VARIABLE tarn_pg_pid = " +
                 std::to_string(pid_));
  settings_ = {
      {"server_version", "15.0 (Tarn)"}, {"server_version_num", "150000"}, {"server_encoding", "UTF8"},
      {"client_encoding", "UTF8"}, {"datestyle", "ISO, MDY"}, {"intervalstyle", "postgres"},
      {"timezone", "UTC"}, {"integer_datetimes", "on"}, {"standard_conforming_strings", "on"},
      {"is_superuser", "on"}, {"session_authorization", user_}, {"default_transaction_read_only", "off"},
      {"in_hot_standby", "off"}, {"application_name", ""}, {"extra_float_digits", "1"},
      {"client_min_messages", "notice"}, {"search_path", "\"$user\", public"}, {"statement_timeout", "0"},
      {"bytea_output", "hex"}, {"transaction_isolation", "serializable"},
      {"default_transaction_isolation", "serializable"}, {"max_identifier_length", "63"},
  };
  statement_timeout_ms_ = host_->default_statement_timeout_ms(user_);
  max_statement_timeout_ms_ = host_->max_statement_timeout_ms(user_);
  settings_["statement_timeout"] = std::to_string(statement_timeout_ms_);
  // Settings come as startup parameters and inside `options` ("-c name=value" or
  // "--name=value", libpq's PGOPTIONS), which PostgreSQL applies the same way.
  std::vector<std::pair<std::string, std::string>> params(packet.params.begin(), packet.params.end());
  if (auto o = packet.params.find("options"); o != packet.params.end()) {
    std::vector<std::string> words;
    for (std::string w : Split(o->second, ' ')) {
      if (!Trim(w).empty()) words.emplace_back(Trim(w));
    }
    for (size_t i = 0; i < words.size(); ++i) {
      std::string kv;
      if (words[i] == "-c" && i + 1 < words.size()) kv = words[++i];
      else if (StartsWith(words[i], "-c")) kv = words[i].substr(2);
      else if (StartsWith(words[i], "--")) kv = words[i].substr(2);
      size_t eq = kv.find('=');
      if (eq != std::string::npos) params.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
  }
  for (const auto& [k, v] : params) {
    std::string name = ToLower(k);
    if (name == "user" || name == "database" || name == "options" || name == "replication") continue;
    if (name == "client_encoding") continue;  // always UTF8 (server_encoding)
    if (IsSessionSetting(name)) settings_[name] = v;
    if (name == "statement_timeout") {
      statement_timeout_ms_ = ParseDurationMs(v).value_or(statement_timeout_ms_);
      // A login with its own limit cannot start above it (lowered to the limit).
      if (max_statement_timeout_ms_ > 0 && (statement_timeout_ms_ == 0 || statement_timeout_ms_ > max_statement_timeout_ms_)) {
        statement_timeout_ms_ = max_statement_timeout_ms_;
      }
      settings_[name] = std::to_string(statement_timeout_ms_);
    }
  }
  // AuthenticationOk was sent by Authenticate.
  SendParameterStatus();
  out_.Begin('K');
  out_.Int32(pid_);
  out_.Int32(secret_);
  out_.End();
  out_.ReadyForQuery(tx_);
  return Flush().ok();
}

bool Session::Authenticate() {
  auto verifier_text = host_->LookupVerifier(user_);
  std::optional<security::ScramVerifier> verifier;
  if (verifier_text.ok() && *verifier_text) {
    auto v = security::ScramVerifier::Parse(**verifier_text);
    if (v.ok()) verifier = *v;
  }
  auto fail = [&] {
    SendError(Error(ErrorCode::kInvalidPassword, "password authentication failed for user \"" + user_ + "\""), {},
              "FATAL");
    (void)Flush();
    return false;
  };
  // §55.3.1: AuthenticationSASL listing the mechanisms (md5 is never offered).
  out_.Begin('R');
  out_.Int32(10);
  out_.CString("SCRAM-SHA-256");
  out_.Byte(0);
  out_.End();
  if (!Flush().ok()) return false;
  ScramServer scram(verifier);
  char type;
  std::string body;
  if (!ReadMessage(&type, &body).ok()) return false;
  if (type != 'p') return fail();
  MessageReader r(body);
  std::string_view mech = r.CString();
  int32_t n = r.Int32();
  std::string_view first = n >= 0 ? r.Bytes(static_cast<size_t>(n)) : std::string_view();
  if (!r.ok() || mech != "SCRAM-SHA-256") {
    SendError(Error(ErrorCode::kSqlProtocolViolation, "client selected an invalid SASL authentication mechanism"),
              {}, "FATAL");
    (void)Flush();
    return false;
  }
  auto server_first = scram.ClientFirst(first);
  if (!server_first.ok()) {
    SendError(server_first.status(), {}, "FATAL");
    (void)Flush();
    return false;
  }
  out_.Begin('R');
  out_.Int32(11);
  out_.Bytes(*server_first);
  out_.End();
  if (!Flush().ok()) return false;
  if (!ReadMessage(&type, &body).ok()) return false;
  if (type != 'p') return fail();
  auto server_final = scram.ClientFinal(body);
  if (!server_final.ok()) {
    if (server_final.status().code() == ErrorCode::kInvalidPassword) return fail();
    SendError(server_final.status(), {}, "FATAL");
    (void)Flush();
    return false;
  }
  out_.Begin('R');
  out_.Int32(12);
  out_.Bytes(*server_final);
  out_.End();
  out_.Begin('R');
  out_.Int32(0);
  out_.End();
  return true;
}

// ---- main loop ----

void Session::Run(bool over_limit) {
  if (!Startup(over_limit)) return;
  TLOG_DEBUG("sql", "session {} for {} from {}", pid_, user_, socket_->peer());
  std::string body;  // reused: its capacity outlives each message
  for (;;) {
    char type;
    Status st = ReadMessage(&type, &body);
    if (!st.ok()) {
      if (st.code() == ErrorCode::kSqlProtocolViolation) {
        SendError(st, {}, "FATAL");
        (void)Flush();
      }
      break;
    }
    if (type == 'X') break;
    if (skip_until_sync_ && type != 'S') continue;  // §55.2.3: discard until Sync after an error
    Status r;
    switch (type) {
      case 'Q': SimpleQuery(body); r = Flush(); break;
      case 'P': r = HandleParse(body); break;
      case 'B': r = HandleBind(body); break;
      case 'D': r = HandleDescribe(body); break;
      case 'E': r = HandleExecute(body); break;
      case 'C': r = HandleClose(body); break;
      case 'H': r = Flush(); break;
      case 'S':
        skip_until_sync_ = false;
        out_.ReadyForQuery(tx_);
        r = Flush();
        break;
      case 'd': case 'c': case 'f': continue;  // stray COPY messages are ignored (§55.2.6)
      default:
        SendError(Error(ErrorCode::kSqlProtocolViolation,
                        "invalid frontend message type " + std::to_string(static_cast<unsigned char>(type))),
                  {}, "FATAL");
        (void)Flush();
        return;
    }
    if (!r.ok()) {
      if (r.code() == ErrorCode::kIoError) break;
      SendError(r);
      if (tx_ == 'T') tx_ = 'E';
      skip_until_sync_ = true;
    }
    if (streaming_) {
      // A suspended portal or open cursor waits for the client's next Execute/FETCH, which
      // re-arms statement_timeout: PostgreSQL times statement messages, not the pauses between.
      running_ = false;
      deadline_ms_ = 0;
    } else if (query_slot_) {
      // A statement whose result is no longer open (finished, failed, closed or replaced)
      // gives its query slot back.
      EndStatement();
    }
    if (out_.size() > kFlushThreshold && !Flush().ok()) break;
  }
  if (streaming_) streaming_ = nullptr;
  portals_.clear();
  cursors_.clear();
  if (conn_ && tx_ != 'I') (void)DuckExec("ROLLBACK");
}

// ---- statements ----

Result<std::shared_ptr<Session::Statement>> Session::Prepare(const std::string& sql, std::vector<int32_t> param_types) {
  if (!IsValidUtf8(sql)) {
    return Error(ErrorCode::kSqlCharacterNotInRepertoire, "invalid byte sequence for encoding \"UTF8\"");
  }
  std::string cache_key = sql;
  cache_key.push_back('\0');
  cache_key.append(reinterpret_cast<const char*>(param_types.data()), param_types.size() * sizeof(int32_t));
  if (auto cached = statement_cache_.Find(cache_key)) return cached;
  auto st = std::make_shared<Statement>();
  st->sql = sql;
  st->param_types = std::move(param_types);
  st->keywords = LeadingKeywords(sql, 4);
  const auto& kw = st->keywords;
  std::string k0 = kw.empty() ? "" : kw[0];
  std::string k1 = kw.size() > 1 ? kw[1] : "";
  if (Trim(sql).empty() || (kw.empty() && SplitStatements(sql).empty())) {
    st->special = Special::kEmpty;
    return st;
  }
  if (k0 == "SET" || k0 == "PRAGMA") {
    std::string name = (k1 == "GLOBAL" || k1 == "SESSION" || k1 == "LOCAL") && kw.size() > 2 ? kw[2] : k1;
    if (IsWarehouseSetting(name)) {
      return Error(ErrorCode::kAccessDenied, "permission denied to set parameter \"" + ToLower(name) +
                                                 "\": the warehouse's limits are set in tarn.yaml (sql:)");
    }
  }
  if (hooks_ && hooks_->Owns(sql)) {
    st->special = Special::kHook;
    return st;
  }
  if (k0 == "BEGIN" || (k0 == "START" && k1 == "TRANSACTION")) {
    st->special = Special::kBegin;
  } else if (k0 == "COMMIT" || k0 == "END") {
    st->special = Special::kCommit;
  } else if ((k0 == "ROLLBACK" || k0 == "ABORT") && k1 != "TO") {
    st->special = Special::kRollback;
  } else if (k0 == "DECLARE") {
    // DECLARE name [BINARY] [[NO] SCROLL] CURSOR [WITH[OUT] HOLD] FOR query
    std::string low = ToLower(sql);
    size_t cursor_at = low.find(" cursor");
    st->cursor_binary = low.find(" binary ") < cursor_at;
    size_t kw_pos = low.find("cursor");
    size_t for_pos = kw_pos == std::string::npos ? kw_pos : low.find("for", kw_pos);
    while (for_pos != std::string::npos &&
           ((for_pos > 0 && !std::isspace(static_cast<unsigned char>(low[for_pos - 1]))) ||
            (for_pos + 3 < low.size() && !std::isspace(static_cast<unsigned char>(low[for_pos + 3]))))) {
      for_pos = low.find("for", for_pos + 3);
    }
    if (cursor_at == std::string::npos || for_pos == std::string::npos) {
      return Error(ErrorCode::kSqlSyntaxError, "syntax error in DECLARE: expected DECLARE name CURSOR FOR query");
    }
    st->special = Special::kDeclare;
    st->cursor = NameAfter(sql, 1);
    st->copy_select = std::string(Trim(std::string_view(sql).substr(for_pos + 3)));
  } else if (k0 == "FETCH" || k0 == "MOVE") {
    // FETCH [NEXT | FORWARD [n | ALL] | n | ALL] [FROM | IN] name
    std::string_view rest = Trim(std::string_view(sql).substr(sql.find_first_of(k0 == "FETCH" ? "hH" : "eE") + 1));
    std::vector<std::string> words;
    for (std::string w : Split(rest, ' ')) {
      if (!Trim(w).empty()) words.emplace_back(Trim(w));
    }
    if (words.empty()) return Error(ErrorCode::kSqlSyntaxError, k0 + ": cursor name expected");
    st->special = k0 == "FETCH" ? Special::kFetch : Special::kMove;
    st->cursor = FoldName(words.back());
    for (size_t i = 0; i + 1 < words.size(); ++i) {
      std::string w = ToLower(words[i]);
      if (w == "all") st->fetch_count = 0;
      else if (auto n = ParseInt64(w)) st->fetch_count = *n;
      else if (w != "next" && w != "forward" && w != "from" && w != "in") {
        return Error(ErrorCode::kNotImplemented, k0 + " " + words[i] + " is not supported: cursors only move forward");
      }
    }
    if (st->fetch_count < 0) return Error(ErrorCode::kNotImplemented, "cursors only move forward");
  } else if (k0 == "CLOSE") {
    st->special = Special::kClose;
    st->cursor = NameAfter(sql, 1);
  } else if (k0 == "SAVEPOINT" || k0 == "RELEASE" || (k0 == "ROLLBACK" && k1 == "TO") || k0 == "LISTEN" ||
             k0 == "UNLISTEN" || k0 == "NOTIFY" || k0 == "PREPARE" || k0 == "EXECUTE" || k0 == "LOCK") {
    st->special = Special::kNotSupported;
  } else if (k0 == "DISCARD") {
    st->special = Special::kDiscard;
  } else if (k0 == "DEALLOCATE") {
    st->special = Special::kDeallocate;
  } else if (k0 == "RESET") {
    st->special = Special::kReset;
  } else if (k0 == "SET" && (k1 == "TRANSACTION" || (k1 == "SESSION" && kw.size() > 2 && kw[2] == "CHARACTERISTICS"))) {
    st->special = Special::kSetTransaction;
  } else if (k0 == "SET") {
    // SET [SESSION|LOCAL] name {TO|=} value | SET TIME ZONE value
    std::string_view rest = Trim(std::string_view(sql).substr(sql.find_first_of("sS") + 3));
    std::string lower = ToLower(rest);
    if (StartsWith(lower, "session ")) rest = Trim(rest.substr(8));
    else if (StartsWith(lower, "local ")) rest = Trim(rest.substr(6));
    std::string name, value;
    if (StartsWith(ToLower(rest), "time zone")) {
      name = "timezone";
      value = std::string(Trim(rest.substr(9)));
    } else {
      size_t i = 0;
      while (i < rest.size() && (std::isalnum(static_cast<unsigned char>(rest[i])) || rest[i] == '_' || rest[i] == '.')) ++i;
      name = ToLower(rest.substr(0, i));
      std::string_view v = Trim(rest.substr(i));
      if (StartsWith(v, "=")) v = Trim(v.substr(1));
      else if (StartsWith(ToLower(v), "to")) v = Trim(v.substr(2));
      value = std::string(v);
    }
    if (IsSessionSetting(name)) {
      st->special = Special::kSet;
      st->copy_table = name;  // reuse: the setting name
      st->copy_select = value;
    }
  } else if (k0 == "SHOW") {
    std::string name = ToLower(Trim(std::string_view(sql).substr(sql.find_first_of("wW") + 2)));
    while (!name.empty() && name.back() == ';') name.pop_back();
    if (name == "time zone") name = "timezone";
    if (IsSessionSetting(name) || name == "transaction isolation level" || name == "transaction_read_only") {
      std::string value;
      if (name == "transaction isolation level") value = "serializable";
      else if (name == "transaction_read_only") value = tx_read_only_ ? "on" : "off";
      else value = settings_.count(name) ? settings_[name] : "";
      if (name == "statement_timeout") value = std::to_string(statement_timeout_ms_) + (statement_timeout_ms_ ? "ms" : "");
      st->rewritten = "SELECT " + QuoteLiteral(value) + " AS " + QuoteIdentifier(name);
    }
  } else if (k0 == "COPY") {
    // COPY { table [(cols)] | (query) } { TO STDOUT | FROM STDIN } [[WITH] (options) | legacy]
    std::string_view rest = Trim(std::string_view(sql).substr(4));
    std::string target;
    size_t i = 0;
    if (!rest.empty() && rest[0] == '(') {
      int depth = 0;
      for (; i < rest.size(); ++i) {
        if (size_t n = 0; rest[i] == '\'') {
          (void)n;
          size_t e = rest.find('\'', i + 1);
          if (e == std::string_view::npos) break;
          i = e;
          continue;
        }
        if (rest[i] == '(') ++depth;
        if (rest[i] == ')' && --depth == 0) break;
      }
      target = std::string(rest.substr(1, i - 1));
      st->copy_select = target;
      ++i;
    } else {
      while (i < rest.size() && !std::isspace(static_cast<unsigned char>(rest[i])) && rest[i] != '(') ++i;
      st->copy_table = std::string(rest.substr(0, i));
      size_t j = i;
      while (j < rest.size() && std::isspace(static_cast<unsigned char>(rest[j]))) ++j;
      if (j < rest.size() && rest[j] == '(') {
        size_t e = rest.find(')', j);
        if (e == std::string_view::npos) return Error(ErrorCode::kSqlSyntaxError, "COPY: unterminated column list");
        for (std::string c : Split(rest.substr(j + 1, e - j - 1), ',')) st->copy_columns.emplace_back(Trim(c));
        i = e + 1;
      } else {
        i = j;
      }
    }
    std::string tail = ToLower(rest.substr(i));
    bool to_stdout = tail.find("to stdout") != std::string::npos;
    bool from_stdin = tail.find("from stdin") != std::string::npos;
    if (to_stdout || from_stdin) {
      st->special = to_stdout ? Special::kCopyOut : Special::kCopyIn;
      if (tail.find("binary") != std::string::npos) st->copy_format = "binary";
      if (tail.find("csv") != std::string::npos) {
        st->copy_format = "csv";
        st->copy_delim = ',';
        st->copy_null = "";
      }
      if (tail.find("header") != std::string::npos && tail.find("header false") == std::string::npos) {
        st->copy_header = true;
      }
      std::string_view orig = rest.substr(i);
      for (std::string key : {"delimiter", "null"}) {
        size_t p = tail.find(key);
        if (p == std::string::npos) continue;
        size_t q = tail.find('\'', p);
        if (q == std::string::npos) continue;
        size_t qe = orig.find('\'', q + 1);
        if (qe == std::string::npos) continue;
        std::string v(orig.substr(q + 1, qe - q - 1));
        if (key == "delimiter" && v.size() == 1) st->copy_delim = v[0];
        if (key == "delimiter" && v == "\\t") st->copy_delim = '\t';
        if (key == "null") st->copy_null = v;
      }
      if (to_stdout && st->copy_select.empty()) {
        std::string cols = st->copy_columns.empty() ? "*" : Join(st->copy_columns, ", ");
        st->copy_select = "SELECT " + cols + " FROM " + st->copy_table;
      }
      if (to_stdout) st->rewritten = RewriteQuery(st->copy_select);
      if (to_stdout && hooks_) {
        ASSIGN_OR_RETURN(st->binding, hooks_->BeforePrepare(*conn_, &st->rewritten));
      }
    }
  }
  if (st->special != Special::kNone) return st;
  bool stateless = false;  // the text alone decides what DuckDB runs
  if (st->rewritten.empty()) {
    // psycopg, SQLAlchemy, pgJDBC: current_setting('server_version_num') and other settings
    // only the session knows become literals (DuckDB's current_setting knows its own only).
    std::string text = sql;
    std::string low = ToLower(text);
    for (size_t at = low.find("current_setting("); at != std::string::npos;
         at = low.find("current_setting(", at + 1)) {
      size_t q1 = at + 16;
      while (q1 < text.size() && std::isspace(static_cast<unsigned char>(text[q1]))) ++q1;
      if (q1 >= text.size() || text[q1] != '\'') continue;
      size_t q2 = text.find('\'', q1 + 1);
      size_t close = q2 == std::string::npos ? q2 : text.find(')', q2);
      if (close == std::string::npos) continue;
      std::string name = ToLower(text.substr(q1 + 1, q2 - q1 - 1));
      if (!IsSessionSetting(name) || name == "timezone") continue;
      size_t start = at;
      if (start >= 11 && low.compare(start - 11, 11, "pg_catalog.") == 0) start -= 11;
      std::string lit = QuoteLiteral(settings_.count(name) ? settings_[name] : "");
      text.replace(start, close + 1 - start, lit);
      low = ToLower(text);
      at = start;
    }
    stateless = text == sql;
    st->rewritten = RewriteQuery(text);
  }
  if (hooks_) {
    ASSIGN_OR_RETURN(st->binding, hooks_->BeforePrepare(*conn_, &st->rewritten));
    if (st->binding) stateless = false;  // lake tables are planned anew for every execution
  }
  auto prepared = conn_->Prepare(st->rewritten);
  if (!prepared.ok()) return prepared.status();
  st->prepared = std::move(*prepared);
  if (st->param_types.size() < st->prepared->parameter_count()) st->param_types.resize(st->prepared->parameter_count(), 0);
  // Statements whose text alone decides what DuckDB runs are kept for the next Parse or Query
  // of the same text (a SHOW or a current_setting() literal depends on the session's settings;
  // DuckDB re-plans cached statements itself after catalog changes).
  StatementKind kind = st->prepared->statement_kind();
  if (stateless && (kind == StatementKind::kSelect || kind == StatementKind::kInsert ||
                    kind == StatementKind::kUpdate || kind == StatementKind::kDelete)) {
    st->constant = kind == StatementKind::kSelect && st->prepared->parameter_count() == 0 &&
                   IsConstantSelect(st->rewritten);
    statement_cache_.Put(cache_key, st);
  }
  return st;
}

void Session::SendRowDescription(const Portal& p) {
  out_.Begin('T');
  out_.Int16(static_cast<int16_t>(p.columns.size()));
  for (size_t i = 0; i < p.columns.size(); ++i) {
    PgType t = PgTypeFor(p.columns[i]);
    out_.CString(i < p.names.size() ? p.names[i] : "?column?");
    out_.Int32(0);
    out_.Int16(0);
    out_.Int32(t.oid);
    out_.Int16(t.size);
    out_.Int32(t.typmod);
    out_.Int16(p.Binary(i) ? 1 : 0);
  }
  out_.End();
}

// Starts a portal's DuckDB execution (bindings were applied by Bind).
Status Session::Start(Portal& p) {
  if (p.started) return Status::OK();
  p.started = true;
  if (!p.stmt->prepared) return Status::OK();
  Statement& st = *p.stmt;
  // Read-only transactions refuse writes (BEGIN READ ONLY, default_transaction_read_only).
  if (tx_read_only_ || (tx_ == 'I' && settings_["default_transaction_read_only"] == "on")) {
    StatementKind k = st.prepared->statement_kind();
    if (k == StatementKind::kInsert || k == StatementKind::kUpdate || k == StatementKind::kDelete ||
        k == StatementKind::kCreate || k == StatementKind::kDrop || k == StatementKind::kAlter ||
        k == StatementKind::kCopy || k == StatementKind::kCreateFunc) {
      return Error(ErrorCode::kSqlReadOnlyTransaction,
                   "cannot execute " + (st.keywords.empty() ? std::string("statement") : st.keywords[0]) +
                       " in a read-only transaction");
    }
  }
  if (st.constant && st.constant_rows) {
    UseConstantRows(p);
    return Status::OK();
  }
  // DuckDB streams one result per connection: an older suspended portal is closed.
  if (streaming_ && streaming_ != &p) {
    streaming_->result.reset();
    streaming_->chunk.reset();
    streaming_->done = true;
    streaming_->closed = true;
    streaming_ = nullptr;
  }
  // A literal SELECT (a health check) is computed once without taking a query slot.
  RETURN_IF_ERROR(BeginStatement(/*needs_slot=*/!st.constant));
  auto r = st.prepared->Execute();
  if (!r.ok()) {
    EndStatement();
    return MapCancel(r.status());
  }
  p.result.emplace(std::move(*r));
  p.returns_rows = p.result->returns_rows();
  if (st.constant) {
    // First execution of a literal-only SELECT: keep its rows in both encodings.
    auto rows = std::make_shared<ConstantRows>();
    for (size_t i = 0; i < p.result->column_count(); ++i) {
      rows->columns.push_back(p.result->column_info(i));
      rows->names.push_back(p.result->column_name(i));
    }
    NameColumns(st, &rows->names);
    for (;;) {
      auto next = p.result->Next();
      if (!next.ok()) {
        p.result.reset();
        EndStatement();
        return MapCancel(next.status());
      }
      if (!*next) break;
      const Chunk& chunk = **next;
      for (size_t row = 0; row < chunk.size(); ++row) {
        auto& text = rows->text.emplace_back();
        auto& binary = rows->binary.emplace_back();
        for (size_t c = 0; c < rows->columns.size(); ++c) {
          const VectorView& v = chunk.column(c);
          if (v.IsNull(row)) {
            text.emplace_back();
            binary.emplace_back();
            continue;
          }
          EncodeText(v, row, &text.emplace_back().emplace());
          EncodeBinary(v, row, &binary.emplace_back().emplace());
        }
      }
    }
    p.result.reset();
    EndStatement();
    st.constant_rows = std::move(rows);
    UseConstantRows(p);
    return Status::OK();
  }
  if (p.returns_rows) {
    for (size_t i = 0; i < p.result->column_count(); ++i) {
      p.columns.push_back(p.result->column_info(i));
      p.names.push_back(p.result->column_name(i));
    }
    NameColumns(st, &p.names);
    streaming_ = &p;
  } else {
    p.rows = p.result->rows_changed();
    p.done = true;
    EndStatement();
  }
  return Status::OK();
}

// RowDescription names as PostgreSQL gives them (colnames.h), worked out once per statement
// from the client's text; kept as DuckDB reports them when the select list does not match.
void Session::NameColumns(Statement& st, std::vector<std::string>* names) {
  if (!st.pg_names_ready) {
    st.pg_names = PgColumnNames(st.sql);
    st.pg_names_ready = true;
  }
  if (!st.pg_names || st.pg_names->size() != names->size()) return;
  for (size_t i = 0; i < names->size(); ++i) (*names)[i] = ReportedColumnName((*names)[i], (*st.pg_names)[i]);
}

void Session::UseConstantRows(Portal& p) {
  const ConstantRows& rows = *p.stmt->constant_rows;
  p.constant = &rows;
  p.columns = rows.columns;
  p.names = rows.names;
  p.returns_rows = true;
}

Status Session::SendRows(Portal& p, int64_t max_rows, bool* suspended) {
  *suspended = false;
  int64_t sent = 0;
  size_t ncols = p.columns.size();
  std::string& buf = out_.buffer();
  if (p.constant) {
    for (; p.constant_row < p.constant->text.size(); ++p.constant_row) {
      if (max_rows > 0 && sent >= max_rows) {
        *suspended = true;
        return Status::OK();
      }
      ++sent;
      ++p.rows;
      if (suppress_rows_) continue;
      out_.Begin('D');
      out_.Int16(static_cast<int16_t>(ncols));
      for (size_t c = 0; c < ncols; ++c) {
        const auto& cell = p.Binary(c) ? p.constant->binary[p.constant_row][c] : p.constant->text[p.constant_row][c];
        out_.Int32(cell ? static_cast<int32_t>(cell->size()) : -1);
        if (cell) out_.Bytes(*cell);
      }
      out_.End();
    }
    p.done = true;
    return Status::OK();
  }
  if (!running_ && !p.done) {
    // Resuming a suspended portal or cursor: a new statement message, timed afresh.
    cancelled_ = false;
    timed_out_ = false;
    running_ = true;
    if (statement_timeout_ms_ > 0) deadline_ms_ = NowMs() + statement_timeout_ms_;
  }
  while (!p.done) {
    if (!p.chunk || p.chunk_row >= p.chunk_size) {
      p.chunk.reset();
      p.encoder_ready = false;
      if (!p.result) {
        p.done = true;
        return Error(ErrorCode::kSqlInvalidCursorName, "portal was closed by a later query on this connection");
      }
      auto next = p.result->Next();
      if (!next.ok()) {
        p.done = true;
        EndStatement();
        return MapCancel(next.status());
      }
      if (!*next) {
        p.done = true;
        break;
      }
      p.chunk.emplace(std::move(**next));
      p.chunk_row = 0;
      p.chunk_size = p.chunk->size();
    }
    if (max_rows > 0 && sent >= max_rows) {
      *suspended = true;
      return Status::OK();
    }
    size_t end = p.chunk_size;
    if (max_rows > 0) end = std::min<size_t>(end, p.chunk_row + static_cast<size_t>(max_rows - sent));
    size_t n;
    if (suppress_rows_) {
      n = end - p.chunk_row;
    } else {
      if (!p.encoder_ready) {
        std::vector<bool> binary(ncols);
        for (size_t c = 0; c < ncols; ++c) binary[c] = p.Binary(c);
        p.encoder.Reset(*p.chunk, ncols, binary);
        p.encoder_ready = true;
      }
      n = p.encoder.Encode(p.chunk_row, end, &buf, kFlushThreshold);
    }
    p.chunk_row += n;
    sent += static_cast<int64_t>(n);
    p.rows += static_cast<int64_t>(n);
    if (buf.size() > kFlushThreshold) RETURN_IF_ERROR(Flush());
  }
  p.result.reset();
  if (streaming_ == &p) streaming_ = nullptr;
  EndStatement();
  return Status::OK();
}

Status Session::Execute(Portal& p, int64_t max_rows, bool describe, bool* suspended) {
  *suspended = false;
  Statement& st = *p.stmt;
  if (tx_ == 'E' && st.special != Special::kRollback && st.special != Special::kCommit) {
    return Error(ErrorCode::kSqlInFailedTransaction,
                 "current transaction is aborted, commands ignored until end of transaction block");
  }
  if (st.special == Special::kEmpty) {
    out_.Empty('I');
    return Status::OK();
  }
  if (st.special == Special::kDeclare || st.special == Special::kFetch || st.special == Special::kMove ||
      st.special == Special::kClose) {
    return RunCursorStatement(p, describe);
  }
  if (st.special == Special::kCopyOut) return CopyOut(p);
  if (st.special == Special::kCopyIn) return CopyIn(p);
  if (st.special == Special::kHook) return RunHookStatement(p);
  if (st.special != Special::kNone) return RunSessionStatement(p);
  bool was_started = p.started;
  int64_t before = p.rows;
  RETURN_IF_ERROR(Start(p));
  if (describe && !was_started) {
    if (p.returns_rows) SendRowDescription(p);
  }
  if (p.returns_rows) RETURN_IF_ERROR(SendRows(p, max_rows, suspended));
  if (*suspended) {
    out_.Empty('s');
    return Status::OK();
  }
  StatementKind kind = p.result ? p.result->statement_kind() : st.prepared->statement_kind();
  // §55.2.3: a portal run in several Executes reports the rows of the last one.
  out_.CommandComplete(CommandTag(kind, st.keywords, p.returns_rows ? p.rows - before : p.rows, p.returns_rows));
  return Status::OK();
}

Status Session::RunSessionStatement(Portal& p) {
  Statement& st = *p.stmt;
  p.done = true;
  switch (st.special) {
    case Special::kBegin: {
      if (tx_ != 'I') {
        SendNotice("there is already a transaction in progress", "25001");  // active_sql_transaction
      } else {
        RETURN_IF_ERROR(DuckExec("BEGIN TRANSACTION"));
        tx_ = 'T';
        std::string up = ToLower(st.sql);
        tx_read_only_ = up.find("read only") != std::string::npos ||
                        (settings_["default_transaction_read_only"] == "on" && up.find("read write") == std::string::npos);
      }
      out_.CommandComplete("BEGIN");
      return Status::OK();
    }
    case Special::kCommit: {
      if (tx_ == 'I') {
        SendNotice("there is no transaction in progress", "25P01");
        out_.CommandComplete("COMMIT");
        return Status::OK();
      }
      bool failed = tx_ == 'E';
      tx_ = 'I';
      tx_read_only_ = false;
      if (failed) {
        (void)DuckExec("ROLLBACK");
        out_.CommandComplete("ROLLBACK");
        return Status::OK();
      }
      Status s = DuckExec("COMMIT");
      if (!s.ok()) {
        (void)DuckExec("ROLLBACK");
        return s;
      }
      out_.CommandComplete("COMMIT");
      return Status::OK();
    }
    case Special::kRollback: {
      if (tx_ == 'I') {
        SendNotice("there is no transaction in progress", "25P01");
      } else {
        (void)DuckExec("ROLLBACK");
      }
      tx_ = 'I';
      tx_read_only_ = false;
      out_.CommandComplete("ROLLBACK");
      return Status::OK();
    }
    case Special::kSetTransaction: {
      std::string low = ToLower(st.sql);
      bool ro = low.find("read only") != std::string::npos;
      bool rw = low.find("read write") != std::string::npos;
      if (low.find("characteristics") != std::string::npos) {
        if (ro || rw) settings_["default_transaction_read_only"] = ro ? "on" : "off";
        out_.ParameterStatus("default_transaction_read_only", settings_["default_transaction_read_only"]);
      } else if (tx_ != 'I' && (ro || rw)) {
        tx_read_only_ = ro;
      }
      out_.CommandComplete("SET");
      return Status::OK();
    }
    case Special::kSet: {
      const std::string& name = st.copy_table;
      std::vector<std::string> values = SplitValues(st.copy_select);
      std::string value = Join(values, ", ");
      if (EqualsIgnoreCase(value, "default") || EqualsIgnoreCase(value, "local")) value = "";
      if (name == "statement_timeout") {
        // DEFAULT / RESET go back to the configured sql.statement_timeout_ms.
        auto ms = value.empty() ? std::optional<int64_t>(host_->default_statement_timeout_ms(user_)) : ParseDurationMs(value);
        if (!ms) return Error(ErrorCode::kInvalidArgument, "invalid value for parameter \"statement_timeout\": \"" + value + "\"");
        // sql.users.<login>.statement_timeout_ms is a limit, not only a default.
        if (max_statement_timeout_ms_ > 0 && (*ms == 0 || *ms > max_statement_timeout_ms_)) {
          return Error(ErrorCode::kInvalidArgument,
                       std::to_string(*ms) + " ms is outside the valid range for parameter \"statement_timeout\" of role \"" +
                           user_ + "\" (1 .. " + std::to_string(max_statement_timeout_ms_) +
                           " ms, sql.users." + user_ + ".statement_timeout_ms)");
        }
        statement_timeout_ms_ = *ms;
      } else if (name == "client_encoding") {
        std::string e = ToLower(value);
        if (!value.empty() && e != "utf8" && e != "utf-8" && e != "unicode") {
          return Error(ErrorCode::kNotImplemented, "client_encoding " + value + " is not supported: use UTF8");
        }
        value = "UTF8";
      } else if (name == "timezone" && !value.empty()) {
        // Timestamps with time zone are always sent in UTC ("+00"); DuckDB keeps the zone for
        // its own casts.
        Status s = DuckExec("SET TimeZone = " + QuoteLiteral(value));
        if (!s.ok()) return Error(ErrorCode::kInvalidArgument, "invalid value for parameter \"TimeZone\": \"" + value + "\"");
        statement_cache_.Clear();  // plans may hold constants folded in the old zone
      } else if (name == "default_transaction_read_only") {
        std::string e = ToLower(value);
        value = (e == "on" || e == "true" || e == "1" || e == "yes") ? "on" : "off";
      }
      if (value.empty() && name != "application_name") {
        if (name == "timezone") value = "UTC";
        else if (name == "datestyle") value = "ISO, MDY";
        else if (name == "statement_timeout") value = std::to_string(statement_timeout_ms_);
      }
      settings_[name] = value;
      if (IsReported(name)) out_.ParameterStatus(DisplayName(name), value);
      out_.CommandComplete("SET");
      return Status::OK();
    }
    case Special::kReset: {
      std::string name = st.keywords.size() > 1 ? ToLower(st.keywords[1]) : "";
      if (name == "statement_timeout" || name == "all") statement_timeout_ms_ = host_->default_statement_timeout_ms(user_);
      if (name == "application_name" || name == "all") {
        settings_["application_name"] = "";
        out_.ParameterStatus("application_name", "");
      }
      out_.CommandComplete("RESET");
      return Status::OK();
    }
    case Special::kDiscard: {
      if (tx_ != 'I') return Error(ErrorCode::kFailedPrecondition, "DISCARD ALL cannot run inside a transaction block");
      statements_.clear();
      statement_cache_.Clear();
      cursors_.clear();
      for (auto it = portals_.begin(); it != portals_.end();) {
        if (it->second.get() == &p) {
          ++it;
        } else {
          if (streaming_ == it->second.get()) streaming_ = nullptr;
          it = portals_.erase(it);
        }
      }
      statement_timeout_ms_ = host_->default_statement_timeout_ms(user_);
      out_.CommandComplete("DISCARD ALL");
      return Status::OK();
    }
    case Special::kDeallocate: {
      std::string name = st.keywords.size() > 1 ? st.keywords[1] : "";
      if (name == "PREPARE") name = st.keywords.size() > 2 ? st.keywords[2] : "";
      if (name == "ALL") {
        statements_.clear();
      } else {
        // Statement names are case-sensitive on the wire; match either spelling.
        std::string lname = ToLower(name);
        if (!statements_.erase(lname) && !statements_.erase(name)) {
          return Error(ErrorCode::kSqlInvalidStatementName, "prepared statement \"" + lname + "\" does not exist");
        }
      }
      out_.CommandComplete("DEALLOCATE");
      return Status::OK();
    }
    case Special::kNotSupported:
      return Error(ErrorCode::kNotImplemented,
                   (st.keywords.empty() ? std::string("statement") : st.keywords[0]) +
                       " is not supported by the Tarn warehouse yet");
    default: return Error(ErrorCode::kInternal, "unhandled session statement");
  }
}

// ---- cursors ----

Status Session::RunCursorStatement(Portal& p, bool describe) {
  Statement& st = *p.stmt;
  p.done = true;
  if (st.special == Special::kDeclare) {
    if (cursors_.count(st.cursor)) {
      return Error(ErrorCode::kSqlInvalidCursorName, "cursor \"" + st.cursor + "\" already exists");
    }
    ASSIGN_OR_RETURN(std::shared_ptr<Statement> query, Prepare(st.copy_select, {}));
    if (!query->prepared) return Error(ErrorCode::kSqlSyntaxError, "DECLARE CURSOR needs a query");
    auto cursor = std::make_unique<Portal>();
    cursor->stmt = query;
    if (st.cursor_binary) cursor->result_formats = {1};
    RETURN_IF_ERROR(Start(*cursor));
    cursors_[st.cursor] = std::move(cursor);
    out_.CommandComplete("DECLARE CURSOR");
    return Status::OK();
  }
  if (st.special == Special::kClose) {
    if (st.cursor == "all") {
      for (auto& [name, c] : cursors_) {
        if (streaming_ == c.get()) streaming_ = nullptr;
      }
      cursors_.clear();
    } else {
      auto it = cursors_.find(st.cursor);
      if (it == cursors_.end()) {
        return Error(ErrorCode::kSqlInvalidCursorName, "cursor \"" + st.cursor + "\" does not exist");
      }
      if (streaming_ == it->second.get()) streaming_ = nullptr;
      cursors_.erase(it);
    }
    out_.CommandComplete("CLOSE CURSOR");
    return Status::OK();
  }
  auto it = cursors_.find(st.cursor);
  if (it == cursors_.end()) {
    return Error(ErrorCode::kSqlInvalidCursorName, "cursor \"" + st.cursor + "\" does not exist");
  }
  Portal& c = *it->second;
  if (st.special == Special::kFetch && describe && c.returns_rows) SendRowDescription(c);
  int64_t before = c.rows;
  bool suspended = false;
  if (c.closed) {
    return Error(ErrorCode::kSqlInvalidCursorName,
                 "cursor \"" + st.cursor + "\" was closed by a later query (one open result per session)");
  }
  if (c.returns_rows && !c.done) {
    suppress_rows_ = st.special == Special::kMove;
    Status s = SendRows(c, st.fetch_count, &suspended);
    suppress_rows_ = false;
    RETURN_IF_ERROR(s);
  }
  p.rows = c.rows - before;  // the audit record's rows
  out_.CommandComplete(std::string(st.special == Special::kFetch ? "FETCH " : "MOVE ") +
                       std::to_string(c.rows - before));
  return Status::OK();
}

// ---- COPY ----

namespace {

void AppendCopyText(std::string_view v, char delim, std::string* out) {
  for (char c : v) {
    switch (c) {
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c == delim) {
          out->push_back('\\');
        }
        out->push_back(c);
    }
  }
}

void AppendCsv(std::string_view v, char delim, std::string* out) {
  bool quote = v.empty() || v.find_first_of(std::string("\"\r\n") + delim) != std::string_view::npos;
  if (!quote) {
    out->append(v);
    return;
  }
  out->push_back('"');
  for (char c : v) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace

Status Session::CopyOut(Portal& p) {
  Statement& st = *p.stmt;
  if (st.binding) RETURN_IF_ERROR(hooks_->BeforeExecute(*conn_, *st.binding));  // latest data
  ASSIGN_OR_RETURN(auto prepared, conn_->Prepare(st.rewritten));
  RETURN_IF_ERROR(BeginStatement());
  auto r = prepared->Execute();
  if (!r.ok()) {
    EndStatement();
    return MapCancel(r.status());
  }
  size_t ncols = r->column_count();
  bool binary = st.copy_format == "binary";
  out_.Begin('H');
  out_.Byte(binary ? 1 : 0);
  out_.Int16(static_cast<int16_t>(ncols));
  for (size_t i = 0; i < ncols; ++i) out_.Int16(binary ? 1 : 0);
  out_.End();
  std::string line;
  // Binary COPY: the 19-byte file header travels in the first row's CopyData, as
  // PostgreSQL sends it (psycopg expects that).
  bool header_pending = binary;
  auto binary_header = [&] {
    out_.Bytes(std::string_view("PGCOPY\n\377\r\n\0", 11));
    out_.Int32(0);
    out_.Int32(0);
    header_pending = false;
  };
  if (binary) {
    // written with the first row (or the trailer)
  } else if (st.copy_header) {
    for (size_t c = 0; c < ncols; ++c) {
      if (c) line.push_back(st.copy_delim);
      if (st.copy_format == "csv") AppendCsv(r->column_name(c), st.copy_delim, &line);
      else AppendCopyText(r->column_name(c), st.copy_delim, &line);
    }
    line.push_back('\n');
    out_.Begin('d');
    out_.Bytes(line);
    out_.End();
  }
  // Rows are encoded a chunk at a time like DataRows (row_encoder.h): a binary COPY tuple has
  // the DataRow layout in a CopyData message, text and CSV rows are escaped as they are written.
  int64_t rows = 0;
  RowEncoder encoder;
  CopyTextFormat text_format;
  text_format.delimiter = st.copy_delim;
  text_format.null = st.copy_null;
  text_format.csv = st.copy_format == "csv";
  std::vector<bool> formats(ncols, binary);
  std::string& buf = out_.buffer();
  for (;;) {
    auto next = r->Next();
    if (!next.ok()) {
      EndStatement();
      return MapCancel(next.status());
    }
    if (!*next) break;
    const Chunk& chunk = **next;
    encoder.Reset(chunk, ncols, formats, 'd');
    size_t row = 0, n = chunk.size();
    if (header_pending && n > 0) {
      // The first tuple's CopyData message also carries the 19-byte file header.
      size_t at = buf.size();
      row = encoder.Encode(0, 1, &buf, SIZE_MAX);
      std::string header("PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
      buf.insert(at + 5, header);
      uint32_t len = static_cast<uint32_t>(buf.size() - at - 1);
      for (int i = 0; i < 4; ++i) buf[at + 1 + i] = static_cast<char>(len >> (24 - 8 * i));
      header_pending = false;
    }
    while (row < n) {
      row += binary ? encoder.Encode(row, n, &buf, kFlushThreshold)
                    : encoder.EncodeCopyText(row, n, text_format, &buf, kFlushThreshold);
      if (buf.size() > kFlushThreshold) {
        Status fs = Flush();
        if (!fs.ok()) {
          EndStatement();
          return fs;
        }
      }
    }
    rows += static_cast<int64_t>(n);
  }
  EndStatement();
  if (binary) {
    out_.Begin('d');
    if (header_pending) binary_header();
    out_.Int16(-1);
    out_.End();
  }
  out_.Empty('c');
  p.rows = rows;
  out_.CommandComplete("COPY " + std::to_string(rows));
  return Status::OK();
}

namespace {

// Splits one COPY text-format line into fields (nullopt = NULL), undoing backslash escapes.
std::vector<std::optional<std::string>> ParseTextLine(std::string_view line, char delim, const std::string& null_str) {
  std::vector<std::optional<std::string>> out;
  std::string cur;
  std::string raw;
  auto push = [&] {
    if (raw == null_str) out.emplace_back(std::nullopt);
    else out.emplace_back(cur);
    cur.clear();
    raw.clear();
  };
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == delim) {
      push();
      continue;
    }
    raw.push_back(c);
    if (c == '\\' && i + 1 < line.size()) {
      char e = line[++i];
      raw.push_back(e);
      switch (e) {
        case 'n': cur.push_back('\n'); break;
        case 'r': cur.push_back('\r'); break;
        case 't': cur.push_back('\t'); break;
        case 'b': cur.push_back('\b'); break;
        case 'f': cur.push_back('\f'); break;
        case 'v': cur.push_back('\v'); break;
        default: cur.push_back(e); break;
      }
      continue;
    }
    cur.push_back(c);
  }
  push();
  return out;
}

// Parses one CSV record from `buf` at `pos`; false when the record is not complete yet.
bool ParseCsvRecord(std::string_view buf, size_t* pos, char delim, const std::string& null_str, bool final,
                    std::vector<std::optional<std::string>>* out) {
  out->clear();
  std::string cur;
  bool quoted = false, was_quoted = false;
  size_t i = *pos;
  for (; i < buf.size(); ++i) {
    char c = buf[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < buf.size() && buf[i + 1] == '"') {
          cur.push_back('"');
          ++i;
        } else if (i + 1 >= buf.size() && !final) {
          return false;
        } else {
          quoted = false;
        }
      } else {
        cur.push_back(c);
      }
      continue;
    }
    if (c == '"') {
      quoted = was_quoted = true;
      continue;
    }
    if (c == delim || c == '\n') {
      if (!was_quoted && cur == null_str) out->emplace_back(std::nullopt);
      else out->emplace_back(cur);
      cur.clear();
      was_quoted = false;
      if (c == '\n') {
        *pos = i + 1;
        if (!out->empty() && out->back() && !out->back()->empty() && out->back()->back() == '\r') out->back()->pop_back();
        return true;
      }
      continue;
    }
    cur.push_back(c);
  }
  if (!final || quoted) return false;
  if (i == *pos) return false;
  if (!was_quoted && cur == null_str) out->emplace_back(std::nullopt);
  else out->emplace_back(cur);
  *pos = i;
  return true;
}

}  // namespace

Status Session::CopyIn(Portal& p) {
  Statement& st = *p.stmt;
  if (st.copy_format == "binary") return Error(ErrorCode::kNotImplemented, "COPY FROM STDIN (FORMAT binary) is not supported");
  if (tx_read_only_) return Error(ErrorCode::kSqlReadOnlyTransaction, "cannot execute COPY FROM in a read-only transaction");
  std::vector<std::string> cols = st.copy_columns;
  if (cols.empty()) {
    ASSIGN_OR_RETURN(auto probe, conn_->Prepare("SELECT * FROM " + st.copy_table + " LIMIT 0"));
    for (const std::string& n : probe->ColumnNames()) cols.push_back(QuoteIdentifier(n));
  }
  std::string placeholders;
  for (size_t i = 0; i < cols.size(); ++i) placeholders += (i ? ", $" : "$") + std::to_string(i + 1);
  ASSIGN_OR_RETURN(auto insert, conn_->Prepare("INSERT INTO " + st.copy_table + " (" + Join(cols, ", ") +
                                               ") VALUES (" + placeholders + ")"));
  out_.Begin('G');
  out_.Byte(0);
  out_.Int16(static_cast<int16_t>(cols.size()));
  for (size_t i = 0; i < cols.size(); ++i) out_.Int16(0);
  out_.End();
  RETURN_IF_ERROR(Flush());
  bool own_tx = tx_ == 'I';
  if (own_tx) RETURN_IF_ERROR(DuckExec("BEGIN TRANSACTION"));
  Status failure;
  int64_t rows = 0;
  bool header_skipped = !st.copy_header;
  std::string buf;
  size_t pos = 0;
  std::vector<std::optional<std::string>> fields;
  auto insert_row = [&]() -> Status {
    if (!header_skipped) {
      header_skipped = true;
      return Status::OK();
    }
    if (fields.size() != cols.size()) {
      return Error(ErrorCode::kSqlConversion, "COPY: row " + std::to_string(rows + 1) + " has " +
                                                  std::to_string(fields.size()) + " columns, expected " +
                                                  std::to_string(cols.size()));
    }
    for (size_t i = 0; i < fields.size(); ++i) {
      if (fields[i]) RETURN_IF_ERROR(insert->Bind(i + 1, std::string_view(*fields[i])));
      else RETURN_IF_ERROR(insert->BindNull(i + 1));
    }
    ASSIGN_OR_RETURN(QueryResult r, insert->Execute());
    ++rows;
    return Status::OK();
  };
  // Bytes [pos, scan) hold no end of record (for CSV: with `quoted` the quote state at scan), so
  // a long record arriving in many CopyData messages is scanned once, not once per message.
  size_t scan = 0;
  bool quoted = false;
  auto csv_record_ends = [&](bool final) {
    if (scan < pos) {
      scan = pos;
      quoted = false;
    }
    for (; scan < buf.size(); ++scan) {
      if (buf[scan] == '"') quoted = !quoted;  // a doubled quote toggles twice
      else if (buf[scan] == '\n' && !quoted) return true;
    }
    return final;
  };
  auto process = [&](bool final) -> Status {
    if (st.copy_format == "csv") {
      while (csv_record_ends(final) && ParseCsvRecord(buf, &pos, st.copy_delim, st.copy_null, final, &fields)) {
        RETURN_IF_ERROR(insert_row());
      }
    } else {
      for (;;) {
        size_t nl = buf.find('\n', std::max(pos, scan));
        if (nl == std::string::npos) {
          scan = buf.size();
          if (!final || pos >= buf.size()) break;
          nl = buf.size();
        }
        std::string_view line(buf.data() + pos, nl - pos);
        pos = nl + (nl < buf.size() ? 1 : 0);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line == "\\.") continue;  // end-of-data marker of old clients
        fields = ParseTextLine(line, st.copy_delim, st.copy_null);
        RETURN_IF_ERROR(insert_row());
      }
    }
    if (pos > (1 << 20)) {
      buf.erase(0, pos);
      scan = scan > pos ? scan - pos : 0;
      pos = 0;
    }
    // One record (an unterminated quote, a line without end) may not hold the session's memory
    // without bound.
    if (buf.size() - pos > kMaxCopyRecord) {
      return Error(ErrorCode::kEntityTooLarge, "COPY: row " + std::to_string(rows + 1) + " is longer than " +
                                                   std::to_string(kMaxCopyRecord >> 20) + " MB");
    }
    return Status::OK();
  };
  for (;;) {
    char type;
    std::string body;
    RETURN_IF_ERROR(ReadMessage(&type, &body));
    if (type == 'd') {
      if (!failure.ok()) continue;
      buf.append(body);
      failure = process(false);
      if (!failure.ok()) std::string().swap(buf);  // the rest of the data is discarded
    } else if (type == 'c') {
      if (failure.ok()) failure = process(true);
      break;
    } else if (type == 'f') {
      if (failure.ok()) failure = Error(ErrorCode::kCancelled, "COPY from stdin failed: " + body.substr(0, body.find('\0')));
      break;
    } else if (type == 'H' || type == 'S') {
      continue;  // §55.2.6: Flush and Sync are ignored during COPY IN
    } else {
      failure = Error(ErrorCode::kSqlProtocolViolation, "unexpected message type during COPY from stdin");
      break;
    }
  }
  if (!failure.ok()) {
    if (own_tx) (void)DuckExec("ROLLBACK");
    return failure;
  }
  if (own_tx) RETURN_IF_ERROR(DuckExec("COMMIT"));
  p.rows = rows;
  out_.CommandComplete("COPY " + std::to_string(rows));
  return Status::OK();
}

// ---- simple query ----

void Session::SimpleQuery(const std::string& body) {
  std::string sql = body;
  if (!sql.empty() && sql.back() == '\0') sql.pop_back();
  if (sql.find('\0') != std::string::npos) {
    SendError(Error(ErrorCode::kSqlProtocolViolation, "query string contains a NUL byte"));
    out_.ReadyForQuery(tx_);
    return;
  }
  std::vector<std::string> parts = SplitStatements(sql);
  if (parts.empty()) {
    out_.Empty('I');
    out_.ReadyForQuery(tx_);
    return;
  }
  // The unnamed statement and portal are replaced by a simple Query (§55.2.2).
  statements_.erase("");
  if (portals_.count("") && streaming_ == portals_[""].get()) streaming_ = nullptr;
  portals_.erase("");
  for (const std::string& part : parts) {
    Portal portal;
    portal.started_us = NowUs();
    Status s;
    auto st = (tx_ == 'E') ? Result<std::shared_ptr<Statement>>(Error(ErrorCode::kSqlInFailedTransaction, "")) : Prepare(part, {});
    if (tx_ == 'E') {
      auto kw = LeadingKeywords(part, 2);
      std::string k0 = kw.empty() ? "" : kw[0];
      if (k0 == "ROLLBACK" || k0 == "ABORT" || k0 == "COMMIT" || k0 == "END") st = Prepare(part, {});
    }
    if (!st.ok()) {
      s = st.status();
      if (s.code() == ErrorCode::kSqlInFailedTransaction) {
        s = Error(ErrorCode::kSqlInFailedTransaction,
                  "current transaction is aborted, commands ignored until end of transaction block");
      }
    } else {
      portal.stmt = *st;
      bool suspended;
      s = Execute(portal, 0, true, &suspended);
      if (streaming_ == &portal) streaming_ = nullptr;
    }
    Audit(part, portal.rows, portal.started_us, s);
    if (!s.ok()) {
      if (s.code() == ErrorCode::kIoError) return;
      SendError(s, part);
      if (tx_ == 'T') tx_ = 'E';
      break;
    }
  }
  out_.ReadyForQuery(tx_);
}

// ---- extended query ----

Status Session::HandleParse(const std::string& body) {
  ASSIGN_OR_RETURN(ParseMessage m, ParseParse(body));
  if (!m.name.empty() && statements_.count(m.name)) {
    return Error(ErrorCode::kSqlInvalidStatementName, "prepared statement \"" + m.name + "\" already exists");
  }
  auto ends_block = [](const std::string& q) {
    auto kw = LeadingKeywords(q, 1);
    return !kw.empty() && (kw[0] == "ROLLBACK" || kw[0] == "ABORT" || kw[0] == "COMMIT" || kw[0] == "END");
  };
  if (tx_ == 'E' && !ends_block(m.query)) {
    return Error(ErrorCode::kSqlInFailedTransaction,
                 "current transaction is aborted, commands ignored until end of transaction block");
  }
  std::vector<std::string> parts = SplitStatements(m.query);
  if (parts.size() > 1) {
    return Error(ErrorCode::kSqlSyntaxError, "cannot insert multiple commands into a prepared statement");
  }
  auto st = Prepare(parts.empty() ? std::string() : parts[0], m.param_types);
  if (!st.ok()) {
    Audit(parts.empty() ? std::string() : parts[0], 0, NowUs(), st.status());
    SendError(st.status(), parts.empty() ? std::string() : parts[0]);
    if (tx_ == 'T') tx_ = 'E';
    skip_until_sync_ = true;
    return Status::OK();
  }
  statements_[m.name] = *st;
  out_.Empty('1');
  return Status::OK();
}

// Every execution is audited, including one that fails at Bind (a policy revoked since the
// statement was prepared, bad parameters): BindPortal leaves `audit_sql` set when the failure
// has not been recorded yet.
Status Session::HandleBind(const std::string& body) {
  std::string audit_sql;
  int64_t started = NowUs();
  Status s = BindPortal(body, &audit_sql);
  if (!s.ok() && !audit_sql.empty()) Audit(audit_sql, 0, started, s);
  return s;
}

Status Session::BindPortal(const std::string& body, std::string* audit_sql) {
  ASSIGN_OR_RETURN(BindMessage m, ParseBind(body));
  auto it = statements_.find(m.statement);
  if (it == statements_.end()) {
    return Error(ErrorCode::kSqlInvalidStatementName, "prepared statement \"" + m.statement + "\" does not exist");
  }
  *audit_sql = it->second->sql;
  if (!m.portal.empty() && portals_.count(m.portal)) {
    return Error(ErrorCode::kSqlInvalidCursorName, "portal \"" + m.portal + "\" already exists");
  }
  std::shared_ptr<Statement> st = it->second;
  size_t expected = st->prepared ? st->prepared->parameter_count() : 0;
  if (m.params.size() != expected) {
    return Error(ErrorCode::kSqlProtocolViolation, "bind message supplies " + std::to_string(m.params.size()) +
                                                       " parameters, but prepared statement \"" + m.statement +
                                                       "\" requires " + std::to_string(expected));
  }
  if (tx_ == 'E' && st->special != Special::kRollback && st->special != Special::kCommit) {
    return Error(ErrorCode::kSqlInFailedTransaction,
                 "current transaction is aborted, commands ignored until end of transaction block");
  }
  if (st->binding) {
    // Lake tables: the latest partitions, authorised again; prepared anew when they changed.
    auto stale = hooks_->BeforeExecute(*conn_, *st->binding);
    if (stale.ok() && *stale) {
      auto fresh = Prepare(st->sql, st->param_types);
      if (!fresh.ok()) stale = fresh.status();
      else st = it->second = *fresh;
    }
    if (!stale.ok()) return stale.status();
  }
  if (st->prepared) {
    // An older portal streaming from this statement keeps its own result; rebinding is safe.
    RETURN_IF_ERROR(st->prepared->ClearBindings());
    for (size_t i = 0; i < m.params.size(); ++i) {
      int16_t fmt = m.param_formats.empty() ? 0 : m.param_formats.size() == 1 ? m.param_formats[0] : m.param_formats[i];
      int32_t type = i < st->param_types.size() ? st->param_types[i] : 0;
      RETURN_IF_ERROR(BindParameter(*st->prepared, i + 1, type, fmt, m.params[i]));
    }
  }
  auto portal = std::make_unique<Portal>();
  portal->stmt = st;
  portal->started_us = NowUs();
  portal->result_formats = m.result_formats;
  if (portals_.count(m.portal) && streaming_ == portals_[m.portal].get()) streaming_ = nullptr;
  // Execution starts at Describe or Execute, so that bindings are applied right before it.
  if (st->prepared) {
    // Run now: DuckDB keeps one set of bindings per prepared statement, and a later Bind of
    // the same statement must not change this portal's values.
    Status s = Start(*portal);
    if (!s.ok()) {
      portals_.erase(m.portal);
      return s;
    }
    if (portal->returns_rows && !portal->result_formats.empty() && portal->result_formats.size() != 1 &&
        portal->result_formats.size() != portal->columns.size()) {
      if (streaming_ == portal.get()) streaming_ = nullptr;  // the portal is dropped here
      return Error(ErrorCode::kSqlProtocolViolation, "bind message has " + std::to_string(m.result_formats.size()) +
                                                         " result formats but query has " +
                                                         std::to_string(portal->columns.size()) + " columns");
    }
  }
  portals_[m.portal] = std::move(portal);
  out_.Empty('2');
  return Status::OK();
}

Status Session::HandleDescribe(const std::string& body) {
  MessageReader r(body);
  uint8_t kind = r.Byte();
  std::string name(r.CString());
  if (!r.ok() || !r.at_end() || (kind != 'S' && kind != 'P')) {
    return Error(ErrorCode::kSqlProtocolViolation, "malformed Describe message");
  }
  if (kind == 'S') {
    auto it = statements_.find(name);
    if (it == statements_.end()) {
      return Error(ErrorCode::kSqlInvalidStatementName, "prepared statement \"" + name + "\" does not exist");
    }
    Statement& st = *it->second;
    out_.Begin('t');
    size_t n = st.prepared ? st.prepared->parameter_count() : 0;
    out_.Int16(static_cast<int16_t>(n));
    for (size_t i = 0; i < n; ++i) {
      int32_t t = i < st.param_types.size() ? st.param_types[i] : 0;
      out_.Int32(t ? t : ParamOidFor(st.prepared->param_type(i + 1)));
    }
    out_.End();
    Portal probe;
    if (st.prepared) {
      StatementKind k = st.prepared->statement_kind();
      bool rows = k == StatementKind::kSelect || k == StatementKind::kExplain || k == StatementKind::kPragma ||
                  k == StatementKind::kCall || (k == StatementKind::kOther && !st.prepared->ColumnNames().empty());
      if (rows) {
        probe.columns = st.prepared->ColumnInfo();
        probe.names = st.prepared->ColumnNames();
        NameColumns(st, &probe.names);
        SendRowDescription(probe);
        return Status::OK();
      }
    } else if (st.special == Special::kFetch && cursors_.count(st.cursor) && cursors_[st.cursor]->returns_rows) {
      SendRowDescription(*cursors_[st.cursor]);
      return Status::OK();
    } else if (st.special == Special::kCopyOut || st.special == Special::kCopyIn) {
      // Described as no rows; COPY answers with CopyOutResponse/CopyInResponse.
    }
    out_.Empty('n');
    return Status::OK();
  }
  auto it = portals_.find(name);
  if (it == portals_.end()) {
    // §55.2.3: cursors made by DECLARE are portals too (psycopg describes them this way).
    auto c = cursors_.find(name);
    if (c == cursors_.end()) return Error(ErrorCode::kSqlInvalidCursorName, "portal \"" + name + "\" does not exist");
    if (c->second->returns_rows) {
      SendRowDescription(*c->second);
    } else {
      out_.Empty('n');
    }
    return Status::OK();
  }
  Portal& p = *it->second;
  if (p.stmt->special == Special::kFetch && cursors_.count(p.stmt->cursor) &&
      cursors_[p.stmt->cursor]->returns_rows) {
    SendRowDescription(*cursors_[p.stmt->cursor]);
  } else if (p.stmt->prepared && p.returns_rows) {
    SendRowDescription(p);
  } else {
    out_.Empty('n');
  }
  return Status::OK();
}

Status Session::HandleExecute(const std::string& body) {
  MessageReader r(body);
  std::string name(r.CString());
  int32_t max_rows = r.Int32();
  if (!r.ok() || !r.at_end()) return Error(ErrorCode::kSqlProtocolViolation, "malformed Execute message");
  auto it = portals_.find(name);
  if (it == portals_.end()) return Error(ErrorCode::kSqlInvalidCursorName, "portal \"" + name + "\" does not exist");
  Portal& p = *it->second;
  bool suspended = false;
  Status s = Execute(p, max_rows > 0 ? max_rows : 0, false, &suspended);
  if (!s.ok() || !suspended) Audit(p.stmt->sql, p.rows, p.started_us, s);
  return s;
}

Status Session::HandleClose(const std::string& body) {
  MessageReader r(body);
  uint8_t kind = r.Byte();
  std::string name(r.CString());
  if (!r.ok() || !r.at_end() || (kind != 'S' && kind != 'P')) {
    return Error(ErrorCode::kSqlProtocolViolation, "malformed Close message");
  }
  if (kind == 'S') {
    statements_.erase(name);
  } else {
    auto it = portals_.find(name);
    if (it != portals_.end()) {
      if (streaming_ == it->second.get()) streaming_ = nullptr;
      portals_.erase(it);
    } else if (auto c = cursors_.find(name); c != cursors_.end()) {
      if (streaming_ == c->second.get()) streaming_ = nullptr;
      cursors_.erase(c);
    }
  }
  out_.Empty('3');
  return Status::OK();
}

// ---- statement hooks ----

Status Session::RunHookStatement(Portal& p) {
  p.done = true;
  // DuckDB streams one result per connection: an open portal's stream ends here.
  if (streaming_) {
    streaming_->result.reset();
    streaming_->chunk.reset();
    streaming_->done = true;
    streaming_->closed = true;
    streaming_ = nullptr;
  }
  bool read_only = tx_read_only_ || (tx_ == 'I' && settings_["default_transaction_read_only"] == "on");
  RETURN_IF_ERROR(BeginStatement());
  auto tag = hooks_->Run(*conn_, p.stmt->sql, read_only);
  EndStatement();
  if (!tag.ok()) return MapCancel(tag.status());
  size_t sp = tag->rfind(' ');
  if (sp != std::string::npos) p.rows = ParseInt64(tag->substr(sp + 1)).value_or(0);
  out_.CommandComplete(*tag);
  return Status::OK();
}

void Session::Audit(const std::string& sql, int64_t rows, int64_t started_us, const Status& s) {
  if (hooks_) hooks_->Finished(sql, rows, NowUs() - started_us, s);
}

}  // namespace tarn::sql::pgwire
