#include "sql/lake/redshift_statements.h"

#include "core/strings.h"
#include "sql/lake/sql_text.h"

namespace tarn::sql::lake {

namespace {

Status Syntax(const std::string& msg) { return Error(ErrorCode::kSqlSyntaxError, msg); }
Status Unsupported(const std::string& what) {
  return Error(ErrorCode::kNotImplemented, what + " is not supported by Tarn");
}

class Cursor {
 public:
  Cursor(std::string_view sql) : sql_(sql), t_(Tokenize(sql)) {
    // A trailing ';' ends the statement.
    while (!t_.empty() && t_.back().IsSymbol(';')) t_.pop_back();
  }
  bool AtEnd() const { return i_ >= t_.size(); }
  const Token* Peek(size_t ahead = 0) const { return i_ + ahead < t_.size() ? &t_[i_ + ahead] : nullptr; }
  bool Accept(std::string_view kw) {
    if (!AtEnd() && t_[i_].Is(kw)) {
      ++i_;
      return true;
    }
    return false;
  }
  bool AcceptSymbol(char c) {
    if (!AtEnd() && t_[i_].IsSymbol(c)) {
      ++i_;
      return true;
    }
    return false;
  }
  Status Expect(std::string_view kw) {
    if (Accept(kw)) return Status::OK();
    return Syntax("syntax error at or near " + Near() + ": expected " + std::string(kw));
  }
  Status ExpectSymbol(char c) {
    if (AcceptSymbol(c)) return Status::OK();
    return Syntax("syntax error at or near " + Near() + ": expected \"" + std::string(1, c) + "\"");
  }
  Result<std::string> String(const std::string& what) {
    if (!AtEnd() && t_[i_].kind == TokenKind::kString) return t_[i_++].text;
    return Syntax("syntax error at or near " + Near() + ": expected a quoted " + what);
  }
  Result<int64_t> Integer(const std::string& what) {
    if (!AtEnd() && t_[i_].kind == TokenKind::kNumber) {
      if (auto v = ParseInt64(t_[i_].text)) {
        ++i_;
        return *v;
      }
    }
    return Syntax("syntax error at or near " + Near() + ": expected a number for " + what);
  }
  // An identifier as DuckDB would compare it.
  Result<std::string> Ident(const std::string& what) {
    if (!AtEnd() && t_[i_].IsIdent()) return t_[i_++].name;
    return Syntax("syntax error at or near " + Near() + ": expected " + what);
  }
  // A possibly qualified name, as written.
  Result<std::string> NameText(const std::string& what) {
    size_t next;
    auto parts = QualifiedName(t_, i_, &next);
    if (parts.empty()) return Syntax("syntax error at or near " + Near() + ": expected " + what);
    std::string text(sql_.substr(t_[i_].begin, t_[next - 1].end - t_[i_].begin));
    i_ = next;
    return text;
  }
  Result<std::string> IdentText(const std::string& what) {
    if (!AtEnd() && t_[i_].IsIdent()) {
      const Token& t = t_[i_++];
      return std::string(sql_.substr(t.begin, t.end - t.begin));
    }
    return Syntax("syntax error at or near " + Near() + ": expected " + what);
  }
  std::string Near() const {
    if (AtEnd()) return "end of input";
    return "\"" + std::string(sql_.substr(t_[i_].begin, t_[i_].end - t_[i_].begin)) + "\"";
  }
  std::string Word() const { return !AtEnd() && t_[i_].kind == TokenKind::kWord ? t_[i_].text : ""; }
  void Skip() { ++i_; }
  const std::vector<Token>& tokens() const { return t_; }

 private:
  std::string_view sql_;
  std::vector<Token> t_;
  size_t i_ = 0;
};

// Credentials clauses: Tarn authorises with the session's identity, so they are accepted and
// not used (IAM_ROLE is recorded by CREATE EXTERNAL SCHEMA).
Result<bool> AcceptAuthorization(Cursor& c, std::string* iam_role) {
  if (c.Accept("IAM_ROLE")) {
    if (c.Accept("DEFAULT")) {
      if (iam_role) *iam_role = "default";
      return true;
    }
    ASSIGN_OR_RETURN(std::string arn, c.String("IAM role ARN"));
    if (iam_role) *iam_role = arn;
    return true;
  }
  for (const char* kw : {"CREDENTIALS", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "SESSION_TOKEN", "MASTER_SYMMETRIC_KEY"}) {
    if (c.Accept(kw)) {
      c.Accept("AS");
      RETURN_IF_ERROR(c.String(std::string(kw)));
      return true;
    }
  }
  return false;
}

Status Compression(Cursor& c, std::string* compression, bool* matched) {
  *matched = true;
  if (c.Accept("GZIP")) *compression = "gzip";
  else if (c.Accept("ZSTD")) *compression = "zstd";
  else if (c.Accept("BZIP2")) return Unsupported("BZIP2 compression");
  else if (c.Accept("LZOP")) return Unsupported("LZOP compression");
  else *matched = false;
  return Status::OK();
}

// REGION [AS] 'r', COMPUPDATE/STATUPDATE [ON|OFF|TRUE|FALSE|PRESET]: nothing to do here.
Result<bool> AcceptIgnored(Cursor& c) {
  if (c.Accept("REGION")) {
    c.Accept("AS");
    RETURN_IF_ERROR(c.String("region"));
    return true;
  }
  if (c.Accept("COMPUPDATE") || c.Accept("STATUPDATE")) {
    for (const char* v : {"ON", "OFF", "TRUE", "FALSE", "PRESET"}) {
      if (c.Accept(v)) break;
    }
    return true;
  }
  return false;
}

}  // namespace

LakeStatement ClassifyStatement(std::string_view sql) {
  // Cheap check before tokenizing: the statements start with one of these words.
  std::string_view s = Trim(sql);
  while (StartsWith(s, "(")) s = Trim(s.substr(1));
  std::string head = ToLower(s.substr(0, 6));
  if (!StartsWith(head, "unload") && !StartsWith(head, "copy") && !StartsWith(head, "create") &&
      !StartsWith(head, "drop")) {
    // Leading comments are rare enough to take the slow path only when present.
    if (!StartsWith(s, "--") && !StartsWith(s, "/*")) return LakeStatement::kNone;
  }
  auto t = Tokenize(sql);
  if (t.empty()) return LakeStatement::kNone;
  if (t[0].Is("UNLOAD")) return LakeStatement::kUnload;
  if (t[0].Is("COPY")) {
    int depth = 0;
    for (size_t i = 1; i + 1 < t.size(); ++i) {
      if (t[i].IsSymbol('(')) ++depth;
      if (t[i].IsSymbol(')')) --depth;
      if (depth == 0 && t[i].Is("FROM") && t[i + 1].kind == TokenKind::kString &&
          StartsWith(ToLower(t[i + 1].text), "s3://")) {
        return LakeStatement::kCopyFromS3;
      }
    }
    return LakeStatement::kNone;
  }
  if (t.size() >= 3 && t[0].Is("CREATE") && t[1].Is("EXTERNAL")) {
    if (t[2].Is("SCHEMA")) return LakeStatement::kCreateExternalSchema;
    if (t[2].Is("TABLE")) return LakeStatement::kCreateExternalTable;
  }
  if (t.size() >= 2 && t[0].Is("DROP") && t[1].Is("SCHEMA")) return LakeStatement::kDropSchema;
  return LakeStatement::kNone;
}

Result<S3Url> ParseS3Url(std::string_view url) {
  if (!StartsWith(ToLower(url), "s3://")) {
    return Error(ErrorCode::kInvalidInput, "not an s3:// location: " + std::string(url));
  }
  std::string_view rest = url.substr(5);
  size_t slash = rest.find('/');
  S3Url out;
  out.bucket = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) out.key = std::string(rest.substr(slash + 1));
  if (out.bucket.empty()) return Error(ErrorCode::kInvalidInput, "no bucket in " + std::string(url));
  return out;
}

Result<CreateExternalSchema> ParseCreateExternalSchema(std::string_view sql) {
  Cursor c(sql);
  CreateExternalSchema out;
  RETURN_IF_ERROR(c.Expect("CREATE"));
  RETURN_IF_ERROR(c.Expect("EXTERNAL"));
  RETURN_IF_ERROR(c.Expect("SCHEMA"));
  if (c.Accept("IF")) {
    RETURN_IF_ERROR(c.Expect("NOT"));
    RETURN_IF_ERROR(c.Expect("EXISTS"));
    out.if_not_exists = true;
  }
  ASSIGN_OR_RETURN(out.name, c.Ident("a schema name"));
  RETURN_IF_ERROR(c.Expect("FROM"));
  if (c.Accept("DATA")) {
    RETURN_IF_ERROR(c.Expect("CATALOG"));
  } else if (!c.Accept("CATALOG") && c.Word() != "DATABASE") {
    return Unsupported("CREATE EXTERNAL SCHEMA FROM " + c.Word() + " (only DATA CATALOG)");
  }
  RETURN_IF_ERROR(c.Expect("DATABASE"));
  ASSIGN_OR_RETURN(std::string db, c.String("catalog database name"));
  out.database = ToLower(db);  // Glue stores names lower-cased
  while (!c.AtEnd()) {
    ASSIGN_OR_RETURN(bool auth, AcceptAuthorization(c, &out.iam_role));
    if (auth) continue;
    ASSIGN_OR_RETURN(bool ignored, AcceptIgnored(c));
    if (ignored) continue;
    if (c.Accept("CATALOG_ROLE")) {
      if (!c.Accept("DEFAULT")) RETURN_IF_ERROR(c.String("catalog role"));
      continue;
    }
    if (c.Accept("CREATE")) {
      return Unsupported("CREATE EXTERNAL DATABASE (create it with `aws glue create-database`)");
    }
    if (c.Word() == "SCHEMA" || c.Word() == "SECRET_ARN" || c.Word() == "URI" || c.Word() == "PORT") {
      return Unsupported(c.Word() + " in CREATE EXTERNAL SCHEMA");
    }
    return Syntax("syntax error at or near " + c.Near());
  }
  return out;
}

Result<DropSchema> ParseDropSchema(std::string_view sql) {
  Cursor c(sql);
  DropSchema out;
  RETURN_IF_ERROR(c.Expect("DROP"));
  RETURN_IF_ERROR(c.Expect("SCHEMA"));
  if (c.Accept("IF")) {
    RETURN_IF_ERROR(c.Expect("EXISTS"));
    out.if_exists = true;
  }
  do {
    ASSIGN_OR_RETURN(std::string name, c.Ident("a schema name"));
    out.names.push_back(name);
  } while (c.AcceptSymbol(','));
  while (!c.AtEnd()) {
    if (c.Accept("CASCADE")) {
      out.cascade = true;
    } else if (c.Accept("RESTRICT")) {
    } else if (c.Accept("DROP")) {
      RETURN_IF_ERROR(c.Expect("EXTERNAL"));
      RETURN_IF_ERROR(c.Expect("DATABASE"));
      out.drop_external_database = true;
    } else {
      return Syntax("syntax error at or near " + c.Near());
    }
  }
  return out;
}

Result<CopyFromS3> ParseCopyFromS3(std::string_view sql) {
  Cursor c(sql);
  CopyFromS3 out;
  RETURN_IF_ERROR(c.Expect("COPY"));
  ASSIGN_OR_RETURN(out.table, c.NameText("a table name"));
  if (c.AcceptSymbol('(')) {
    do {
      ASSIGN_OR_RETURN(std::string col, c.IdentText("a column name"));
      out.columns.push_back(col);
    } while (c.AcceptSymbol(','));
    RETURN_IF_ERROR(c.ExpectSymbol(')'));
  }
  RETURN_IF_ERROR(c.Expect("FROM"));
  ASSIGN_OR_RETURN(std::string url, c.String("s3:// source"));
  ASSIGN_OR_RETURN(out.from, ParseS3Url(url));
  while (!c.AtEnd()) {
    if (c.AcceptSymbol(',')) continue;
    ASSIGN_OR_RETURN(bool auth, AcceptAuthorization(c, nullptr));
    if (auth) continue;
    ASSIGN_OR_RETURN(bool ignored, AcceptIgnored(c));
    if (ignored) continue;
    bool comp = false;
    RETURN_IF_ERROR(Compression(c, &out.compression, &comp));
    if (comp) continue;
    if (c.Accept("FORMAT")) {
      c.Accept("AS");
      if (c.Word() != "PARQUET" && c.Word() != "CSV" && c.Word() != "JSON" && c.Word() != "AVRO" &&
          c.Word() != "ORC" && c.Word() != "FIXEDWIDTH" && c.Word() != "SHAPEFILE") {
        return Syntax("syntax error at or near " + c.Near() + ": expected PARQUET, CSV or JSON");
      }
      continue;  // the format word itself is handled below
    }
    if (c.Accept("PARQUET")) {
      out.format = "parquet";
    } else if (c.Accept("CSV")) {
      out.format = "csv";
      if (c.Accept("QUOTE")) {
        c.Accept("AS");
        ASSIGN_OR_RETURN(out.quote, c.String("quote character"));
      }
    } else if (c.Accept("JSON")) {
      out.format = "json";
      c.Accept("AS");
      ASSIGN_OR_RETURN(std::string mode, c.String("JSON option ('auto')"));
      std::string m = ToLower(mode);
      if (m != "auto" && m != "auto ignorecase") {
        return Unsupported("JSON '" + mode + "' (JSONPaths files; use 'auto')");
      }
    } else if (c.Word() == "AVRO" || c.Word() == "ORC" || c.Word() == "FIXEDWIDTH" || c.Word() == "SHAPEFILE") {
      return Unsupported("COPY FORMAT " + c.Word());
    } else if (c.Accept("DELIMITER")) {
      c.Accept("AS");
      ASSIGN_OR_RETURN(out.delimiter, c.String("delimiter"));
    } else if (c.Accept("IGNOREHEADER")) {
      c.Accept("AS");
      ASSIGN_OR_RETURN(out.ignore_header, c.Integer("IGNOREHEADER"));
    } else if (c.Accept("NULL")) {
      c.Accept("AS");
      ASSIGN_OR_RETURN(std::string n, c.String("NULL string"));
      out.null_as = n;
    } else if (c.Accept("DATEFORMAT") || c.Accept("TIMEFORMAT")) {
      c.Accept("AS");
      ASSIGN_OR_RETURN(std::string f, c.String("format"));
      if (ToLower(f) != "auto") return Unsupported("DATEFORMAT/TIMEFORMAT other than 'auto'");
    } else if (c.Accept("MANIFEST")) {
      return Unsupported("COPY … MANIFEST");
    } else if (c.Accept("ACCEPTINVCHARS")) {
      if (c.Accept("AS")) RETURN_IF_ERROR(c.String("replacement character"));
    } else if (c.Accept("EMPTYASNULL") || c.Accept("BLANKSASNULL") || c.Accept("TRUNCATECOLUMNS") ||
               c.Accept("TRIMBLANKS") || c.Accept("ACCEPTANYDATE") || c.Accept("ROUNDEC") ||
               c.Accept("EXPLICIT_IDS") || c.Accept("FILLRECORD") || c.Accept("REMOVEQUOTES") ||
               c.Accept("ESCAPE")) {
      // Lenient parsing options: DuckDB's readers already accept what they describe.
    } else if (c.Accept("MAXERROR")) {
      c.Accept("AS");
      ASSIGN_OR_RETURN(int64_t n, c.Integer("MAXERROR"));
      if (n != 0) return Unsupported("MAXERROR above 0 (a bad row fails the COPY)");
    } else {
      return Syntax("COPY option " + c.Near() + " is not recognised");
    }
  }
  return out;
}

Result<Unload> ParseUnload(std::string_view sql) {
  Cursor c(sql);
  Unload out;
  RETURN_IF_ERROR(c.Expect("UNLOAD"));
  RETURN_IF_ERROR(c.ExpectSymbol('('));
  ASSIGN_OR_RETURN(out.query, c.String("'select …' query"));
  RETURN_IF_ERROR(c.ExpectSymbol(')'));
  RETURN_IF_ERROR(c.Expect("TO"));
  ASSIGN_OR_RETURN(std::string url, c.String("s3:// target"));
  ASSIGN_OR_RETURN(out.to, ParseS3Url(url));
  while (!c.AtEnd()) {
    if (c.AcceptSymbol(',')) continue;
    ASSIGN_OR_RETURN(bool auth, AcceptAuthorization(c, nullptr));
    if (auth) continue;
    ASSIGN_OR_RETURN(bool ignored, AcceptIgnored(c));
    if (ignored) continue;
    bool comp = false;
    RETURN_IF_ERROR(Compression(c, &out.compression, &comp));
    if (comp) continue;
    if (c.Accept("FORMAT")) {
      c.Accept("AS");
      if (c.Word() != "PARQUET" && c.Word() != "CSV" && c.Word() != "JSON") {
        return Syntax("syntax error at or near " + c.Near() + ": expected PARQUET, CSV or JSON");
      }
      continue;
    }
    if (c.Accept("PARQUET")) {
      out.format = "parquet";
    } else if (c.Accept("CSV")) {
      out.format = "csv";
    } else if (c.Accept("JSON")) {
      out.format = "json";
    } else if (c.Accept("PARTITION")) {
      RETURN_IF_ERROR(c.Expect("BY"));
      RETURN_IF_ERROR(c.ExpectSymbol('('));
      do {
        ASSIGN_OR_RETURN(std::string col, c.Ident("a partition column"));
        out.partition_by.push_back(col);
      } while (c.AcceptSymbol(','));
      RETURN_IF_ERROR(c.ExpectSymbol(')'));
      out.include = c.Accept("INCLUDE");
    } else if (c.Accept("MANIFEST")) {
      out.manifest = true;
      out.manifest_verbose = c.Accept("VERBOSE");
    } else if (c.Accept("HEADER")) {
      out.header = true;
    } else if (c.Accept("DELIMITER")) {
      c.Accept("AS");
      ASSIGN_OR_RETURN(out.delimiter, c.String("delimiter"));
    } else if (c.Accept("NULL")) {
      c.Accept("AS");
      ASSIGN_OR_RETURN(std::string n, c.String("NULL string"));
      out.null_as = n;
    } else if (c.Accept("ALLOWOVERWRITE")) {
      out.allow_overwrite = true;
    } else if (c.Accept("CLEANPATH")) {
      out.cleanpath = true;
    } else if (c.Accept("PARALLEL")) {
      for (const char* v : {"ON", "OFF", "TRUE", "FALSE"}) {
        if (c.Accept(v)) break;
      }
    } else if (c.Word() == "MAXFILESIZE" || c.Word() == "ROWGROUPSIZE") {
      bool max = c.Word() == "MAXFILESIZE";  // both take a size; row groups stay DuckDB's
      c.Skip();
      c.Accept("AS");
      ASSIGN_OR_RETURN(int64_t n, c.Integer("size"));
      uint64_t mult = 1 << 20;
      if (c.Accept("GB")) mult = uint64_t{1} << 30;
      else c.Accept("MB");
      if (max) out.max_file_bytes = static_cast<uint64_t>(n) * mult;
    } else if (c.Accept("EXTENSION")) {
      ASSIGN_OR_RETURN(out.extension, c.String("extension"));
    } else if (c.Accept("ADDQUOTES") || c.Accept("ESCAPE")) {
      // CSV output quotes what needs quoting.
    } else if (c.Word() == "FIXEDWIDTH" || c.Word() == "ENCRYPTED" || c.Word() == "KMS_KEY_ID") {
      return Unsupported("UNLOAD " + c.Word());
    } else {
      return Syntax("UNLOAD option " + c.Near() + " is not recognised");
    }
  }
  if (!out.partition_by.empty() && out.format == "text") {
    return Unsupported("PARTITION BY for pipe-delimited text output (use FORMAT PARQUET, CSV or JSON)");
  }
  return out;
}

}  // namespace tarn::sql::lake
