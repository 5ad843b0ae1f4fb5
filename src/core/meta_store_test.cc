#include "core/meta_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

namespace tarn {
namespace {

class MetaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("tarn-meta-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(MetaStoreTest, MigrationsRunOnceInOrder) {
  auto store = MetaStore::Open(dir_ + "/t.db");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<Migration> m = {{1, "CREATE TABLE a(x INTEGER);"}, {2, "ALTER TABLE a ADD COLUMN y TEXT;"}};
  ASSERT_TRUE((*store)->Migrate("mod", m).ok());
  ASSERT_TRUE((*store)->Migrate("mod", m).ok());  // second run is a no-op
  auto st = (*store)->Prepare("INSERT INTO a(x, y) VALUES(?1, ?2)");
  ASSERT_TRUE(st.ok());
  st->Bind(1, int64_t{7}).Bind(2, "seven");
  ASSERT_TRUE(st->Run().ok());
  auto q = (*store)->Prepare("SELECT x, y FROM a");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnInt(0), 7);
  EXPECT_EQ(q->ColumnText(1), "seven");
}

TEST_F(MetaStoreTest, FailedMigrationRollsBack) {
  auto store = MetaStore::Open(dir_ + "/t.db");
  ASSERT_TRUE(store.ok());
  Status s = (*store)->Migrate("bad", {{1, "CREATE TABLE b(x);"}, {2, "THIS IS NOT SQL;"}});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("bad/2"), std::string::npos);
  // Table b must not exist: the whole migration set rolled back.
  EXPECT_FALSE((*store)->Exec("SELECT * FROM b").ok());
}

TEST_F(MetaStoreTest, TransactionRollsBackOnError) {
  auto store = MetaStore::Open(dir_ + "/t.db");
  ASSERT_TRUE((*store)->Exec("CREATE TABLE c(x INTEGER)").ok());
  Status s = (*store)->Transaction([&]() -> Status {
    RETURN_IF_ERROR((*store)->Exec("INSERT INTO c VALUES(1)"));
    return Error(ErrorCode::kInvalidArgument, "no");
  });
  EXPECT_FALSE(s.ok());
  auto q = (*store)->Prepare("SELECT count(*) FROM c");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnInt(0), 0);
}

TEST_F(MetaStoreTest, ConcurrentWritersFromThreads) {
  auto store = MetaStore::Open(dir_ + "/t.db");
  ASSERT_TRUE((*store)->Exec("CREATE TABLE d(x INTEGER)").ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        Status s = (*store)->Transaction([&] { return (*store)->Exec("INSERT INTO d VALUES(1)"); });
        ASSERT_TRUE(s.ok()) << s.ToString();
      }
    });
  }
  for (auto& t : threads) t.join();
  auto q = (*store)->Prepare("SELECT count(*) FROM d");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnInt(0), 200);
}

TEST_F(MetaStoreTest, Settings) {
  auto store = MetaStore::Open(dir_ + "/t.db");
  ASSERT_TRUE((*store)->SetSetting("k", "v1").ok());
  ASSERT_TRUE((*store)->SetSetting("k", "v2").ok());
  EXPECT_EQ(**(*store)->GetSetting("k"), "v2");
  EXPECT_FALSE((*(*store)->GetSetting("missing")).has_value());
}

}  // namespace
}  // namespace tarn
