#include "core/data_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace tarn {
namespace {

TEST(DataDirTest, SecondOwnerIsRefused) {
  std::string root = std::filesystem::temp_directory_path() / ("tarn-dd-" + std::to_string(::getpid()));
  {
    DataDir a(root);
    ASSERT_TRUE(a.Create().ok());
    ASSERT_TRUE(a.Lock().ok());
    EXPECT_TRUE(std::filesystem::is_directory(a.objects()));
    EXPECT_TRUE(std::filesystem::is_directory(a.keys()));
    DataDir b(root);
    Status s = b.Lock();
    EXPECT_EQ(s.code(), ErrorCode::kDataDirLocked);
    EXPECT_NE(s.message().find(std::to_string(::getpid())), std::string::npos) << s.message();
  }
  DataDir c(root);  // released with a
  EXPECT_TRUE(c.Lock().ok());
  std::filesystem::remove_all(root);
}

TEST(DataDirTest, AtomicWrite) {
  std::string path = std::filesystem::temp_directory_path() / ("tarn-aw-" + std::to_string(::getpid()));
  ASSERT_TRUE(WriteFileAtomic(path, "one").ok());
  ASSERT_TRUE(WriteFileAtomic(path, "two").ok());
  EXPECT_EQ(*ReadFile(path), "two");
  std::filesystem::remove(path);
  EXPECT_FALSE(ReadFile(path).ok());
}

}  // namespace
}  // namespace tarn
