// libFuzzer target for the pgwire frame parsers (src/sql/pgwire/messages.cc) and the query
// splitter/rewriter (rewrite.cc): the first byte picks the parser, the rest is a message
// body as a client could send it. Nothing may read out of bounds or crash; what parses must
// be self-consistent.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sql/pgwire/messages.h"
#include "sql/pgwire/rewrite.h"

using namespace tarn::sql::pgwire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: {
      auto p = ParseStartupPacket(body);
      if (p.ok() && p->code == kProtocolV3) {
        for (const auto& [k, v] : p->params) {
          if (k.empty() || !IsValidUtf8(k) || !IsValidUtf8(v)) std::abort();
        }
      }
      break;
    }
    case 1: {
      auto m = ParseParse(body);
      if (m.ok() && m->name.size() + m->query.size() + 4 * m->param_types.size() + 4 > body.size()) std::abort();
      break;
    }
    case 2: {
      auto b = ParseBind(body);
      if (b.ok() && b->param_formats.size() > 1 && b->param_formats.size() != b->params.size()) std::abort();
      break;
    }
    case 3: {
      MessageReader r(body);
      while (r.ok() && !r.at_end()) {
        (void)r.CString();
        (void)r.Int16();
        (void)r.Int32();
      }
      break;
    }
    case 4: {
      for (const std::string& s : SplitStatements(body)) {
        if (s.size() > body.size()) std::abort();
      }
      (void)LeadingKeywords(body, 4);
      break;
    }
    default: (void)RewriteQuery(body); break;
  }
  return 0;
}
