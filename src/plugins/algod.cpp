// The `algod` importer (Go Conduit: conduit/plugins/importers/algod).
//
// For each round R it waits for the node to have R (GET
// /v2/status/wait-for-block-after/{R-1}, a long-poll), fetches the block (and in
// follower mode the state delta) as msgpack and re-shapes it into BlockData. In
// follower mode it also moves the node's sync round to R (POST
// /v2/ledger/sync/{R}) when asked for R: being asked for R means R-1 is already
// in the importer's hands, which is how Go Conduit does it. Every HTTP call is
// cancellable (see http_client.hpp), so a stop never waits for algod.
#include "plugins/algod.hpp"

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include <cctype>
#include <memory>

#include "core/algorand.hpp"
#include "core/block_msgpack.hpp"
#include "core/plugin.hpp"
#include "plugins/http_client.hpp"

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
# Fast catchup of a follower node. Validated, but catchup itself is not
# implemented: with a catchpoint set and the node behind the round conduit
# needs, start-up fails and names the catchpoint to apply with
# `goal node catchup`; without one, conduit waits for the node.
catchup-config = { catchpoint = "", admin-token = "" }
)";

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
    if (auto catchup = config.get_table("catchup-config")) {
      catchpoint_ = catchup->get_string("catchpoint", "");
      admin_token_ = catchup->get_string("admin-token", "");
      if (!catchpoint_.empty() && !valid_catchpoint(catchpoint_))
        catchup->fail("catchpoint", "not a catchpoint label (ROUND#HASH, HASH in base32)");
      if (!catchpoint_.empty() && mode_ != "follower")
        catchup->fail("catchpoint", "fast catchup needs mode = \"follower\"");
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
    genesis.json = std::move(genesis_body);
    // The genesis hash as algod itself reports it (Go Conduit computes the same
    // value from the genesis document; see the note in the report).
    auto params = json_call("GET", "/v2/transactions/params", ctx.next_round, stop, kShortTimeout);
    try {
      genesis.hash = params.at("genesis-hash").get<std::string>();
    } catch (const std::exception& e) {
      throw PluginError("algod importer: no genesis-hash in " +
                            client_->url("/v2/transactions/params") + ": " + e.what(),
                        false);
    }
    genesis_hash_ = genesis.hash;

    auto status = json_call("GET", "/v2/status", ctx.next_round, stop, kShortTimeout);
    uint64_t last_round = status.value("last-round", uint64_t{0});
    node_round_ = last_round;
    log_info("algod importer: " + mode_ + " mode, node " + netaddr_ + " at round " +
             std::to_string(last_round) + ", network " + genesis.network);

    if (mode_ == "follower") {
      // A follower keeps deltas only from its sync round on, and only up to a
      // few hundred rounds past it: the node must not be past the round we need.
      if (last_round + 1 < ctx.next_round) {
        std::string why = "node is at round " + std::to_string(last_round) +
                          " but conduit resumes at round " + std::to_string(ctx.next_round);
        if (!catchpoint_.empty() && catchpoint_round(catchpoint_) <= ctx.next_round)
          throw PluginError("algod importer: " + why +
                                "; fast catchup is not implemented: run `goal node catchup " +
                                catchpoint_ + "` on the node, then start conduit again",
                            false);
        log_info("algod importer: " + why + "; waiting for the node to catch up");
      }
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
      block = algod_block_to_block_data(block_body, delta_body);
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

  void check_genesis_hash(const BlockData& block, uint64_t round, const std::string& path) {
    const auto* header = mp::find(block.tree().root, "block");
    const auto* gh = header ? mp::find(*header, "gh") : nullptr;
    if (!gh || gh->type != msgpack::type::BIN || genesis_hash_.empty()) return;
    std::string hash = algorand::base64_encode({gh->via.bin.ptr, gh->via.bin.size});
    if (hash != genesis_hash_)
      throw PluginError("algod importer: round " + std::to_string(round) + ": " +
                            client_->url(path) + " is a block of another chain (genesis hash " +
                            hash + ", expected " + genesis_hash_ + ")",
                        false);
  }

  void log_info(const std::string& message) {
    if (logger_) logger_->info(message, {.plugin = "importer:algod"});
  }

  std::string mode_;
  std::string netaddr_;
  std::string token_;
  std::string catchpoint_;
  std::string admin_token_;

  Logger* logger_ = nullptr;
  std::unique_ptr<HttpClient> client_;
  std::string genesis_hash_;
  uint64_t next_round_ = 0;
  std::optional<uint64_t> synced_round_;
  uint64_t node_round_ = 0;  // the highest round the node said it has
};

}  // namespace

BlockData algod_block_to_block_data(std::string_view block_response,
                                    std::optional<std::string_view> delta) {
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
  return BlockData::decode_msgpack({buffer.data(), buffer.size()});
}

void register_algod(Registry& registry) {
  registry.add_importer(
      {"algod", "blocks (and, in follower mode, state deltas) from an algod node", kSample, false},
      [] { return std::make_unique<AlgodImporter>(); });
}

}  // namespace conduit::plugins
