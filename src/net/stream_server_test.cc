#include "net/stream_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace tarn::net {
namespace {

// Echoes what it receives; counts closes.
class Echo : public StreamHandler {
 public:
  Echo(std::shared_ptr<StreamConnection> c, std::atomic<int>* closes) : c_(std::move(c)), closes_(closes) {}
  void OnData(std::string_view d) override {
    if (d == "close") {
      c_->Close(true);
      return;
    }
    c_->Send(std::string(d));
  }
  void OnClose() override {
    ++*closes_;
    c_.reset();
  }

 private:
  std::shared_ptr<StreamConnection> c_;
  std::atomic<int>* closes_;
};

int Dial(const std::string& addr) {
  auto colon = addr.rfind(':');
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(std::stoi(addr.substr(colon + 1))));
  inet_pton(AF_INET, addr.substr(0, colon).c_str(), &a.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

std::string ReadN(int fd, size_t n) {
  std::string out;
  char buf[4096];
  while (out.size() < n) {
    ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
    if (r <= 0) break;
    out.append(buf, size_t(r));
  }
  return out;
}

template <typename Pred>
bool WaitFor(Pred p) {
  for (int i = 0; i < 500 && !p(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return p();
}

TEST(StreamServer, TcpEchoAndClose) {
  std::atomic<int> closes{0};
  auto server = StreamServer::Create(2);
  StreamListenerOptions o;
  o.name = "test";
  o.listen = *ListenAddress::Parse("127.0.0.1:0");
  auto addr = server->Listen(o, [&](std::shared_ptr<StreamConnection> c) {
    EXPECT_EQ(c->peer().remote_ip, "127.0.0.1");
    return std::make_unique<Echo>(std::move(c), &closes);
  });
  ASSERT_TRUE(addr.ok()) << addr.status().ToString();
  int fd = Dial(*addr);
  ASSERT_EQ(::send(fd, "hello", 5, 0), 5);
  EXPECT_EQ(ReadN(fd, 5), "hello");
  EXPECT_TRUE(WaitFor([&] { return server->connections() == 1; }));
  ASSERT_EQ(::send(fd, "close", 5, 0), 5);
  EXPECT_EQ(ReadN(fd, 1), "");  // the server closed
  EXPECT_TRUE(WaitFor([&] { return closes == 1 && server->connections() == 0; }));
  ::close(fd);
  server->Stop();
}

TEST(StreamServer, PeerThatDoesNotReadIsAborted) {
  std::atomic<int> closes{0};
  std::shared_ptr<StreamConnection> conn;
  std::mutex mu;
  auto server = StreamServer::Create(2);
  StreamListenerOptions o;
  o.listen = *ListenAddress::Parse("127.0.0.1:0");
  o.max_queued_bytes = 64 * 1024;
  auto addr = server->Listen(o, [&](std::shared_ptr<StreamConnection> c) {
    std::lock_guard<std::mutex> l(mu);
    conn = c;
    return std::make_unique<Echo>(std::move(c), &closes);
  });
  ASSERT_TRUE(addr.ok());
  int fd = Dial(*addr);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  ASSERT_TRUE(WaitFor([&] { std::lock_guard<std::mutex> l(mu); return conn != nullptr; }));
  std::shared_ptr<StreamConnection> c;
  {
    std::lock_guard<std::mutex> l(mu);
    c = conn;
  }
  bool refused = false;
  for (int i = 0; i < 10000 && !refused; ++i) refused = !c->Send(std::string(16 * 1024, 'x'));
  EXPECT_TRUE(refused);  // the bounded queue said no instead of growing
  EXPECT_TRUE(WaitFor([&] { return closes == 1; }));
  EXPECT_FALSE(c->Send("more"));
  ::close(fd);
  server->Stop();
}

TEST(StreamServer, WebSocketRejectsOtherPaths) {
  std::atomic<int> closes{0};
  auto server = StreamServer::Create(1);
  StreamListenerOptions o;
  o.listen = *ListenAddress::Parse("127.0.0.1:0");
  o.transport = StreamTransport::kWebSocket;
  auto addr = server->Listen(o, [&](std::shared_ptr<StreamConnection> c) {
    return std::make_unique<Echo>(std::move(c), &closes);
  });
  ASSERT_TRUE(addr.ok());
  int fd = Dial(*addr);
  std::string req =
      "GET /other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: mqtt\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), ssize_t(req.size()));
  EXPECT_EQ(ReadN(fd, 12).substr(0, 12), "HTTP/1.1 404");
  ::close(fd);
  fd = Dial(*addr);
  req.replace(4, 6, "/mqtt");
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), ssize_t(req.size()));
  std::string resp = ReadN(fd, 12);
  EXPECT_EQ(resp.substr(0, 12), "HTTP/1.1 101");
  ::close(fd);
  server->Stop();
}

}  // namespace
}  // namespace tarn::net
