// The `algod` importer (Go Conduit: conduit/plugins/importers/algod).
//
// For each round R it waits for the node to have R (GET
// /v2/status/wait-for-block-after/{R-1}, a long-poll), fetches the block (and in
// follower mode the state delta) as msgpack and re-shapes it into BlockData. In
// follower mode it also moves the node's sync round to R (POST
// /v2/ledger/sync/{R}) when asked for R: being asked for R means R-1 is already
// in the importer's hands, which is how Go Conduit does it. Every HTTP call is
// cancellable (see http_client.hpp), so a stop never waits for algod.
//
// At init, as Go Conduit's catchupNode: when the node cannot serve the round
// conduit needs (follower: its state delta; archival: its block), a catchpoint
// (configured, or looked up in Algorand's published list for the network) is
// applied through algod's admin API (POST /v2/catchup/LABEL), the sync round
// set first (Go Conduit issue #95), progress polled from /v2/status and shown
// in the log and as STATUS=. The genesis hash is computed from /genesis.
#include "plugins/algod/algod.hpp"

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include <cctype>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "core/algorand.hpp"
#include "core/block_msgpack.hpp"
#include "core/encoding.hpp"
#include "core/plugin.hpp"
#include "plugins/algod/http_client.hpp"

namespace conduit::plugins {
namespace {

constexpr const char* kSample =
    R"(# "archival" (any round, no state deltas) or "follower" (a follower node:
# blocks with state deltas; the importer advances the node's sync round)
mode = "follower"
# algod's REST address
netaddr = "http://127.0.0.1:8080"
# algod's API token (sent as X-Algo-API-Token)
token = ""
# conduit only: largest memory one decoded block (with its state delta) may
# take, in bytes (a value takes 24 bytes however few bytes encode it)
max-block-memory = 268435456
# Fast catchup at start-up, when the node cannot serve the round conduit needs:
# admin-token is algod's admin API token (algod.admin.token), needed for any
# catchup; catchpoint is the label to apply ("ROUND#HASH"), looked up in
# Algorand's published list for the network when empty.
[importer.config.catchup-config]
catchpoint = ""
admin-token = ""
)";

// Go Conduit's list of catchpoint labels per network (%s: the network name).
constexpr const char* kCatchpointListUrl =
    "https://algorand-catchpoints.s3.us-east-2.amazonaws.com/consolidated/%s_catchpoints.txt";

// algod answers a long-poll after about a minute without a new round.
constexpr auto kLongPollTimeout = std::chrono::seconds(120);
constexpr auto kShortTimeout = std::chrono::seconds(30);
constexpr auto kTransferStall = std::chrono::seconds(60);

// A catchpoint label is "ROUND#HASH", HASH being 32 bytes in unpadded base32.
bool valid_catchpoint(const std::string& label) {
  auto hash_at = label.find('#');
  if (hash_at == std::string::npos || hash_at == 0 || hash_at > 20) return false;
  for (size_t i = 0; i < hash_at; ++i)
    if (!std::isdigit(static_cast<unsigned char>(label[i]))) return false;
  std::string hash = label.substr(hash_at + 1);
  if (hash.size() != 52) return false;
  for (char c : hash)
    if (!((c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7'))) return false;
  return true;
}

uint64_t catchpoint_round(const std::string& label) {
  return std::stoull(label.substr(0, label.find('#')));
}

// Go's checkRounds: whether to apply a catchpoint at `catchpoint` to a node at
// `node` for conduit's `target`; throws when the node is past the target and
// the catchpoint cannot bring it back.
enum class CatchupDecision { run_required, run_requested, skip };
CatchupDecision check_rounds(uint64_t catchpoint, uint64_t node, uint64_t target) {
  bool can = catchpoint <= target;
  bool must = target < node;
  bool should = node < catchpoint;
  if (can && must) return CatchupDecision::run_required;
  if (can && should) return CatchupDecision::run_requested;
  if (!can && must)
    throw PluginError("algod importer: node round " + std::to_string(node) +
                          " and catchpoint round " + std::to_string(catchpoint) +
                          " are ahead of target round " + std::to_string(target) +
                          ": catchup required but no valid catchpoint available",
                      false);
  return CatchupDecision::skip;
}

template <class Packer>
void pack_map_without(Packer& packer, const msgpack::object& map, std::string_view skip,
                      uint32_t kept) {
  packer.pack_map(kept);
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR &&
        std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == skip)
      continue;
    packer.pack(kv.key);
    packer.pack(kv.val);
  }
}

bool empty_value(const msgpack::object* value) {
  if (!value || value->type == msgpack::type::NIL) return true;
  if (value->type == msgpack::type::MAP) return value->via.map.size == 0;
  if (value->type == msgpack::type::ARRAY) return value->via.array.size == 0;
  return false;
}

class AlgodImporter final : public Importer {
 public:
  void configure(PluginConfig& config) override {
    mode_ = config.get_string("mode", "");
    if (mode_ != "archival" && mode_ != "follower")
      config.fail("mode", "must be \"archival\" or \"follower\", not \"" + mode_ + "\"");
    netaddr_ = config.get_string("netaddr", "");
    if (netaddr_.empty()) config.fail("netaddr", "algod's address is required");
    // As Go Conduit: an address without a scheme is plain http.
    if (netaddr_.rfind("http://", 0) != 0 && netaddr_.rfind("https://", 0) != 0) {
      if (netaddr_.find("://") != std::string::npos)
        config.fail("netaddr", "only http:// and https:// addresses are supported");
      netaddr_ = "http://" + netaddr_;
    }
    token_ = config.get_string("token", "");
    for (unsigned char c : token_)
      if (c < 0x20 || c == 0x7f) config.fail("token", "must not contain control characters");
    max_block_memory_ = config.get_uint("max-block-memory", kDefaultMaxBlockMemory);
    if (max_block_memory_ == 0)
      config.fail("max-block-memory", "max-block-memory must be positive");
    if (auto catchup = config.get_table("catchup-config")) {
      catchpoint_ = catchup->get_string("catchpoint", "");
      admin_token_ = catchup->get_string("admin-token", "");
      if (!catchpoint_.empty() && !valid_catchpoint(catchpoint_))
        catchup->fail("catchpoint", "not a catchpoint label (ROUND#HASH, HASH in base32)");
      for (unsigned char c : admin_token_)
        if (c < 0x20 || c == 0x7f)
          catchup->fail("admin-token", "must not contain control characters");
      // conduit only: where the labels are looked up, and how often a catchup's
      // progress is polled (Go: every 5s).
      catchpoint_list_url_ = catchup->get_string("catchpoint-list-url", kCatchpointListUrl);
      if (catchpoint_list_url_.rfind("http://", 0) != 0 &&
          catchpoint_list_url_.rfind("https://", 0) != 0)
        catchup->fail("catchpoint-list-url", "must be an http:// or https:// URL");
      poll_interval_ = catchup->get_duration("poll-interval", poll_interval_);
      if (poll_interval_.count() == 0) catchup->fail("poll-interval", "must be greater than zero");
      catchup->finish();
    }
  }

  Genesis init(const InitContext& ctx, std::stop_token stop) override {
    logger_ = ctx.logger;
    next_round_ = ctx.next_round;
    std::vector<std::pair<std::string, std::string>> headers;
    if (!token_.empty()) headers.emplace_back("X-Algo-API-Token", token_);
    client_ = std::make_unique<HttpClient>(netaddr_, std::move(headers));

    Genesis genesis;
    auto genesis_body = call("GET", "/genesis", ctx.next_round, stop, kShortTimeout);
    try {
      auto doc = nlohmann::json::parse(genesis_body);
      genesis.network = doc.at("network").get<std::string>();
      genesis.id = doc.at("id").get<std::string>();
    } catch (const std::exception& e) {
      throw PluginError(
          "algod importer: " + client_->url("/genesis") + " is not a genesis document: " + e.what(),
          false);
    }
    // As Go Conduit: the genesis hash is computed from the genesis document
    // (SHA-512/256 of "GE" and its canonical msgpack), not asked for.
    try {
      genesis.hash = algorand::parse_genesis(genesis_body).hash;
    } catch (const std::exception& e) {
      throw PluginError(
          "algod importer: " + client_->url("/genesis") + " is not a genesis document: " + e.what(),
          false);
    }
    genesis.json = std::move(genesis_body);
    genesis_hash_ = genesis.hash;

    auto status = json_call("GET", "/v2/status", ctx.next_round, stop, kShortTimeout);
    uint64_t last_round = status.value("last-round", uint64_t{0});
    node_round_ = last_round;
    log_info("algod importer: " + mode_ + " mode, node " + netaddr_ + " at round " +
             std::to_string(last_round) + ", network " + genesis.network);

    catchup_node(genesis.network, ctx.next_round, stop);
    if (mode_ == "follower") {
      log_sync_round(ctx.next_round, stop);
      set_sync_round(ctx.next_round, stop);
    }
    return genesis;
  }

  BlockData get_block(uint64_t round, std::stop_token stop) override {
    if (!client_) throw PluginError("algod importer: get_block before init", false);
    if (mode_ == "follower") set_sync_round(round, stop);
    wait_for_round(round, stop);

    std::string path = "/v2/blocks/" + std::to_string(round) + "?format=msgpack";
    std::string block_body = call("GET", path, round, stop, {}, kTransferStall);
    std::optional<std::string> delta_body;
    // Round 0 (genesis) has no delta.
    if (mode_ == "follower" && round != 0) {
      std::string delta_path = "/v2/deltas/" + std::to_string(round) + "?format=msgpack";
      try {
        delta_body = call("GET", delta_path, round, stop, {}, kTransferStall);
      } catch (const PluginError& e) {
        if (e.retryable()) throw;
        throw PluginError(std::string(e.what()) +
                              " (the state delta is gone: the follower node's sync round is "
                              "past it; re-deploy the follower node at this round)",
                          false);
      }
    }

    BlockData block;
    try {
      block = algod_block_to_block_data(block_body, delta_body, max_block_memory_);
    } catch (const BlockTooLargeError& e) {
      throw PluginError("algod importer: round " + std::to_string(round) + ": " +
                            client_->url(path) + ": " + e.what(),
                        false);
    } catch (const BlockDecodeError& e) {
      throw PluginError("algod importer: round " + std::to_string(round) + ": " +
                            client_->url(path) + " did not return a block: " + e.what(),
                        false);
    }
    if (block.round() != round)
      throw PluginError("algod importer: " + client_->url(path) + " returned round " +
                            std::to_string(block.round()) + " when asked for round " +
                            std::to_string(round),
                        false);
    check_genesis_hash(block, round, path);
    return block;
  }

  void close() override { client_.reset(); }

 private:
  // One HTTP call; non-2xx and transport failures become PluginErrors naming
  // the round and URL (the token is a header and never appears).
  std::string call(const std::string& method, const std::string& path, uint64_t round,
                   std::stop_token stop, std::chrono::milliseconds timeout,
                   std::chrono::seconds stall = {}) {
    HttpResponse response;
    std::string what = method + " " + client_->url(path);
    try {
      response = client_->perform({method, path, timeout, stall}, stop);
    } catch (const TransportError& e) {
      throw PluginError(
          "algod importer: round " + std::to_string(round) + ": " + method + " " + e.what(), true);
    }
    if (response.status >= 200 && response.status < 300) return std::move(response.body);
    // Server trouble and rate limits pass; a request algod rejects does not.
    bool retryable = response.status >= 500 || response.status == 429 || response.status == 408;
    std::string message = "algod importer: round " + std::to_string(round) + ": " + what +
                          ": HTTP " + std::to_string(response.status);
    if (response.status == 401 || response.status == 403)
      message += " (check the importer's token)";
    std::string body = response.body.substr(0, 200);
    bool printable = !body.empty();
    for (unsigned char c : body)
      if (c < 0x20 && c != '\n' && c != '\t') printable = false;
    if (printable) message += ": " + body;
    throw PluginError(message, retryable);
  }

  nlohmann::json json_call(const std::string& method, const std::string& path, uint64_t round,
                           std::stop_token stop, std::chrono::milliseconds timeout) {
    auto body = call(method, path, round, stop, timeout);
    try {
      return nlohmann::json::parse(body);
    } catch (const std::exception& e) {
      // A proxy's error page or a half-started node: worth another try.
      throw PluginError("algod importer: round " + std::to_string(round) + ": " +
                            client_->url(path) + " did not return JSON: " + e.what(),
                        true);
    }
  }

  // Whether the node can serve `target` now (Go's needsCatchup, inverted).
  bool node_has(uint64_t target, std::stop_token stop) {
    bool delta = mode_ == "follower" && target != 0;
    std::string path =
        (delta ? "/v2/deltas/" : "/v2/blocks/") + std::to_string(target) + "?format=msgpack";
    HttpResponse response;
    try {
      response = client_->perform({"GET", path, kShortTimeout, kTransferStall}, stop);
    } catch (const TransportError& e) {
      throw PluginError("algod importer: round " + std::to_string(target) + ": GET " + e.what(),
                        true);
    }
    if (response.status >= 200 && response.status < 300) return true;
    log_info("algod importer: " + std::string(delta ? "the state delta" : "the block") +
             " of round " + std::to_string(target) + " is unavailable on the node (HTTP " +
             std::to_string(response.status) + ")");
    return false;
  }

  void catchup_node(const std::string& network, uint64_t target, std::stop_token stop) {
    if (node_has(target, stop)) return;
    std::string label;
    if (admin_token_.empty()) {
      if (!catchpoint_.empty())
        log_info(
            "algod importer: catchup-config.catchpoint is set but admin-token is empty: no "
            "fast catchup (as Go Conduit)");
    } else if (!catchpoint_.empty()) {
      label = catchpoint_;
    } else {
      label = lookup_catchpoint(network, target, stop);
    }
    if (label.empty()) {
      log_info("algod importer: no catchpoint to apply: waiting for the node to reach round " +
               std::to_string(target));
      return;
    }
    auto status = json_call("GET", "/v2/status", target, stop, kShortTimeout);
    uint64_t node = status.value("last-round", uint64_t{0});
    uint64_t at = catchpoint_round(label);
    std::string rounds = "node round " + std::to_string(node) + ", target round " +
                         std::to_string(target) + ", catchpoint round " + std::to_string(at);
    switch (check_rounds(at, node, target)) {
      case CatchupDecision::skip:
        log_info("algod importer: no catchup required: " + rounds);
        return;
      case CatchupDecision::run_required:
        log_info("algod importer: catchup required, the node is past the target round: " + rounds);
        break;
      case CatchupDecision::run_requested:
        log_info("algod importer: catchup requested: " + rounds);
        break;
    }
    // The sync round first, so that the node stops at the target once the
    // catchpoint is applied (Go Conduit issue #95).
    if (mode_ == "follower") set_sync_round(target, stop);
    start_catchup(label, target, stop);
    monitor_catchup(label, target, stop);
    synced_round_.reset();  // a catchup may reset it: set it again
    node_round_ = 0;
  }

  // The last label at or before `target` in Algorand's list for the network
  // (Go's getMissingCatchpointLabel). A failed lookup is logged, not fatal.
  std::string lookup_catchpoint(const std::string& network, uint64_t target, std::stop_token stop) {
    std::string url = catchpoint_list_url_;
    if (auto at = url.find("%s"); at != std::string::npos) url.replace(at, 2, network);
    auto scheme_end = url.find("://");
    auto path_start = url.find('/', scheme_end + 3);
    std::string base = path_start == std::string::npos ? url : url.substr(0, path_start);
    std::string path = path_start == std::string::npos ? "/" : url.substr(path_start);
    try {
      HttpClient lister(base, {});
      HttpResponse response = lister.perform({"GET", path, kShortTimeout, kTransferStall}, stop);
      if (response.status != 200)
        throw std::runtime_error("HTTP " + std::to_string(response.status));
      std::string label;
      size_t start = 0;
      while (start < response.body.size()) {
        size_t end = response.body.find('\n', start);
        if (end == std::string::npos) end = response.body.size();
        std::string line = response.body.substr(start, end - start);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) break;  // as Go's scanner loop
        if (!valid_catchpoint(line)) throw std::runtime_error("not a catchpoint label: " + line);
        if (catchpoint_round(line) > target) break;
        label = line;
        start = end + 1;
      }
      if (label.empty())
        throw std::runtime_error("no catchpoint label for round " + std::to_string(target));
      log_info("algod importer: catchpoint " + label + " from " + url);
      return label;
    } catch (const Cancelled&) {
      throw;
    } catch (const std::exception& e) {
      log_info("algod importer: unable to look up a catchpoint at " + url + ": " + e.what());
      return {};
    }
  }

  void start_catchup(const std::string& label, uint64_t target, std::stop_token stop) {
    log_status("algod importer: starting fast catchup to catchpoint " + label);
    HttpClient admin(netaddr_, {{"X-Algo-API-Token", admin_token_}});
    std::string escaped = label;
    escaped.replace(escaped.find('#'), 1, "%23");
    std::string path = "/v2/catchup/" + escaped;
    HttpResponse response;
    try {
      response = admin.perform({"POST", path, kShortTimeout, {}}, stop);
    } catch (const TransportError& e) {
      throw PluginError("algod importer: round " + std::to_string(target) + ": POST " + e.what(),
                        true);
    }
    if (response.status >= 200 && response.status < 300) return;
    std::string message =
        "algod importer: POST " + admin.url(path) + ": HTTP " + std::to_string(response.status);
    if (response.status == 401 || response.status == 403)
      message += " (check catchup-config.admin-token)";
    throw PluginError(message + ": " + response.body.substr(0, 200),
                      response.status >= 500 || response.status == 429);
  }

  // Polls /v2/status until the node reports no catchpoint in progress; each
  // poll's phase goes to the log and STATUS= (Go's monitorCatchpointCatchup).
  void monitor_catchup(const std::string& label, uint64_t target, std::stop_token stop) {
    auto started = std::chrono::steady_clock::now();
    for (;;) {
      sleep_for(poll_interval_, stop);
      auto status = json_call("GET", "/v2/status", target, stop, kShortTimeout);
      if (status.value("catchpoint", std::string()).empty()) break;
      auto count = [&](const char* key) { return std::to_string(status.value(key, uint64_t{0})); };
      std::string phase;
      if (status.value("catchpoint-acquired-blocks", uint64_t{0}) > 0)
        phase = "acquired blocks " + count("catchpoint-acquired-blocks") + "/" +
                count("catchpoint-total-blocks");
      else if (status.value("catchpoint-verified-accounts", uint64_t{0}) > 0)
        phase = "verified accounts " + count("catchpoint-verified-accounts") + "/" +
                count("catchpoint-total-accounts");
      else if (status.value("catchpoint-processed-kvs", uint64_t{0}) > 0)
        phase = "processed KVs " + count("catchpoint-processed-kvs") + "/" +
                count("catchpoint-total-kvs");
      else if (status.value("catchpoint-processed-accounts", uint64_t{0}) > 0)
        phase = "processed accounts " + count("catchpoint-processed-accounts") + "/" +
                count("catchpoint-total-accounts");
      else
        phase = "verifying blocks";
      log_status("algod importer: fast catchup to " + label + ": " + phase);
    }
    auto took = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                                 started);
    log_status("algod importer: fast catchup to " + label + " finished in " +
               std::to_string(took.count()) + "s");
  }

  // A wait a stop ends at once.
  static void sleep_for(std::chrono::nanoseconds duration, std::stop_token stop) {
    std::mutex mutex;
    std::condition_variable_any wake;
    std::unique_lock lock(mutex);
    wake.wait_for(lock, stop, duration, [] { return false; });
    if (stop.stop_requested()) throw Cancelled();
  }

  void set_sync_round(uint64_t round, std::stop_token stop) {
    if (synced_round_ == round) return;
    call("POST", "/v2/ledger/sync/" + std::to_string(round), round, stop, kShortTimeout);
    synced_round_ = round;
  }

  // Where the node's sync round was before we move it; for the log only (a node
  // that never had one set may answer with an error).
  void log_sync_round(uint64_t round, std::stop_token stop) {
    try {
      auto sync = json_call("GET", "/v2/ledger/sync", round, stop, kShortTimeout);
      log_info("algod importer: the node's sync round was " +
               std::to_string(sync.value("round", uint64_t{0})) + "; moving it to " +
               std::to_string(round));
    } catch (const Cancelled&) {
      throw;
    } catch (const std::exception& e) {
      log_info(std::string("algod importer: could not read the node's sync round: ") + e.what());
    }
  }

  // Long-polls until the node has `round`. algod answers after about a minute
  // even without a new round; then we simply ask again.
  void wait_for_round(uint64_t round, std::stop_token stop) {
    if (round == 0 || node_round_ >= round) return;
    for (;;) {
      auto status = json_call("GET", "/v2/status/wait-for-block-after/" + std::to_string(round - 1),
                              round, stop, kLongPollTimeout);
      uint64_t last = 0;
      try {
        last = status.at("last-round").get<uint64_t>();
      } catch (const std::exception& e) {
        throw PluginError("algod importer: round " + std::to_string(round) +
                              ": no last-round in the node status: " + e.what(),
                          true);
      }
      node_round_ = std::max(node_round_, last);
      if (node_round_ >= round) return;
    }
  }

  // The node serves blocks and /genesis alike, so a block whose `gh` is not
  // the hash of /genesis means a node with an inconsistent (e.g. synthetic)
  // genesis document; Go Conduit does not check it either. Said once.
  void check_genesis_hash(const BlockData& block, uint64_t round, const std::string& path) {
    if (genesis_mismatch_logged_) return;
    const auto* header = mp::find(block.tree().root, "block");
    const auto* gh = header ? mp::find(*header, "gh") : nullptr;
    if (!gh || gh->type != msgpack::type::BIN || genesis_hash_.empty()) return;
    std::string hash = encoding::base64_encode({gh->via.bin.ptr, gh->via.bin.size});
    if (hash == genesis_hash_) return;
    genesis_mismatch_logged_ = true;
    if (logger_)
      logger_->warn("algod importer: round " + std::to_string(round) + ": " + client_->url(path) +
                        " has genesis hash " + hash + " but /genesis hashes to " + genesis_hash_,
                    {.round = round, .plugin = "importer:algod"});
  }

  void log_info(const std::string& message) {
    if (logger_) logger_->info(message, {.plugin = "importer:algod"});
  }
  void log_status(const std::string& message) {
    if (logger_) logger_->status(message, {.plugin = "importer:algod"});
  }

  std::string mode_;
  std::string netaddr_;
  std::string token_;
  std::string catchpoint_;
  std::string admin_token_;
  std::string catchpoint_list_url_ = kCatchpointListUrl;
  std::chrono::nanoseconds poll_interval_ = std::chrono::seconds(5);
  bool genesis_mismatch_logged_ = false;

  Logger* logger_ = nullptr;
  std::unique_ptr<HttpClient> client_;
  std::string genesis_hash_;
  uint64_t next_round_ = 0;
  std::optional<uint64_t> synced_round_;
  uint64_t node_round_ = 0;  // the highest round the node said it has
  std::size_t max_block_memory_ = kDefaultMaxBlockMemory;
};

}  // namespace

BlockData algod_block_to_block_data(std::string_view block_response,
                                    std::optional<std::string_view> delta, std::size_t max_memory) {
  // Both bodies are unpacked and then the block built from them decoded
  // again: each step is held to the budget before it allocates.
  auto cost_of = [](std::string_view bytes, const char* what) {
    try {
      return msgpack_decoded_cost(bytes);
    } catch (const BlockDecodeError& e) {
      throw BlockDecodeError(std::string("the ") + what + " is not msgpack: " + e.what());
    }
  };
  std::size_t cost = cost_of(block_response, "block response");
  if (delta) cost += cost_of(*delta, "state delta");
  if (cost > max_memory) throw BlockTooLargeError(cost, max_memory);
  msgpack::zone zone;
  auto unpack = [&zone](std::string_view bytes, const char* what) {
    try {
      std::size_t offset = 0;
      msgpack::object object = msgpack::unpack(zone, bytes.data(), bytes.size(), offset);
      if (offset != bytes.size())
        throw BlockDecodeError(std::string("trailing bytes after the ") + what);
      if (object.type != msgpack::type::MAP)
        throw BlockDecodeError(std::string("the ") + what + " is not a msgpack map");
      return object;
    } catch (const BlockDecodeError&) {
      throw;
    } catch (const std::exception& e) {
      throw BlockDecodeError(std::string("the ") + what + " is not msgpack: " + e.what());
    }
  };
  msgpack::object response = unpack(block_response, "block response");
  const msgpack::object* block = mp::find(response, "block");
  if (!block || block->type != msgpack::type::MAP)
    throw BlockDecodeError("the block response has no 'block' map");
  const msgpack::object* cert = mp::find(response, "cert");
  const msgpack::object* txns = mp::find(*block, "txns");
  if (txns && txns->type != msgpack::type::ARRAY && txns->type != msgpack::type::NIL)
    throw BlockDecodeError("the block's 'txns' is not an array");
  std::optional<msgpack::object> delta_object;
  if (delta) delta_object = unpack(*delta, "state delta");

  bool has_cert = !empty_value(cert);
  bool has_delta = delta_object.has_value();
  bool has_payset = !empty_value(txns);

  // Keys in Go's canonical order: block, cert, delta, payset.
  msgpack::sbuffer buffer(block_response.size() + (delta ? delta->size() : 0) + 64);
  msgpack::packer packer(buffer);
  packer.pack_map(1 + has_cert + has_delta + has_payset);
  packer.pack("block");
  pack_map_without(packer, *block, "txns", block->via.map.size - (txns ? 1 : 0));
  if (has_cert) {
    packer.pack("cert");
    packer.pack(*cert);
  }
  if (has_delta) {
    packer.pack("delta");
    packer.pack(*delta_object);
  }
  if (has_payset) {
    packer.pack("payset");
    packer.pack(*txns);
  }
  return BlockData::decode_msgpack({buffer.data(), buffer.size()}, max_memory);
}

void register_algod(Registry& registry) {
  registry.add_importer(
      {"algod", "blocks (and, in follower mode, state deltas) from an algod node", kSample, false},
      [] { return std::make_unique<AlgodImporter>(); });
}

}  // namespace conduit::plugins
