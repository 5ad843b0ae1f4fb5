#include "net/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "core/strings.h"

namespace tarn::net {
namespace {

// A raw TCP client: these tests speak HTTP by hand to reach cases real clients never send.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawClient() { ::close(fd_); }
  bool Send(const std::string& s) { return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == ssize_t(s.size()); }
  // Reads until the peer closes or `until` appears.
  std::string Read(const std::string& until = "") {
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, size_t(n));
      if (!until.empty() && out.find(until) != std::string::npos) break;
    }
    return out;
  }
  bool connected() const { return connected_; }

 private:
  int fd_;
  bool connected_ = false;
};

class EchoHandler : public HttpHandler {
 public:
  void Handle(HttpRequest& rq, HttpResponse& rs) override {
    if (rq.path == "/echo") {
      auto body = rq.body->ReadAll(1 << 20);
      if (!body.ok()) {
        rs.status = 413;
        rs.body = body.status().message();
        return;
      }
      rs.SetBody("text/plain", rq.method + " " + rq.query + " " + *body);
    } else if (rq.path == "/stream") {
      rs.body_source = std::make_unique<StringBodySource>(std::string(1 << 20, 'x'));
      rs.content_length = 1 << 20;
    } else if (rq.path == "/chunked") {
      rs.body_source = std::make_unique<StringBodySource>("abc");
    } else {
      rs.status = 404;
      rs.body = "nope";
    }
  }
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.listen = *ListenAddress::Parse("127.0.0.1:0");
    o.limits.max_header_bytes = 4096;
    o.limits.header_timeout_ms = 500;
    o.limits.idle_timeout_ms = 1000;
    auto s = HttpServer::Start(o, &handler_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
  }
  void TearDown() override { server_->Stop(1000); }
  EchoHandler handler_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, KeepAliveAndPipelining) {
  RawClient c(server_->port());
  ASSERT_TRUE(c.connected());
  // Two pipelined requests in one write; both answered in order on one connection.
  c.Send("POST /echo?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
         "POST /echo?b=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nworld");
  std::string out = c.Read("POST b=2 world");
  size_t first = out.find("POST a=1 hello");
  size_t second = out.find("POST b=2 world");
  ASSERT_NE(first, std::string::npos) << out;
  ASSERT_NE(second, std::string::npos) << out;
  EXPECT_LT(first, second);
}

TEST_F(HttpServerTest, ChunkedRequestBody) {
  RawClient c(server_->port());
  c.Send("PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  std::string out = c.Read("PUT  abcde");
  EXPECT_NE(out.find("PUT  abcde"), std::string::npos) << out;
}

TEST_F(HttpServerTest, ExpectContinue) {
  RawClient c(server_->port());
  c.Send("PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  std::string interim = c.Read("\r\n\r\n");
  EXPECT_TRUE(StartsWith(interim, "HTTP/1.1 100 Continue")) << interim;
  c.Send("xyz");
  EXPECT_NE(c.Read("PUT  xyz").find("PUT  xyz"), std::string::npos);
}

TEST_F(HttpServerTest, StreamingAndChunkedResponses) {
  RawClient c(server_->port());
  c.Send("GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string out = c.Read();
  EXPECT_NE(out.find("Content-Length: 1048576"), std::string::npos);
  EXPECT_EQ(out.size() - out.find("\r\n\r\n") - 4, size_t(1 << 20));
  RawClient d(server_->port());
  d.Send("GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string chunked = d.Read();
  EXPECT_NE(chunked.find("Transfer-Encoding: chunked"), std::string::npos) << chunked;
  EXPECT_NE(chunked.find("3\r\nabc\r\n0\r\n\r\n"), std::string::npos) << chunked;
}

TEST_F(HttpServerTest, HeadHasNoBody) {
  RawClient c(server_->port());
  c.Send("HEAD /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string out = c.Read();
  EXPECT_NE(out.find("Content-Length: 1048576"), std::string::npos);
  EXPECT_TRUE(EndsWith(out, "\r\n\r\n")) << out.size();
}

TEST_F(HttpServerTest, OversizedHeaderGets431) {
  RawClient c(server_->port());
  c.Send("GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(8000, 'a') + "\r\n\r\n");
  std::string out = c.Read();
  EXPECT_TRUE(StartsWith(out, "HTTP/1.1 431")) << out.substr(0, 80);
}

TEST_F(HttpServerTest, MalformedRequestGets400) {
  RawClient c(server_->port());
  c.Send("THIS IS NOT HTTP\r\n\r\n");
  EXPECT_TRUE(StartsWith(c.Read(), "HTTP/1.1 400"));
}

TEST_F(HttpServerTest, SlowLorisIsCutOffWhileOthersAreServed) {
  RawClient slow(server_->port());
  slow.Send("GET /echo HTTP/1.1\r\nHost: x\r\n");  // never finishes its head
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    slow.Send("X-Drip: 1\r\n");
    RawClient ok(server_->port());
    ok.Send("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_NE(ok.Read().find("200 OK"), std::string::npos);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::string rest = slow.Read();  // returns when the server closes the connection
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(rest.find("200 OK"), std::string::npos);
  EXPECT_LT(elapsed, std::chrono::seconds(3));
}

TEST_F(HttpServerTest, ClientDisconnectMidUploadLeavesServerServing) {
  {
    RawClient c(server_->port());
    c.Send("PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial");
  }
  RawClient d(server_->port());
  d.Send("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(d.Read().find("200 OK"), std::string::npos);
}

}  // namespace
}  // namespace tarn::net
