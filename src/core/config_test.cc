#include "core/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace tarn {
namespace {

std::string WriteTemp(const std::string& text) {
  std::string path = std::filesystem::temp_directory_path() / ("tarn-config-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << text;
  return path;
}

TEST(ConfigTest, ListenAddress) {
  auto a = ListenAddress::Parse("0.0.0.0:9000");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "0.0.0.0");
  EXPECT_EQ(a->port, 9000);
  EXPECT_FALSE(ListenAddress::Parse("off")->enabled);
  EXPECT_EQ(ListenAddress::Parse("[::1]:0")->host, "::1");
  EXPECT_FALSE(ListenAddress::Parse("localhost").ok());
  EXPECT_FALSE(ListenAddress::Parse("h:70000").ok());
}

TEST(ConfigTest, FileThenEnvironment) {
  std::string path = WriteTemp(
      "data_dir: /tmp/x\nregion: eu-west-1\nlisten:\n  api: 127.0.0.1:0\n  mqtt: off\nservices:\n  mqtt: false\n");
  auto c = LoadConfigFile(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->data_dir, "/tmp/x");
  EXPECT_EQ(c->region, "eu-west-1");
  EXPECT_EQ(c->api.port, 0);
  EXPECT_FALSE(c->mqtt.enabled);
  EXPECT_FALSE(c->ServiceEnabled("mqtt"));
  EXPECT_TRUE(c->ServiceEnabled("s3"));
  setenv("TARN_REGION", "ap-south-1", 1);
  setenv("TARN_SQL_LISTEN", "off", 1);
  ASSERT_TRUE(ApplyEnvironment(&*c).ok());
  unsetenv("TARN_REGION");
  unsetenv("TARN_SQL_LISTEN");
  EXPECT_EQ(c->region, "ap-south-1");
  EXPECT_FALSE(c->sql.enabled);
  std::filesystem::remove(path);
}

TEST(ConfigTest, MqttBrokerSection) {
  std::string path = WriteTemp(
      "mqtt_broker:\n  allow_anonymous: true\n  max_queued_messages: 50\n"
      "  cert_file: a.pem\n  key_file: a.key\n  require_client_cert: true\n");
  auto c = LoadConfigFile(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->mqtt_broker.allow_anonymous);
  EXPECT_EQ(c->mqtt_broker.max_queued_messages, 50u);
  EXPECT_EQ(c->mqtt_broker.cert_file, "a.pem");
  EXPECT_TRUE(c->mqtt_broker.require_client_cert);
  EXPECT_TRUE(ValidateConfig(*c).ok());
  c->mqtt_broker.key_file.clear();
  EXPECT_FALSE(ValidateConfig(*c).ok());  // certificate without key
  path = WriteTemp("mqtt_broker:\n  max_queue: 5\n");
  auto bad = LoadConfigFile(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("mqtt_broker.max_queue"), std::string::npos);
}

TEST(ConfigTest, ErrorsNameFileAndLine) {
  std::string path = WriteTemp("region: us-east-1\nlisten:\n  bogus: 1.2.3.4:1\n");
  auto c = LoadConfigFile(path);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(path + ":3"), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("listen.bogus"), std::string::npos);
  std::filesystem::remove(path);
}

TEST(ConfigTest, StreamsSection) {
  std::string path = WriteTemp("streams:\n  wal_quota_mb: 256\n  wal_segment_mb: 16\n");
  auto c = LoadConfigFile(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->streams.wal_quota_mb, 256u);
  EXPECT_EQ(c->streams.wal_segment_mb, 16u);
  std::filesystem::remove(path);
  path = WriteTemp("account_id: '123456789012'\nstreams:\n  wal_quota_mb: 8\n  wal_segment_mb: 16\n");
  c = LoadConfigFile(path);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(ValidateConfig(*c).ok());
  std::filesystem::remove(path);
  path = WriteTemp("streams:\n  quota: 8\n");
  EXPECT_FALSE(LoadConfigFile(path).ok());
  std::filesystem::remove(path);
  path = WriteTemp("account_id: '123456789012'\nstreams:\n  dedup_window_seconds: 30\n"
                   "  dedup_max_entries: 1000\n");
  c = LoadConfigFile(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->streams.dedup_window_seconds, 30u);
  EXPECT_EQ(c->streams.dedup_max_entries, 1000u);
  EXPECT_TRUE(ValidateConfig(*c).ok());
  c->streams.dedup_window_seconds = 86401;
  EXPECT_FALSE(ValidateConfig(*c).ok());
  std::filesystem::remove(path);
  path = WriteTemp("account_id: '123456789012'\nstreams:\n  zero_interval_gap_ms: 100\n");
  c = LoadConfigFile(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->streams.zero_interval_gap_ms, 100u);
  EXPECT_TRUE(ValidateConfig(*c).ok());
  c->streams.zero_interval_gap_ms = 60001;
  EXPECT_FALSE(ValidateConfig(*c).ok());
  std::filesystem::remove(path);
}

TEST(ConfigTest, SqlSection) {
  std::string path = WriteTemp("sql:\n  max_connections: 64\n  max_connections_per_user: 8\n"
                               "  max_queries_per_user: 2\n  statement_timeout_ms: 30000\n"
                               "  memory_limit: 2GB\n  threads: 2\n");
  auto c = LoadConfigFile(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->sql_limits.max_connections, 64u);
  EXPECT_EQ(c->sql_limits.max_connections_per_user, 8u);
  EXPECT_EQ(c->sql_limits.max_queries_per_user, 2u);
  EXPECT_EQ(c->sql_limits.statement_timeout_ms, 30000u);
  EXPECT_EQ(c->sql_limits.memory_limit, "2GB");
  EXPECT_EQ(c->sql_limits.threads, 2u);
  EXPECT_TRUE(ValidateConfig(*c).ok());
  std::filesystem::remove(path);
  path = WriteTemp("sql:\n  statement_timeout: 5s\n");
  EXPECT_FALSE(LoadConfigFile(path).ok());
  std::filesystem::remove(path);
  path = WriteTemp("sql:\n  max_queries_per_user: -1\n");
  EXPECT_FALSE(LoadConfigFile(path).ok());
  std::filesystem::remove(path);
  // Per-login overrides; fields left out keep the defaults (-1).
  path = WriteTemp("sql:\n  users:\n    alice:\n      statement_timeout_ms: 500\n      max_queries: 1\n"
                   "    etl: {max_connections: 0}\n");
  c = LoadConfigFile(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->sql_limits.users.size(), 2u);
  EXPECT_EQ(c->sql_limits.users["alice"].statement_timeout_ms, 500);
  EXPECT_EQ(c->sql_limits.users["alice"].max_queries, 1);
  EXPECT_EQ(c->sql_limits.users["alice"].max_connections, -1);
  EXPECT_EQ(c->sql_limits.users["etl"].max_connections, 0);
  std::filesystem::remove(path);
  path = WriteTemp("sql:\n  users:\n    alice:\n      memory_limit: 1GB\n");
  EXPECT_FALSE(LoadConfigFile(path).ok());
  std::filesystem::remove(path);
}

TEST(ConfigTest, Validation) {
  Config c;
  c.account_id = "12345";
  EXPECT_FALSE(ValidateConfig(c).ok());
  c.account_id = "123456789012";
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.region = "US East";
  EXPECT_FALSE(ValidateConfig(c).ok());
}

}  // namespace
}  // namespace tarn
