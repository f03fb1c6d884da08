// The `generator` importer: synthetic blocks in Algorand's block shape, a pure
// function of (seed, round) so that a restart reproduces the same chain. The
// embedded default, the demo and the benchmark source.
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <msgpack.hpp>
#include <mutex>

#include "core/algorand.hpp"
#include "core/block_msgpack.hpp"
#include "plugins/noop.hpp"

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
)";

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
  }

  Genesis init(const InitContext& ctx, std::stop_token) override {
    first_round_ = ctx.next_round;
    started_ = std::chrono::steady_clock::now();
    auto hash = derive(seed_, std::hash<std::string>{}(network_));
    genesis_hash_ = hash;
    Genesis g;
    g.network = network_;
    g.id = "v1";
    g.hash = algorand::base64_encode(std::string_view(hash.data(), hash.size()));
    return g;
  }

  BlockData get_block(uint64_t round, std::stop_token stop) override {
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
    return make_block(round);
  }

  void close() override {}

 private:
  template <class P>
  static void pack_bin(P& packer, const char* data, size_t size) {
    packer.pack_bin(static_cast<uint32_t>(size));
    packer.pack_bin_body(data, static_cast<uint32_t>(size));
  }

  BlockData make_block(uint64_t round) const {
    msgpack::sbuffer buffer(64 + txns_per_round_ * 200);
    msgpack::packer packer(buffer);
    bool has_payset = txns_per_round_ > 0;
    packer.pack_map(has_payset ? 2 : 1);

    // Header: canonical msgpack, keys sorted, zero values omitted (Go's codec).
    packer.pack("block");
    packer.pack_map(round ? 8 : 7);
    packer.pack("gen");
    packer.pack(network_ + "-v1");
    packer.pack("gh");
    pack_bin(packer, genesis_hash_.data(), 32);
    if (round) {
      packer.pack("prev");
      auto prev = derive(seed_ ^ 0x5052, round - 1);
      pack_bin(packer, prev.data(), 32);
    }
    packer.pack("rnd");
    packer.pack(round);
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

    if (has_payset) {
      packer.pack("payset");
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
    return BlockData::decode_msgpack({buffer.data(), buffer.size()});
  }

  template <class P>
  void pack_txn(P& packer, uint64_t round, uint64_t index, uint64_t r, const Bytes32* group) const {
    auto sender = derive(seed_, r % 64);
    auto receiver = derive(seed_, (r >> 16) % 64 + 64);
    auto signature = derive(round, index);
    int kind = static_cast<int>((r >> 32) % 10);  // 60% pay, 30% axfer, 10% appl
    uint64_t fee = 1000 + (r >> 40) % 3 * 1000;

    packer.pack_map(3);
    packer.pack("hgi");
    packer.pack(true);
    packer.pack("sig");
    std::array<char, 64> sig{};
    std::memcpy(sig.data(), signature.data(), 32);
    std::memcpy(sig.data() + 32, signature.data(), 32);
    pack_bin(packer, sig.data(), 64);
    packer.pack("txn");
    if (kind < 6) {
      packer.pack_map(group ? 8 : 7);
      packer.pack("amt");
      packer.pack(1 + (r >> 20) % 1000000);
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
      packer.pack(1 + (r >> 24) % 1000);
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
      packer.pack(1000 + (r >> 48) % 5);
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

  uint64_t txns_per_round_ = 100;
  std::chrono::nanoseconds interval_{0};
  uint64_t seed_ = 1;
  std::string network_;
  Bytes32 genesis_hash_{};
  uint64_t first_round_ = 0;
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
