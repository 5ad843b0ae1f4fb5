#include "net/stream_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
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


// The read path's edges, for today's (wait for readability, read into a 64 KiB per-thread
// buffer) and for a read path with a small per-connection buffer (512 bytes was tried,
// docs/performance.md "MQTT network path"): sizes around both buffers and TLS's 16 KiB records,
// many packets in one segment, a packet dribbled byte by byte, a TLS 1.3 KeyUpdate, and the peer
// leaving mid-packet (FIN or RST) — each a place where a read path can wait for an edge
// (EPOLLET) that already happened, or lose bytes.

// Equality without printing kilobytes of binary on failure.
::testing::AssertionResult Same(const std::string& got, const std::string& want) {
  if (got == want) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return ::testing::AssertionFailure() << "got " << got.size() << " bytes, want " << want.size()
                                       << ", first difference at " << i;
}

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  uint32_t x = uint32_t(seed) * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = char(x >> 24);
  }
  if (s == "close") s[0] = 'C';
  return s;
}

void SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    ASSERT_GT(n, 0);
    off += size_t(n);
  }
}

// Sends `s` in pieces of `piece` bytes, each its own segment (TCP_NODELAY, a pause between).
void Dribble(int fd, const std::string& s, size_t piece) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  for (size_t off = 0; off < s.size(); off += piece) {
    SendAll(fd, s.substr(off, piece));
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
}

// Counts what a connection delivered and echoes it back.
class Recorder : public StreamHandler {
 public:
  struct State {
    std::mutex mu;
    std::string got;
    int closes = 0;
  };
  Recorder(std::shared_ptr<StreamConnection> c, State* st) : c_(std::move(c)), st_(st) {}
  void OnData(std::string_view d) override {
    {
      std::lock_guard<std::mutex> l(st_->mu);
      st_->got.append(d);
    }
    c_->Send(std::string(d));
  }
  void OnClose() override {
    std::lock_guard<std::mutex> l(st_->mu);
    ++st_->closes;
    c_.reset();
  }

 private:
  std::shared_ptr<StreamConnection> c_;
  State* st_;
};

struct Fixture {
  Recorder::State st;
  std::unique_ptr<StreamServer> server = StreamServer::Create(2);
  std::string addr;
  std::string dir;

  explicit Fixture(StreamTransport t) {
    StreamListenerOptions o;
    o.listen = *ListenAddress::Parse("127.0.0.1:0");
    o.transport = t;
    o.max_queued_bytes = 8 << 20;
    if (t == StreamTransport::kTls) {
      char tmpl[] = "/tmp/tarn-stream-tls-XXXXXX";
      dir = ::mkdtemp(tmpl);
      o.tls.cert_file = dir + "/server.crt";
      o.tls.key_file = dir + "/server.key";
      EXPECT_TRUE(EnsureSelfSignedCertificate(o.tls.cert_file, o.tls.key_file, "localhost",
                                              {"localhost"}, {"127.0.0.1"})
                      .ok());
    }
    auto a = server->Listen(o, [this](std::shared_ptr<StreamConnection> c) {
      return std::make_unique<Recorder>(std::move(c), &st);
    });
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    addr = a.ok() ? *a : "";
  }
  ~Fixture() {
    server->Stop();
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  std::string Got() {
    std::lock_guard<std::mutex> l(st.mu);
    return st.got;
  }
  int Closes() {
    std::lock_guard<std::mutex> l(st.mu);
    return st.closes;
  }
};

TEST(StreamServerRead, TcpSizesAroundTheBuffersArriveIntact) {
  Fixture f(StreamTransport::kTcp);
  int fd = Dial(f.addr);
  std::string all;
  int seed = 0;
  for (size_t n : {size_t(1), size_t(511), size_t(512), size_t(513), size_t(1024), size_t(65536),
                   size_t(65537), size_t(512 + 65536), size_t(300 * 1024)}) {
    std::string m = Pattern(n, ++seed);
    SendAll(fd, m);
    ASSERT_TRUE(Same(ReadN(fd, n), m)) << n;  // echoed in order, every byte
    all += m;
  }
  EXPECT_TRUE(Same(f.Got(), all));
  ::close(fd);
  EXPECT_TRUE(WaitFor([&] { return f.Closes() == 1; }));
}

TEST(StreamServerRead, TcpManyPacketsInOneSegmentAndOneDribbledByteByByte) {
  Fixture f(StreamTransport::kTcp);
  int fd = Dial(f.addr);
  std::string burst;
  for (int i = 0; i < 400; ++i) burst += Pattern(7, i);  // 2 800 bytes in one send
  SendAll(fd, burst);
  ASSERT_TRUE(Same(ReadN(fd, burst.size()), burst));
  std::string slow = Pattern(600, 99);
  Dribble(fd, slow, 1);
  ASSERT_TRUE(Same(ReadN(fd, slow.size()), slow));
  EXPECT_TRUE(Same(f.Got(), burst + slow));
  ::close(fd);
}

TEST(StreamServerRead, TcpPeerHalfClosesMidPacket) {
  Fixture f(StreamTransport::kTcp);
  int fd = Dial(f.addr);
  std::string half = Pattern(700, 5);  // more than 512 bytes, a packet cut short
  SendAll(fd, half);
  ::shutdown(fd, SHUT_WR);
  EXPECT_TRUE(WaitFor([&] { return f.Closes() == 1; }));  // end of stream closes the connection
  EXPECT_TRUE(Same(f.Got(), half));  // after delivering every byte before it
  ::close(fd);
}

// A TLS client on a blocking socket. After the handshake its records go to a memory BIO, so the
// test decides how they are cut into segments.
class TlsClient {
 public:
  explicit TlsClient(const std::string& addr) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    fd_ = Dial(addr);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    ok_ = SSL_connect(ssl_) == 1;
    out_ = BIO_new(BIO_s_mem());
    SSL_set0_wbio(ssl_, out_);  // the SSL owns it
  }
  ~TlsClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }
  int fd() const { return fd_; }
  SSL* ssl() { return ssl_; }

  // Encrypts `s` (as records of at most 16 KiB) and returns the bytes to send.
  std::string Seal(const std::string& s) {
    for (size_t off = 0; off < s.size();) {
      int n = SSL_write(ssl_, s.data() + off, int(s.size() - off));
      EXPECT_GT(n, 0);
      if (n <= 0) break;
      off += size_t(n);
    }
    return Pending();
  }
  std::string Pending() {
    std::string wire;
    char buf[16384];
    int n;
    while ((n = BIO_read(out_, buf, sizeof(buf))) > 0) wire.append(buf, size_t(n));
    return wire;
  }
  // Reads n plaintext bytes (the socket's receive timeout ends a wait that never ends).
  std::string Read(size_t n) {
    std::string got;
    char buf[16384];
    while (got.size() < n) {
      int r = SSL_read(ssl_, buf, int(std::min(sizeof(buf), n - got.size())));
      if (r <= 0) break;
      got.append(buf, size_t(r));
      // Key updates answered while reading are queued in the memory BIO: send them.
      std::string more = Pending();
      if (!more.empty()) SendAll(fd_, more);
    }
    return got;
  }
  // Sends `m` as one TLS record and checks that the server echoes it back whole.
  ::testing::AssertionResult Echo(const std::string& m) {
    SendAll(fd_, Seal(m));
    return Same(Read(m.size()), m);
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* out_ = nullptr;
  int fd_ = -1;
  bool ok_ = false;
};

TEST(StreamServerRead, TlsSizesAroundTheBuffersArriveIntact) {
  Fixture f(StreamTransport::kTls);
  TlsClient c(f.addr);
  ASSERT_TRUE(c.ok());
  std::string all;
  int seed = 0;
  for (size_t n : {size_t(1), size_t(470), size_t(490), size_t(511), size_t(512), size_t(513),
                   size_t(16384), size_t(16385), size_t(65537), size_t(300 * 1024)}) {
    std::string m = Pattern(n, ++seed);
    ASSERT_TRUE(c.Echo(m)) << n;
    all += m;
  }
  EXPECT_TRUE(Same(f.Got(), all));
}

TEST(StreamServerRead, TlsManyRecordsInOneSegmentAndOneDribbledByteByByte) {
  Fixture f(StreamTransport::kTls);
  TlsClient c(f.addr);
  ASSERT_TRUE(c.ok());
  // 300 small records (~30 bytes each on the wire) in one send: OpenSSL holds most of them after
  // the first read, and they never make the socket readable again.
  std::string plain, wire;
  for (int i = 0; i < 300; ++i) {
    std::string m = Pattern(9, i);
    plain += m;
    wire += c.Seal(m);
  }
  SendAll(c.fd(), wire);
  ASSERT_TRUE(Same(c.Read(plain.size()), plain));
  // One record, then two, sent a byte at a time: every segment is a new edge, most of them
  // without a whole record.
  std::string slow = Pattern(400, 77);
  Dribble(c.fd(), c.Seal(slow), 1);
  ASSERT_TRUE(Same(c.Read(slow.size()), slow));
  std::string slow2 = Pattern(300, 78), slow3 = Pattern(700, 79);
  std::string wire2 = c.Seal(slow2);
  wire2 += c.Seal(slow3);  // in this order: records carry sequence numbers
  Dribble(c.fd(), wire2, 3);
  ASSERT_TRUE(Same(c.Read(slow2.size() + slow3.size()), slow2 + slow3));
  EXPECT_TRUE(Same(f.Got(), plain + slow + slow2 + slow3));
}

TEST(StreamServerRead, TlsKeyUpdateBetweenRecords) {
  Fixture f(StreamTransport::kTls);
  TlsClient c(f.addr);
  ASSERT_TRUE(c.ok());
  if (SSL_version(c.ssl()) != TLS1_3_VERSION) GTEST_SKIP() << "needs TLS 1.3";
  std::string all;
  for (int i = 0; i < 5; ++i) {
    // The server must read the KeyUpdate (a post-handshake message, no application data), answer
    // it with its own (requested) and still deliver the record that follows in the same segment.
    ASSERT_EQ(SSL_key_update(c.ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
    std::string m = Pattern(200 + size_t(i) * 300, 40 + i);
    ASSERT_TRUE(c.Echo(m)) << i;
    all += m;
  }
  EXPECT_TRUE(Same(f.Got(), all));
}

TEST(StreamServerRead, TlsCloseNotifyAndPeerGoneMidRecord) {
  Fixture f(StreamTransport::kTls);
  {
    TlsClient c(f.addr);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(c.Echo(Pattern(100, 1)));
    SSL_shutdown(c.ssl());  // close_notify
    SendAll(c.fd(), c.Pending());
    EXPECT_TRUE(WaitFor([&] { return f.Closes() == 1; }));
  }
  {
    TlsClient c(f.addr);
    ASSERT_TRUE(c.ok());
    std::string wire = c.Seal(Pattern(2000, 2));  // one record, longer than 512 bytes
    SendAll(c.fd(), wire.substr(0, 1200));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ::shutdown(c.fd(), SHUT_WR);  // gone mid-record, without close_notify
    EXPECT_TRUE(WaitFor([&] { return f.Closes() == 2; }));
    EXPECT_TRUE(Same(f.Got(), Pattern(100, 1)));  // nothing of the cut record was delivered
  }
  {
    // A whole record and the FIN right behind it, without close_notify: when the record is read
    // the FIN may be queued already, and it brings no edge of its own.
    TlsClient c(f.addr);
    ASSERT_TRUE(c.ok());
    std::string m = Pattern(300, 3);
    SendAll(c.fd(), c.Seal(m));
    ::shutdown(c.fd(), SHUT_WR);
    EXPECT_TRUE(WaitFor([&] { return f.Closes() == 3; }));
    EXPECT_TRUE(Same(f.Got(), Pattern(100, 1) + m));
  }
}


// Records like Recorder, but "sleep" holds the loop for 300 ms.
class Sleepy : public StreamHandler {
 public:
  Sleepy(std::shared_ptr<StreamConnection> c, Recorder::State* st) : c_(std::move(c)), st_(st) {}
  void OnData(std::string_view d) override {
    if (d == "sleep") {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      return;
    }
    std::lock_guard<std::mutex> l(st_->mu);
    st_->got.append(d);
  }
  void OnClose() override {
    std::lock_guard<std::mutex> l(st_->mu);
    ++st_->closes;
    c_.reset();
  }

 private:
  std::shared_ptr<StreamConnection> c_;
  Recorder::State* st_;
};

TEST(StreamServerRead, TcpPeerResetRightBehindItsDataIsNoticed) {
  // While the loop is busy, a peer sends data and resets the connection: both land before the
  // loop's next epoll round, so one edge covers both and a read takes the data without seeing
  // the reset. The connection must still close (a read path that stops at the first read that
  // empties the socket needs another way to notice; 12 s allowed for a periodic one).
  Recorder::State st;
  auto server = StreamServer::Create(1);
  StreamListenerOptions o;
  o.listen = *ListenAddress::Parse("127.0.0.1:0");
  auto addr = server->Listen(o, [&](std::shared_ptr<StreamConnection> c) {
    return std::make_unique<Sleepy>(std::move(c), &st);
  });
  ASSERT_TRUE(addr.ok());
  int busy = Dial(*addr);
  int fd = Dial(*addr);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  SendAll(busy, "sleep");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::string m = Pattern(100, 5);
  SendAll(fd, m);
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  ::close(fd);  // RST
  auto closes = [&] {
    std::lock_guard<std::mutex> l(st.mu);
    return st.closes;
  };
  bool closed = false;
  for (int i = 0; i < 1200 && !closed; ++i) {
    closed = closes() == 1;
    if (!closed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(closed);
  {
    std::lock_guard<std::mutex> l(st.mu);
    EXPECT_TRUE(Same(st.got, m));
  }
  ::close(busy);
  server->Stop();
}
}  // namespace
}  // namespace tarn::net
