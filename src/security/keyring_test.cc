#include "security/keyring.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace tarn::security {
namespace {

TEST(KeyringTest, SealBindsContextAndSurvivesReopen) {
  std::string dir = std::filesystem::temp_directory_path() / ("tarn-keys-" + std::to_string(::getpid()));
  std::string sealed;
  {
    auto k = Keyring::Open(dir);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    sealed = *(*k)->Seal("wJalrXUtnFEMI/K7MDENG", "AKIAEXAMPLE");
    EXPECT_EQ(sealed.find("wJalr"), std::string::npos);
    EXPECT_FALSE((*k)->Unseal(sealed, "AKIAOTHER").ok());
    std::string tampered = sealed;
    tampered[15] ^= 1;
    EXPECT_FALSE((*k)->Unseal(tampered, "AKIAEXAMPLE").ok());
  }
  auto k2 = Keyring::Open(dir);
  EXPECT_EQ(*(*k2)->Unseal(sealed, "AKIAEXAMPLE"), "wJalrXUtnFEMI/K7MDENG");
  EXPECT_EQ(std::filesystem::status(dir + "/master.key").permissions() & std::filesystem::perms::group_read,
            std::filesystem::perms::none);
  std::filesystem::remove_all(dir);
}

TEST(ScramTest, VerifierChecksPasswordAndRoundTrips) {
  ScramVerifier v = MakeScramVerifier("s3cret", 1024);
  EXPECT_TRUE(CheckPassword(v, "s3cret"));
  EXPECT_FALSE(CheckPassword(v, "S3cret"));
  auto parsed = ScramVerifier::Parse(v.Serialize());
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(CheckPassword(*parsed, "s3cret"));
  EXPECT_FALSE(ScramVerifier::Parse("md5abc").ok());
}

}  // namespace
}  // namespace tarn::security
