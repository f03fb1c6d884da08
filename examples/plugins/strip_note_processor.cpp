// strip_note_processor: an external conduit processor (conduit-plugin(7)) in
// C++ that takes its blocks as msgpack.
//
// It removes the field "note" from the txn map of every top-level transaction
// (entry of the block's payset) and passes everything else on as it came: map
// keys keep their order (Go's canonical msgpack sorts them), so the rest of
// the block re-encodes to the same bytes. It replies ok (unchanged) when no
// transaction had a note.
//
// Dependencies: msgpack-cxx (header-only; built with MSGPACK_NO_BOOST) for the
// blocks, nlohmann/json for the JSON header lines.
//
// Usage: strip_note_processor [--max-block-bytes=N]
//   N (default 268435456, the protocol's default max-block-bytes) is the
//   largest block accepted: set it with the plugin section's args key when the
//   section raises max-block-bytes.

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace {

using json = nlohmann::ordered_json;  // replies keep "type" first

constexpr int kProtocol = 1;
constexpr std::size_t kMaxHeader = std::size_t{1} << 20;  // LF included
constexpr std::size_t kDefaultMaxBlock = std::size_t{256} << 20;
constexpr std::size_t kMaxDepth = 256;  // Algorand blocks nest far less deep

// ---- logging: one line on standard error, "<N>" a syslog priority ----------

void log(int priority, const std::string& text) {
  std::string line = "<" + std::to_string(priority) + ">";
  for (char c : text) line += (c == '\n' ? ' ' : c);
  line += '\n';
  (void)!::write(2, line.data(), line.size());
}

// ---- framing over file descriptors 0 and 1 ---------------------------------

struct Eof {};  // standard input reached end-of-file: exit

struct FatalFrame : std::runtime_error {  // the stream cannot be resynchronised
  using std::runtime_error::runtime_error;
};

class Input {
 public:
  // One header line without its LF. Throws Eof, or FatalFrame past kMaxHeader.
  std::string read_line() {
    std::string line;
    for (;;) {
      if (pos_ == end_) fill();
      const char* start = buf_.data() + pos_;
      const auto* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
      std::size_t take = nl ? static_cast<std::size_t>(nl - start) : end_ - pos_;
      if (line.size() + take + (nl ? 1 : 0) > kMaxHeader)
        throw FatalFrame("request header over 1 MiB");
      line.append(start, take);
      pos_ += take;
      if (nl) {
        ++pos_;
        return line;
      }
    }
  }

  // Exactly n bytes into out (which is resized). Throws Eof.
  void read_exact(std::size_t n, std::vector<char>& out) {
    out.resize(n);
    std::size_t got = 0;
    while (got < n) {
      if (pos_ == end_) {
        // Large payloads: read straight into out, past the buffer.
        if (n - got >= buf_.size()) {
          got += raw_read(out.data() + got, n - got);
          continue;
        }
        fill();
      }
      std::size_t take = std::min(n - got, end_ - pos_);
      std::memcpy(out.data() + got, buf_.data() + pos_, take);
      pos_ += take;
      got += take;
    }
  }

  // Reads and drops n bytes (a payload that is too large), staying in step.
  void skip(std::size_t n) {
    while (n > 0) {
      if (pos_ == end_) fill();
      std::size_t take = std::min(n, end_ - pos_);
      pos_ += take;
      n -= take;
    }
  }

 private:
  std::size_t raw_read(char* p, std::size_t n) {
    for (;;) {
      ssize_t r = ::read(0, p, n);
      if (r > 0) return static_cast<std::size_t>(r);
      if (r == 0) throw Eof{};
      if (errno != EINTR) {
        log(3, std::string("cannot read standard input: ") + std::strerror(errno));
        throw Eof{};
      }
    }
  }
  void fill() {
    pos_ = 0;
    end_ = raw_read(buf_.data(), buf_.size());
  }

  std::vector<char> buf_ = std::vector<char>(64 * 1024);
  std::size_t pos_ = 0, end_ = 0;
};

void write_all(const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(1, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      std::_Exit(errno == EPIPE ? 0 : 1);  // conduit is gone
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void send(const json& header, const char* payload = nullptr, std::size_t size = 0) {
  std::string line = header.dump();  // one line: dump() without indent escapes control characters
  line += '\n';
  if (size > 0 && size < 64 * 1024) {  // one write for small frames
    line.append(payload, size);
    size = 0;
  }
  write_all(line.data(), line.size());
  if (size > 0) write_all(payload, size);
}

void send_ok() { send({{"type", "ok"}}); }

void send_error(const std::string& message, bool retryable) {
  log(3, message);
  send({{"type", "error"}, {"message", message}, {"retryable", retryable}});
}

// ---- the block ---------------------------------------------------------------

// A map's value for a string key, or nullptr.
msgpack::object* find(msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    msgpack::object& k = map.via.map.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key)
      return &map.via.map.ptr[i].val;
  }
  return nullptr;
}

// Removes key from the map in place, keeping the order of the others.
bool erase(msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return false;
  msgpack::object_kv* kv = map.via.map.ptr;
  uint32_t n = map.via.map.size;
  for (uint32_t i = 0; i < n; ++i) {
    const msgpack::object& k = kv[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key) {
      for (uint32_t j = i + 1; j < n; ++j) kv[j - 1] = kv[j];
      map.via.map.size = n - 1;
      return true;
    }
  }
  return false;
}

bool reference_all(msgpack::type::object_type, std::size_t, void*) {
  return true;  // strings and byte arrays point into the payload: no copies
}

struct Outcome {
  std::size_t removed = 0;
  msgpack::sbuffer encoded;  // the changed block, when removed > 0
};

// Throws std::runtime_error with a message fit for an error reply.
Outcome strip_notes(const std::vector<char>& payload, uint64_t round) {
  const std::size_t size = payload.size();
  const auto cap = static_cast<std::size_t>(std::min<uint64_t>(size, 0xffffffffu));
  // Each element takes at least one byte: no count may exceed the payload.
  msgpack::unpack_limit limit(cap, cap / 2, cap, cap, cap, kMaxDepth);
  std::size_t off = 0;
  msgpack::object_handle oh;
  try {
    oh = msgpack::unpack(payload.data(), size, off, reference_all, nullptr, limit);
  } catch (const msgpack::insufficient_bytes&) {
    throw std::runtime_error("the block is not msgpack: it ends early");
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("the block is not msgpack: ") + e.what());
  }
  if (off != size)
    throw std::runtime_error("the block is not msgpack: " + std::to_string(size - off) +
                             " bytes after its end");
  msgpack::object root = oh.get();  // a shallow copy: its maps and arrays are the zone's
  if (root.type != msgpack::type::MAP) throw std::runtime_error("the block is not a map");

  uint64_t rnd = 0;  // Go omits zero values: no rnd is round 0
  if (msgpack::object* header = find(root, "block")) {
    if (msgpack::object* r = find(*header, "rnd")) {
      if (r->type != msgpack::type::POSITIVE_INTEGER)
        throw std::runtime_error("block.rnd is not an unsigned integer");
      rnd = r->via.u64;
    }
  } else {
    throw std::runtime_error("the block has no header (key block)");
  }
  if (rnd != round)
    throw std::runtime_error("the block is round " + std::to_string(rnd) + ", not " +
                             std::to_string(round));

  Outcome outcome;
  msgpack::object* payset = find(root, "payset");
  if (payset == nullptr || payset->type == msgpack::type::NIL) return outcome;  // no transactions
  if (payset->type != msgpack::type::ARRAY) throw std::runtime_error("payset is not an array");
  for (uint32_t i = 0; i < payset->via.array.size; ++i) {
    msgpack::object& entry = payset->via.array.ptr[i];
    if (msgpack::object* txn = find(entry, "txn"); txn && erase(*txn, "note")) ++outcome.removed;
  }
  if (outcome.removed > 0) msgpack::pack(outcome.encoded, root);
  return outcome;
}

// ---- requests ----------------------------------------------------------------

std::optional<uint64_t> as_u64(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

const char* const kSampleConfig =
    "# strip_note_processor has no configuration keys: it removes the note\n"
    "# of every top-level transaction.\n";

struct Plugin {
  std::size_t max_block = kDefaultMaxBlock;
  bool configured = false;

  void hello(const json& msg) {
    auto protocol = msg.contains("protocol") ? as_u64(msg["protocol"]) : std::nullopt;
    if (!protocol || *protocol < static_cast<uint64_t>(kProtocol))
      return send_error("conduit speaks protocol " + (msg.contains("protocol") ? msg["protocol"].dump() : "?") +
                            "; this plugin needs 1",
                        false);
    send({{"type", "hello"},
          {"protocol", kProtocol},
          {"kind", "processor"},
          {"description", "removes the note of every top-level transaction"},
          {"sample-config", kSampleConfig},
          {"encoding", "msgpack"},
          {"capabilities", json::array()}});
  }

  void configure(const json& msg) {
    const json config = msg.value("config", json::object());
    if (!config.is_object()) return send_error("config must be a table", false);
    if (!config.empty()) {
      std::string keys;
      for (const auto& [key, value] : config.items()) keys += (keys.empty() ? "" : ", ") + key;
      return send_error("unknown config key(s): " + keys + " (strip_note_processor takes none)", false);
    }
    configured = true;
    send_ok();
  }

  void init(const json&) {
    if (!configured) return send_error("init before configure", false);
    send_ok();  // the genesis payload is not needed
  }

  void process(const json& msg, const std::vector<char>& payload) {
    if (!configured) return send_error("process before configure", false);
    auto round = msg.contains("round") ? as_u64(msg["round"]) : std::nullopt;
    if (!round) return send_error("process without a round", false);
    try {
      Outcome out = strip_notes(payload, *round);
      if (out.removed == 0) return send_ok();
      send({{"type", "block"}, {"round", *round}, {"size", out.encoded.size()}}, out.encoded.data(),
           out.encoded.size());
    } catch (const std::bad_alloc&) {
      send_error("round " + std::to_string(*round) + ": out of memory", true);
    } catch (const std::exception& e) {
      // The same block would fail again: not retryable.
      send_error("round " + std::to_string(*round) + ": " + e.what(), false);
    }
  }
};

int run(Plugin& plugin) {
  Input in;
  std::vector<char> payload;
  for (;;) {
    json msg;
    try {
      std::string line = in.read_line();
      msg = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (msg.is_discarded()) throw FatalFrame("request header is not JSON");
      if (!msg.is_object() || !msg.contains("type") || !msg["type"].is_string())
        throw FatalFrame("request header is not an object with a string member type");
      payload.clear();
      if (msg.contains("size")) {
        auto size = as_u64(msg["size"]);
        if (!size) throw FatalFrame("request size is not a non-negative integer");
        if (*size > plugin.max_block) {
          in.skip(*size);
          send_error("a payload of " + std::to_string(*size) + " bytes is over this plugin's limit of " +
                         std::to_string(plugin.max_block) + " (its --max-block-bytes)",
                     false);
          continue;
        }
        in.read_exact(static_cast<std::size_t>(*size), payload);
      }
    } catch (const FatalFrame& e) {
      send_error(e.what(), false);
      return 1;
    } catch (const Eof&) {
      return 0;  // conduit closed standard input, or is gone
    }

    const std::string type = msg["type"].get<std::string>();
    if (type == "cancel") continue;  // nothing is in flight while this loop reads
    if (type == "close") {
      send_ok();
      return 0;
    }
    if (type == "hello") plugin.hello(msg);
    else if (type == "configure") plugin.configure(msg);
    else if (type == "init") plugin.init(msg);
    else if (type == "process") plugin.process(msg, payload);
    else send_error("unexpected request '" + type + "'", false);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a write to a closed pipe fails with EPIPE instead
  Plugin plugin;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    constexpr std::string_view kOpt = "--max-block-bytes=";
    if (arg.substr(0, kOpt.size()) == kOpt) {
      std::string value(arg.substr(kOpt.size()));
      char* end = nullptr;
      errno = 0;
      unsigned long long n = std::strtoull(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || errno != 0 || n == 0 || value[0] == '-') {
        log(3, "strip_note_processor: bad --max-block-bytes value: " + value);
        return 2;
      }
      plugin.max_block = static_cast<std::size_t>(n);
    } else {
      log(3, "strip_note_processor: unknown argument: " + std::string(arg) +
                 " (usage: strip_note_processor [--max-block-bytes=N])");
      return 2;
    }
  }
  return run(plugin);
}
