// filter_processor on Go Conduit's fixture blocks. Expected per-round counts
// were derived from the fixtures independently of this code (a raw msgpack
// scan counting types, fees, amounts, groups and inner transactions).
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <msgpack.hpp>
#include <mutex>
#include <set>
#include <sstream>
#include <stop_token>
#include <thread>

#include "core/algorand.hpp"
#include "core/fs.hpp"
#include "plugins/builtin.hpp"
#include "plugins/files/block_files.hpp"
#include "plugins/filter/filter_processor.hpp"
#include "test_support.hpp"
#include "v42_block.hpp"

using namespace conduit;
using namespace conduit::test;

namespace {

using Counts = std::vector<size_t>;  // rounds 0..9

std::string config_text(const std::string& processor_config) {
  return "[importer]\nname = \"noop\"\n[[processors]]\nname = \"filter_processor\"\n"
         "[processors.config]\n" +
         processor_config + "\n[exporter]\nname = \"noop\"\n";
}

std::unique_ptr<Processor> make_filter(const std::string& processor_config) {
  Config config = parse_config(config_text(processor_config), "/nonexistent", "conduit.toml");
  auto plugins = build_plugins(builtin_registry(), config);
  return std::move(plugins.processors.at(0));
}

Counts run_filter(const std::string& processor_config) {
  auto filter = make_filter(processor_config);
  Counts counts;
  for (int r = 0; r < 10; ++r) {
    auto gz = read_file(fixtures_dir() / (std::to_string(r) + "_block.msgp.gz"));
    BlockData block = BlockData::decode_msgpack(plugins::gzip_decompress(gz, 1 << 30));
    filter->process(block, {});
    // The result is a well-formed block.
    EXPECT_EQ(BlockData::decode_msgpack(block.encode_msgpack()).txn_count(), block.txn_count());
    counts.push_back(block.txn_count());
  }
  return counts;
}

std::string filters(const std::string& op, const std::string& expressions) {
  return "[[processors.config.filters]]\n" + op + " = [" + expressions + "]\n";
}

std::string expr(const std::string& tag, const std::string& type, const std::string& value) {
  return "{ tag = \"" + tag + "\", expression-type = \"" + type + "\", expression = " + value +
         " }";
}

}  // namespace

TEST(FilterProcessor, PerRoundCountsMatchTheFixtures) {
  CONDUIT_REQUIRE_FIXTURES();
  const std::string pay = expr("txn.type", "equal", "\"pay\"");
  struct Case {
    const char* name;
    std::string config;
    Counts expected;
  };
  const std::vector<Case> cases = {
      {"pay only",
       "omit-group-transactions = true\n" + filters("any", pay),
       {0, 47, 27, 28, 27, 24, 30, 25, 24, 33}},
      {"pay with whole groups",
       "omit-group-transactions = false\n" + filters("any", pay),
       {0, 66, 40, 41, 40, 40, 44, 42, 38, 45}},
      {"pay, inner too",
       "search-inner = true\nomit-group-transactions = true\n" + filters("any", pay),
       {0, 47, 40, 41, 40, 39, 44, 42, 38, 45}},
      {"none pay",
       "omit-group-transactions = true\n" + filters("none", pay),
       {0, 53, 49, 46, 48, 46, 42, 41, 48, 46}},
      {"regex ^a",
       "omit-group-transactions = true\n" + filters("any", expr("txn.type", "regex", "\"^a\"")),
       {0, 53, 49, 46, 48, 46, 42, 41, 48, 46}},
      {"all pay and amt >= 1e6",
       "omit-group-transactions = true\n" +
           filters("all", pay + ", " + expr("txn.amt", "greater-than-equal", "1000000")),
       {0, 20, 14, 13, 13, 16, 14, 18, 14, 12}},
      {"two entries combine with AND",
       "omit-group-transactions = true\n" + filters("any", pay) +
           filters("any", expr("txn.amt", "greater-than-equal", "\"1000000\"")),
       {0, 20, 14, 13, 13, 16, 14, 18, 14, 12}},
      {"fee > 1000",
       "omit-group-transactions = true\n" + filters("any", expr("txn.fee", "greater-than", "1000")),
       {0, 0, 13, 13, 13, 15, 14, 17, 14, 12}},
      {"axfer (never grouped here)",
       filters("any", expr("txn.type", "equal", "\"axfer\"")),
       {0, 0, 15, 13, 16, 18, 7, 12, 15, 20}},
      {"no filters", "", {0, 100, 76, 74, 75, 70, 72, 66, 72, 79}},
  };
  for (const auto& c : cases) EXPECT_EQ(run_filter(c.config), c.expected) << c.name;
}

TEST(FilterProcessor, ConfigErrorsNameTheFilterAndTheirLocation) {
  const std::string ok = expr("txn.type", "equal", "\"pay\"");
  const std::vector<std::pair<std::string, std::string>> bad = {
      // Go's texts (filter_processor.go, expression.go, generated_signed_txn_map.go).
      {"[[processors.config.filters]]\nany = [" + ok + "]\nall = [" + ok + "]\n",
       "illegal filter tag formation"},
      {"[[processors.config.filters]]\n", "illegal filter tag formation"},
      {filters("any", expr("txn.nope", "equal", "\"x\"")), "unknown tag: txn.nope"},
      {filters("any", expr("txn.type", "like", "\"x\"")),
       "could not make expression: expression type (like) is not supported"},
      {filters("any", expr("txn.fee", "regex", "\"1.*\"")),
       "could not make expression: target type (numeric) does not support regex filters"},
      {filters("any", expr("txn.type", "not-equal", "\"pay\"")),
       "could not make expression: target type (string) does not support not-equal filters"},
      {filters("any", expr("txn.type", "less-than", "\"pay\"")), "does not support less-than"},
      {filters("any", expr("txn.fee", "equal", "\"abc\"")),
       "could not make expression: search string \"abc\" is not a valid uint64"},
      {filters("any", expr("txn.fee", "equal", "-1")), "not a valid uint64"},
      {filters("any", expr("txn.fee", "equal", "1.5")), "not a valid uint64"},
      {filters("any", expr("txn.snd", "equal", "\"NOTANADDRESS\"")),
       "not a valid Algorand address"},
      {filters("any", expr("txn.note", "regex", "\"(\"")),
       "could not make expression: error parsing regexp: missing ): ("},
      {filters("any", "{ tag = \"txn.type\", expression-type = \"equal\" }"),
       "'expression' is required"},
      {filters("any",
               "{ tag = \"txn.type\", expression-type = \"equal\", expression = \"pay\", x = 1 }"),
       "x"},
      {"search-inner = \"yes\"\n", "search-inner"},
  };
  for (const auto& [config, needle] : bad) {
    try {
      make_filter(config);
      ADD_FAILURE() << "accepted:\n" << config;
    } catch (const ConfigError& e) {
      std::string what = e.what();
      // file:line:col, then the filter's position in the list.
      EXPECT_NE(what.find("conduit.toml:"), std::string::npos) << what;
      EXPECT_NE(what.find(needle), std::string::npos) << "want '" << needle << "' in: " << what;
    }
  }
}

TEST(FilterProcessor, AddressAndBytesTagsCompareAsGoFormatsThem) {
  CONDUIT_REQUIRE_FIXTURES();
  auto gz = read_file(fixtures_dir() / "2_block.msgp.gz");
  BlockData block = BlockData::decode_msgpack(plugins::gzip_decompress(gz, 1 << 30));
  FieldView first = block.payset_entry(0);
  std::string sender = algorand::encode_address(*txn_of(first)["snd"].as_bytes());
  size_t same_sender = 0;
  for (size_t i = 0; i < block.txn_count(); ++i)
    same_sender +=
        txn_of(block.payset_entry(i))["snd"].as_bytes() == txn_of(first)["snd"].as_bytes();
  auto filter = make_filter("omit-group-transactions = true\n" +
                            filters("any", expr("txn.snd", "equal", "\"" + sender + "\"")));
  BlockData copy = block.clone();
  filter->process(copy, {});
  EXPECT_EQ(copy.txn_count(), same_sender);
  EXPECT_GT(same_sender, 0u);

  // An absent group reads as 32 zero bytes, base64, as Go's Digest does.
  auto ungrouped = make_filter(
      "omit-group-transactions = true\n" +
      filters("any", expr("txn.grp", "equal", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"")));
  BlockData copy2 = block.clone();
  ungrouped->process(copy2, {});
  size_t expected = 0;
  for (size_t i = 0; i < block.txn_count(); ++i) expected += !group_id(block.payset_entry(i));
  EXPECT_EQ(copy2.txn_count(), expected);
}

// Go Conduit's Filter_tags.md, vendored as tests/data/go-conduit/filter_tags.txt:
// the same set, no more, no less.
TEST(FilterProcessor, TagTableIsGoConduitsFilterTags) {
  const char* root = std::getenv("CONDUIT_SOURCE_ROOT");
  ASSERT_NE(root, nullptr);
  std::istringstream list(
      read_file(std::filesystem::path(root) / "tests/data/go-conduit/filter_tags.txt"));
  std::set<std::string> go_tags;
  for (std::string line; std::getline(list, line);)
    if (!line.empty() && line[0] != '#') go_tags.insert(line);
  ASSERT_GT(go_tags.size(), 60u);
  std::set<std::string> ours;
  for (auto tag : plugins::filter_processor_tags()) ours.emplace(tag);
  EXPECT_EQ(ours, go_tags);
  for (const auto& tag : go_tags) {
    // Every tag makes a filter (numbers with equal, strings with regex).
    try {
      make_filter(filters("any", expr(tag, "equal", "0")));
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("is not a valid"), std::string::npos)
          << tag << ": " << e.what();
      EXPECT_NO_THROW(make_filter(filters("any", expr(tag, "regex", "\"x\"")))) << tag;
    }
  }
}

namespace {

// The number of fixture transactions, per round, whose type matches.
Counts regex_counts(const std::string& regex) {
  return run_filter("omit-group-transactions = true\n" +
                    filters("any", expr("txn.type", "regex", regex)));
}

}  // namespace

// Go's regexp dialect (RE2): what Go accepts matches as in Go; what Go
// refuses is refused.
TEST(FilterProcessor, RegexesUseGosDialect) {
  CONDUIT_REQUIRE_FIXTURES();
  const Counts pay = {0, 47, 27, 28, 27, 24, 30, 25, 24, 33};
  const Counts all = {0, 100, 76, 74, 75, 70, 72, 66, 72, 79};
  const Counts none(10, 0);
  EXPECT_EQ(regex_counts(R"re("(?i)PAY")re"), pay);
  EXPECT_EQ(regex_counts(R"re("(?P<kind>pay)")re"), pay);
  EXPECT_EQ(regex_counts(R"re("(?<kind>pay)")re"), pay);  // Go 1.22's spelling
  EXPECT_EQ(regex_counts(R"re('[(?<k]pay')re"), none);    // a class, not a group
  EXPECT_EQ(regex_counts(R"re('\Apay\z')re"), pay);
  EXPECT_EQ(regex_counts(R"re('^\pL+$')re"), all);
  EXPECT_EQ(regex_counts(R"re('\PL')re"), none);
  EXPECT_EQ(regex_counts(R"re("PAY")re"), none);  // case-sensitive without (?i)
  for (const char* refused :
       {R"re('(p)\1')re", R"re("pay(?=x)")re", R"re("(?!pay)")re", R"re("(?<=p)ay")re"}) {
    try {
      make_filter(filters("any", expr("txn.type", "regex", refused)));
      ADD_FAILURE() << "accepted " << refused;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("error parsing regexp"), std::string::npos) << e.what();
    }
  }
}

// A field std::regex could not search (its recursion overflowed the stack on
// long inputs): RE2 matches in linear time.
TEST(FilterProcessor, HostileFieldsAndPatternsAreMatchedSafely) {
  std::string long_name(1 << 20, 'a');
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> p(buffer);
  pack_round_one_block_head(p, 2);
  for (const std::string& gen : {long_name, std::string("short")}) {
    p.pack_map(1);
    p.pack("txn");
    p.pack_map(2);
    p.pack("type");
    p.pack("pay");
    p.pack("gen");
    p.pack(gen);
  }
  BlockData block = BlockData::decode_msgpack({buffer.data(), buffer.size()});
  auto filter = make_filter(filters("any", expr("txn.gen", "regex", R"re("^(a|aa)*$")re")));
  filter->process(block, {});
  ASSERT_EQ(block.txn_count(), 1u);
  EXPECT_EQ(std::string(*txn_of(block.payset_entry(0))["gen"].as_bytes()), long_name);
  BlockData again = BlockData::decode_msgpack({buffer.data(), buffer.size()});
  make_filter(filters("any", expr("txn.gen", "regex", R"re("(a*)*b")re")))->process(again, {});
  EXPECT_EQ(again.txn_count(), 0u);
}

// Tags Go has and conduit once refused: their values are read from the block.
TEST(FilterProcessor, NewerGoTagsFilterOnTheirFields) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> p(buffer);
  pack_round_one_block_head(p, 2);
  for (uint64_t v : {2, 3}) {
    p.pack_map(2);
    p.pack("lsig");
    p.pack_map(1);
    p.pack("lmsig");
    p.pack_map(2);
    p.pack("thr");
    p.pack(v);
    p.pack("v");
    p.pack(v - 1);
    p.pack("txn");
    p.pack_map(2);
    p.pack("type");
    p.pack("appl");
    p.pack("aprv");
    p.pack(v * 10);
  }
  auto count = [&](const std::string& tag, const std::string& op, const std::string& value) {
    BlockData block = BlockData::decode_msgpack({buffer.data(), buffer.size()});
    make_filter("omit-group-transactions = true\n" + filters("any", expr(tag, op, value)))
        ->process(block, {});
    return block.txn_count();
  };
  EXPECT_EQ(count("txn.aprv", "equal", "30"), 1u);
  EXPECT_EQ(count("txn.aprv", "greater-than", "5"), 2u);
  EXPECT_EQ(count("lsig.lmsig.thr", "equal", "2"), 1u);
  EXPECT_EQ(count("lsig.lmsig.v", "less-than-equal", "2"), 2u);
  EXPECT_EQ(count("lsig.lmsig.v", "equal", "0"), 0u);
}

// A `now` stop reaches a filter while it evaluates: thousands of regexes in one
// `any` over a multi-megabyte note are not run to the end once the stop token
// fires. The stop is requested from another thread after the first expression
// has been evaluated; the filter must notice it before the next one.
TEST(FilterProcessor, StopInterruptsAnEvaluationBetweenExpressions) {
  constexpr size_t kExpressions = 2000;
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> p(buffer);
  pack_round_one_block_head(p, 1);
  std::string note(4 << 20, 'n');
  p.pack_map(1);
  p.pack("txn");
  p.pack_map(2);
  p.pack("type");
  p.pack("pay");
  p.pack("note");
  p.pack_bin(static_cast<uint32_t>(note.size()));
  p.pack_bin_body(note.data(), static_cast<uint32_t>(note.size()));
  BlockData block = BlockData::decode_msgpack({buffer.data(), buffer.size()});
  std::string expressions;
  for (size_t i = 0; i < kExpressions; ++i)  // '!' is no base64 character: nothing matches
    expressions += (i ? ", " : "") + expr("txn.note", "regex", "\"x" + std::to_string(i) + "!\"");
  auto filter = make_filter(filters("any", expressions));

  std::stop_source stop;
  std::mutex mutex;
  std::condition_variable changed;
  bool started = false;
  bool requested = false;
  size_t evaluated = 0;
  std::thread stopper([&] {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return started; });
    stop.request_stop();
    requested = true;
    changed.notify_all();
  });
  plugins::set_filter_evaluation_hook([&](size_t count) {
    evaluated = count;
    if (count != 1) return;
    std::unique_lock lock(mutex);
    started = true;
    changed.notify_all();
    changed.wait(lock, [&] { return requested; });
  });
  bool cancelled = false;
  try {
    filter->process(block, stop.get_token());
  } catch (const Cancelled&) {
    cancelled = true;
  }
  plugins::set_filter_evaluation_hook({});
  {
    std::lock_guard lock(mutex);
    started = true;  // lets the stopper go if the hook never ran
  }
  changed.notify_all();
  stopper.join();
  EXPECT_TRUE(cancelled) << "process() ran to the end after the stop";
  EXPECT_EQ(evaluated, 1u) << "expressions evaluated after the stop";
  EXPECT_EQ(block.txn_count(), 1u);  // a cancelled process() leaves the block as it was
}

// Go Conduit leaves the post-quantum signature fields out of its tag table
// (gen/generate.go's ignoreTags), so its filter_processor refuses them as
// unknown tags when it starts; so does conduit.
TEST(FilterProcessor, PqsigTagsAreUnknownAsInGoConduit) {
  for (const char* tag : {"pqsig", "pqsig.sch", "pqsig.slt", "pqsig.pk", "pqsig.sig", "lsig.pqsig",
                          "lsig.pqsig.sch", "lsig.pqsig.slt", "lsig.pqsig.pk", "lsig.pqsig.sig"}) {
    try {
      make_filter(filters("any", expr(tag, "equal", "0")));
      ADD_FAILURE() << tag << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("unknown tag: ") + tag), std::string::npos)
          << e.what();
    }
  }
}

// A v42 block through the filter: PQ-signed transactions, top-level, inner and
// logic-signature ones, are matched on their other fields and kept whole.
TEST(FilterProcessor, PqSignedTransactionsAreFilteredAndKeptWhole) {
  const std::string bytes = v42::block_msgpack();
  auto run = [&](const std::string& config) {
    BlockData block = BlockData::decode_msgpack(bytes);
    make_filter(config)->process(block, {});
    return BlockData::decode_msgpack(block.encode_msgpack());
  };
  auto snd = [](int account) {
    return expr("txn.snd", "equal", "\"" + algorand::encode_address(v42::address(account)) + "\"");
  };
  BlockData pq = run(filters("any", snd(v42::pq_sender)));
  ASSERT_EQ(pq.txn_count(), 2u);
  EXPECT_EQ(pq.payset_entry(0).path("pqsig.pk").as_bytes(), v42::public_key(1));
  EXPECT_EQ(pq.payset_entry(0).path("pqsig.slt").as_uint(), v42::kSalt);
  EXPECT_EQ(pq.payset_entry(1).path("pqsig.sig").as_bytes(), v42::signature(3));
  EXPECT_EQ(pq.payset_entry(1)["dt"]["itx"].at(0).path("pqsig.sig").as_bytes(), v42::signature(4));
  EXPECT_EQ(pq.header()["ld"].as_uint(), v42::kLoad);

  BlockData lsig = run(filters("any", snd(v42::lsig_sender)));
  ASSERT_EQ(lsig.txn_count(), 1u);
  EXPECT_EQ(lsig.payset_entry(0).path("lsig.pqsig.pk").as_bytes(), v42::public_key(2));
  EXPECT_EQ(lsig.payset_entry(0).path("lsig.pqsig.sch").as_bytes(), v42::kScheme);
  EXPECT_FALSE(lsig.payset_entry(0).path("lsig.pqsig.slt").present());

  // The inner payment's sender is found with search-inner; its root is kept.
  EXPECT_EQ(run(filters("any", snd(v42::app_account))).txn_count(), 0u);
  BlockData inner = run("search-inner = true\n" + filters("any", snd(v42::app_account)));
  ASSERT_EQ(inner.txn_count(), 1u);
  EXPECT_EQ(inner.payset_entry(0)["txn"]["type"].as_string(), "appl");
  // Nothing filtered out: the block's bytes are unchanged.
  EXPECT_EQ(run(filters("none", expr("txn.type", "equal", "\"keyreg\""))).encode_msgpack(), bytes);
}
