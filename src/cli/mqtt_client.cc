// The simulator's MQTT 3.1.1 client (see mqtt_client.h for the why). Packets are encoded and
// decoded with the broker's own codec (gateway/mqtt/packet.h: pure functions, no broker state).
#include "cli/mqtt_client.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "gateway/mqtt/packet.h"

namespace tarn::cli {

namespace mqtt = tarn::gateway::mqtt;

namespace {

// One read() takes what the socket holds; 16 KiB is a TLS record and far more than the PUBACKs
// that 100 messages in flight can bring back.
constexpr size_t kReadBuffer = 16 * 1024 + 512;

std::string OpenSslReason() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace

TlsIdentity::~TlsIdentity() {
  if (cert) X509_free(cert);
  if (chain) sk_X509_pop_free(chain, X509_free);
  if (key) EVP_PKEY_free(key);
}

bool LoadTlsIdentity(const std::string& cert_file, const std::string& key_file, TlsIdentity* out,
                     std::string* error) {
  BIO* b = BIO_new_file(cert_file.c_str(), "r");
  if (!b) {
    *error = cert_file + ": " + OpenSslReason();
    return false;
  }
  out->cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  while (out->cert) {  // the rest of the file: intermediate certificates, sent with the leaf
    X509* extra = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    if (!extra) break;
    if (!out->chain) out->chain = sk_X509_new_null();
    sk_X509_push(out->chain, extra);
  }
  BIO_free(b);
  ERR_clear_error();  // the end of the file reads as "no start line"
  if (!out->cert) {
    *error = cert_file + ": no PEM certificate";
    return false;
  }
  b = BIO_new_file(key_file.c_str(), "r");
  if (b) {
    out->key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
  }
  if (!out->key) {
    *error = key_file + ": " + OpenSslReason();
    return false;
  }
  if (X509_check_private_key(out->cert, out->key) != 1) {
    *error = key_file + ": the key does not match " + cert_file;
    ERR_clear_error();
    return false;
  }
  return true;
}

SSL_CTX* MakeClientTlsContext(const std::string& ca_file, const std::string& ca_path, std::string* error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    *error = OpenSslReason();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_load_verify_locations(ctx, ca_file.empty() ? nullptr : ca_file.c_str(),
                                    ca_path.empty() ? nullptr : ca_path.c_str()) != 1) {
    *error = (ca_file.empty() ? ca_path : ca_file) + ": " + OpenSslReason();
    SSL_CTX_free(ctx);
    return nullptr;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  return ctx;
}

MqttClient::MqttClient(const MqttEndpoint* endpoint, std::string client_id, const TlsIdentity* identity,
                       Listener* listener)
    : ep_(endpoint), client_id_(std::move(client_id)), identity_(identity), listener_(listener),
      ring_(size_t(std::max(1, endpoint->max_inflight))) {}

MqttClient::~MqttClient() { CloseSocket(); }

bool MqttClient::Connect(int epoll_fd) {
  CloseSocket();
  connect_started_ = Clock::now();
  fd_ = ::socket(ep_->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    Fail(std::string("socket: ") + std::strerror(errno));
    return false;
  }
  // One segment per message, as the server does: a reading's latency is part of the benchmark.
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // Edge-triggered for both directions, registered once: no epoll_ctl per message. A write that
  // meets a full socket waits for the next EPOLLOUT edge; reads drain before returning.
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
  ev.data.ptr = this;
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd_, &ev) != 0) {
    Fail(std::string("epoll_ctl: ") + std::strerror(errno));
    return false;
  }
  state_ = State::kTcpConnecting;
  int r = ::connect(fd_, reinterpret_cast<const sockaddr*>(&ep_->addr), ep_->addr_len);
  if (r == 0) {
    StartSession();
  } else if (errno != EINPROGRESS) {
    Fail(std::string("connect: ") + std::strerror(errno));
    return false;
  }
  return true;
}

void MqttClient::CloseSocket() {
  if (ssl_) {
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);  // also leaves the epoll set
    fd_ = -1;
  }
  out_.clear();
  out_off_ = 0;
  in_.clear();
  write_blocked_ = false;
}

void MqttClient::Fail(const std::string& why) {
  bool was_connected = state_ == State::kConnected;
  CloseSocket();
  state_ = State::kDisconnected;
  connected_.store(false, std::memory_order_relaxed);
  ping_sent_ = {};
  listener_->OnLost(was_connected, why);
}

void MqttClient::StartSession() {
  if (!ep_->tls) return SendConnect();
  ssl_ = SSL_new(ep_->tls);
  if (!ssl_ || SSL_set_fd(ssl_, fd_) != 1) return Fail("TLS setup: " + OpenSslReason());
  // Partial writes return after each record; our buffer may move between retries (it grows).
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_set_options(ssl_, SSL_OP_NO_RENEGOTIATION);
  // One read() takes whatever the socket holds (not a record header, then its body).
  SSL_set_read_ahead(ssl_, 1);
  // Watch the socket BIO's reads: one that returns less than asked means the socket is empty.
  BIO* rbio = SSL_get_rbio(ssl_);
  BIO_set_callback_arg(rbio, reinterpret_cast<char*>(this));
  BIO_set_callback_ex(rbio, &MqttClient::BioCallback);
  // SNI and the server's name (or address) as libmosquitto did: the name we connect to.
  SSL_set_tlsext_host_name(ssl_, ep_->host.c_str());
  in6_addr a6;
  in_addr a4;
  bool is_ip = inet_pton(AF_INET, ep_->host.c_str(), &a4) == 1 || inet_pton(AF_INET6, ep_->host.c_str(), &a6) == 1;
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), ep_->host.c_str());
  } else {
    SSL_set1_host(ssl_, ep_->host.c_str());
  }
  if (identity_) {
    if (SSL_use_certificate(ssl_, identity_->cert) != 1 || SSL_use_PrivateKey(ssl_, identity_->key) != 1)
      return Fail("TLS client certificate: " + OpenSslReason());
    for (int i = 0; identity_->chain && i < sk_X509_num(identity_->chain); ++i)
      SSL_add1_chain_cert(ssl_, sk_X509_value(identity_->chain, i));
  }
  SSL_set_connect_state(ssl_);
  state_ = State::kTlsHandshake;
  Handshake();
}

long MqttClient::BioCallback(BIO* b, int oper, const char*, size_t len, int, long, int ret, size_t* processed) {
  auto* self = reinterpret_cast<MqttClient*>(BIO_get_callback_arg(b));
  if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
    self->io_.reads++;
    // EAGAIN, end of stream or an error: nothing more to read now either.
    self->socket_drained_ = ret <= 0 || (processed && *processed < len);
  } else if (oper == (BIO_CB_WRITE | BIO_CB_RETURN)) {
    self->io_.writes++;
  }
  return ret;
}

std::string MqttClient::SslError(int ssl_error) const {
  if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
    return errno ? std::string(std::strerror(errno)) : "connection closed";
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return "connection closed";
  return OpenSslReason();
}

void MqttClient::Handshake() {
  ERR_clear_error();
  errno = 0;
  int r = SSL_do_handshake(ssl_);
  if (r == 1) return SendConnect();
  int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;  // the next edge resumes it
  std::string why = "TLS handshake: " + SslError(e);
  long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) why += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
  Fail(why);
}

void MqttClient::SendConnect() {
  state_ = State::kAwaitConnack;
  mqtt::Connect c;
  c.protocol_level = 4;  // 3.1.1
  c.clean_start = true;
  c.keep_alive = ep_->keep_alive_s;
  c.client_id = client_id_;
  if (ep_->has_credentials) {
    c.username = ep_->username;
    c.password = ep_->password;
  }
  if (!Send(mqtt::EncodeConnect(c))) return;
  // Bytes OpenSSL read ahead during the handshake raise no new edge: look at them now.
  if (ssl_ && SSL_has_pending(ssl_)) ReadAvailable();
}

void MqttClient::OnEvent(uint32_t events) {
  switch (state_) {
    case State::kDisconnected:
      return;
    case State::kTcpConnecting: {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t n = sizeof err;
      ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &n);
      if (err != 0) return Fail(std::string("connect: ") + std::strerror(err));
      return StartSession();
    }
    case State::kTlsHandshake:
      return Handshake();
    case State::kAwaitConnack:
    case State::kConnected:
      if ((events & EPOLLOUT) && write_blocked_ && !Flush()) return;
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ReadAvailable();
      return;
  }
}

long MqttClient::WriteSome(const char* p, size_t n, bool* again) {
  *again = false;
  if (ssl_) {
    ERR_clear_error();
    errno = 0;
    int r = SSL_write(ssl_, p, int(std::min<size_t>(n, 1 << 30)));
    if (r > 0) return r;
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
      *again = true;
      return 0;
    }
    Fail("write: " + SslError(e));
    return -1;
  }
  io_.writes++;
  ssize_t r = ::send(fd_, p, n, MSG_NOSIGNAL);
  if (r >= 0) return r;
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    *again = true;
    return 0;
  }
  Fail(std::string("write: ") + std::strerror(errno));
  return -1;
}

bool MqttClient::Send(std::string_view bytes) {
  last_out_ = Clock::now();
  if (!out_.empty()) {  // earlier bytes wait for the socket: keep the order
    out_.append(bytes.data(), bytes.size());
    return write_blocked_ ? true : Flush();
  }
  size_t done = 0;
  while (done < bytes.size()) {
    bool again;
    long n = WriteSome(bytes.data() + done, bytes.size() - done, &again);
    if (n < 0) return false;
    if (again) {
      out_.assign(bytes.data() + done, bytes.size() - done);
      out_off_ = 0;
      write_blocked_ = true;
      return true;
    }
    done += size_t(n);
  }
  return true;
}

bool MqttClient::Flush() {
  write_blocked_ = false;
  while (out_off_ < out_.size()) {
    bool again;
    long n = WriteSome(out_.data() + out_off_, out_.size() - out_off_, &again);
    if (n < 0) return false;
    if (again) {
      write_blocked_ = true;
      return true;
    }
    out_off_ += size_t(n);
  }
  out_.clear();
  out_off_ = 0;
  return true;
}

// Reads until the socket is drained and OpenSSL holds nothing more; each read() takes all the
// socket holds, so the usual PUBACK costs one read() and no EAGAIN.
void MqttClient::ReadAvailable() {
  if (read_buf_.empty()) read_buf_.resize(kReadBuffer);
  socket_drained_ = false;  // an edge: the socket may hold new bytes
  for (;;) {
    long n;
    if (ssl_) {
      ERR_clear_error();
      errno = 0;
      int r = SSL_read(ssl_, read_buf_.data(), int(read_buf_.size()));
      if (r <= 0) {
        int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
        return Fail(SslError(e));
      }
      n = r;
    } else {
      io_.reads++;
      ssize_t r = ::read(fd_, read_buf_.data(), read_buf_.size());
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        return Fail(std::string("read: ") + std::strerror(errno));
      }
      if (r == 0) return Fail("connection closed");
      n = r;
      socket_drained_ = size_t(r) < read_buf_.size();
    }
    last_in_ = Clock::now();
    in_.append(read_buf_.data(), size_t(n));
    if (!HandleInput()) return;
    bool openssl_holds = ssl_ && (SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_));
    if (socket_drained_ && !openssl_holds) return;
  }
}

bool MqttClient::HandleInput() {
  size_t off = 0;
  while (off < in_.size()) {
    mqtt::Frame f;
    std::string_view rest(in_.data() + off, in_.size() - off);
    auto st = mqtt::DecodeFrame(rest, &f);
    if (st == mqtt::FrameStatus::kMalformed || (st == mqtt::FrameStatus::kOk && f.remaining > (1u << 20))) {
      Fail("malformed packet from the server");
      return false;
    }
    if (st == mqtt::FrameStatus::kNeedMore || rest.size() < f.header_size + f.remaining) break;
    if (!HandlePacket(f.header, rest.substr(f.header_size, f.remaining))) return false;
    off += f.header_size + f.remaining;
  }
  in_.erase(0, off);
  return true;
}

bool MqttClient::HandlePacket(uint8_t header, std::string_view body) {
  uint8_t type = header >> 4;
  if (state_ == State::kAwaitConnack) {
    mqtt::Connack c;
    if (type != mqtt::kConnack || mqtt::ParseConnack(body, 4, &c) != 0) {
      Fail("expected CONNACK");
      return false;
    }
    if (c.reason != 0) {
      listener_->OnRefused(c.reason);
      CloseSocket();
      state_ = State::kDisconnected;
      listener_->OnLost(false, "connection refused");
      return false;
    }
    state_ = State::kConnected;
    connected_.store(true, std::memory_order_relaxed);
    listener_->OnConnected();
    // §4.4: unacknowledged QoS 1 messages again, in their order, with DUP and the same packet
    // id (the lake recognises a DUP it already stored, docs/streams.md "Exactly once").
    for (size_t i = 0; i < ring_count_ && state_ == State::kConnected; ++i) {
      Inflight& m = ring_[(ring_head_ + i) % ring_.size()];
      if (m.acked) continue;
      m.packet[0] = char(uint8_t(m.packet[0]) | 0x08);
      if (!Send(m.packet)) return false;
    }
    return state_ == State::kConnected;
  }
  switch (type) {
    case mqtt::kPuback: {
      mqtt::Ack a;
      if (mqtt::ParseAck(body, mqtt::kPuback, header & 15, 4, &a) != 0) {
        Fail("malformed PUBACK");
        return false;
      }
      // PUBACKs come in publish order (§4.6), so the head is the usual match.
      for (size_t i = 0; i < ring_count_; ++i) {
        Inflight& m = ring_[(ring_head_ + i) % ring_.size()];
        if (m.packet_id != a.packet_id || m.acked) continue;
        m.acked = true;
        unacked_--;
        listener_->OnAcked(m.tag);
        break;
      }
      while (ring_count_ > 0 && ring_[ring_head_].acked) {
        ring_head_ = (ring_head_ + 1) % ring_.size();
        ring_count_--;
      }
      return true;
    }
    case mqtt::kPingresp:
      ping_sent_ = {};
      return true;
    default:
      Fail("unexpected packet type " + std::to_string(type) + " from the server");
      return false;
  }
}

MqttClient::PublishResult MqttClient::Publish(std::string_view topic, std::string_view payload, int qos,
                                              uint64_t tag) {
  if (qos == 0) {
    thread_local std::string packet;
    packet.clear();
    mqtt::AppendPublish(&packet, topic, payload, 0, false, false, 0, nullptr, 4);
    return Send(packet) ? PublishResult::kOk : PublishResult::kLost;
  }
  Inflight& m = ring_[(ring_head_ + ring_count_) % ring_.size()];
  ring_count_++;
  unacked_++;
  // Packet ids 1…65535 in turn (§2.3.1: never 0); at most max_inflight of them are in use.
  if (++last_packet_id_ == 0) last_packet_id_ = 1;
  m.packet_id = last_packet_id_;
  m.acked = false;
  m.tag = tag;
  m.packet.clear();
  mqtt::AppendPublish(&m.packet, topic, payload, 1, false, false, m.packet_id, nullptr, 4);
  return Send(m.packet) ? PublishResult::kOk : PublishResult::kLost;
}

void MqttClient::Tick(Clock::time_point now) {
  auto keep_alive = std::chrono::seconds(ep_->keep_alive_s);
  switch (state_) {
    case State::kDisconnected:
      return;
    case State::kTcpConnecting:
    case State::kTlsHandshake:
    case State::kAwaitConnack:
      if (now - connect_started_ >= keep_alive) Fail("no CONNACK within the keep-alive");
      return;
    case State::kConnected:
      break;
  }
  if (ep_->keep_alive_s == 0) return;
  // §3.1.2.10: the client sends something at least every keep-alive; a PINGREQ unanswered for
  // as long means the connection is gone (libmosquitto's rule).
  if (ping_sent_ != Clock::time_point{}) {
    if (now - ping_sent_ >= keep_alive) Fail("no PINGRESP within the keep-alive");
    return;
  }
  if (now - last_out_ >= keep_alive || now - last_in_ >= keep_alive) {
    ping_sent_ = now;
    Send(mqtt::EncodePingreq());
  }
}

void MqttClient::Disconnect() {
  if (state_ == State::kConnected) {
    Send(mqtt::EncodeDisconnect(0, mqtt::Properties{}, 4));
    if (ssl_ && state_ == State::kConnected) SSL_shutdown(ssl_);
  }
  CloseSocket();
  state_ = State::kDisconnected;
  connected_.store(false, std::memory_order_relaxed);
}

}  // namespace tarn::cli
