// libFuzzer target for the MQTT packet parser (src/gateway/mqtt/packet.cc): the bytes are a
// stream of packets as a client could send them; every parser must reject or accept without
// reading out of bounds, and what parses must survive a re-encode/re-parse round trip.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/mqtt/packet.h"

using namespace tarn::gateway::mqtt;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

void ParseOne(uint8_t header, std::string_view body, int version) {
  uint8_t type = header >> 4, flags = header & 15;
  switch (type) {
    case kConnect: {
      Connect c;
      if (ParseConnect(body, flags, &c) == 0) {
        std::string again = EncodeConnect(c);
        Frame f;
        Check(DecodeFrame(again, &f) == FrameStatus::kOk);
        Connect d;
        Check(ParseConnect(std::string_view(again).substr(f.header_size), 0, &d) == 0);
        Check(d.client_id == c.client_id && d.keep_alive == c.keep_alive);
      }
      break;
    }
    case kPublish: {
      Publish p;
      if (ParsePublish(body, flags, version, &p) == 0) {
        std::string again = EncodePublish(p, version);
        Frame f;
        Check(DecodeFrame(again, &f) == FrameStatus::kOk);
        Publish q;
        Check(ParsePublish(std::string_view(again).substr(f.header_size), f.header & 15, version, &q) == 0);
        Check(q.topic == p.topic && q.payload == p.payload && q.qos == p.qos);
      }
      break;
    }
    case kPuback: case kPubrec: case kPubrel: case kPubcomp: {
      Ack a;
      ParseAck(body, type, flags, version, &a);
      break;
    }
    case kSubscribe: {
      Subscribe s;
      if (ParseSubscribe(body, flags, version, &s) == 0) {
        for (auto& t : s.topics) ValidTopicFilter(t.filter);
      }
      break;
    }
    case kUnsubscribe: {
      Unsubscribe u;
      ParseUnsubscribe(body, flags, version, &u);
      break;
    }
    case kDisconnect: case kAuth: {
      Ack a;
      ParseDisconnect(body, type, flags, version, &a);
      break;
    }
    case kConnack: {
      Connack c;
      ParseConnack(body, version, &c);
      break;
    }
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (int version : {4, 5}) {
    std::string_view rest = in;
    while (!rest.empty()) {
      Frame f;
      if (DecodeFrame(rest, &f) != FrameStatus::kOk) break;
      if (rest.size() - f.header_size < f.remaining) break;
      // Copy the body so ASan sees reads past its end.
      std::string body(rest.substr(f.header_size, f.remaining));
      ParseOne(f.header, body, version);
      rest.remove_prefix(f.header_size + f.remaining);
    }
  }
  return 0;
}
