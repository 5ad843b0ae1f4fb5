#include "catalog/store.h"

#include <gtest/gtest.h>

#include <filesystem>

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

}  // namespace
}  // namespace tarn::catalog
