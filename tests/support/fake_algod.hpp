// A stand-in for an algod node (which cannot run here): a real HTTP server on
// 127.0.0.1 speaking algod's REST shape (the endpoints the `algod` importer
// uses), serving the conduit-blocks fixtures, with faults on demand: HTTP
// errors, responses cut short, requests that never get an answer. Every
// request is recorded, and tests wait on requests (not on time).
// Header-only (cpp-httplib) so that bench/ can use it too.
#pragma once

#include <httplib.h>
#include <msgpack.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "core/algorand.hpp"
#include "core/block_msgpack.hpp"

namespace conduit::test {

// gunzip through gzip(1): the tests need no zlib binding of their own.
inline std::string gunzip_file(const std::filesystem::path& path) {
  std::string command = "gzip -dc '" + path.string() + "'";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run " + command);
  std::string out;
  char buffer[65536];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  if (pclose(pipe) != 0) throw std::runtime_error(command + " failed");
  return out;
}

inline std::string base64_of(std::string_view bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += table[(v >> s) & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    if (rest == 2) v |= uint8_t(bytes[i + 1]) << 8;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += rest == 2 ? table[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// One round as algod serves it.
struct AlgodRound {
  std::string block_response;        // {"block": header + "txns", "cert"?} in msgpack
  std::optional<std::string> delta;  // the state delta in msgpack (none for round 0)
};

// Re-shapes a Go Conduit BlockData (msgpack) into algod's block response and delta.
inline AlgodRound algod_round_from_block_data(std::string_view block_data, bool with_cert) {
  BlockData block = BlockData::decode_msgpack(block_data);
  const auto& root = block.tree().root;
  const auto* header = mp::find(root, "block");
  const auto* payset = mp::find(root, "payset");
  const auto* delta = mp::find(root, "delta");
  bool has_txns = payset && payset->type == msgpack::type::ARRAY && payset->via.array.size > 0;
  msgpack::sbuffer out;
  msgpack::packer packer(out);
  packer.pack_map(with_cert ? 2 : 1);
  packer.pack("block");
  packer.pack_map(header->via.map.size + (has_txns ? 1 : 0));
  bool txns_done = !has_txns;
  for (uint32_t i = 0; i < header->via.map.size; ++i) {
    const auto& kv = header->via.map.ptr[i];
    std::string key = kv.key.as<std::string>();
    if (!txns_done && key > "txns") {  // canonical (sorted) position
      packer.pack("txns");
      packer.pack(*payset);
      txns_done = true;
    }
    packer.pack(kv.key);
    packer.pack(kv.val);
  }
  if (!txns_done) {
    packer.pack("txns");
    packer.pack(*payset);
  }
  if (with_cert) {
    packer.pack("cert");
    packer.pack_map(2);
    packer.pack("rnd");
    packer.pack(block.round());
    packer.pack("step");
    packer.pack(2);
  }
  AlgodRound round{std::string(out.data(), out.size()), std::nullopt};
  if (delta) {
    msgpack::sbuffer d;
    msgpack::pack(d, *delta);
    round.delta = std::string(d.data(), d.size());
  }
  return round;
}

class FakeAlgod {
 public:
  enum class Fault { http_500, http_404, cut, hang, not_a_block, wrong_round };

  explicit FakeAlgod(std::string token = "") : token_(std::move(token)) {
    server_.set_keep_alive_timeout(1);
    server_.Get(R"(/genesis)", [this](const auto& req, auto& res) {
      handle(req, res, [&] { res.set_content(genesis_json, "application/json"); });
    });
    server_.Get(R"(/v2/transactions/params)", [this](const auto& req, auto& res) {
      handle(req, res, [&] {
        res.set_content("{\"genesis-hash\":\"" + genesis_hash() + "\",\"genesis-id\":\"test-v1\"," +
                            "\"last-round\":" + std::to_string(last_round()) +
                            ",\"fee\":0,\"min-fee\":1000,\"consensus-version\":\"future\"}",
                        "application/json");
      });
    });
    server_.Get(R"(/v2/status)", [this](const auto& req, auto& res) {
      handle(req, res, [&] {
        advance_catchup();
        res.set_content(status_json(), "application/json");
      });
    });
    // Fast catchup through the admin API (admin_token, not the API token).
    server_.Post(R"(/v2/catchup/(.+))", [this](const auto& req, auto& res) {
      handle(req, res, [&] {
        std::string label = req.matches[1];
        std::lock_guard lock(mutex_);
        catchups_.push_back(label);
        catchpoint_ = label;
        polls_left_ = catchup_polls;
        res.status = 201;
        res.set_content("{\"catchup-message\":\"Catchpoint " + label + " started\"}",
                        "application/json");
      });
    });
    // Algorand's published catchpoint labels, per network.
    server_.Get(R"(/catchpoints/(.+)_catchpoints.txt)", [this](const auto& req, auto& res) {
      handle(req, res, [&] {
        std::lock_guard lock(mutex_);
        if (req.matches[1] != catchpoint_network) return not_found(res, "no such network");
        res.set_content(catchpoint_list, "text/plain");
      });
    });
    server_.Get(R"(/v2/status/wait-for-block-after/(\d+))", [this](const auto& req, auto& res) {
      handle(req, res, [&] {
        uint64_t after = std::stoull(req.matches[1]);
        std::unique_lock lock(mutex_);
        // A real node answers after about a minute anyway; this one waits for
        // the round (or release_waiting, or the end of the test), which is what
        // proves a stop ended the importer's wait.
        uint64_t released = released_;
        changed_.wait(
            lock, [&] { return shutting_down_ || last_round_ > after || released_ != released; });
        lock.unlock();
        res.set_content(status_json(), "application/json");
      });
    });
    server_.Get(R"(/v2/blocks/(\d+))", [this](const auto& req, auto& res) {
      handle(req, res, [&] {
        uint64_t round = std::stoull(req.matches[1]);
        if (req.get_param_value("format") != "msgpack") {
          res.status = 400;
          res.set_content("{\"message\":\"format=msgpack expected\"}", "application/json");
          return;
        }
        auto found = find_round(round);
        if (!found) return not_found(res, "block not found");
        serve_msgpack(res, found->block_response);
      });
    });
    server_.Get(R"(/v2/deltas/(\d+))", [this](const auto& req, auto& res) {
      handle(req, res, [&] {
        uint64_t round = std::stoull(req.matches[1]);
        if (round > last_round()) return not_found(res, "delta not found");  // not there yet
        auto found = find_round(round);
        if (!found || !found->delta) return not_found(res, "delta not found");
        serve_msgpack(res, *found->delta);
      });
    });
    server_.Post(R"(/v2/ledger/sync/(\d+))", [this](const auto& req, auto& res) {
      handle(req, res, [&] {
        std::lock_guard lock(mutex_);
        sync_round_ = std::stoull(req.matches[1]);
        sync_rounds_.push_back(*sync_round_);
      });
    });
    server_.Get(R"(/v2/ledger/sync)", [this](const auto& req, auto& res) {
      handle(req, res, [&] {
        std::lock_guard lock(mutex_);
        if (!sync_round_) return not_found(res, "sync round not set");
        res.set_content("{\"round\":" + std::to_string(*sync_round_) + "}", "application/json");
      });
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("fake algod: cannot bind 127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // httplib 0.11's stop() is a no-op until listen_after_bind() has marked the server running,
    // and it offers no event to wait for: a test that ends at once (skipped without fixtures)
    // would otherwise join a listener that never stops. Polled, with a deadline.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!server_.is_running()) {
      if (std::chrono::steady_clock::now() > deadline) {
        // Neither joinable nor safely detachable (it uses *this): end the test binary loudly.
        std::fputs("fake algod: the listener did not start within 30 s\n", stderr);
        std::abort();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  ~FakeAlgod() {
    {
      std::lock_guard lock(mutex_);
      shutting_down_ = true;
    }
    changed_.notify_all();
    server_.stop();
    thread_.join();
  }

  std::string address() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  // Served as /genesis; its hash (as Go computes it) is what
  // /v2/transactions/params reports.
  std::string genesis_json = R"({"id":"v1","network":"test-network","proto":"future","alloc":[]})";
  std::string genesis_hash() const { return algorand::parse_genesis(genesis_json).hash; }
  // Fast catchup: the admin API token, how many GET /v2/status a catchup
  // stays in progress (UINT64_MAX: forever), the round the node is at once it
  // is done (0: the catchpoint's round), and the list served at
  // /catchpoints/NETWORK_catchpoints.txt.
  std::string admin_token = "admin-token-for-tests";
  uint64_t catchup_polls = 2;
  uint64_t round_after_catchup = 0;
  std::string catchpoint_network = "test-network";
  std::string catchpoint_list;
  std::vector<std::string> catchups() const {
    std::lock_guard lock(mutex_);
    return catchups_;
  }

  void add_round(uint64_t round, AlgodRound data) {
    std::lock_guard lock(mutex_);
    rounds_[round] = std::move(data);
  }
  // Loads N_block.msgp.gz for N in [0, count) and genesis.json from `dir`. The
  // node is then at count - 1. (The fixtures' `gh` is synthetic: not the hash
  // of their genesis.json.)
  void load_fixtures(const std::filesystem::path& dir, uint64_t count, bool with_cert) {
    for (uint64_t r = 0; r < count; ++r) {
      std::string bytes = gunzip_file(dir / (std::to_string(r) + "_block.msgp.gz"));
      add_round(r, algod_round_from_block_data(bytes, with_cert));
    }
    if (std::filesystem::exists(dir / "genesis.json")) {
      std::ifstream in(dir / "genesis.json");
      genesis_json.assign(std::istreambuf_iterator<char>(in), {});
    }
    set_last_round(count - 1);
  }

  void set_last_round(uint64_t round) {
    {
      std::lock_guard lock(mutex_);
      last_round_ = round;
    }
    changed_.notify_all();
  }
  uint64_t last_round() const {
    std::lock_guard lock(mutex_);
    return last_round_;
  }

  // Answers every waiting long-poll and hung request: their handlers hold the
  // server's worker threads, which a long-lived server must get back.
  void release_waiting() {
    {
      std::lock_guard lock(mutex_);
      ++released_;
    }
    changed_.notify_all();
  }

  // The next `times` requests whose path starts with `path_prefix` get `fault`.
  void inject(const std::string& path_prefix, Fault fault, int times = 1) {
    std::lock_guard lock(mutex_);
    for (int i = 0; i < times; ++i) faults_.push_back({path_prefix, fault});
  }

  struct Request {
    std::string method;
    std::string path;       // without the query
    bool answered = false;  // the handler returned (a hung one never does)
    int faulted = 0;        // 1 + Fault when a fault was injected
  };
  std::vector<Request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::vector<uint64_t> sync_rounds() const {
    std::lock_guard lock(mutex_);
    return sync_rounds_;
  }
  // Blocks until a request whose path starts with `prefix` has arrived; returns
  // its index, or -1 when `stop` fires or the server shuts down.
  int wait_for_request(const std::string& prefix, std::stop_token stop = {}, size_t from = 0) {
    std::unique_lock lock(mutex_);
    int found = -1;
    changed_.wait(lock, stop, [&] {
      for (size_t i = from; i < requests_.size(); ++i)
        if (requests_[i].path.rfind(prefix, 0) == 0) {
          found = static_cast<int>(i);
          return true;
        }
      return shutting_down_;
    });
    return found;
  }

 private:
  template <class Body>
  void handle(const httplib::Request& req, httplib::Response& res, Body&& body) {
    size_t index;
    std::optional<Fault> fault;
    {
      std::lock_guard lock(mutex_);
      index = requests_.size();
      requests_.push_back({req.method, req.path});
      for (auto it = faults_.begin(); it != faults_.end(); ++it)
        if (req.path.rfind(it->first, 0) == 0) {
          fault = it->second;
          requests_.back().faulted = 1 + static_cast<int>(*fault);
          faults_.erase(it);
          break;
        }
    }
    changed_.notify_all();
    auto answered = [&] {
      {
        std::lock_guard lock(mutex_);
        requests_[index].answered = true;
      }
      changed_.notify_all();
    };
    bool admin = req.path.rfind("/v2/catchup/", 0) == 0;
    bool public_list = req.path.rfind("/catchpoints/", 0) == 0;
    const std::string& wanted = admin ? admin_token : token_;
    if (!public_list && !wanted.empty() && req.get_header_value("X-Algo-API-Token") != wanted) {
      res.status = 401;
      res.set_content("{\"message\":\"Invalid API Token\"}", "application/json");
      return answered();
    }
    if (fault == Fault::hang) {
      std::unique_lock lock(mutex_);
      uint64_t released = released_;
      changed_.wait(lock, [&] { return shutting_down_ || released_ != released; });
      res.status = 503;
      return;  // never marked answered: the test ended it
    }
    if (fault == Fault::http_500) {
      res.status = 500;
      res.set_content("{\"message\":\"injected failure\"}", "application/json");
      return answered();
    }
    if (fault == Fault::http_404) {
      not_found(res, "injected 404");
      return answered();
    }
    if (fault == Fault::not_a_block) {
      res.set_content("<html>not algod</html>", "text/html");
      return answered();
    }
    body();
    if (fault == Fault::wrong_round && !req.matches.empty()) {
      auto other = find_round(std::stoull(req.matches[1]) + 1);
      if (other) serve_msgpack(res, other->block_response);
    }
    if (fault == Fault::cut) {
      // Declares the whole body, sends half, then drops the connection.
      auto full = std::make_shared<std::string>(res.body);
      res.body.clear();
      res.set_content_provider(full->size(), "application/msgpack",
                               [full](size_t offset, size_t, httplib::DataSink& sink) {
                                 if (offset == 0) sink.write(full->data(), full->size() / 2);
                                 return offset == 0;
                               });
    }
    answered();
  }

  std::optional<AlgodRound> find_round(uint64_t round) {
    std::lock_guard lock(mutex_);
    auto it = rounds_.find(round);
    if (it == rounds_.end()) return std::nullopt;
    return it->second;
  }
  static void not_found(httplib::Response& res, const std::string& message) {
    res.status = 404;
    res.set_content("{\"message\":\"" + message + "\"}", "application/json");
  }
  static void serve_msgpack(httplib::Response& res, const std::string& bytes) {
    res.set_content(bytes, "application/msgpack");
  }
  // One GET /v2/status of a catchup in progress: the next phase, or the end.
  void advance_catchup() {
    {
      std::lock_guard lock(mutex_);
      if (catchpoint_.empty() || polls_left_ == UINT64_MAX) return;
      if (polls_left_ > 0) {
        --polls_left_;
        ++phase_;
        return;
      }
      uint64_t at = std::stoull(catchpoint_.substr(0, catchpoint_.find('#')));
      last_round_ = round_after_catchup ? round_after_catchup : at;
      catchpoint_.clear();
    }
    changed_.notify_all();
  }
  std::string status_json() {
    std::lock_guard lock(mutex_);
    std::string json = "{\"last-round\":" + std::to_string(last_round_) +
                       ",\"catchup-time\":0,\"time-since-last-round\":0";
    if (!catchpoint_.empty()) {
      // The phases Go Conduit reports, one per poll: processed accounts,
      // verified accounts, acquired blocks.
      json += ",\"catchpoint\":\"" + catchpoint_ +
              "\",\"catchpoint-total-accounts\":1000,\"catchpoint-total-blocks\":320";
      if (phase_ % 3 == 1) json += ",\"catchpoint-processed-accounts\":400";
      if (phase_ % 3 == 2) json += ",\"catchpoint-verified-accounts\":700";
      if (phase_ % 3 == 0) json += ",\"catchpoint-acquired-blocks\":160";
    }
    return json + "}";
  }

  std::string token_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;

  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  bool shutting_down_ = false;
  uint64_t released_ = 0;
  uint64_t last_round_ = 0;
  std::map<uint64_t, AlgodRound> rounds_;
  std::deque<std::pair<std::string, Fault>> faults_;
  std::vector<Request> requests_;
  std::vector<uint64_t> sync_rounds_;
  std::optional<uint64_t> sync_round_;
  std::string catchpoint_;  // in progress
  uint64_t polls_left_ = 0;
  uint64_t phase_ = 0;
  std::vector<std::string> catchups_;
};

}  // namespace conduit::test
