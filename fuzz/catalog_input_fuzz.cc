// libFuzzer target for what the catalog parses from outside: GetPartitions' Expression (from
// the network; compiled, its index constraints extracted, evaluated on values from the input)
// and, from objects anyone may upload, Parquet footers and snappy text. The first input byte
// picks the parser; nothing may crash, loop or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/parquet_footer.h"
#include "catalog/partition_filter.h"
#include "catalog/snappy_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tarn::catalog;
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      // "<expression>\0<v1>\0<v2>…" against keys of each type class.
      size_t nul = in.find('\0');
      std::string_view expr = in.substr(0, nul);
      std::vector<std::string> values;
      for (size_t at = nul; at != std::string_view::npos && at < in.size();) {
        size_t next = in.find('\0', at + 1);
        values.emplace_back(in.substr(at + 1, next == std::string_view::npos ? next : next - at - 1));
        at = next;
      }
      static const std::vector<PartitionKey> keys = {
          {"year", "string"}, {"month", "int"}, {"ratio", "double"}, {"d", "date"}};
      auto f = PartitionFilter::Compile(expr, keys);
      if (!f.ok()) return 0;
      (void)(*f)->Constraints();
      (void)(*f)->Matches(values);
      for (const std::string& v : values) (void)PartitionFilter::NumericValue(v);
      return 0;
    }
    case 1: (void)ParseParquetFileMetaData(in); return 0;
    case 2: (void)DecompressSnappyText(in, true, 1 << 20); return 0;
    default: (void)DecompressSnappyText(in, false, 1 << 20, data[0] & 4); return 0;
  }
}
