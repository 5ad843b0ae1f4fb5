#include "gateway/mqtt/session_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace tarn::gateway::mqtt {
namespace {

std::string TempDir() {
  char tmpl[] = "/tmp/tarn-mqttlog-XXXXXX";
  return mkdtemp(tmpl);
}

std::string OnlyLogFile(const std::string& dir) {
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.rfind("sessions-", 0) == 0 && n.size() == 29) return e.path().string();
  }
  return "";
}

TEST(SessionLog, ReplaysSessionsMessagesRetained) {
  std::string dir = TempDir();
  {
    RecoveredState st;
    auto log = SessionLog::Open(dir, &st);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    EXPECT_TRUE(st.sessions.empty());
    (*log)->Append(logrec::SessionPut("c1", 60, "cert:dev-1", "dev-user"));
    Subscription s;
    s.filter = "a/#";
    s.qos = 1;
    (*log)->Append(logrec::SubPut("c1", s));
    StoredMessage m;
    m.seq = 1;
    m.qos = 1;
    m.msg.topic = "a/b";
    m.msg.payload = "one";
    m.msg.props.content_type = "text/plain";
    (*log)->Append(logrec::MsgPut("c1", m));
    m.seq = 2;
    m.msg.payload = "two";
    (*log)->Append(logrec::MsgPut("c1", m));
    (*log)->Append(logrec::MsgDel("c1", 1));
    (*log)->Append(logrec::Qos2InPut("c1", 7));
    (*log)->Append(logrec::Qos2InPut("c1", 8));
    (*log)->Append(logrec::Qos2InDel("c1", 7));
    Message r;
    r.topic = "cfg";
    r.payload = "x";
    r.retain = true;
    uint64_t lsn = (*log)->Append(logrec::RetainPut(r));
    bool ran = false;
    (*log)->WhenDurable(lsn, [&] { ran = true; });
    (*log)->Sync();
    EXPECT_TRUE(ran);
  }
  RecoveredState st;
  auto log = SessionLog::Open(dir, &st);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(st.sessions.count("c1"), 1u);
  auto& s = st.sessions["c1"];
  EXPECT_EQ(s.expiry_interval, 60u);
  EXPECT_EQ(s.identity, "cert:dev-1");
  EXPECT_EQ(s.username, "dev-user");
  EXPECT_EQ(s.subscriptions.count("a/#"), 1u);
  ASSERT_EQ(s.messages.size(), 1u);
  EXPECT_EQ(s.messages.begin()->second.msg.payload, "two");
  EXPECT_EQ(*s.messages.begin()->second.msg.props.content_type, "text/plain");
  EXPECT_EQ(s.next_seq, 3u);
  EXPECT_EQ(s.qos2_received, (std::set<uint16_t>{8}));
  ASSERT_EQ(st.retained.count("cfg"), 1u);
  std::filesystem::remove_all(dir);
}

TEST(SessionLog, TornTailIsSetAside) {
  std::string dir = TempDir();
  {
    RecoveredState st;
    auto log = SessionLog::Open(dir, &st);
    ASSERT_TRUE(log.ok());
    (*log)->Append(logrec::SessionPut("keep", 10));
    (*log)->Append(logrec::SessionPut("torn", 10));
    (*log)->Sync();
  }
  std::string path = OnlyLogFile(dir);
  auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 3);  // tear the last record
  {
    std::ofstream f(path, std::ios::app | std::ios::binary);
    f << "garbage";
  }
  RecoveredState st;
  auto log = SessionLog::Open(dir, &st);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ(st.sessions.count("keep"), 1u);
  EXPECT_EQ(st.sessions.count("torn"), 0u);
  ASSERT_EQ(st.warnings.size(), 1u);
  bool aside = false;
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().find(".corrupt-") != std::string::npos) aside = true;
  }
  EXPECT_TRUE(aside);
  // Appends after recovery land after the good prefix and replay.
  (*log)->Append(logrec::SessionPut("after", 10));
  (*log)->Close();
  RecoveredState st2;
  auto log2 = SessionLog::Open(dir, &st2);
  ASSERT_TRUE(log2.ok());
  EXPECT_EQ(st2.sessions.count("after"), 1u);
  EXPECT_TRUE(st2.warnings.empty());
  std::filesystem::remove_all(dir);
}

TEST(SessionLog, RotateKeepsSnapshotOnly) {
  std::string dir = TempDir();
  {
    RecoveredState st;
    auto log = SessionLog::Open(dir, &st);
    ASSERT_TRUE(log.ok());
    for (int i = 0; i < 100; ++i) (*log)->Append(logrec::SessionPut("c" + std::to_string(i), 5));
    (*log)->Rotate({logrec::SessionPut("only", 7)});
    (*log)->Append(logrec::SessionPut("later", 8));
    (*log)->Sync();
  }
  RecoveredState st;
  auto log = SessionLog::Open(dir, &st);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(st.sessions.size(), 2u);
  EXPECT_EQ(st.sessions["only"].expiry_interval, 7u);
  EXPECT_EQ(st.sessions["later"].expiry_interval, 8u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tarn::gateway::mqtt
