#include "net/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "core/strings.h"
#include "net/stream_server.h"

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
  bool Send(const std::string& s) {
    return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == ssize_t(s.size());
  }
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
  // Reads one response with a Content-Length body (enough for these tests).
  std::string ReadResponse() {
    std::string out;
    char c;
    while (out.find("\r\n\r\n") == std::string::npos) {
      if (::recv(fd_, &c, 1, 0) != 1) return out;
      out.push_back(c);
    }
    size_t p = out.find("Content-Length: ");
    size_t len = p == std::string::npos ? 0 : std::stoul(out.substr(p + 16));
    size_t have = 0;
    char buf[4096];
    while (have < len) {
      ssize_t n = ::recv(fd_, buf, std::min(sizeof(buf), len - have), 0);
      if (n <= 0) break;
      out.append(buf, size_t(n));
      have += size_t(n);
    }
    return out;
  }
  // True when the peer has closed the connection within `ms`.
  bool ClosedWithin(int ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return false;
    char c;
    return ::recv(fd_, &c, 1, MSG_PEEK) <= 0;
  }
  int fd() const { return fd_; }

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
  c.Send(
      "POST /echo?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
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
  c.Send(
      "PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
      "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
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

// ---------------------------------------------------------------------------------------------
// The event loop and the worker threads: which requests run where, and that neither a blocked
// handler nor a slow upload stalls the loop.

std::string Pad3(int i) {
  char b[8];
  std::snprintf(b, sizeof(b), "%03d", i);
  return b;
}

std::string ThreadName() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

class LoopHandler : public HttpHandler {
 public:
  bool RunsInline(const HttpRequest& rq) const override {
    EXPECT_EQ(rq.body, nullptr);
    return StartsWith(rq.path, "/fast") || rq.path == "/inline-stream";
  }
  void Handle(HttpRequest& rq, HttpResponse& rs) override {
    if (StartsWith(rq.path, "/fast")) {
      auto body = rq.body->ReadAll(1 << 20);
      Note(&fast_thread);
      rs.SetBody("text/plain",
                 "fast " + rq.method + " " + rq.path + " " + (body.ok() ? *body : "?"));
    } else if (rq.path == "/inline-stream") {
      rs.body_source = std::make_unique<StringBodySource>(std::string(100000, 'y'));
    } else if (rq.path == "/echo") {
      ++echo_calls;
      Note(&worker_thread);
      auto body = rq.body->ReadAll(8 << 20);
      if (!body.ok()) {
        rs.status = 400;
        rs.body = body.status().message();
        return;
      }
      rs.SetBody("text/plain", "echo " + *body);
    } else if (rq.path == "/length") {
      auto len = rq.body->content_length();
      rs.SetBody("text/plain", len ? "length=" + std::to_string(*len) : std::string("length=none"));
    } else if (rq.path == "/block") {
      std::unique_lock<std::mutex> lock(mu_);
      ++blocked;
      cv_.notify_all();
      cv_.wait(lock, [this] { return released_; });
      rs.SetBody("text/plain", "unblocked");
    } else if (rq.path == "/slow") {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      rs.SetBody("text/plain", "slow done");
    } else {
      rs.status = 404;
      rs.body = "nope";
    }
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  bool WaitBlocked(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [&] { return blocked >= n; });
  }
  std::string Thread(std::string* which) {
    std::lock_guard<std::mutex> lock(mu_);
    return *which;
  }

  std::atomic<int> echo_calls{0};
  std::string fast_thread, worker_thread;  // guarded by mu_
  int blocked = 0;                         // guarded by mu_

 private:
  void Note(std::string* which) {
    std::lock_guard<std::mutex> lock(mu_);
    *which = ThreadName();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;  // guarded by mu_
};

class HttpLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.name = "loop";
    o.listen = *ListenAddress::Parse("127.0.0.1:0");
    o.io_threads = 1;  // one loop: anything that blocked it would show at once
    o.limits.max_header_bytes = 4096;
    o.limits.header_timeout_ms = 5000;
    o.limits.idle_timeout_ms = IdleTimeoutMs();
    auto s = HttpServer::Start(o, &handler_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
  }
  // Long enough for a loaded CI machine, except where the timeout itself is under test.
  virtual uint32_t IdleTimeoutMs() const { return 10000; }
  void TearDown() override {
    handler_.Release();
    server_->Stop(1000);
  }
  static std::string Body(const std::string& response) {
    size_t p = response.find("\r\n\r\n");
    return p == std::string::npos ? "" : response.substr(p + 4);
  }
  LoopHandler handler_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpLoopTest, InlineRequestsRunOnTheLoopAndOthersOnWorkers) {
  RawClient c(server_->port());
  c.Send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Body(c.ReadResponse()), "fast GET /fast ");
  c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
  EXPECT_EQ(Body(c.ReadResponse()), "echo hi");
  EXPECT_EQ(handler_.Thread(&handler_.fast_thread), "loop-io0");
  EXPECT_EQ(handler_.Thread(&handler_.worker_thread), "http-worker");
}

TEST_F(HttpLoopTest, PipelinedMixOfLoopAndWorkerRequestsIsAnsweredInOrder) {
  RawClient c(server_->port());
  std::string batch;
  for (int i = 0; i < 20; ++i) {
    if (i % 3 == 1) {
      batch += "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n" + Pad3(i);
    } else if (i % 3 == 2) {
      batch += "PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n" +
               Pad3(i) + "\r\n0\r\n\r\n";
    } else {
      batch +=
          "POST /fast/" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz";
    }
  }
  ASSERT_TRUE(c.Send(batch));
  for (int i = 0; i < 20; ++i) {
    std::string r = c.ReadResponse();
    ASSERT_TRUE(StartsWith(r, "HTTP/1.1 200")) << i << ": " << r;
    if (i % 3 == 0) {
      EXPECT_EQ(Body(r), "fast POST /fast/" + std::to_string(i) + " z");
    } else {
      EXPECT_EQ(Body(r), "echo " + Pad3(i));
    }
  }
}

TEST_F(HttpLoopTest, ManyConcurrentKeepAliveConnections) {
  constexpr int kConns = 200;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kConns; ++i) {
    clients.push_back(std::make_unique<RawClient>(server_->port()));
    ASSERT_TRUE(clients.back()->connected());
  }
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < kConns; ++i) {
      std::string path = i % 10 == 0 ? "/echo" : "/fast";
      clients[i]->Send("POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nq");
    }
    for (int i = 0; i < kConns; ++i) {
      std::string r = clients[i]->ReadResponse();
      ASSERT_TRUE(StartsWith(r, "HTTP/1.1 200")) << i << " round " << round << ": " << r;
    }
  }
  EXPECT_EQ(server_->connections(), size_t(kConns));
  clients.clear();
  for (int i = 0; i < 100 && server_->connections() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(HttpLoopTest, BlockedHandlerAndSlowUploadDoNotStallOtherConnections) {
  RawClient blocked(server_->port());
  blocked.Send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(handler_.WaitBlocked(1));
  // A streaming upload that stalls after its first chunk holds its worker in a body read.
  RawClient upload(server_->port());
  upload.Send("PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));

  auto start = std::chrono::steady_clock::now();
  RawClient fast(server_->port());
  for (int i = 0; i < 50; ++i) {
    fast.Send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(Body(fast.ReadResponse()), "fast GET /fast ");
  }
  RawClient other(server_->port());  // another worker request gets its own worker
  other.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nother");
  EXPECT_EQ(Body(other.ReadResponse()), "echo other");
  // (Had the loop been stalled, the reads above would have timed out: the blocked handler
  // waits until Release below.)
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));

  upload.Send("7\r\n second\r\n0\r\n\r\n");
  EXPECT_EQ(Body(upload.ReadResponse()), "echo first second");
  handler_.Release();
  EXPECT_EQ(Body(blocked.ReadResponse()), "unblocked");
}

TEST_F(HttpLoopTest, SmallBodyIsReadBeforeTheHandlerRuns) {
  RawClient c(server_->port());
  c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(handler_.echo_calls.load(), 0);  // no worker is held while the client dawdles
  c.Send("world");
  EXPECT_EQ(Body(c.ReadResponse()), "echo helloworld");
  EXPECT_EQ(handler_.echo_calls.load(), 1);
}

TEST_F(HttpLoopTest, ContentLengthIsReportedAsSent) {
  RawClient c(server_->port());
  c.Send("PUT /length HTTP/1.1\r\nHost: x\r\n\r\n");  // none: S3 answers 411 from this
  EXPECT_EQ(Body(c.ReadResponse()), "length=none");
  c.Send("PUT /length HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(Body(c.ReadResponse()), "length=0");
  c.Send("PUT /length HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(Body(c.ReadResponse()), "length=3");
}

TEST_F(HttpLoopTest, StreamingBodyOfALoopHandlerIsWrittenByAWorker) {
  RawClient c(server_->port());
  c.Send("GET /inline-stream HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string r = c.Read("0\r\n\r\n");
  EXPECT_NE(r.find("Transfer-Encoding: chunked"), std::string::npos);
  size_t body = r.find("\r\n\r\n") + 4;
  EXPECT_TRUE(StartsWith(r.substr(body), "186a0\r\n")) << r.substr(body, 20);
  EXPECT_EQ(std::count(r.begin(), r.end(), 'y'), 100000);
  // The connection is back on its loop afterwards.
  c.Send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Body(c.ReadResponse()), "fast GET /fast ");
}

TEST_F(HttpLoopTest, Http10ClosesUnlessKeepAlive) {
  RawClient c(server_->port());
  c.Send("GET /fast HTTP/1.0\r\n\r\n");
  std::string r = c.ReadResponse();
  EXPECT_TRUE(StartsWith(r, "HTTP/1.0 200 OK\r\n")) << r;
  EXPECT_TRUE(c.ClosedWithin(2000));
  RawClient k(server_->port());
  k.Send("GET /fast HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  r = k.ReadResponse();
  EXPECT_NE(r.find("Connection: keep-alive\r\n"), std::string::npos) << r;
  k.Send("GET /fast HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(Body(k.ReadResponse()), "fast GET /fast ");
}

class HttpLoopIdleTest : public HttpLoopTest {
  uint32_t IdleTimeoutMs() const override { return 1000; }
};

TEST_F(HttpLoopIdleTest, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  RawClient c(server_->port());
  c.Send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Body(c.ReadResponse()), "fast GET /fast ");
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.ClosedWithin(3000));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(800));
}

TEST_F(HttpLoopTest, StopFinishesInFlightRequestsAndClosesIdleConnections) {
  RawClient idle(server_->port());
  idle.Send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
  idle.ReadResponse();
  RawClient busy(server_->port());
  busy.Send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::thread stopper([&] { server_->Stop(5000); });
  std::string r = busy.ReadResponse();
  EXPECT_TRUE(StartsWith(r, "HTTP/1.1 200")) << r;
  EXPECT_NE(r.find("Connection: close"), std::string::npos) << r;
  EXPECT_EQ(Body(r), "slow done");
  EXPECT_TRUE(idle.ClosedWithin(2000));
  stopper.join();
  EXPECT_EQ(server_->connections(), 0u);
  RawClient late(server_->port());
  EXPECT_FALSE(late.connected());
}

// The same paths over TLS (the loop does the handshake; workers use the TLS stream blocking).
TEST(HttpTlsTest, LoopAndWorkerRequestsOverTls) {
  auto dir =
      std::filesystem::temp_directory_path() / ("tarn-http-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string cert = (dir / "server.crt").string(), key = (dir / "server.key").string();
  ASSERT_TRUE(
      EnsureSelfSignedCertificate(cert, key, "localhost", {"localhost"}, {"127.0.0.1"}).ok());
  LoopHandler handler;
  HttpServerOptions o;
  o.listen = *ListenAddress::Parse("127.0.0.1:0");
  o.tls.cert_file = cert;
  o.tls.key_file = key;
  o.io_threads = 1;
  auto server = HttpServer::Start(o, &handler);
  ASSERT_TRUE(server.ok()) << server.status().ToString();

  RawClient c((*server)->port());
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, c.fd());
  ASSERT_EQ(SSL_connect(ssl), 1);
  auto roundtrip = [&](const std::string& request) {
    EXPECT_EQ(SSL_write(ssl, request.data(), int(request.size())), int(request.size()));
    std::string out;
    char buf[4096];
    while (out.find("\r\n\r\n") == std::string::npos ||
           out.size() - out.find("\r\n\r\n") - 4 <
               std::stoul(out.substr(out.find("Content-Length: ") + 16))) {
      int n = SSL_read(ssl, buf, sizeof(buf));
      if (n <= 0) break;
      out.append(buf, size_t(n));
    }
    return out;
  };
  EXPECT_NE(roundtrip("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n").find("fast GET /fast "),
            std::string::npos);
  EXPECT_NE(
      roundtrip("PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ntls!").find("echo tls!"),
      std::string::npos);
  std::string big(600 * 1024, 'b');  // streams through a worker
  std::string r =
      roundtrip("PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(big.size()) +
                "\r\n\r\n" + big);
  EXPECT_NE(r.find("echo " + big), std::string::npos) << r.substr(0, 200);
  EXPECT_NE(roundtrip("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n").find("fast GET /fast "),
            std::string::npos);
  SSL_shutdown(ssl);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  (*server)->Stop(1000);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tarn::net
