#include "catalog/store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <set>

namespace tarn::catalog {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("catalog-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    auto m = MetaStore::Open((dir_ / "t.db").string());
    ASSERT_TRUE(m.ok());
    meta_ = std::move(*m);
    store_ = std::make_unique<CatalogStore>(meta_.get(), &clock_, "123456789012");
    ASSERT_TRUE(store_->Migrate().ok());
    ASSERT_TRUE(store_->CreateDatabase({{"Name", "Sales"}}).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  json Table(const std::string& name, std::vector<std::string> cols) {
    json c = json::array();
    for (auto& n : cols) c.push_back({{"Name", n}, {"Type", "string"}});
    return {{"Name", name},
            {"StorageDescriptor", {{"Columns", c}, {"Location", "s3://curated/sales/" + name + "/"}}},
            {"PartitionKeys", {{{"Name", "year"}, {"Type", "string"}}, {{"Name", "month"}, {"Type", "int"}}}},
            {"TableType", "EXTERNAL_TABLE"}};
  }

  std::filesystem::path dir_;
  ManualClock clock_;
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<CatalogStore> store_;
};

TEST_F(StoreTest, DatabasesAreLowerCasedAndUnique) {
  auto db = store_->GetDatabase("SALES");
  ASSERT_TRUE(db.ok());
  EXPECT_EQ((*db)["Name"], "sales");
  EXPECT_EQ(store_->CreateDatabase({{"Name", "sales"}}).code(), ErrorCode::kGlueAlreadyExists);
  EXPECT_EQ(store_->GetDatabase("nope").status().code(), ErrorCode::kEntityNotFound);
}

TEST_F(StoreTest, UpdateTableKeepsVersions) {
  ASSERT_TRUE(store_->CreateTable("sales", Table("Orders", {"id"})).ok());
  ASSERT_TRUE(store_->UpdateTable("sales", Table("orders", {"id", "amount"}), false).ok());
  auto t = store_->GetTable("sales", "orders");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)["VersionId"], "1");
  EXPECT_EQ((*t)["StorageDescriptor"]["Columns"].size(), 2u);
  auto versions = store_->GetTableVersions("sales", "orders", {});
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->items.size(), 2u);
  EXPECT_EQ(versions->items[1]["VersionId"], "0");
  EXPECT_EQ(versions->items[1]["Table"]["StorageDescriptor"]["Columns"].size(), 1u);
  // Optimistic concurrency on VersionId.
  EXPECT_EQ(store_->UpdateTable("sales", Table("orders", {"id"}), false, "0").code(),
            ErrorCode::kConcurrentModification);
  EXPECT_EQ(store_->DeleteTableVersion("sales", "orders", "1").code(), ErrorCode::kInvalidInput);
  EXPECT_TRUE(store_->DeleteTableVersion("sales", "orders", "0").ok());
  EXPECT_EQ(store_->GetTableVersion("sales", "orders", "0").status().code(),
            ErrorCode::kEntityNotFound);
}

TEST_F(StoreTest, PartitionsFilterPageAndCascade) {
  ASSERT_TRUE(store_->CreateTable("sales", Table("orders", {"id"})).ok());
  for (int m = 1; m <= 12; ++m) {
    json p = {{"Values", {"2026", std::to_string(m)}},
              {"StorageDescriptor", {{"Location", "s3://curated/sales/orders/year=2026/month=" +
                                                      std::to_string(m) + "/"}}}};
    ASSERT_TRUE(store_->CreatePartition("sales", "orders", p).ok());
  }
  EXPECT_EQ(store_->CreatePartition("sales", "orders", {{"Values", {"2026", "1"}}}).code(),
            ErrorCode::kGlueAlreadyExists);
  EXPECT_EQ(store_->CreatePartition("sales", "orders", {{"Values", {"2026"}}}).code(),
            ErrorCode::kInvalidInput);
  auto page = store_->GetPartitions("sales", "orders", "month > 9", {}, {});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->items.size(), 3u);
  // Pages of 5 cover all 12 exactly once.
  std::set<std::string> seen;
  PageRequest pr;
  pr.max_results = 5;
  do {
    auto p = store_->GetPartitions("sales", "orders", "", {}, pr);
    ASSERT_TRUE(p.ok());
    for (auto& it : p->items) seen.insert(it["Values"][1].get<std::string>());
    pr.next_token = p->next_token;
  } while (!pr.next_token.empty());
  EXPECT_EQ(seen.size(), 12u);
  // Segments partition the set.
  size_t total = 0;
  for (int s = 0; s < 3; ++s) {
    auto p = store_->GetPartitions("sales", "orders", "", {s, 3}, {});
    ASSERT_TRUE(p.ok());
    total += p->items.size();
  }
  EXPECT_EQ(total, 12u);
  EXPECT_EQ(store_->GetPartitions("sales", "orders", "month = 'x'", {}, {}).status().code(),
            ErrorCode::kInvalidInput);
  ASSERT_TRUE(store_->DeleteDatabase("sales").ok());
  ASSERT_TRUE(store_->CreateDatabase({{"Name", "sales"}}).ok());
  ASSERT_TRUE(store_->CreateTable("sales", Table("orders", {"id"})).ok());
  auto count = store_->CountPartitions("sales", "orders");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 0);
}

TEST_F(StoreTest, GetTablesExpressionAndPaging) {
  for (const char* n : {"sales_2024", "sales_2025", "returns"}) {
    ASSERT_TRUE(store_->CreateTable("sales", Table(n, {"id"})).ok());
  }
  auto p = store_->GetTables("sales", "sales*", {});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->items.size(), 2u);
  p = store_->GetTables("sales", "ret.*|sales_2024", {});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->items.size(), 2u);
  EXPECT_EQ(store_->GetTables("sales", "(", {}).status().code(), ErrorCode::kInvalidInput);
  PageRequest pr;
  pr.max_results = 2;
  p = store_->GetTables("sales", "", pr);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->items.size(), 2u);
  ASSERT_FALSE(p->next_token.empty());
  pr.next_token = p->next_token;
  p = store_->GetTables("sales", "", pr);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->items.size(), 1u);
  EXPECT_TRUE(p->next_token.empty());
}

// GetPartitions looks candidates up in the value index and evaluates the whole expression on
// them: for any expression, page size and segment it must return exactly what evaluating the
// expression on every partition returns, in value-key order.
TEST_F(StoreTest, IndexedGetPartitionsMatchesFullEvaluation) {
  json t = {{"Name", "m"},
            {"PartitionKeys",
             {{{"Name", "site"}, {"Type", "string"}}, {{"Name", "month"}, {"Type", "int"}},
              {{"Name", "ratio"}, {"Type", "double"}}, {{"Name", "tag"}, {"Type", "string"}}}}};
  ASSERT_TRUE(store_->CreateTable("sales", t).ok());
  std::mt19937 rng(42);
  const std::vector<std::string> months = {"1", "2", "09", "10", "11", "12", "-3", "x", " 7",
                                           "9223372036854775807", "1e1", "5.0"};
  const std::vector<std::string> ratios = {"0.5", "0.25", "1", "nan", "-inf", "abc", "2e3", ""};
  const std::vector<std::string> tags = {"eu-west", "eu-east", "us", "",
                                         "e",       "\xc3\xbf",  "\xc3\xbfz", "eu%"};
  std::vector<std::vector<std::string>> all;
  std::set<std::string> keys;
  while (all.size() < 600) {
    std::vector<std::string> v = {"s" + std::to_string(rng() % 20), months[rng() % months.size()],
                                  ratios[rng() % ratios.size()], tags[rng() % tags.size()]};
    if (!keys.insert(CatalogStore::ValuesKey(v)).second) continue;
    ASSERT_TRUE(store_->CreatePartition("sales", "m", {{"Values", v}}).ok());
    all.push_back(v);
  }
  // Deleted and renamed partitions leave the index too.
  ASSERT_TRUE(store_->DeletePartition("sales", "m", all.back()).ok());
  keys.erase(CatalogStore::ValuesKey(all.back()));
  all.pop_back();
  std::vector<std::string> moved = all.back();
  moved[0] = "s99";
  ASSERT_TRUE(store_->UpdatePartition("sales", "m", all.back(), {{"Values", moved}}).ok());
  keys.erase(CatalogStore::ValuesKey(all.back()));
  keys.insert(CatalogStore::ValuesKey(moved));
  all.back() = moved;

  auto check = [&](const std::string& table, const json& tdef,
                   const std::vector<std::vector<std::string>>& parts,
                   const std::vector<std::string>& exprs) {
    for (const std::string& e : exprs) {
      auto f = PartitionFilter::Compile(e, CatalogStore::PartitionKeysOf(tdef));
      ASSERT_TRUE(f.ok()) << e;
      std::vector<std::string> want;
      for (const auto& v : parts) {
        if ((*f)->Matches(v)) want.push_back(CatalogStore::ValuesKey(v));
      }
      std::sort(want.begin(), want.end());
      for (int page_size : {1000, 7, 1}) {
        std::vector<std::string> got;
        PageRequest pr;
        pr.max_results = page_size;
        int pages = 0;
        do {
          auto p = store_->GetPartitions("sales", table, e, {}, pr);
          ASSERT_TRUE(p.ok()) << e << ": " << p.status().ToString();
          for (const json& it : p->items) got.push_back(CatalogStore::ValuesKey(it["Values"]));
          pr.next_token = p->next_token;
          ASSERT_LT(++pages, 1000);
        } while (!pr.next_token.empty());
        EXPECT_EQ(got, want) << e << " (pages of " << page_size << ")";
      }
      size_t in_segments = 0;
      for (int s = 0; s < 4; ++s) {
        auto p = store_->GetPartitions("sales", table, e, {s, 4}, {});
        ASSERT_TRUE(p.ok());
        in_segments += p->items.size();
      }
      EXPECT_EQ(in_segments, want.size()) << e;
    }
  };
  check("m", t, all, {
      "site = 's3'", "site IN ('s1', 's2', 's99') AND month > 9", "month = 9", "month < 2",
      "month BETWEEN 2 AND 11", "month >= 10 AND ratio <= 0.5", "ratio = 1", "ratio > -1e9",
      "ratio < 1 OR ratio > 100", "tag LIKE 'eu-%'", "tag LIKE 'e%' AND site > 's5'",
      "tag LIKE '%st'", "tag = ''", "tag LIKE '\xc3\xbf%'", "site < 's2' AND NOT month = 1",
      "month <> 10 AND site >= 's19'",
      "(site = 's1' OR site = 's2') AND (month = 1 OR month = 2)", "site = 's1' OR month = 2",
      "tag IN ('us', 'e') AND ratio IS NOT NULL", "month = 9223372036854775807",
      "site BETWEEN 's10' AND 's15' AND tag NOT LIKE 'eu%'", "month IN (1, 10) AND site = 'nope'",
      "tag LIKE 'eu\\%'", "month > 3 AND month < 3", "site LIKE 's1%' AND month = 1"});

  // All text keys: equalities on leading keys become value-key prefixes, a range on the next
  // key narrows them; values that are prefixes of each other or hold control characters must
  // not fall out.
  json h = {{"Name", "h"},
            {"PartitionKeys",
             {{{"Name", "y"}, {"Type", "string"}}, {{"Name", "m"}, {"Type", "string"}},
              {{"Name", "d"}, {"Type", "string"}}}}};
  ASSERT_TRUE(store_->CreateTable("sales", h).ok());
  std::vector<std::vector<std::string>> hp;
  for (const char* y : {"2025", "2026", "", "2026\t"}) {
    for (const char* m : {"01", "1", "10", "1\t", "11", "2", "1 "}) {
      for (const char* d : {"a", "b", "ab", ""}) hp.push_back({y, m, d});
    }
  }
  json inputs = json::array();
  for (const auto& v : hp) inputs.push_back({{"Values", v}});
  auto created = store_->CreatePartitions("sales", "h", inputs);
  ASSERT_TRUE(created.ok());
  for (const Status& st : *created) ASSERT_TRUE(st.ok()) << st.ToString();
  check("h", h, hp, {
      "y = '2026' AND m = '1'", "y = '2026' AND m BETWEEN '1' AND '10'",
      "y IN ('2025', '2026') AND m > '1' AND d = 'ab'", "y = '2026' AND m = '1' AND d = 'a'",
      "y = '2026' AND m <= '1\t'", "y = '' AND m < '10'", "m = '1'", "y >= '2026'",
      "y < '2026' AND m = '01'", "y = '2026' AND m = '1' AND d >= 'a'", "y LIKE '2026%'",
      "y = '2026' AND m LIKE '1%'", "y BETWEEN '2025' AND '2026'", "y = '2026' AND m < '1 '",
      "y = '2026' AND (m = '1' OR m = '2') AND d <= 'ab'", "y = '2026' AND m = '1' AND d = ''"});

  // Partitions written before the index existed are indexed at the next start-up.
  ASSERT_TRUE(meta_->Exec("DELETE FROM catalog_partition_values; DELETE FROM settings WHERE key = "
                          "'catalog.partition_values_indexed'").ok());
  ASSERT_TRUE(store_->Migrate().ok());
  auto p = store_->GetPartitions("sales", "m", "site = 's3'", {}, {});
  ASSERT_TRUE(p.ok());
  size_t s3 = 0;
  for (const auto& v : all) s3 += v[0] == "s3";
  EXPECT_EQ(p->items.size(), s3);
  EXPECT_GT(s3, 0u);
}

}  // namespace
}  // namespace tarn::catalog
