// The `generator` importer: synthetic blocks in Algorand's block shape, a pure
// function of (seed, round) so that a restart reproduces the same chain. The
// embedded default, the demo and the benchmark source.
//
// Each round past 0 carries a ledger state delta (as algod's follower mode
// delivers it) whose balances add up: every account starts with the same
// implicit balance and asset holdings, payments move algos, asset transfers move
// holdings, and every fee goes to the fee sink. The postgresql exporter, which
// needs a delta for every round, can so be fed and benchmarked.
//
// Blocks have consensus v42's shape: the header's load (`ld`), and senders that
// are post-quantum accounts, whose transactions carry `pqsig` (Falcon-1024, as
// go-algorand-sdk's PQSig encodes it) or a logic signature they delegated.
#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <msgpack.hpp>
#include <mutex>
#include <vector>

#include "core/algorand.hpp"
#include "core/block_msgpack.hpp"
#include "core/encoding.hpp"
#include "plugins/generator/generator.hpp"

namespace conduit::plugins {
namespace {

constexpr const char* kSample = R"(# transactions in each round
txns-per-round = 100
# time between rounds; "0s" = as fast as the pipeline takes them
round-interval = "0s"
# seed of the synthetic chain: the same seed gives the same blocks
seed = 1
# network name recorded in metadata.json
network = "generated-network"
# the last round produced (0: no end); later rounds are never delivered
last-round = 0
# attach a ledger state delta to every round past 0 (the postgresql exporter needs them)
state-delta = true
# how many of the 64 senders are post-quantum accounts (consensus v42): their
# transactions carry pqsig (Falcon-1024), one in four through a logic signature
pq-senders = 16
)";

constexpr uint64_t kAccounts = 128;  // senders 0-63, receivers 64-127
constexpr uint64_t kAssets = 5;      // asset ids 1000-1004
constexpr uint64_t kInitialAlgos = 10'000'000'000'000;
constexpr uint64_t kInitialHolding = 1'000'000'000'000;
// Falcon-1024: the scheme id go-algorand gives it, its public key size, and
// about the size of its (compressed, variable-length) signatures.
constexpr const char* kPqScheme = "f1";
constexpr size_t kPqPublicKeyBytes = 1793;
constexpr size_t kPqSignatureBytes = 1280;
// Block load (`ld`): the payset's bytes in millionths of MaxTxnBytesPerBlock.
constexpr uint64_t kMaxTxnBytesPerBlock = 5'242'880;

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

using Bytes32 = std::array<char, 32>;

Bytes32 derive(uint64_t a, uint64_t b) {
  Bytes32 out{};
  uint64_t state = a * 0x100000001b3ULL ^ b;
  for (size_t i = 0; i < out.size(); i += 8) {
    uint64_t v = splitmix(state);
    std::memcpy(out.data() + i, &v, 8);
  }
  return out;
}

class Generator final : public Importer {
 public:
  void configure(PluginConfig& config) override {
    txns_per_round_ = config.get_uint("txns-per-round", 100);
    if (txns_per_round_ > 100000) config.fail("txns-per-round", "at most 100000");
    interval_ = config.get_duration("round-interval", std::chrono::nanoseconds(0));
    seed_ = config.get_uint("seed", 1);
    network_ = config.get_string("network", "generated-network");
    if (network_.empty()) config.fail("network", "must not be empty");
    state_delta_ = config.get_bool("state-delta", true);
    last_round_ = config.get_uint("last-round", 0);
    pq_senders_ = config.get_uint("pq-senders", 16);
    if (pq_senders_ > 64) config.fail("pq-senders", "at most 64 (the senders)");
  }

  Genesis init(const InitContext& ctx, std::stop_token) override {
    first_round_ = ctx.next_round;
    started_ = std::chrono::steady_clock::now();
    auto hash = derive(seed_, std::hash<std::string>{}(network_));
    genesis_hash_ = hash;
    fee_sink_ = derive(seed_ ^ 0x46454553, 0);
    rewards_pool_ = derive(seed_ ^ 0x52574421, 0);
    Genesis g;
    g.network = network_;
    g.id = "v1";
    g.hash = encoding::base64_encode(std::string_view(hash.data(), hash.size()));
    return g;
  }

  BlockData get_block(uint64_t round, std::stop_token stop) override {
    if (last_round_ && round > last_round_) {
      // A finite chain: nothing more comes, until the pipeline stops.
      std::mutex mutex;
      std::condition_variable_any cv;
      std::unique_lock lock(mutex);
      cv.wait(lock, stop, [] { return false; });
      throw Cancelled();
    }
    if (interval_.count() > 0) {
      // Rounds are due on a fixed schedule from start-up, so slow consumers
      // catch up instead of drifting.
      auto due = started_ + interval_ * static_cast<int64_t>(round - first_round_ + 1);
      std::mutex mutex;
      std::condition_variable_any cv;
      std::unique_lock lock(mutex);
      cv.wait_until(lock, stop, due, [] { return false; });
    }
    if (stop.stop_requested()) throw Cancelled();
    return make_block(round, stop);
  }

  void close() override {}

 private:
  template <class P>
  static void pack_bin(P& packer, const char* data, size_t size) {
    packer.pack_bin(static_cast<uint32_t>(size));
    packer.pack_bin_body(data, static_cast<uint32_t>(size));
  }

  BlockData make_block(uint64_t round, std::stop_token stop) {
    // The payset first: the header's load is its size.
    msgpack::sbuffer payset(16 + txns_per_round_ * 200);
    if (txns_per_round_ > 0) pack_payset(payset, round);
    uint64_t load = std::min<uint64_t>(1'000'000, payset.size() * 1'000'000 / kMaxTxnBytesPerBlock);

    msgpack::sbuffer buffer(64 + payset.size());
    msgpack::packer packer(buffer);
    bool has_payset = txns_per_round_ > 0;
    if (!(state_delta_ && round > 0)) packer.pack_map(has_payset ? 2 : 1);

    // Header: canonical msgpack, keys sorted, zero values omitted (Go's codec).
    bool has_delta = state_delta_ && round > 0;
    if (has_delta) packer.pack_map(has_payset ? 3 : 2);
    packer.pack("block");
    packer.pack_map((round ? 10 : 9) + (load ? 1 : 0));
    packer.pack("fees");
    pack_bin(packer, fee_sink_.data(), 32);
    packer.pack("gen");
    packer.pack(network_ + "-v1");
    packer.pack("gh");
    pack_bin(packer, genesis_hash_.data(), 32);
    if (load) {
      packer.pack("ld");
      packer.pack(load);
    }
    if (round) {
      packer.pack("prev");
      auto prev = derive(seed_ ^ 0x5052, round - 1);
      pack_bin(packer, prev.data(), 32);
    }
    packer.pack("rnd");
    packer.pack(round);
    packer.pack("rwd");
    pack_bin(packer, rewards_pool_.data(), 32);
    packer.pack("seed");
    auto seed = derive(seed_ ^ 0x5345, round);
    pack_bin(packer, seed.data(), 32);
    packer.pack("tc");
    packer.pack(round * txns_per_round_ + 1000);
    packer.pack("ts");
    packer.pack(1700000000 + round);
    packer.pack("txn");
    auto root = derive(seed_ ^ 0x5458, round);
    pack_bin(packer, root.data(), 32);

    if (has_delta) {
      packer.pack("delta");
      pack_delta(packer, round, stop);
    }
    if (has_payset) {
      packer.pack("payset");
      buffer.write(payset.data(), payset.size());
    }
    return BlockData::decode_msgpack({buffer.data(), buffer.size()});
  }

  void pack_payset(msgpack::sbuffer& buffer, uint64_t round) const {
    msgpack::packer packer(buffer);
    packer.pack_array(static_cast<uint32_t>(txns_per_round_));
    uint64_t rng = seed_ * 0x9e3779b97f4a7c15ULL + round;
    uint64_t group_left = 0;
    Bytes32 group{};
    for (uint64_t i = 0; i < txns_per_round_; ++i) {
      uint64_t r = splitmix(rng);
      if (group_left == 0 && (r & 15) == 0 && i + 1 < txns_per_round_) {
        group_left = 2 + (r >> 8) % 3;  // groups of 2-4 transactions
        group = derive(round, i);
      }
      bool grouped = group_left > 0;
      if (grouped) --group_left;
      pack_txn(packer, round, i, r, grouped ? &group : nullptr);
    }
  }

  // What a transaction does, from its random word (shared by the block and the delta).
  struct Spec {
    uint64_t sender, receiver;  // account indices
    int kind;                   // <6 pay, <9 axfer, else appl
    uint64_t fee, amount, asset_amount, asset;
  };
  static Spec spec(uint64_t r) {
    return {r % 64,
            (r >> 16) % 64 + 64,
            static_cast<int>((r >> 32) % 10),  // 60% pay, 30% axfer, 10% appl
            1000 + (r >> 40) % 3 * 1000,
            1 + (r >> 20) % 1000000,
            1 + (r >> 24) % 1000,
            (r >> 48) % kAssets};
  }

  // Balances after a round: algos per account (fee sink last) and holdings.
  struct Ledger {
    uint64_t round = 0;  // the last round applied (0: genesis)
    std::vector<uint64_t> algos = std::vector<uint64_t>(kAccounts + 1, kInitialAlgos);
    std::vector<uint64_t> holdings = std::vector<uint64_t>(kAccounts * kAssets, kInitialHolding);
  };

  // Applies round `round`'s transactions; collects what they touched.
  void apply(Ledger& ledger, uint64_t round, std::vector<uint64_t>* accounts,
             std::vector<uint64_t>* holdings) const {
    uint64_t rng = seed_ * 0x9e3779b97f4a7c15ULL + round;
    auto touch = [](std::vector<uint64_t>* list, uint64_t v) {
      if (list && std::find(list->begin(), list->end(), v) == list->end()) list->push_back(v);
    };
    for (uint64_t i = 0; i < txns_per_round_; ++i) {
      Spec t = spec(splitmix(rng));
      ledger.algos[t.sender] -= t.fee;
      ledger.algos[kAccounts] += t.fee;
      touch(accounts, t.sender);
      touch(accounts, kAccounts);
      if (t.kind < 6) {
        ledger.algos[t.sender] -= t.amount;
        ledger.algos[t.receiver] += t.amount;
        touch(accounts, t.receiver);
      } else if (t.kind < 9) {
        ledger.holdings[t.sender * kAssets + t.asset] -= t.asset_amount;
        ledger.holdings[t.receiver * kAssets + t.asset] += t.asset_amount;
        touch(holdings, t.sender * kAssets + t.asset);
        touch(holdings, t.receiver * kAssets + t.asset);
      }
    }
    ledger.round = round;
  }

  // The ledger after round `round` - 1, replaying from genesis when the rounds
  // asked for are not consecutive (a restart, a retry, a test). The replay is
  // bounded (a checkpoint near 2^64 would otherwise spin for ever) and obeys `stop`.
  static constexpr uint64_t kMaxReplayTxns = 200'000'000;
  const Ledger& ledger_before(uint64_t round, std::stop_token stop) {
    if (before_.round + 1 == round) return before_;
    if (after_.round + 1 == round) {
      before_ = after_;
      return before_;
    }
    if (txns_per_round_ > 0 && round - 1 > kMaxReplayTxns / txns_per_round_)
      throw PluginError("generator: cannot start at round " + std::to_string(round) +
                            " with state-delta = true: its balances are replayed from genesis, "
                            "at most " +
                            std::to_string(kMaxReplayTxns / txns_per_round_) +
                            " rounds back; set state-delta = false to start there",
                        false);
    before_ = Ledger{};
    for (uint64_t r = 1; r < round; ++r) {
      if ((r & 0xfff) == 0 && stop.stop_requested()) throw Cancelled();
      apply(before_, r, nullptr, nullptr);
    }
    return before_;
  }

  Bytes32 account_address(uint64_t index) const {
    return index == kAccounts ? fee_sink_ : derive(seed_, index);
  }

  template <class P>
  void pack_delta(P& packer, uint64_t round, std::stop_token stop) {
    after_ = ledger_before(round, stop);
    std::vector<uint64_t> accounts, holdings;
    apply(after_, round, &accounts, &holdings);
    std::sort(accounts.begin(), accounts.end());
    std::sort(holdings.begin(), holdings.end());
    // go-algorand's ledgercore.StateDelta as algod's /v2/deltas encodes it (Go field names).
    packer.pack_map(1);
    packer.pack("Accts");
    packer.pack_map(2);
    packer.pack("Accts");
    packer.pack_array(static_cast<uint32_t>(accounts.size()));
    for (uint64_t a : accounts) {
      packer.pack_map(2);
      packer.pack("Addr");
      auto address = account_address(a);
      pack_bin(packer, address.data(), 32);
      packer.pack("MicroAlgos");
      packer.pack(after_.algos[a]);
    }
    packer.pack("AssetResources");
    packer.pack_array(static_cast<uint32_t>(holdings.size()));
    for (uint64_t h : holdings) {
      packer.pack_map(4);
      packer.pack("Addr");
      auto address = account_address(h / kAssets);
      pack_bin(packer, address.data(), 32);
      packer.pack("Aidx");
      packer.pack(1000 + h % kAssets);
      packer.pack("Holding");
      packer.pack_map(2);
      packer.pack("Deleted");
      packer.pack(false);
      packer.pack("Holding");
      packer.pack_map(1);
      packer.pack("a");
      packer.pack(after_.holdings[h]);
      packer.pack("Params");
      packer.pack_map(2);
      packer.pack("Deleted");
      packer.pack(false);
      packer.pack("Params");
      packer.pack_nil();
    }
  }

  template <class P>
  void pack_txn(P& packer, uint64_t round, uint64_t index, uint64_t r, const Bytes32* group) const {
    Spec t = spec(r);
    auto sender = derive(seed_, t.sender);
    auto receiver = derive(seed_, t.receiver);
    int kind = t.kind;
    uint64_t fee = t.fee;

    packer.pack_map(3);
    packer.pack("hgi");
    packer.pack(true);
    pack_signature(packer, t.sender, round, index, r);
    packer.pack("txn");
    if (kind < 6) {
      packer.pack_map(group ? 8 : 7);
      packer.pack("amt");
      packer.pack(t.amount);
      packer.pack("fee");
      packer.pack(fee);
      packer.pack("fv");
      packer.pack(round ? round - 1 : 0);
      if (group) {
        packer.pack("grp");
        pack_bin(packer, group->data(), 32);
      }
      packer.pack("lv");
      packer.pack(round + 1000);
      packer.pack("rcv");
      pack_bin(packer, receiver.data(), 32);
      packer.pack("snd");
      pack_bin(packer, sender.data(), 32);
      packer.pack("type");
      packer.pack("pay");
    } else if (kind < 9) {
      packer.pack_map(group ? 9 : 8);
      packer.pack("aamt");
      packer.pack(t.asset_amount);
      packer.pack("arcv");
      pack_bin(packer, receiver.data(), 32);
      packer.pack("fee");
      packer.pack(fee);
      packer.pack("fv");
      packer.pack(round ? round - 1 : 0);
      if (group) {
        packer.pack("grp");
        pack_bin(packer, group->data(), 32);
      }
      packer.pack("lv");
      packer.pack(round + 1000);
      packer.pack("snd");
      pack_bin(packer, sender.data(), 32);
      packer.pack("type");
      packer.pack("axfer");
      packer.pack("xaid");
      packer.pack(1000 + t.asset);
    } else {
      packer.pack_map(group ? 8 : 7);
      packer.pack("apaa");
      packer.pack_array(1);
      char arg[8];
      std::memcpy(arg, &r, 8);
      pack_bin(packer, arg, 8);
      packer.pack("apid");
      packer.pack(2000 + (r >> 48) % 3);
      packer.pack("fee");
      packer.pack(fee);
      packer.pack("fv");
      packer.pack(round ? round - 1 : 0);
      if (group) {
        packer.pack("grp");
        pack_bin(packer, group->data(), 32);
      }
      packer.pack("lv");
      packer.pack(round + 1000);
      packer.pack("snd");
      pack_bin(packer, sender.data(), 32);
      packer.pack("type");
      packer.pack("appl");
    }
  }

  // Bytes standing for a key or a signature: a pure function of (a, b).
  static std::string filler(uint64_t a, uint64_t b, size_t size) {
    std::string out(size, '\0');
    uint64_t state = a * 0x100000001b3ULL ^ b;
    for (size_t i = 0; i < size; i += 8) {
      uint64_t v = splitmix(state);
      std::memcpy(out.data() + i, &v, std::min<size_t>(8, size - i));
    }
    return out;
  }

  // The signature of a SignedTxn: `sig` (ed25519) from the classical senders;
  // from the post-quantum ones `pqsig` (sorted keys pk, sch, sig, slt; a zero
  // salt omitted, as Go's codec omits zero values), or, for one transaction
  // in four, a logic signature (`lsig`: `l`, `pqsig`) they delegated.
  template <class P>
  void pack_signature(P& packer, uint64_t sender, uint64_t round, uint64_t index,
                      uint64_t r) const {
    if (sender >= pq_senders_) {
      auto half = derive(round, index);
      std::array<char, 64> sig{};
      std::memcpy(sig.data(), half.data(), 32);
      std::memcpy(sig.data() + 32, half.data(), 32);
      packer.pack("sig");
      pack_bin(packer, sig.data(), 64);
      return;
    }
    std::string signature = filler(round, index, kPqSignatureBytes);
    bool delegated = ((r >> 56) & 3) == 0;
    if (delegated) {
      packer.pack("lsig");
      packer.pack_map(2);
      packer.pack("l");
      pack_bin(packer, "\x0a\x81\x01", 3);  // #pragma version 10; pushint 1
    }
    uint64_t salt = sender % 4;
    std::string key = filler(seed_ ^ 0x5051, sender, kPqPublicKeyBytes);
    packer.pack("pqsig");
    packer.pack_map(salt ? 4 : 3);
    packer.pack("pk");
    pack_bin(packer, key.data(), key.size());
    packer.pack("sch");
    pack_bin(packer, kPqScheme, 2);
    packer.pack("sig");
    pack_bin(packer, signature.data(), signature.size());
    if (salt) {
      packer.pack("slt");
      packer.pack(salt);
    }
  }

  uint64_t txns_per_round_ = 100;
  std::chrono::nanoseconds interval_{0};
  uint64_t seed_ = 1;
  std::string network_;
  Bytes32 genesis_hash_{};
  uint64_t first_round_ = 0;
  bool state_delta_ = true;
  uint64_t last_round_ = 0;
  uint64_t pq_senders_ = 16;
  Bytes32 fee_sink_{}, rewards_pool_{};
  Ledger before_, after_;  // the ledger before and after the last round built
  std::chrono::steady_clock::time_point started_;
};

}  // namespace

void register_generator(Registry& registry) {
  registry.add_importer(
      {"generator", "synthetic Algorand blocks (pay, axfer, appl, groups) for demos and benchmarks",
       kSample, false},
      [] { return std::make_unique<Generator>(); });
}

}  // namespace conduit::plugins
