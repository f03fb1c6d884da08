#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/block_msgpack.hpp"
#include "core/registry.hpp"
#include "test_support.hpp"

using namespace conduit;

namespace {

std::unique_ptr<Importer> generator(const std::string& config_text) {
  static Registry registry = test::test_registry();
  Config config = parse_config("[importer]\nname = \"generator\"\n[importer.config]\n" +
                                   config_text + "\n[exporter]\nname = \"noop\"\n",
                               "/tmp", "conduit.toml");
  auto plugins = build_plugins(registry, config);
  return std::move(plugins.importer);
}

}  // namespace

TEST(Generator, BlocksHaveAlgorandShapeAndAreDeterministic) {
  auto a = generator("txns-per-round = 50\nseed = 7");
  auto b = generator("txns-per-round = 50\nseed = 7");
  Genesis ga = a->init({}, {});
  Genesis gb = b->init({}, {});
  EXPECT_EQ(ga.network, "generated-network");
  EXPECT_EQ(ga.hash, gb.hash);
  EXPECT_EQ(ga.hash.size(), 44u);  // base64 of 32 bytes
  for (uint64_t round : {0ull, 1ull, 99ull}) {
    BlockData x = a->get_block(round, {});
    BlockData y = b->get_block(round, {});
    EXPECT_EQ(x.round(), round);
    EXPECT_EQ(x.txn_count(), 50u);
    EXPECT_EQ(x.encode_msgpack(), y.encode_msgpack());
    const auto& root = x.tree().root;
    const auto* header = mp::find(root, "block");
    ASSERT_TRUE(header);
    EXPECT_TRUE(mp::find(*header, "ts"));
    EXPECT_TRUE(mp::find(*header, "gh"));
    EXPECT_TRUE(mp::find(*header, "gen"));
    EXPECT_EQ(mp::find(*header, "prev") != nullptr, round != 0);
    std::map<std::string, int> types;
    int grouped = 0;
    const auto* payset = mp::find(root, "payset");
    for (uint32_t i = 0; i < payset->via.array.size; ++i) {
      const auto& txn = *mp::find(payset->via.array.ptr[i], "txn");
      const auto* type = mp::find(txn, "type");
      types[type->as<std::string>()]++;
      EXPECT_TRUE(mp::find(txn, "snd"));
      EXPECT_GT(mp::get_uint(txn, "fee"), 0u);
      if (mp::find(txn, "grp")) ++grouped;
    }
    EXPECT_GT(types["pay"], 0);
    EXPECT_GT(types["axfer"] + types["appl"], 0);
  }
  // Different seeds, different chains.
  auto c = generator("txns-per-round = 50\nseed = 8");
  c->init({}, {});
  EXPECT_NE(c->get_block(5, {}).encode_msgpack(), a->get_block(5, {}).encode_msgpack());
}

TEST(Generator, SomeRoundsHaveGroups) {
  auto g = generator("txns-per-round = 200");
  g->init({}, {});
  int grouped = 0;
  BlockData block = g->get_block(3, {});
  const auto* payset = mp::find(block.tree().root, "payset");
  for (uint32_t i = 0; i < payset->via.array.size; ++i)
    if (mp::find(*mp::find(payset->via.array.ptr[i], "txn"), "grp")) ++grouped;
  EXPECT_GT(grouped, 1);
}

TEST(Generator, EmptyBlocksAndStop) {
  auto g = generator("txns-per-round = 0\nround-interval = \"1h\"");
  g->init({}, {});
  std::stop_source stop;
  stop.request_stop();
  // A stop wakes a generator waiting for the next round's time.
  EXPECT_THROW(g->get_block(0, stop.get_token()), Cancelled);
}

TEST(Generator, RejectsBadConfig) {
  EXPECT_THROW(generator("round-interval = \"fast\""), ConfigError);
  EXPECT_THROW(generator("txns-per-round = -3"), ConfigError);
  EXPECT_THROW(generator("network = \"\""), ConfigError);
  EXPECT_THROW(generator("pq-senders = 65"), ConfigError);
}

namespace {
std::string bytes_of(const msgpack::object* v) {
  return v && v->type == msgpack::type::BIN ? std::string(v->via.bin.ptr, v->via.bin.size) : "";
}
}  // namespace

// The state deltas add up: each account's balance in round R's delta is its
// previous balance (or the initial one) changed by exactly the round's
// payments, asset transfers and fees, computed here from the payset; the total
// of algos never changes (every fee goes to the fee sink).
TEST(Generator, StateDeltasAddUpFromThePayset) {
  constexpr uint64_t kInitialAlgos = 10'000'000'000'000;
  constexpr uint64_t kInitialHolding = 1'000'000'000'000;
  auto g = generator("txns-per-round = 40\nseed = 3");
  g->init({}, {});
  EXPECT_EQ(mp::find(g->get_block(0, {}).tree().root, "delta"), nullptr);  // genesis round
  std::map<std::string, uint64_t> algos;
  std::map<std::pair<std::string, uint64_t>, uint64_t> holdings;
  for (uint64_t round = 1; round <= 30; ++round) {
    BlockData block = g->get_block(round, {});
    const auto& root = block.tree().root;
    std::string sink = bytes_of(mp::find(*mp::find(root, "block"), "fees"));
    ASSERT_EQ(sink.size(), 32u);
    std::map<std::string, int64_t> change;
    std::map<std::pair<std::string, uint64_t>, int64_t> holding_change;
    const auto* payset = mp::find(root, "payset");
    for (uint32_t i = 0; i < payset->via.array.size; ++i) {
      const auto& txn = *mp::find(payset->via.array.ptr[i], "txn");
      std::string snd = bytes_of(mp::find(txn, "snd"));
      auto fee = static_cast<int64_t>(mp::get_uint(txn, "fee"));
      change[snd] -= fee;
      change[sink] += fee;
      const auto* type = mp::find(txn, "type");
      std::string_view t(type->via.str.ptr, type->via.str.size);
      if (t == "pay") {
        auto amt = static_cast<int64_t>(mp::get_uint(txn, "amt"));
        change[snd] -= amt;
        change[bytes_of(mp::find(txn, "rcv"))] += amt;
      } else if (t == "axfer") {
        auto amt = static_cast<int64_t>(mp::get_uint(txn, "aamt"));
        uint64_t asset = mp::get_uint(txn, "xaid");
        holding_change[{snd, asset}] -= amt;
        holding_change[{bytes_of(mp::find(txn, "arcv")), asset}] += amt;
      }
    }
    const auto* delta = mp::find(root, "delta");
    ASSERT_NE(delta, nullptr) << "round " << round;
    const auto& accts = *mp::find(*delta, "Accts");
    const auto* records = mp::find(accts, "Accts");
    std::set<std::string> seen;
    for (uint32_t i = 0; i < records->via.array.size; ++i) {
      const auto& r = records->via.array.ptr[i];
      std::string addr = bytes_of(mp::find(r, "Addr"));
      seen.insert(addr);
      uint64_t before = algos.count(addr) ? algos[addr] : kInitialAlgos;
      uint64_t after = mp::get_uint(r, "MicroAlgos");
      EXPECT_EQ(static_cast<int64_t>(after - before), change[addr]) << "round " << round;
      algos[addr] = after;
    }
    for (const auto& [addr, delta_algos] : change)
      if (delta_algos != 0) {
        EXPECT_TRUE(seen.count(addr)) << "round " << round;
      }
    const auto* resources = mp::find(accts, "AssetResources");
    for (uint32_t i = 0; i < resources->via.array.size; ++i) {
      const auto& r = resources->via.array.ptr[i];
      std::pair key{bytes_of(mp::find(r, "Addr")), mp::get_uint(r, "Aidx")};
      uint64_t before = holdings.count(key) ? holdings[key] : kInitialHolding;
      uint64_t after = mp::get_uint(*mp::find(*mp::find(r, "Holding"), "Holding"), "a");
      EXPECT_EQ(static_cast<int64_t>(after - before), holding_change[key]) << "round " << round;
      holdings[key] = after;
    }
    int64_t total = 0;
    for (const auto& [addr, balance] : algos)
      total += static_cast<int64_t>(balance - kInitialAlgos);
    EXPECT_EQ(total, 0) << "round " << round;
  }
  // A restart at round 30 (a fresh generator) gives the same delta.
  auto again = generator("txns-per-round = 40\nseed = 3");
  again->init({}, {});
  EXPECT_EQ(again->get_block(30, {}).encode_msgpack(), g->get_block(30, {}).encode_msgpack());
}

// Consensus v42's shape: the header's load (`ld`: the payset's bytes in
// millionths of the 5 MB a block may hold, omitted when 0 as Go omits zero
// values), and senders that are post-quantum accounts, whose transactions are
// signed with `pqsig` (scheme "f1", a 1793-byte key: Falcon-1024) or through a
// logic signature they delegated, never with an ed25519 `sig`.
TEST(Generator, BlocksHaveTheV42ShapeLoadAndPqSignedSenders) {
  auto g = generator("txns-per-round = 400\nstate-delta = false");
  g->init({}, {});
  BlockData block = g->get_block(5, {});
  const auto& root = block.tree().root;
  const auto* payset = mp::find(root, "payset");
  msgpack::sbuffer payset_bytes;
  msgpack::pack(payset_bytes, *payset);
  EXPECT_EQ(mp::get_uint(*mp::find(root, "block"), "ld"), payset_bytes.size() * 1000000 / 5242880);
  EXPECT_GT(mp::get_uint(*mp::find(root, "block"), "ld"), 0u);

  std::map<std::string, std::set<std::string>> signed_by;  // sender -> sig, pqsig, lsig.pqsig
  for (uint32_t i = 0; i < payset->via.array.size; ++i) {
    const auto& stxn = payset->via.array.ptr[i];
    std::string sender = bytes_of(mp::find(*mp::find(stxn, "txn"), "snd"));
    const msgpack::object* pq = mp::find(stxn, "pqsig");
    if (const auto* lsig = mp::find(stxn, "lsig")) {
      pq = mp::find(*lsig, "pqsig");
      EXPECT_FALSE(bytes_of(mp::find(*lsig, "l")).empty());
      signed_by[sender].insert("lsig.pqsig");
    } else if (pq) {
      signed_by[sender].insert("pqsig");
    }
    if (mp::find(stxn, "sig")) signed_by[sender].insert("sig");
    if (!pq) continue;
    EXPECT_EQ(bytes_of(mp::find(*pq, "sch")), "f1");
    EXPECT_EQ(bytes_of(mp::find(*pq, "pk")).size(), 1793u);
    EXPECT_FALSE(bytes_of(mp::find(*pq, "sig")).empty());
    if (const auto* salt = mp::find(*pq, "slt")) {
      EXPECT_GT(salt->via.u64, 0u);
    }
  }
  size_t pq_senders = 0, delegated = 0;
  for (const auto& [sender, kinds] : signed_by) {
    if (kinds.count("sig")) {
      EXPECT_EQ(kinds.size(), 1u) << "a sender signs both ways";
    } else {
      ++pq_senders;
    }
    delegated += kinds.count("lsig.pqsig");
  }
  EXPECT_EQ(pq_senders, 16u);  // the default pq-senders
  EXPECT_GT(delegated, 0u);

  // pq-senders = 0: ed25519 only; no transactions: no load.
  auto classical = generator("txns-per-round = 50\npq-senders = 0");
  classical->init({}, {});
  BlockData plain = classical->get_block(1, {});
  for (size_t i = 0; i < plain.txn_count(); ++i)
    EXPECT_TRUE(plain.payset_entry(i)["sig"].present());
  auto empty = generator("txns-per-round = 0");
  empty->init({}, {});
  EXPECT_FALSE(empty->get_block(1, {}).header()["ld"].present());
}
