// Async stream server on Boost.Asio: a few event loops, each an io_context run by one thread;
// a connection stays on the loop that accepted it, so its handlers are serialised without a
// strand. See stream_server.h for the contract.
//
// Memory per idle connection is kept small on purpose (MQTT brokers hold many idle devices):
// plain TCP and TLS wait for readability (async_wait) and then read into a per-thread buffer,
// so they own no read buffer of their own (OpenSSL releases an idle TLS connection's record
// buffers); WebSocket keeps the buffers Beast needs.
#include "net/stream_server.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "core/log.h"
#include "ops/metrics.h"

namespace tarn::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;

const char* StreamTransportName(StreamTransport t) {
  switch (t) {
    case StreamTransport::kTcp: return "tcp";
    case StreamTransport::kTls: return "tls";
    case StreamTransport::kWebSocket: return "websocket";
  }
  return "?";
}

namespace {

constexpr size_t kThreadReadBuffer = 64 * 1024;
constexpr int kCloseFlushMs = 3000;

class ServerImpl;

// An io_context whose pending handlers can be destroyed before the context itself
// (execution_context::shutdown), so connections that keep the context alive never form a
// cycle with handlers that hold them.
class OwnedIoContext : public asio::io_context {
 public:
  // Run by one thread (concurrency hint 1): Asio skips the cross-thread hand-offs it needs when
  // several threads run one context; posting from other threads stays safe.
  OwnedIoContext() : asio::io_context(1) {}
  using asio::io_context::shutdown;
};

class ConnBase;

// One event loop. Shared with its connections (ConnBase::loop_), so a connection that outlives
// the server still destroys its sockets against a live context.
struct Loop {
  OwnedIoContext io;
  std::thread thread;
  // Connections with bytes queued by Send and no write under way. Acknowledgements are released
  // in bursts from other threads (the rules engine after a WAL group commit releases one
  // PUBACK per message of the batch): the first Send of a burst posts one drain to the loop,
  // the rest only append, so a burst costs one wake-up of the loop rather than one per message
  // (on a VM each cross-thread wake-up — eventfd, epoll_ctl, futex — is an expensive exit).
  std::mutex mu;
  std::vector<std::shared_ptr<ConnBase>> to_write;  // guarded by mu
  std::vector<std::shared_ptr<ConnBase>> writing;   // loop thread only: the batch being started

  void ScheduleWrite(std::shared_ptr<ConnBase> c);
  void DrainWrites();
};

struct ListenerState {
  StreamListenerOptions options;
  StreamHandlerFactory factory;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::ssl::context> ssl;
  std::atomic<size_t> open{0};
  ops::GaugeMetric* open_gauge = nullptr;
  ops::CounterMetric* aborted_slow = nullptr;
  ops::CounterMetric* rejected = nullptr;
};

class ConnBase : public StreamConnection, public std::enable_shared_from_this<ConnBase> {
 public:
  ConnBase(ServerImpl* server, ListenerState* listener, std::shared_ptr<Loop> loop)
      : loop_(std::move(loop)), server_(server), listener_(listener) {
    peer_.listener = listener->options.name;
    peer_.transport = listener->options.transport;
  }

  bool Send(std::string bytes) override {
    size_t n = bytes.size();
    bool overflow = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return false;
      if (queued_.load(std::memory_order_relaxed) + n > listener_->options.max_queued_bytes) {
        overflow = true;
      } else {
        queued_.fetch_add(n, std::memory_order_relaxed);
        out_.push_back(std::move(bytes));
        if (writing_ || !ready_) return true;
        writing_ = true;
      }
    }
    if (overflow) {
      listener_->aborted_slow->Inc();
      // Reset rather than close: the kernel would otherwise keep trying to deliver the send
      // buffer to a peer that does not read.
      reset_on_close_ = true;
      Close(false);
      return false;
    }
    loop_->ScheduleWrite(shared_from_this());
    return true;
  }

  size_t queued_bytes() const override { return queued_.load(std::memory_order_relaxed); }

  void Close(bool flush) override {
    asio::post(loop_->io, [self = shared_from_this(), flush] { self->DoClose(flush); });
  }

  const StreamPeer& peer() const override { return peer_; }

  // Runs on the loop: set up the transport, then create the handler and start reading.
  virtual void Start() = 0;

  // On the loop: starts writing what Send queued (Loop::DrainWrites).
  void DoWrite() {
    std::vector<std::string> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (out_.empty() || closed_) {
        writing_ = false;
        return;
      }
      batch.reserve(out_.size());
      while (!out_.empty() && batch.size() < 256) {
        batch.push_back(std::move(out_.front()));
        out_.pop_front();
      }
    }
    WriteBatch(std::move(batch));
  }

 protected:
  // Called on the loop once the transport is ready.
  void BecomeReady() {
    handler_ = listener_->factory(shared_from_this());
    bool write_now = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_ = true;
      if (!out_.empty() && !writing_) write_now = writing_ = true;
    }
    if (write_now) DoWrite();
    ReadLoop();
  }

  void Deliver(const char* data, size_t n) {
    if (handler_ && !finished_) handler_->OnData(std::string_view(data, n));
  }

  // Every read chain ends here on error or EOF; runs on the loop.
  void Finish();

  // Called by WriteBatch implementations when the batch has been written.
  void WriteDone(const beast::error_code& ec, size_t bytes) {
    queued_.fetch_sub(bytes, std::memory_order_relaxed);
    if (ec) {
      DoClose(false);
      return;
    }
    bool more;
    {
      std::lock_guard<std::mutex> lock(mu_);
      more = !out_.empty() && !closed_;
      if (!more) writing_ = false;
    }
    if (more) {
      DoWrite();
    } else if (close_after_flush_) {
      DoClose(false);
    }
  }

  void DoClose(bool flush) {
    if (socket_closed_) return;
    if (flush) {
      bool pending;
      {
        std::lock_guard<std::mutex> lock(mu_);
        pending = writing_ || !out_.empty();
      }
      if (pending && ready_) {
        close_after_flush_ = true;
        ArmTimer(kCloseFlushMs);
        return;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      out_.clear();
    }
    socket_closed_ = true;
    if (timer_) timer_->cancel();
    CloseSocket();
  }

  // A one-shot deadline (handshake, close flush): when it fires, the socket is closed.
  void ArmTimer(int ms) {
    if (!timer_) timer_ = std::make_unique<asio::steady_timer>(loop_->io);
    timer_->expires_after(std::chrono::milliseconds(ms));
    timer_->async_wait([self = shared_from_this()](const beast::error_code& ec) {
      if (!ec) self->DoClose(false);
    });
  }
  void DisarmTimer() {
    if (timer_) timer_->cancel();
  }

  virtual void ReadLoop() = 0;
  virtual void WriteBatch(std::vector<std::string> batch) = 0;
  virtual void CloseSocket() = 0;

  // The loop this connection lives on. It also keeps the io_context alive while this connection
  // exists: a handler (or a broker session) may hold its connection past the server's
  // destruction, and an Asio socket must not outlive its context. Declared before every Asio
  // member so it is destroyed after them.
  std::shared_ptr<Loop> loop_;
  ServerImpl* server_;
  ListenerState* listener_;
  StreamPeer peer_;
  std::unique_ptr<StreamHandler> handler_;  // loop only
  std::unique_ptr<asio::steady_timer> timer_;
  bool finished_ = false;            // loop only
  bool socket_closed_ = false;       // loop only
  bool close_after_flush_ = false;   // loop only
  std::atomic<bool> reset_on_close_{false};

  mutable std::mutex mu_;
  std::deque<std::string> out_;  // guarded by mu_
  bool writing_ = false;         // guarded by mu_
  bool closed_ = false;          // guarded by mu_
  bool ready_ = false;           // guarded by mu_ (written on the loop)
  std::atomic<size_t> queued_{0};
};

void FillRemote(const tcp::socket& s, StreamPeer* peer) {
  beast::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (!ec) {
    peer->remote_ip = ep.address().to_string();
    peer->remote_port = ep.port();
  }
}

std::vector<asio::const_buffer> Buffers(const std::vector<std::string>& batch, size_t* total) {
  std::vector<asio::const_buffer> bufs;
  bufs.reserve(batch.size());
  *total = 0;
  for (const auto& s : batch) {
    bufs.emplace_back(s.data(), s.size());
    *total += s.size();
  }
  return bufs;
}

// Plain TCP: wait for readability, read into the thread's buffer.
class TcpConn final : public ConnBase {
 public:
  TcpConn(ServerImpl* s, ListenerState* l, std::shared_ptr<Loop> loop, tcp::socket sock)
      : ConnBase(s, l, std::move(loop)), sock_(std::move(sock)) {}

  void Start() override {
    FillRemote(sock_, &peer_);
    beast::error_code ec;
    sock_.set_option(tcp::no_delay(true), ec);
    sock_.non_blocking(true, ec);
    BecomeReady();
  }

 private:
  void ReadLoop() override {
    sock_.async_wait(tcp::socket::wait_read,
                     [self = Self()](const beast::error_code& ec) { self->OnReadable(ec); });
  }

  std::shared_ptr<TcpConn> Self() { return std::static_pointer_cast<TcpConn>(shared_from_this()); }

  void OnReadable(const beast::error_code& wait_ec) {
    if (wait_ec || socket_closed_) return Finish();
    thread_local std::unique_ptr<char[]> buf(new char[kThreadReadBuffer]);
    for (int i = 0; i < 16; ++i) {
      beast::error_code ec;
      size_t n = sock_.read_some(asio::buffer(buf.get(), kThreadReadBuffer), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec || n == 0) return Finish();
      Deliver(buf.get(), n);
      if (socket_closed_) return Finish();
      if (n < kThreadReadBuffer) break;
    }
    ReadLoop();
  }

  void WriteBatch(std::vector<std::string> batch) override {
    auto holder = std::make_shared<std::vector<std::string>>(std::move(batch));
    size_t total = 0;
    auto bufs = Buffers(*holder, &total);
    asio::async_write(sock_, bufs,
                      [self = Self(), holder, total](const beast::error_code& ec, size_t) {
                        self->WriteDone(ec, total);
                      });
  }

  void CloseSocket() override {
    beast::error_code ec;
    if (reset_on_close_) sock_.set_option(asio::socket_base::linger(true, 0), ec);
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
  }

  tcp::socket sock_;
};

std::string Hex(const unsigned char* p, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += kDigits[p[i] >> 4];
    s += kDigits[p[i] & 15];
  }
  return s;
}

// TLS straight on the socket with OpenSSL (no Asio SSL stream): the connection waits for
// readability (or writability) and lets SSL_read / SSL_write do the socket I/O, the way TcpConn
// does it. Against asio::ssl::stream this drops the BIO pair (a copy of every byte each way and
// two 17 KiB buffers per connection) and the composed operation per record, which was a tenth
// of the e2e server's CPU with 1 000 devices each sending a record every few milliseconds;
// SSL_MODE_RELEASE_BUFFERS (on the context) frees an idle connection's record buffers.
class TlsConn final : public ConnBase {
 public:
  TlsConn(ServerImpl* s, ListenerState* l, std::shared_ptr<Loop> loop, tcp::socket sock)
      : ConnBase(s, l, std::move(loop)), sock_(std::move(sock)), ssl_(SSL_new(l->ssl->native_handle())) {}
  ~TlsConn() override {
    if (ssl_) SSL_free(ssl_);
  }

  void Start() override {
    FillRemote(sock_, &peer_);
    beast::error_code ec;
    sock_.set_option(tcp::no_delay(true), ec);
    sock_.non_blocking(true, ec);
    if (!ssl_ || ec || SSL_set_fd(ssl_, int(sock_.native_handle())) != 1) {
      TLOG_WARN("stream", "{}: TLS setup for {} failed", listener_->options.name, peer_.remote_ip);
      return Finish();
    }
    // Partial writes return after each record; the buffer stays put between retries anyway.
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_options(ssl_, SSL_OP_NO_RENEGOTIATION);
    // One read() takes whatever the socket holds (not a record header, then its body).
    SSL_set_read_ahead(ssl_, 1);
    SSL_set_accept_state(ssl_);
    ArmTimer(listener_->options.handshake_timeout_ms);
    Handshake();
  }

 private:
  std::shared_ptr<TlsConn> Self() { return std::static_pointer_cast<TlsConn>(shared_from_this()); }

  // Waits until the socket can do what OpenSSL asked for (SSL_ERROR_WANT_READ / _WRITE), then
  // runs `next` on the loop; an error or a closed socket ends the connection.
  template <typename F>
  void WaitFor(int ssl_error, F next) {
    auto what = ssl_error == SSL_ERROR_WANT_WRITE ? tcp::socket::wait_write : tcp::socket::wait_read;
    sock_.async_wait(what, [self = Self(), next](const beast::error_code& ec) {
      if (ec || self->socket_closed_) return self->Finish();
      next(self.get());
    });
  }

  // OpenSSL's reason for the last failure, for the debug log (never secrets: alerts and errors).
  static std::string SslFailure(int ssl_error) {
    unsigned long e = ERR_peek_last_error();
    if (e == 0) return ssl_error == SSL_ERROR_SYSCALL ? "connection closed" : "error " + std::to_string(ssl_error);
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    return buf;
  }

  void Handshake() {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (r == 1) return OnHandshake();
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      return WaitFor(e, [](TlsConn* c) { c->Handshake(); });
    }
    TLOG_DEBUG("stream", "{}: TLS handshake from {} failed: {}", listener_->options.name,
               peer_.remote_ip, SslFailure(e));
    ERR_clear_error();
    Finish();
  }

  void OnHandshake() {
    if (socket_closed_) return Finish();
    DisarmTimer();
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (cert && SSL_get_verify_result(ssl_) == X509_V_OK) {
      peer_.has_client_cert = true;
      char cn[256] = {0};
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn) - 1);
      peer_.cert_subject_cn = cn;
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int md_len = 0;
      if (X509_digest(cert, EVP_sha256(), md, &md_len) == 1) {
        peer_.cert_fingerprint_sha256 = Hex(md, md_len);
      }
    }
    if (cert) X509_free(cert);
    BecomeReady();
  }

  void ReadLoop() override {
    // A client's first packet often follows its last handshake record at once (`tarn simulate`
    // sends CONNECT with its Finished): read ahead with the handshake, it is in OpenSSL's buffer
    // and will never make the socket readable again.
    if (SSL_has_pending(ssl_)) return ReadReady();
    WaitFor(SSL_ERROR_WANT_READ, [](TlsConn* c) { c->ReadReady(); });
  }

  // Decrypts what the socket holds into the thread's buffer. Bytes OpenSSL has already read
  // ahead do not show on the socket, so the loop goes back to waiting on the socket only when
  // OpenSSL holds nothing, and yields through the loop (not through a socket wait) when it
  // stops early.
  void ReadReady() {
    thread_local std::unique_ptr<char[]> buf(new char[kThreadReadBuffer]);
    for (int i = 0; i < 16; ++i) {
      ERR_clear_error();
      int n = SSL_read(ssl_, buf.get(), int(kThreadReadBuffer));
      if (n > 0) {
        Deliver(buf.get(), size_t(n));
        if (socket_closed_) return Finish();
        // Nothing buffered, not even part of a record: wait on the socket rather than spend a
        // read() on learning that it is empty.
        if (SSL_pending(ssl_) == 0 && !SSL_has_pending(ssl_)) return ReadLoop();
        continue;
      }
      int e = SSL_get_error(ssl_, n);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return WaitFor(e, [](TlsConn* c) { c->ReadReady(); });
      }
      if (e != SSL_ERROR_ZERO_RETURN) {
        TLOG_DEBUG("stream", "{}: TLS read from {} failed: {}", listener_->options.name,
                   peer_.remote_ip, SslFailure(e));
      }
      ERR_clear_error();
      return Finish();
    }
    asio::post(loop_->io, [self = Self()] {
      if (self->socket_closed_) return self->Finish();
      self->ReadReady();
    });
  }

  // The batch goes out as one buffer, so small messages (acknowledgements) share TLS records.
  void WriteBatch(std::vector<std::string> batch) override {
    if (batch.size() == 1) {
      wbuf_ = std::move(batch[0]);
    } else {
      wbuf_.clear();
      for (const auto& s : batch) wbuf_.append(s);
    }
    woff_ = 0;
    ContinueWrite();
  }

  void ContinueWrite() {
    size_t total = wbuf_.size();
    while (woff_ < total) {
      if (socket_closed_) return WriteDone(asio::error::operation_aborted, total);
      ERR_clear_error();
      int n = SSL_write(ssl_, wbuf_.data() + woff_, int(std::min<size_t>(total - woff_, 1 << 30)));
      if (n > 0) {
        woff_ += size_t(n);
        continue;
      }
      int e = SSL_get_error(ssl_, n);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        auto what = e == SSL_ERROR_WANT_WRITE ? tcp::socket::wait_write : tcp::socket::wait_read;
        sock_.async_wait(what, [self = Self()](const beast::error_code& ec) {
          if (ec) return self->WriteDone(ec, self->wbuf_.size());
          self->ContinueWrite();
        });
        return;
      }
      ERR_clear_error();
      return WriteDone(asio::error::broken_pipe, total);
    }
    wbuf_.clear();
    if (wbuf_.capacity() > 64 * 1024) wbuf_.shrink_to_fit();
    WriteDone({}, total);
  }

  void CloseSocket() override {
    beast::error_code ec;
    if (reset_on_close_) sock_.set_option(asio::socket_base::linger(true, 0), ec);
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
  }

  tcp::socket sock_;
  SSL* ssl_;
  std::string wbuf_;  // loop only: the batch being written
  size_t woff_ = 0;   // loop only: how much of it SSL_write took
};

// WebSocket: an HTTP upgrade on ws_path with the subprotocol, then binary messages whose
// payloads are the byte stream (MQTT 5.0 §6: packets may span frames).
class WsConn final : public ConnBase {
 public:
  WsConn(ServerImpl* s, ListenerState* l, std::shared_ptr<Loop> loop, tcp::socket sock)
      : ConnBase(s, l, std::move(loop)), ws_(std::move(sock)) {}

  void Start() override {
    FillRemote(ws_.next_layer(), &peer_);
    beast::error_code ec;
    ws_.next_layer().set_option(tcp::no_delay(true), ec);
    ArmTimer(listener_->options.handshake_timeout_ms);
    req_ = std::make_unique<http::request<http::string_body>>();
    http::async_read(ws_.next_layer(), buf_, *req_,
                     [self = Self()](const beast::error_code& ec, size_t) { self->OnRequest(ec); });
  }

 private:
  std::shared_ptr<WsConn> Self() { return std::static_pointer_cast<WsConn>(shared_from_this()); }

  void OnRequest(const beast::error_code& ec) {
    if (ec || socket_closed_) return Finish();
    std::string target(req_->target());
    std::string path = target.substr(0, target.find('?'));
    if (!websocket::is_upgrade(*req_) || path != listener_->options.ws_path) {
      auto res = std::make_shared<http::response<http::string_body>>(
          websocket::is_upgrade(*req_) ? http::status::not_found : http::status::upgrade_required,
          req_->version());
      res->set(http::field::server, "Tarn");
      res->set(http::field::connection, "close");
      res->body() = "MQTT over WebSocket is served on " + listener_->options.ws_path + "\n";
      res->prepare_payload();
      http::async_write(ws_.next_layer(), *res,
                        [self = Self(), res](const beast::error_code&, size_t) {
                          self->DoClose(false);
                          self->Finish();
                        });
      return;
    }
    std::string offered(req_->at(http::field::sec_websocket_protocol));
    bool has_proto = false;
    for (size_t p = 0; p < offered.size();) {
      size_t c = offered.find(',', p);
      if (c == std::string::npos) c = offered.size();
      std::string tok = offered.substr(p, c - p);
      while (!tok.empty() && tok.front() == ' ') tok.erase(0, 1);
      while (!tok.empty() && tok.back() == ' ') tok.pop_back();
      if (tok == listener_->options.ws_subprotocol) has_proto = true;
      p = c + 1;
    }
    std::string proto = has_proto ? listener_->options.ws_subprotocol : "";
    ws_.set_option(websocket::stream_base::decorator([proto](websocket::response_type& res) {
      res.set(http::field::server, "Tarn");
      if (!proto.empty()) res.set(http::field::sec_websocket_protocol, proto);
    }));
    ws_.read_message_max(listener_->options.max_queued_bytes + 1024);
    ws_.async_accept(*req_, [self = Self()](const beast::error_code& ec) {
      if (ec || self->socket_closed_) return self->Finish();
      self->DisarmTimer();
      self->req_.reset();
      self->buf_.consume(self->buf_.size());
      self->buf_.shrink_to_fit();
      self->ws_.binary(true);
      self->BecomeReady();
    });
  }

  void ReadLoop() override {
    ws_.async_read(buf_, [self = Self()](const beast::error_code& ec, size_t) {
      if (ec || self->socket_closed_) return self->Finish();
      if (self->ws_.got_text()) {
        // MQTT 5.0 §6.0: a text frame is a protocol violation.
        self->DoClose(false);
        return self->Finish();
      }
      auto d = self->buf_.data();
      self->Deliver(static_cast<const char*>(d.data()), d.size());
      self->buf_.consume(self->buf_.size());
      if (self->buf_.capacity() > 64 * 1024) self->buf_.shrink_to_fit();
      if (self->socket_closed_) return self->Finish();
      self->ReadLoop();
    });
  }

  void WriteBatch(std::vector<std::string> batch) override {
    auto msg = std::make_shared<std::string>();
    if (batch.size() == 1) {
      *msg = std::move(batch[0]);
    } else {
      for (auto& s : batch) msg->append(s);
    }
    size_t total = msg->size();
    ws_.async_write(asio::buffer(*msg),
                    [self = Self(), msg, total](const beast::error_code& ec, size_t) {
                      self->WriteDone(ec, total);
                    });
  }

  void CloseSocket() override {
    beast::error_code ec;
    if (reset_on_close_) ws_.next_layer().set_option(asio::socket_base::linger(true, 0), ec);
    ws_.next_layer().shutdown(tcp::socket::shutdown_both, ec);
    ws_.next_layer().close(ec);
  }

  websocket::stream<tcp::socket> ws_;
  beast::flat_buffer buf_;
  std::unique_ptr<http::request<http::string_body>> req_;
};

class ServerImpl final : public StreamServer {
 public:
  explicit ServerImpl(int threads) {
    for (int i = 0; i < std::max(1, threads); ++i) {
      auto loop = std::make_shared<Loop>();
      work_.push_back(asio::make_work_guard(loop->io));
      loop->thread = std::thread([io = &loop->io] {
        pthread_setname_np(pthread_self(), "stream-io");
        io->run();
      });
      loops_.push_back(std::move(loop));
    }
  }
  ~ServerImpl() override {
    Stop();
    // Drop every pending handler (and the connections they hold) now; connections still held
    // elsewhere keep their loop's context (not its handlers) alive until they go.
    for (auto& loop : loops_) {
      {
        std::lock_guard<std::mutex> lock(loop->mu);
        loop->to_write.clear();
      }
      loop->io.shutdown();
    }
  }

  Result<std::string> Listen(const StreamListenerOptions& options,
                             StreamHandlerFactory factory) override {
    auto l = std::make_unique<ListenerState>();
    l->options = options;
    l->factory = std::move(factory);
    beast::error_code ec;
    auto addr = asio::ip::make_address(options.listen.host, ec);
    if (ec) {
      return Error(ErrorCode::kInvalidArgument,
                   options.name + ": listen address '" + options.listen.host + "': " + ec.message());
    }
    if (options.transport == StreamTransport::kTls) {
      if (options.tls.cert_file.empty() || options.tls.key_file.empty()) {
        return Error(ErrorCode::kInvalidArgument, options.name + ": TLS needs a certificate and key");
      }
      l->ssl = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
      l->ssl->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                          asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                          asio::ssl::context::no_tlsv1_1);
      // Idle TLS connections give their record buffers back to the allocator.
      SSL_CTX_set_mode(l->ssl->native_handle(), SSL_MODE_RELEASE_BUFFERS);
      l->ssl->use_certificate_chain_file(options.tls.cert_file, ec);
      if (!ec) l->ssl->use_private_key_file(options.tls.key_file, asio::ssl::context::pem, ec);
      if (!ec && !options.tls.client_ca_file.empty()) {
        l->ssl->load_verify_file(options.tls.client_ca_file, ec);
        int mode = asio::ssl::verify_peer;
        if (options.require_client_cert) mode |= asio::ssl::verify_fail_if_no_peer_cert;
        l->ssl->set_verify_mode(mode);
      }
      if (ec) {
        return Error(ErrorCode::kInvalidArgument, options.name + ": TLS setup: " + ec.message());
      }
    }
    tcp::endpoint ep(addr, options.listen.port);
    l->acceptor = std::make_unique<tcp::acceptor>(io());
    l->acceptor->open(ep.protocol(), ec);
    if (!ec) l->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) l->acceptor->bind(ep, ec);
    if (!ec) l->acceptor->listen(4096, ec);
    if (ec) {
      return Error(ErrorCode::kUnavailable, options.name + ": cannot listen on " +
                                                options.listen.ToString() + ": " + ec.message());
    }
    ListenAddress bound = options.listen;
    bound.port = l->acceptor->local_endpoint().port();
    ops::Labels labels{{"listener", options.name}};
    l->open_gauge = &ops::Metrics().Gauge("tarn_stream_open_connections",
                                          "Open long-lived stream connections", labels);
    l->aborted_slow = &ops::Metrics().Counter(
        "tarn_stream_slow_consumer_aborts_total",
        "Connections aborted because the peer did not read and the send queue filled", labels);
    l->rejected = &ops::Metrics().Counter("tarn_stream_connections_rejected_total",
                                          "Connections refused at max_connections", labels);
    ListenerState* raw = l.get();
    {
      std::lock_guard<std::mutex> lock(mu_);
      listeners_.push_back(std::move(l));
    }
    Accept(raw);
    return bound.ToString();
  }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    stopping_ = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& l : listeners_) {
        ListenerState* raw = l.get();
        asio::post(io(), [raw] {
          beast::error_code ec;
          raw->acceptor->close(ec);
        });
      }
      for (auto& c : conns_) c->Close(false);
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(5), [this] { return conns_.empty(); });
    }
    work_.clear();
    for (auto& loop : loops_) loop->io.stop();
    for (auto& loop : loops_) {
      if (loop->thread.joinable()) loop->thread.join();
    }
    std::lock_guard<std::mutex> lock(mu_);
    conns_.clear();
  }

  size_t connections() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return conns_.size();
  }

  void Remove(ConnBase* c, ListenerState* l) {
    std::shared_ptr<ConnBase> keep;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = conns_.find(c->shared_from_this());
      if (it != conns_.end()) {
        keep = *it;
        conns_.erase(it);
      }
    }
    l->open.fetch_sub(1);
    l->open_gauge->Add(-1);
    cv_.notify_all();
  }

 private:
  // Listeners accept on the first loop.
  asio::io_context& io() { return loops_.front()->io; }

  void Accept(ListenerState* l) {
    // Connections are spread round-robin over the loops and stay on theirs.
    std::shared_ptr<Loop> loop = loops_[next_loop_++ % loops_.size()];
    l->acceptor->async_accept(loop->io, [this, l, loop](const beast::error_code& ec,
                                                        tcp::socket sock) {
      if (stopping_ || !l->acceptor->is_open()) return;
      if (ec) {
        if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
          TLOG_WARN("stream", "{}: accept failed: {}", l->options.name, ec.message());
          auto t = std::make_shared<asio::steady_timer>(io(), std::chrono::milliseconds(50));
          t->async_wait([this, l, t](const beast::error_code&) { Accept(l); });
          return;
        }
        return Accept(l);
      }
      if (l->open.load() >= l->options.max_connections) {
        l->rejected->Inc();
        beast::error_code ignore;
        sock.close(ignore);
        return Accept(l);
      }
      std::shared_ptr<ConnBase> conn;
      switch (l->options.transport) {
        case StreamTransport::kTcp:
          conn = std::make_shared<TcpConn>(this, l, loop, std::move(sock));
          break;
        case StreamTransport::kTls:
          conn = std::make_shared<TlsConn>(this, l, loop, std::move(sock));
          break;
        case StreamTransport::kWebSocket:
          conn = std::make_shared<WsConn>(this, l, loop, std::move(sock));
          break;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        conns_.insert(conn);
      }
      l->open.fetch_add(1);
      l->open_gauge->Add(1);
      asio::post(loop->io, [conn] { conn->Start(); });
      Accept(l);
    });
  }

  std::vector<std::shared_ptr<Loop>> loops_;  // fixed after the constructor
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  size_t next_loop_ = 0;  // first loop only (accept handlers)
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<ListenerState>> listeners_;    // guarded by mu_
  std::unordered_set<std::shared_ptr<ConnBase>> conns_;      // guarded by mu_
};

void Loop::ScheduleWrite(std::shared_ptr<ConnBase> c) {
  bool first;
  {
    std::lock_guard<std::mutex> lock(mu);
    first = to_write.empty();
    to_write.push_back(std::move(c));
  }
  if (first) asio::post(io, [this] { DrainWrites(); });
}

void Loop::DrainWrites() {
  {
    std::lock_guard<std::mutex> lock(mu);
    writing.swap(to_write);
  }
  for (auto& c : writing) c->DoWrite();
  writing.clear();
}

void ConnBase::Finish() {
  if (finished_) return;
  finished_ = true;
  if (!socket_closed_) DoClose(false);
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    out_.clear();
  }
  auto self = shared_from_this();
  if (handler_) {
    handler_->OnClose();
    handler_.reset();
  }
  server_->Remove(this, listener_);
}

}  // namespace

std::unique_ptr<StreamServer> StreamServer::Create(int threads) {
  return std::make_unique<ServerImpl>(threads);
}

Status EnsureSelfSignedCertificate(const std::string& cert_file, const std::string& key_file,
                                   const std::string& common_name,
                                   const std::vector<std::string>& dns_names,
                                   const std::vector<std::string>& ip_addresses) {
  std::error_code fec;
  if (std::filesystem::exists(cert_file, fec) && std::filesystem::exists(key_file, fec)) {
    return Status::OK();
  }
  EVP_PKEY* pkey = EVP_EC_gen("P-256");
  if (!pkey) return Error(ErrorCode::kInternal, "cannot generate an EC key");
  X509* x = X509_new();
  Status st;
  auto fail = [&](const char* what) { st = Error(ErrorCode::kInternal, std::string("self-signed certificate: ") + what); };
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);
  X509_set_version(x, 2);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
  X509_set_pubkey(x, pkey);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Tarn"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  std::string san;
  for (const auto& d : dns_names) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
  for (const auto& ip : ip_addresses) san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  if (!san.empty()) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
    if (ext) {
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    }
  }
  if (X509_sign(x, pkey, EVP_sha256()) == 0) fail("signing failed");
  if (st.ok()) {
    std::filesystem::create_directories(std::filesystem::path(key_file).parent_path(), fec);
    std::string tmp_key = key_file + ".tmp", tmp_cert = cert_file + ".tmp";
    FILE* kf = std::fopen(tmp_key.c_str(), "w");
    if (kf) {
      ::chmod(tmp_key.c_str(), 0600);
      if (PEM_write_PrivateKey(kf, pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1) fail("writing key");
      std::fclose(kf);
    } else {
      fail("cannot create the key file");
    }
    FILE* cf = st.ok() ? std::fopen(tmp_cert.c_str(), "w") : nullptr;
    if (cf) {
      if (PEM_write_X509(cf, x) != 1) fail("writing certificate");
      std::fclose(cf);
    } else if (st.ok()) {
      fail("cannot create the certificate file");
    }
    if (st.ok()) {
      std::filesystem::rename(tmp_key, key_file, fec);
      if (!fec) std::filesystem::rename(tmp_cert, cert_file, fec);
      if (fec) fail("renaming files");
    }
  }
  X509_free(x);
  EVP_PKEY_free(pkey);
  return st;
}

}  // namespace tarn::net
