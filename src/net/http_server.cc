// HTTP/1.1 server on Boost.Beast's synchronous API, one thread per connection.
//
// Why threads and blocking I/O: handlers stream request and response bodies of any size
// (S3 objects of 5 GiB) through a plain Read() interface; blocking reads give that for free
// and keep Beast out of every handler. Slow or stuck peers are handled by a watchdog that
// shuts down sockets whose deadline has passed, which fails the blocked read or write.
#include "net/http_server.h"

#include <pthread.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <list>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "core/log.h"
#include "core/strings.h"
#include "ops/metrics.h"

namespace tarn::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kStackSize = 512 * 1024;
constexpr size_t kIoChunk = 256 * 1024;

int64_t NowNanos() { return Clock::Real()->MonotonicNanos(); }

// Shared between a connection thread and the watchdog.
struct ConnState {
  int fd = -1;
  std::atomic<int64_t> deadline{0};  // monotonic ns; 0 = none
  std::atomic<bool> idle{false};     // waiting for the next request on a kept-alive connection
  std::atomic<bool> killed{false};

  void SetDeadline(uint32_t ms) { deadline = NowNanos() + int64_t(ms) * 1'000'000; }
  void ClearDeadline() { deadline = 0; }
  void Kill() {
    if (!killed.exchange(true) && fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }
};

// A cached Date header value, refreshed once per second.
std::string DateHeader() {
  thread_local int64_t cached_sec = -1;
  thread_local std::string cached;
  int64_t now = Clock::Real()->NowSeconds();
  if (now != cached_sec) {
    cached_sec = now;
    cached = FormatHttpDate(now);
  }
  return cached;
}

template <typename Stream>
class BeastBodyReader final : public BodyReader {
 public:
  BeastBodyReader(Stream& stream, beast::flat_buffer& buffer,
                  http::request_parser<http::buffer_body>& parser, ConnState& state,
                  const HttpLimits& limits, bool expect_continue)
      : stream_(stream),
        buffer_(buffer),
        parser_(parser),
        state_(state),
        limits_(limits),
        expect_continue_(expect_continue) {}

  Result<size_t> Read(char* buf, size_t n) override {
    if (!error_.ok()) return error_;
    if (parser_.is_done() || n == 0) return size_t{0};
    if (expect_continue_) {
      // RFC 7231 §5.1.1: tell the client to send the body only once a handler asks for it.
      expect_continue_ = false;
      static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      beast::error_code ec;
      state_.SetDeadline(limits_.idle_timeout_ms);
      asio::write(stream_, asio::buffer(kContinue, sizeof(kContinue) - 1), ec);
      if (ec) return Fail(ErrorCode::kIncompleteBody, "client went away: " + ec.message());
    }
    for (;;) {
      parser_.get().body().data = buf;
      parser_.get().body().size = n;
      state_.SetDeadline(limits_.idle_timeout_ms);
      beast::error_code ec;
      http::read(stream_, buffer_, parser_, ec);
      if (ec == http::error::need_buffer) ec = {};
      size_t got = n - parser_.get().body().size;
      if (ec) {
        if (state_.killed) {
          return Fail(ErrorCode::kRequestTimeout,
                      "request body not received within the idle timeout");
        }
        return Fail(ErrorCode::kIncompleteBody,
                    "request body ended early or is malformed: " + ec.message());
      }
      if (got > 0 || parser_.is_done()) return got;
    }
  }

  std::optional<uint64_t> content_length() const override {
    auto len = parser_.content_length();
    if (len) return *len;
    return std::nullopt;
  }

  bool failed() const { return !error_.ok(); }

 private:
  Result<size_t> Fail(ErrorCode code, std::string msg) {
    error_ = Status(code, std::move(msg));
    return error_;
  }

  Stream& stream_;
  beast::flat_buffer& buffer_;
  http::request_parser<http::buffer_body>& parser_;
  ConnState& state_;
  const HttpLimits& limits_;
  bool expect_continue_;
  Status error_;
};

class HttpServerImpl final : public HttpServer {
 public:
  HttpServerImpl(HttpServerOptions options, HttpHandler* handler)
      : options_(std::move(options)), handler_(handler), acceptor_(io_) {}

  ~HttpServerImpl() override { Stop(0); }

  Status Init() {
    beast::error_code ec;
    auto addr = asio::ip::make_address(options_.listen.host, ec);
    if (ec) {
      return Error(ErrorCode::kInvalidArgument,
                   "listen address '" + options_.listen.host + "': " + ec.message());
    }
    tcp::endpoint ep(addr, options_.listen.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(1024, ec);
    if (ec) {
      return Error(ErrorCode::kUnavailable,
                   options_.name + ": cannot listen on " + options_.listen.ToString() + ": " +
                       ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    if (!options_.tls.cert_file.empty()) {
      ssl_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
      ssl_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                        asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                        asio::ssl::context::no_tlsv1_1);
      ssl_->use_certificate_chain_file(options_.tls.cert_file, ec);
      if (!ec) ssl_->use_private_key_file(options_.tls.key_file, asio::ssl::context::pem, ec);
      if (!ec && !options_.tls.client_ca_file.empty()) {
        ssl_->load_verify_file(options_.tls.client_ca_file, ec);
        ssl_->set_verify_mode(asio::ssl::verify_peer);
      }
      if (ec) return Error(ErrorCode::kInvalidArgument, options_.name + ": TLS setup: " + ec.message());
    }
    connections_gauge_ = &ops::Metrics().Gauge("tarn_http_open_connections",
                                               "Open HTTP connections", {{"listener", options_.name}});
    rejected_ = &ops::Metrics().Counter("tarn_http_connections_rejected_total",
                                        "Connections refused at the max_connections limit",
                                        {{"listener", options_.name}});
    timeouts_ = &ops::Metrics().Counter("tarn_http_connection_timeouts_total",
                                        "Connections closed by the header/idle deadlines",
                                        {{"listener", options_.name}});
    acceptor_thread_ = std::thread([this] { AcceptLoop(); });
    watchdog_thread_ = std::thread([this] { WatchdogLoop(); });
    return Status::OK();
  }

  uint16_t port() const override { return port_; }
  std::string address() const override {
    ListenAddress a = options_.listen;
    a.port = port_;
    return a.ToString();
  }
  size_t connections() const override { return open_.load(); }

  void Stop(int grace_ms) override {
    if (stopped_.exchange(true)) return;
    stopping_ = true;
    beast::error_code ec;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    if (acceptor_thread_.joinable()) acceptor_thread_.join();
    acceptor_.close(ec);
    // Idle keep-alive connections go now; busy ones finish their request first.
    int64_t until = NowNanos() + int64_t(grace_ms) * 1'000'000;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        for (auto& c : conns_) {
          if (c->idle) c->Kill();
        }
        if (conns_.empty()) break;
        if (NowNanos() >= until) {
          for (auto& c : conns_) c->Kill();
        }
        cv_.wait_for(lock, std::chrono::milliseconds(50));
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      watchdog_stop_ = true;
    }
    cv_.notify_all();
    if (watchdog_thread_.joinable()) watchdog_thread_.join();
  }

 private:
  void AcceptLoop() {
    pthread_setname_np(pthread_self(), (options_.name.substr(0, 8) + "-accept").c_str());
    for (;;) {
      beast::error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (stopping_) return;
      if (ec) {
        if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        continue;
      }
      if (open_.load() >= options_.limits.max_connections) {
        rejected_->Inc();
        socket.close(ec);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      auto state = std::make_shared<ConnState>();
      state->fd = socket.native_handle();
      {
        std::lock_guard<std::mutex> lock(mu_);
        conns_.push_back(state);
      }
      ++open_;
      connections_gauge_->Set(static_cast<double>(open_.load()));
      auto* arg = new ThreadArg{this, std::move(socket), state};
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstacksize(&attr, kStackSize);
      pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      pthread_t tid;
      if (pthread_create(&tid, &attr, &HttpServerImpl::ThreadMain, arg) != 0) {
        Finish(state);
        delete arg;
      }
      pthread_attr_destroy(&attr);
    }
  }

  struct ThreadArg {
    HttpServerImpl* self;
    tcp::socket socket;
    std::shared_ptr<ConnState> state;
  };

  static void* ThreadMain(void* p) {
    std::unique_ptr<ThreadArg> arg(static_cast<ThreadArg*>(p));
    pthread_setname_np(pthread_self(), "http-conn");
    HttpServerImpl* self = arg->self;
    std::string remote_ip;
    uint16_t remote_port = 0;
    beast::error_code ec;
    auto ep = arg->socket.remote_endpoint(ec);
    if (!ec) {
      remote_ip = ep.address().to_string();
      remote_port = ep.port();
    }
    if (self->ssl_) {
      beast::ssl_stream<tcp::socket> stream(std::move(arg->socket), *self->ssl_);
      arg->state->SetDeadline(self->options_.limits.header_timeout_ms);
      stream.handshake(asio::ssl::stream_base::server, ec);
      if (!ec) self->Serve(stream, *arg->state, remote_ip, remote_port, true);
      stream.shutdown(ec);
      stream.next_layer().close(ec);
    } else {
      self->Serve(arg->socket, *arg->state, remote_ip, remote_port, false);
      arg->socket.shutdown(tcp::socket::shutdown_both, ec);
      arg->socket.close(ec);
    }
    self->Finish(arg->state);
    return nullptr;
  }

  void Finish(const std::shared_ptr<ConnState>& state) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      conns_.remove(state);
    }
    --open_;
    connections_gauge_->Set(static_cast<double>(open_.load()));
    cv_.notify_all();
  }

  template <typename Stream>
  static void WriteSimple(Stream& stream, int status, const std::string& body) {
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::server, "Tarn");
    res.set(http::field::content_type, "text/plain");
    res.set(http::field::connection, "close");
    res.body() = body;
    res.prepare_payload();
    beast::error_code ec;
    http::write(stream, res, ec);
  }

  // Serves requests on one connection until it closes.
  template <typename Stream>
  void Serve(Stream& stream, ConnState& state, const std::string& remote_ip, uint16_t remote_port,
             bool secure) {
    const HttpLimits& limits = options_.limits;
    beast::flat_buffer buffer(16 * 1024);
    for (;;) {
      if (stopping_) return;
      // Wait for the first byte of the next request under the idle deadline, then give the
      // whole request head `header_timeout_ms` to arrive.
      if (buffer.size() == 0) {
        state.idle = true;
        state.SetDeadline(limits.idle_timeout_ms);
        if (stopping_) return;
        beast::error_code ec;
        size_t n = stream.read_some(buffer.prepare(16 * 1024), ec);
        state.idle = false;
        if (ec || n == 0) {
          if (state.killed && !stopping_) timeouts_->Inc();
          return;
        }
        buffer.commit(n);
      }
      state.SetDeadline(limits.header_timeout_ms);
      http::request_parser<http::buffer_body> parser;
      parser.header_limit(limits.max_header_bytes);
      // Boost 1.74 compares Content-Length against an empty optional as "exceeded": use max.
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      beast::error_code ec;
      http::read_header(stream, buffer, parser, ec);
      if (ec) {
        if (state.killed) {  // slow-loris: the head did not arrive in time
          timeouts_->Inc();
          return;
        }
        if (ec == http::error::header_limit) {
          WriteSimple(stream, 431, "request header fields too large\n");
        } else if (ec != http::error::end_of_stream && ec != asio::error::eof &&
                   ec != asio::error::connection_reset) {
          WriteSimple(stream, 400, "malformed HTTP request: " + ec.message() + "\n");
        }
        return;
      }
      auto& head = parser.get();
      HttpRequest req;
      req.method = std::string(head.method_string());
      req.target = std::string(head.target());
      size_t q = req.target.find('?');
      req.path = req.target.substr(0, q);
      if (q != std::string::npos) req.query = req.target.substr(q + 1);
      for (const auto& f : head) req.headers.Add(std::string(f.name_string()), std::string(f.value()));
      req.remote_ip = remote_ip;
      req.remote_port = remote_port;
      req.secure = secure;
      bool expect_continue = EqualsIgnoreCase(std::string(head[http::field::expect]), "100-continue");
      bool keep_alive = head.keep_alive();
      unsigned version = head.version();
      BeastBodyReader<Stream> body(stream, buffer, parser, state, limits, expect_continue);
      req.body = &body;

      HttpResponse res;
      state.ClearDeadline();
      handler_->Handle(req, res);
      if (body.failed()) return;  // the body stream broke; the connection is unusable

      // An unread body must be drained before the next request can be parsed. Small leftovers
      // are read and dropped; large ones end the connection (RFC 7230 §6.6).
      if (!parser.is_done()) {
        if (expect_continue) {
          res.close_connection = true;  // the client has not sent the body: don't wait for it
        } else {
          size_t drained = 0;
          char sink[16 * 1024];
          while (!parser.is_done() && drained < 1024 * 1024) {
            auto n = body.Read(sink, sizeof(sink));
            if (!n.ok() || *n == 0) break;
            drained += *n;
          }
          if (!parser.is_done()) res.close_connection = true;
        }
      }
      bool close = res.close_connection || !keep_alive || stopping_;
      if (!WriteResponse(stream, state, req, res, version, !close)) return;
      if (close) return;
    }
  }

  template <typename Stream>
  bool WriteResponse(Stream& stream, ConnState& state, const HttpRequest& req, HttpResponse& res,
                     unsigned version, bool keep_alive) {
    const HttpLimits& limits = options_.limits;
    bool head_only = req.method == "HEAD" || res.status == 204 || res.status == 304;
    http::response<http::buffer_body> msg{static_cast<http::status>(res.status), version};
    msg.set(http::field::server, "Tarn");
    msg.set(http::field::date, DateHeader());
    for (const auto& [k, v] : res.headers.fields()) msg.insert(k, v);
    msg.keep_alive(keep_alive);
    beast::error_code ec;
    state.SetDeadline(limits.idle_timeout_ms);
    if (!res.body_source) {
      if (!res.headers.Has("Content-Length")) msg.content_length(res.body.size());
      if (head_only) {
        msg.body().data = nullptr;
        msg.body().more = false;
        http::response_serializer<http::buffer_body> sr{msg};
        http::write_header(stream, sr, ec);
      } else {
        msg.body().data = res.body.data();
        msg.body().size = res.body.size();
        msg.body().more = false;
        http::write(stream, msg, ec);
      }
      state.ClearDeadline();
      return !ec;
    }
    if (res.headers.Has("Content-Length")) {
    } else if (res.content_length) {
      msg.content_length(*res.content_length);
    } else {
      msg.chunked(true);
    }
    http::response_serializer<http::buffer_body> sr{msg};
    http::write_header(stream, sr, ec);
    if (ec) return false;
    if (head_only) {
      state.ClearDeadline();
      return true;
    }
    std::unique_ptr<char[]> chunk(new char[kIoChunk]);
    uint64_t sent = 0;
    for (;;) {
      auto n = res.body_source->Read(chunk.get(), kIoChunk);
      if (!n.ok()) {
        // Headers are gone already; the only honest signal left is a broken connection.
        TLOG_WARN("http", "{}: response body failed after {} bytes: {}", options_.name, sent,
                  n.status().ToString());
        return false;
      }
      if (*n == 0) break;
      msg.body().data = chunk.get();
      msg.body().size = *n;
      msg.body().more = true;
      state.SetDeadline(limits.idle_timeout_ms);
      http::write(stream, sr, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return false;
      sent += *n;
    }
    msg.body().data = nullptr;
    msg.body().size = 0;
    msg.body().more = false;
    http::write(stream, sr, ec);
    state.ClearDeadline();
    if (ec == http::error::need_buffer) ec = {};
    return !ec;
  }

  void WatchdogLoop() {
    pthread_setname_np(pthread_self(), "http-watchdog");
    std::unique_lock<std::mutex> lock(mu_);
    while (!watchdog_stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      int64_t now = NowNanos();
      for (auto& c : conns_) {
        int64_t d = c->deadline.load();
        if (d != 0 && now > d) c->Kill();
      }
    }
  }

  HttpServerOptions options_;
  HttpHandler* handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::unique_ptr<asio::ssl::context> ssl_;
  uint16_t port_ = 0;
  std::thread acceptor_thread_;
  std::thread watchdog_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<size_t> open_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  std::list<std::shared_ptr<ConnState>> conns_;  // guarded by mu_
  bool watchdog_stop_ = false;                   // guarded by mu_

  ops::GaugeMetric* connections_gauge_ = nullptr;
  ops::CounterMetric* rejected_ = nullptr;
  ops::CounterMetric* timeouts_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                      HttpHandler* handler) {
  auto server = std::make_unique<HttpServerImpl>(options, handler);
  RETURN_IF_ERROR(server->Init());
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace tarn::net
