#include <gtest/gtest.h>

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
}
