// The `algod` importer against a fake algod (a real HTTP server on 127.0.0.1
// speaking algod's API shape, serving the conduit-blocks fixtures). Stops are
// triggered when the server has seen the request the importer must be blocked
// in; the server never answers that request, so a run that ends proves the
// stop woke the importer (no timeout could have).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <thread>

#include "../service/service_support.hpp"
#include "core/block_msgpack.hpp"
#include "core/pipeline.hpp"
#include "fake_algod.hpp"
#include "plugins/algod/algod.hpp"
#include "plugins/builtin.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;

namespace {

constexpr const char* kToken = "s3cret-algod-token";
constexpr uint64_t kRounds = 10;

// What the capture exporter received, in order.
struct Captured {
  std::mutex mutex;
  std::vector<std::string> blocks;
  std::vector<uint64_t> rounds;
};
Captured* g_captured = nullptr;

class CaptureExporter final : public Exporter {
 public:
  void configure(PluginConfig&) override {}
  void init(const InitContext&, std::stop_token) override {}
  void receive(const BlockData& block, std::stop_token) override {
    std::lock_guard lock(g_captured->mutex);
    g_captured->blocks.push_back(block.encode_msgpack());
    g_captured->rounds.push_back(block.round());
  }
  void close() override {}
};

Registry algod_registry() {
  Registry registry = builtin_registry();
  registry.add_exporter({"capture", "test: keeps every block", "", false},
                        [] { return std::make_unique<CaptureExporter>(); });
  return registry;
}

std::string importer_config(const std::string& address, const std::string& mode,
                            const std::string& token = kToken, const std::string& extra = "") {
  return "[importer]\nname = \"algod\"\n[importer.config]\nmode = \"" + mode + "\"\nnetaddr = \"" +
         address + "\"\ntoken = \"" + token + "\"\n" + extra;
}

// The BlockData the importer must produce for fixture round `round`, built from
// the fixture directly: keys block, cert, delta, payset (sorted), empty ones left out.
std::string expected_block(uint64_t round, bool keep_delta, bool with_cert) {
  std::string bytes = gunzip_file(fixtures_dir() / (std::to_string(round) + "_block.msgp.gz"));
  BlockData block = BlockData::decode_msgpack(bytes);
  const auto& root = block.tree().root;
  const auto* delta = keep_delta ? mp::find(root, "delta") : nullptr;
  const auto* payset = mp::find(root, "payset");
  msgpack::sbuffer out;
  msgpack::packer packer(out);
  packer.pack_map(1 + with_cert + (delta != nullptr) + (payset != nullptr));
  packer.pack("block");
  packer.pack(*mp::find(root, "block"));
  if (with_cert) {
    packer.pack("cert");
    packer.pack_map(2);
    packer.pack("rnd");
    packer.pack(round);
    packer.pack("step");
    packer.pack(2);
  }
  if (delta) {
    packer.pack("delta");
    packer.pack(*delta);
  }
  if (payset) {
    packer.pack("payset");
    packer.pack(*payset);
  }
  return BlockData::decode_msgpack({out.data(), out.size()}).encode_msgpack();
}

std::vector<uint64_t> iota(uint64_t from, uint64_t to) {
  std::vector<uint64_t> v;
  for (uint64_t r = from; r < to; ++r) v.push_back(r);
  return v;
}

class AlgodTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CONDUIT_REQUIRE_FIXTURES();
    g_captured = &captured_;
  }
  void TearDown() override { g_captured = nullptr; }

  std::unique_ptr<Pipeline> make(const std::string& mode, bool with_cert = false) {
    server_.load_fixtures(fixtures_dir(), kRounds, with_cert);
    write_text(dir_ / "conduit.toml",
               "retry-count = 5\nretry-delay = \"1ms\"\n" +
                   importer_config(server_.address(), mode) +
                   "[[processors]]\nname = \"noop\"\n[exporter]\nname = \"capture\"\n");
    Config config = load_config(dir_.path());
    auto plugins = build_plugins(registry_, config);
    PipelineOptions options;
    options.data_dir = dir_.path();
    options.retry_count = config.retry_count;
    options.retry_delay = config.retry_delay;
    return std::make_unique<Pipeline>(std::move(plugins), options, logger_);
  }

  // Runs `pipeline`, stopping it (`mode`) once a request for `path` reached the server.
  StopCause run_and_stop_at(Pipeline& pipeline, const std::string& path, StopMode mode) {
    std::jthread stopper([&](std::stop_token stop) {
      if (server_.wait_for_request(path, stop) >= 0) pipeline.stop(mode, "test");
    });
    return pipeline.run();
  }

  // True when a request for `path` arrived and was never answered.
  bool pending(const std::string& path) const {
    for (const auto& r : server_.requests())
      if (r.path == path) return !r.answered;
    return false;
  }

  size_t count(const std::string& method, const std::string& prefix) const {
    size_t n = 0;
    for (const auto& r : server_.requests())
      if (r.method == method && r.path.rfind(prefix, 0) == 0) ++n;
    return n;
  }

  std::vector<uint64_t> exported() {
    std::lock_guard lock(captured_.mutex);
    return captured_.rounds;
  }

  Captured captured_;
  FakeAlgod server_{kToken};
  TempDir dir_;
  Registry registry_ = algod_registry();
  Logger logger_{nullptr, LogLevel::error};
};

}  // namespace

TEST_F(AlgodTest, FollowerRunsRoundsInOrderAndEndOfRoundStopWakesTheLongPoll) {
  auto pipeline = make("follower");
  StopCause cause =
      run_and_stop_at(*pipeline, "/v2/status/wait-for-block-after/9", StopMode::end_of_round);
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  // The long-poll for round 10 was never answered: the stop ended the wait.
  EXPECT_TRUE(pending("/v2/status/wait-for-block-after/9"));
  // End-of-round: every delivered round is exported, byte for byte the fixture.
  ASSERT_EQ(exported(), iota(0, kRounds));
  for (uint64_t r = 0; r < kRounds; ++r)
    EXPECT_EQ(captured_.blocks[r], expected_block(r, true, false)) << "round " << r;
  EXPECT_EQ(checkpoint_round(dir_.path()), kRounds);
  // The sync round follows the rounds asked for, in order (init sets the first).
  EXPECT_EQ(server_.sync_rounds(), iota(0, kRounds + 1));
  EXPECT_EQ(count("GET", "/v2/ledger/sync"), 1u);  // read once at start-up, for the log
  EXPECT_EQ(count("GET", "/v2/deltas/0"), 0u);     // genesis has no delta
  EXPECT_EQ(count("GET", "/v2/deltas/"), kRounds - 1);
  // Metadata carries the genesis the node reported.
  auto metadata = read_text(dir_ / "metadata.json");
  EXPECT_NE(metadata.find(server_.genesis_hash()), std::string::npos);
  EXPECT_NE(metadata.find("generated-network"), std::string::npos);
}

TEST_F(AlgodTest, ArchivalKeepsCertificateAndNowStopWakesTheLongPoll) {
  auto pipeline = make("archival", /*with_cert=*/true);
  StopCause cause = run_and_stop_at(*pipeline, "/v2/status/wait-for-block-after/9", StopMode::now);
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  EXPECT_TRUE(pending("/v2/status/wait-for-block-after/9"));
  // `now` may abandon delivered rounds: what was exported is a prefix, exact.
  auto rounds = exported();
  EXPECT_EQ(rounds, iota(0, rounds.size()));
  for (uint64_t r = 0; r < rounds.size(); ++r)
    EXPECT_EQ(captured_.blocks[r], expected_block(r, false, true)) << "round " << r;
  EXPECT_EQ(checkpoint_round(dir_.path()), rounds.size());
  // Init checks the node has the first round (Go's needsCatchup), then each round.
  EXPECT_EQ(count("GET", "/v2/blocks/"), kRounds + 1);
  EXPECT_EQ(count("GET", "/v2/deltas/"), 0u);
  EXPECT_EQ(count("POST", "/v2/ledger/sync/"), 0u);
}

TEST_F(AlgodTest, ServerErrorsAndCutResponsesAreRetried) {
  server_.inject("/v2/blocks/3", FakeAlgod::Fault::http_500, 2);
  server_.inject("/v2/blocks/5", FakeAlgod::Fault::cut);
  server_.inject("/v2/deltas/7", FakeAlgod::Fault::cut);
  auto pipeline = make("follower");
  StopCause cause =
      run_and_stop_at(*pipeline, "/v2/status/wait-for-block-after/9", StopMode::end_of_round);
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  ASSERT_EQ(exported(), iota(0, kRounds));
  for (uint64_t r = 0; r < kRounds; ++r)
    EXPECT_EQ(captured_.blocks[r], expected_block(r, true, false)) << "round " << r;
  EXPECT_EQ(count("GET", "/v2/blocks/3"), 3u);  // 500, 500, then the block
  EXPECT_EQ(count("GET", "/v2/blocks/5"), 2u);  // cut, then whole
  EXPECT_EQ(count("GET", "/v2/deltas/7"), 2u);
  // A retried round does not move the sync round twice.
  EXPECT_EQ(server_.sync_rounds(), iota(0, kRounds + 1));
}

TEST_F(AlgodTest, NowStopWakesAHangingBlockTransfer) {
  server_.inject("/v2/blocks/5", FakeAlgod::Fault::hang);
  auto pipeline = make("archival");
  StopCause cause = run_and_stop_at(*pipeline, "/v2/blocks/5", StopMode::now);
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  EXPECT_TRUE(pending("/v2/blocks/5"));
  auto rounds = exported();
  EXPECT_LE(rounds.size(), 5u);
  EXPECT_EQ(rounds, iota(0, rounds.size()));
  EXPECT_EQ(checkpoint_round(dir_.path()), rounds.size());
}

TEST_F(AlgodTest, EndOfRoundStopCancelsAHangingFetchAndDrainsTheRest) {
  server_.inject("/v2/blocks/5", FakeAlgod::Fault::hang);
  auto pipeline = make("follower");
  StopCause cause = run_and_stop_at(*pipeline, "/v2/blocks/5", StopMode::end_of_round);
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  EXPECT_TRUE(pending("/v2/blocks/5"));
  EXPECT_EQ(exported(), iota(0, 5));
  EXPECT_EQ(checkpoint_round(dir_.path()), 5u);
}

TEST_F(AlgodTest, FatalErrorsStopThePipeline) {
  server_.inject("/v2/blocks/4", FakeAlgod::Fault::wrong_round);
  auto pipeline = make("archival");
  StopCause cause = pipeline->run();
  EXPECT_EQ(cause.reason, StopReason::importer_error);
  EXPECT_NE(cause.detail.find("returned round 5 when asked for round 4"), std::string::npos)
      << cause.detail;
  EXPECT_EQ(count("GET", "/v2/blocks/4"), 1u);  // not retried
  // A failure stops like `now`: delivered rounds may be abandoned.
  auto rounds = exported();
  EXPECT_LE(rounds.size(), 4u);
  EXPECT_EQ(rounds, iota(0, rounds.size()));
}

// algod unreachable or failing at start (a node restarting): init is retried
// under retry-count like any round, and then every round is exported.
TEST_F(AlgodTest, InitFailuresAreRetriedUnderRetryCount) {
  server_.inject("/genesis", FakeAlgod::Fault::http_500, 3);
  server_.inject("/v2/status", FakeAlgod::Fault::cut, 1);
  auto pipeline = make("follower");
  StopCause cause =
      run_and_stop_at(*pipeline, "/v2/status/wait-for-block-after/9", StopMode::end_of_round);
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  EXPECT_EQ(exported(), iota(0, kRounds));
  EXPECT_EQ(count("GET", "/genesis"), 5u);  // 3 failed, 1 before the cut status, 1 good
}

// retry-count = 5: the sixth failure at start gives up, importer-error (exit 1).
TEST_F(AlgodTest, InitGivesUpAfterRetryCount) {
  server_.inject("/genesis", FakeAlgod::Fault::http_500, 6);
  auto pipeline = make("follower");
  StopCause cause = pipeline->run();
  EXPECT_EQ(cause.reason, StopReason::importer_error);
  EXPECT_EQ(cause.exit_code(), 1);
  EXPECT_NE(cause.detail.find("gave up after 6 attempts"), std::string::npos) << cause.detail;
  EXPECT_EQ(count("GET", "/genesis"), 6u);
  EXPECT_TRUE(exported().empty());
}

// ---------------------------------------------------------------------------
// The importer on its own: error classes, messages, Cancelled.

namespace {

class AlgodImporterTest : public ::testing::Test {
 protected:
  std::unique_ptr<Importer> importer(const std::string& address, const std::string& mode,
                                     const std::string& token = kToken,
                                     const std::string& extra = "") {
    Config config =
        parse_config(importer_config(address, mode, token, extra) + "[exporter]\nname = \"noop\"\n",
                     "/tmp", "conduit.toml");
    return std::move(build_plugins(builtin_registry(), config).importer);
  }

  // The PluginError `call` throws.
  template <class F>
  PluginError error_of(F&& call) {
    try {
      call();
    } catch (const PluginError& e) {
      return e;
    }
    ADD_FAILURE() << "no PluginError";
    return PluginError("", false);
  }

  InitContext context(uint64_t next_round = 0) {
    return InitContext{.data_dir = dir_.path(), .next_round = next_round, .logger = &logger_};
  }

  TempDir dir_;
  Logger logger_{nullptr, LogLevel::error};
};

}  // namespace

TEST_F(AlgodImporterTest, ConnectionRefusedIsRetryableAndNamesTheUrl) {
  // A bound socket that does not listen: connections to it are refused.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::string address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));  // no scheme: http

  auto algod = importer(address, "archival");
  auto e = error_of([&] { algod->init(context(), {}); });
  close(fd);
  EXPECT_TRUE(e.retryable());
  EXPECT_NE(std::string(e.what()).find("http://" + address + "/genesis"), std::string::npos)
      << e.what();
  EXPECT_EQ(std::string(e.what()).find(kToken), std::string::npos);
  algod->close();
}

TEST_F(AlgodImporterTest, WrongTokenIsFatalAndNeverLogged) {
  FakeAlgod server(kToken);
  auto algod = importer(server.address(), "archival", "wrong-token");
  auto e = error_of([&] { algod->init(context(), {}); });
  EXPECT_FALSE(e.retryable());
  std::string message = e.what();
  EXPECT_NE(message.find("HTTP 401"), std::string::npos) << message;
  EXPECT_NE(message.find("token"), std::string::npos);
  EXPECT_EQ(message.find("wrong-token"), std::string::npos);
  EXPECT_EQ(message.find(kToken), std::string::npos);
  algod->close();
}

TEST_F(AlgodImporterTest, ErrorClassesForBlockFetches) {
  CONDUIT_REQUIRE_FIXTURES();
  FakeAlgod server(kToken);
  server.load_fixtures(fixtures_dir(), 4, false);
  auto algod = importer(server.address(), "follower");
  Genesis genesis = algod->init(context(1), {});
  EXPECT_EQ(genesis.network, "generated-network");
  EXPECT_EQ(genesis.id, "v1");
  EXPECT_EQ(genesis.hash, server.genesis_hash());
  EXPECT_NE(genesis.json.find("\"alloc\""), std::string::npos);

  server.inject("/v2/blocks/1", FakeAlgod::Fault::http_500);
  auto e = error_of([&] { algod->get_block(1, {}); });
  EXPECT_TRUE(e.retryable());
  EXPECT_NE(std::string(e.what()).find("round 1"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find(server.address() + "/v2/blocks/1"), std::string::npos);
  EXPECT_EQ(algod->get_block(1, {}).round(), 1u);  // recovered

  server.inject("/v2/blocks/2", FakeAlgod::Fault::not_a_block);
  e = error_of([&] { algod->get_block(2, {}); });
  EXPECT_FALSE(e.retryable());
  EXPECT_NE(std::string(e.what()).find("did not return a block"), std::string::npos) << e.what();

  server.inject("/v2/deltas/2", FakeAlgod::Fault::http_404);
  e = error_of([&] { algod->get_block(2, {}); });
  EXPECT_FALSE(e.retryable());
  EXPECT_NE(std::string(e.what()).find("/v2/deltas/2"), std::string::npos) << e.what();

  server.inject("/v2/blocks/3", FakeAlgod::Fault::cut);
  e = error_of([&] { algod->get_block(3, {}); });
  EXPECT_TRUE(e.retryable());
  EXPECT_NE(std::string(e.what()).find("round 3"), std::string::npos) << e.what();

  for (const auto& r : server.requests()) EXPECT_TRUE(r.answered) << r.path;
  algod->close();
}

// A 16 MiB body of msgpack zeros needs 384 MiB decoded (a 40 MiB one drove
// RSS to 2 GB): refused under the default max-block-memory before unpacking.
TEST_F(AlgodImporterTest, ABlockWhoseDecodedFormPassesMaxBlockMemoryIsRefused) {
  FakeAlgod server(kToken);
  server.add_round(1, AlgodRound{msgpack_block_of_zeros(1, 16 << 20), std::nullopt});
  server.set_last_round(1);
  auto algod = importer(server.address(), "archival");
  algod->init(context(1), {});
  auto e = error_of([&] { algod->get_block(1, {}); });
  EXPECT_FALSE(e.retryable());
  std::string message = e.what();
  EXPECT_NE(message.find("round 1"), std::string::npos) << message;
  EXPECT_NE(message.find("max-block-memory = 268435456"), std::string::npos) << message;
  algod->close();

  // The bound is configurable, and counts the state delta too.
  CONDUIT_REQUIRE_FIXTURES();
  FakeAlgod fixtures(kToken);
  fixtures.load_fixtures(fixtures_dir(), 3, false);
  auto strict = importer(fixtures.address(), "follower", kToken, "max-block-memory = 100000\n");
  strict->init(context(1), {});
  e = error_of([&] { strict->get_block(1, {}); });
  EXPECT_FALSE(e.retryable());
  EXPECT_NE(std::string(e.what()).find("max-block-memory = 100000"), std::string::npos) << e.what();
  strict->close();
}

TEST_F(AlgodImporterTest, StopDuringLongPollThrowsCancelled) {
  FakeAlgod server(kToken);
  server.set_last_round(3);
  auto algod = importer(server.address(), "archival");
  algod->init(context(4), {});
  std::stop_source stop;
  std::jthread stopper([&](std::stop_token done) {
    if (server.wait_for_request("/v2/status/wait-for-block-after/3", done) >= 0)
      stop.request_stop();
  });
  EXPECT_THROW(algod->get_block(4, stop.get_token()), Cancelled);
  stopper.join();
  auto requests = server.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests.back().path, "/v2/status/wait-for-block-after/3");
  EXPECT_FALSE(requests.back().answered);
  algod->close();
}

TEST_F(AlgodImporterTest, ConfigurationIsValidated) {
  auto rejects = [&](const std::string& mode, const std::string& extra, const std::string& what) {
    try {
      importer("http://127.0.0.1:1", mode, kToken, extra);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("conduit.toml:"), std::string::npos) << e.what();
    }
  };
  rejects("snapshot", "", "mode");
  rejects("follower", "[importer.config.catchup-config]\ncatchpoint = \"nonsense\"\n",
          "catchpoint");
  rejects("follower", "[importer.config.catchup-config]\nadmin = \"x\"\n", "admin");
  rejects("follower", "[importer.config.catchup-config]\npoll-interval = \"0\"\n", "poll-interval");
  rejects("follower", "[importer.config.catchup-config]\ncatchpoint-list-url = \"ftp://x/%s\"\n",
          "catchpoint-list-url");
  // As Go: a catchpoint works in archival mode too.
  EXPECT_NO_THROW(importer("127.0.0.1:8080", "archival", kToken,
                           "[importer.config.catchup-config]\ncatchpoint = "
                           "\"1000#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n"
                           "admin-token = \"admin\"\n"));
  EXPECT_NO_THROW(importer("127.0.0.1:8080", "follower", kToken,
                           "[importer.config.catchup-config]\ncatchpoint = "
                           "\"1000#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n"
                           "admin-token = \"admin\"\n"));
}

TEST(AlgodConversion, RejectsWhatIsNotABlockResponse) {
  EXPECT_THROW(plugins::algod_block_to_block_data("", std::nullopt), BlockDecodeError);
  EXPECT_THROW(plugins::algod_block_to_block_data("\x81\xa3"
                                                  "abc"
                                                  "\x01",
                                                  std::nullopt),
               BlockDecodeError);  // {"abc": 1}: no block
  EXPECT_THROW(plugins::algod_block_to_block_data("\x81\xa5"
                                                  "block"
                                                  "\x81\xa3rnd\x05",
                                                  std::string_view("\x05", 1)),
               BlockDecodeError);  // delta not a map
  auto block = plugins::algod_block_to_block_data(
      "\x81\xa5"
      "block"
      "\x81\xa3rnd\x05",
      std::nullopt);
  EXPECT_EQ(block.round(), 5u);
  EXPECT_EQ(block.txn_count(), 0u);
}

TEST_F(AlgodImporterTest, SampleConfigurationIsAccepted) {
  for (const auto& meta : builtin_registry().list(PluginKind::importer)) {
    if (meta.name != "algod") continue;
    Config config = parse_config("[importer]\nname = \"algod\"\n[importer.config]\n" +
                                     meta.sample_config + "\n[exporter]\nname = \"noop\"\n",
                                 "/tmp", "conduit.toml");
    EXPECT_NO_THROW(build_plugins(builtin_registry(), config));
    return;
  }
  FAIL() << "algod is not registered";
}

namespace {

constexpr const char* kHash = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

std::string catchup_config(const std::string& catchpoint, const std::string& admin_token,
                           const std::string& extra = "") {
  return "[importer.config.catchup-config]\ncatchpoint = \"" + catchpoint + "\"\nadmin-token = \"" +
         admin_token + "\"\npoll-interval = \"1ms\"\n" + extra;
}

// Index of the first request `method path...`, or -1.
int request_index(const FakeAlgod& server, const std::string& method, const std::string& prefix) {
  auto requests = server.requests();
  for (size_t i = 0; i < requests.size(); ++i)
    if (requests[i].method == method && requests[i].path.rfind(prefix, 0) == 0)
      return static_cast<int>(i);
  return -1;
}

}  // namespace

// Go's catchupNode: the node cannot serve the state delta of the round conduit
// needs, so the configured catchpoint is applied through the admin API, the
// sync round set first (Go Conduit issue #95) and again after, progress in the
// log and STATUS=; then rounds flow from there.
TEST_F(AlgodImporterTest, FastCatchupAppliesTheConfiguredCatchpoint) {
  CONDUIT_REQUIRE_FIXTURES();
  FakeAlgod server(kToken);
  server.load_fixtures(fixtures_dir(), kRounds, false);
  server.set_last_round(0);        // a fresh node
  server.round_after_catchup = 9;  // once caught up it follows to the end of the fixtures
  std::string label = std::string("4#") + kHash;
  auto algod =
      importer(server.address(), "follower", kToken, catchup_config(label, server.admin_token));
  std::mutex mutex;
  std::vector<std::string> statuses;
  logger_.set_status_listener([&](std::string_view text) {
    std::lock_guard lock(mutex);
    statuses.emplace_back(text);
  });
  algod->init(context(5), {});
  EXPECT_EQ(server.catchups(), std::vector<std::string>{label});
  int sync = request_index(server, "POST", "/v2/ledger/sync/5");
  int catchup = request_index(server, "POST", "/v2/catchup/4");
  ASSERT_GE(sync, 0);
  ASSERT_GE(catchup, 0);
  EXPECT_LT(sync, catchup) << "the sync round is set before the catchup starts";
  EXPECT_EQ(server.sync_rounds(), (std::vector<uint64_t>{5, 5}));
  {
    std::lock_guard lock(mutex);
    std::string all;
    for (const auto& s : statuses) all += s + "\n";
    for (const char* phase :
         {"starting fast catchup to catchpoint 4#", "processed accounts 400/1000",
          "verified accounts 700/1000", "finished in"})
      EXPECT_NE(all.find(phase), std::string::npos) << phase << " in\n" << all;
  }
  BlockData block = algod->get_block(5, {});
  EXPECT_EQ(block.encode_msgpack(), expected_block(5, true, false));
  logger_.set_status_listener(nullptr);
  algod->close();
}

// Without a catchpoint, the label is looked up in the list Algorand publishes
// for the network: the last one at or before the target round (Go's
// getMissingCatchpointLabel).
TEST_F(AlgodImporterTest, FastCatchupLooksTheCatchpointUp) {
  CONDUIT_REQUIRE_FIXTURES();
  FakeAlgod server(kToken);
  server.load_fixtures(fixtures_dir(), kRounds, false);
  server.set_last_round(0);
  server.round_after_catchup = 9;
  server.catchpoint_network = "generated-network";  // the fixtures' genesis
  server.catchpoint_list = std::string("2#") + kHash + "\n4#" + kHash + "\n8#" + kHash + "\n";
  auto algod = importer(server.address(), "follower", kToken,
                        catchup_config("", server.admin_token,
                                       "catchpoint-list-url = \"" + server.address() +
                                           "/catchpoints/%s_catchpoints.txt\"\n"));
  algod->init(context(6), {});
  EXPECT_EQ(server.catchups(), std::vector<std::string>{std::string("4#") + kHash});
  EXPECT_EQ(algod->get_block(6, {}).round(), 6u);
  algod->close();

  // No usable label (none at or before the round): no catchup, conduit waits.
  FakeAlgod later(kToken);
  later.load_fixtures(fixtures_dir(), kRounds, false);
  later.set_last_round(0);
  later.catchpoint_network = "generated-network";
  later.catchpoint_list = std::string("8#") + kHash + "\n";
  auto waiting = importer(later.address(), "follower", kToken,
                          catchup_config("", later.admin_token,
                                         "catchpoint-list-url = \"" + later.address() +
                                             "/catchpoints/%s_catchpoints.txt\"\n"));
  waiting->init(context(6), {});
  EXPECT_TRUE(later.catchups().empty());
  EXPECT_EQ(later.sync_rounds(), std::vector<uint64_t>{6});
  waiting->close();
}

// As Go: no admin token, no catchup (the node is left to catch up by itself);
// a node already serving the round needs none.
TEST_F(AlgodImporterTest, NoCatchupWithoutAdminTokenOrWhenTheNodeHasTheRound) {
  CONDUIT_REQUIRE_FIXTURES();
  FakeAlgod server(kToken);
  server.load_fixtures(fixtures_dir(), kRounds, false);
  server.set_last_round(0);
  auto algod =
      importer(server.address(), "follower", kToken, catchup_config(std::string("4#") + kHash, ""));
  algod->init(context(5), {});
  EXPECT_TRUE(server.catchups().empty());
  EXPECT_EQ(server.sync_rounds(), std::vector<uint64_t>{5});
  algod->close();

  FakeAlgod ready(kToken);
  ready.load_fixtures(fixtures_dir(), kRounds, false);
  auto fine = importer(ready.address(), "follower", kToken,
                       catchup_config(std::string("4#") + kHash, ready.admin_token));
  fine->init(context(5), {});
  EXPECT_TRUE(ready.catchups().empty());
  fine->close();
}

// Go's checkRounds: a node past the target whose catchpoint is past it too
// cannot be brought back.
TEST_F(AlgodImporterTest, CatchpointPastTheTargetIsAFatalError) {
  CONDUIT_REQUIRE_FIXTURES();
  FakeAlgod server(kToken);
  server.load_fixtures(fixtures_dir(), kRounds, false);       // node at 9
  server.inject("/v2/deltas/5", FakeAlgod::Fault::http_404);  // its delta is gone
  auto algod = importer(server.address(), "follower", kToken,
                        catchup_config(std::string("8#") + kHash, server.admin_token));
  auto e = error_of([&] { algod->init(context(5), {}); });
  EXPECT_FALSE(e.retryable());
  EXPECT_NE(
      std::string(e.what()).find("node round 9 and catchpoint round 8 are ahead of target round 5"),
      std::string::npos)
      << e.what();
  EXPECT_TRUE(server.catchups().empty());
  algod->close();
}

// A wrong admin token: the node's 401, naming the key to check, never the token.
TEST_F(AlgodImporterTest, CatchupWithAWrongAdminTokenNamesTheKey) {
  CONDUIT_REQUIRE_FIXTURES();
  FakeAlgod server(kToken);
  server.load_fixtures(fixtures_dir(), kRounds, false);
  server.set_last_round(0);
  auto algod = importer(server.address(), "follower", kToken,
                        catchup_config(std::string("4#") + kHash, "not-the-admin-token"));
  auto e = error_of([&] { algod->init(context(5), {}); });
  EXPECT_FALSE(e.retryable());
  EXPECT_NE(std::string(e.what()).find("admin-token"), std::string::npos) << e.what();
  EXPECT_EQ(std::string(e.what()).find("not-the-admin-token"), std::string::npos);
  algod->close();
}

// The genesis hash as Go computes it from /genesis (go-algorand-sdk's
// TestEncodeDecodeGenesis: MainNet's genesis.json hashes to wGHE2P...), with
// no request to /v2/transactions/params.
TEST_F(AlgodImporterTest, GenesisHashIsComputedFromTheGenesisDocument) {
  const char* root = std::getenv("CONDUIT_SOURCE_ROOT");
  ASSERT_NE(root, nullptr);
  FakeAlgod server(kToken);
  server.genesis_json =
      read_text(std::filesystem::path(root) / "tests/data/go-algorand-sdk/mainnet_genesis.json");
  auto algod = importer(server.address(), "archival");
  Genesis genesis = algod->init(context(0), {});
  EXPECT_EQ(genesis.hash, "wGHE2Pwdvd7S12BL5FaOP20EGYesN73ktiC1qzkkit8=");
  EXPECT_EQ(genesis.network, "mainnet");
  EXPECT_EQ(request_index(server, "GET", "/v2/transactions/params"), -1);
  algod->close();
}

// Stoppable at every point of a catchup, in both modes: whichever request the
// importer is in (never answered) or the wait between polls, the pipeline
// stops at once with stop-requested and the checkpoint where it was.
TEST_F(AlgodTest, FastCatchupStopsInBothModesAtEveryPoint) {
  struct Point {
    const char* path;  // the request the importer is blocked in when stopped
    bool hang;         // the server never answers it (else: a catchup that never ends)
  };
  const std::vector<Point> points = {{"/v2/deltas/5", true},
                                     {"/v2/ledger/sync/5", true},
                                     {"/v2/catchup/", true},
                                     {"/v2/status", true},
                                     {"/v2/status", false}};
  for (StopMode mode : {StopMode::now, StopMode::end_of_round}) {
    for (const auto& point : points) {
      SCOPED_TRACE(std::string(point.path) + (point.hang ? " (hung)" : " (polling)") +
                   (mode == StopMode::now ? ", now" : ", end-of-round"));
      FakeAlgod server(kToken);
      server.load_fixtures(fixtures_dir(), kRounds, false);
      server.set_last_round(0);
      server.catchup_polls = UINT64_MAX;  // the catchup never ends
      TempDir dir;
      write_text(dir / "conduit.toml",
                 "retry-count = 5\nretry-delay = \"1ms\"\n" +
                     importer_config(server.address(), "follower") +
                     catchup_config(std::string("4#") + kHash, server.admin_token) +
                     "[exporter]\nname = \"capture\"\n");
      // The first /v2/status is init's; the catchup's polls come after the POST.
      bool poll = std::string(point.path) == "/v2/status";
      if (point.hang && !poll) server.inject(point.path, FakeAlgod::Fault::hang);
      Config config = load_config(dir.path());
      auto plugins = build_plugins(registry_, config);
      PipelineOptions options;
      options.data_dir = dir.path();
      options.retry_count = config.retry_count;
      options.retry_delay = config.retry_delay;
      options.next_round_override = 5;
      Pipeline pipeline(std::move(plugins), options, logger_);
      std::jthread stopper([&](std::stop_token stop) {
        int at = -1;
        if (!poll) {
          at = server.wait_for_request(point.path, stop);
        } else {
          int post = server.wait_for_request("/v2/catchup/", stop);
          if (post < 0) return;
          if (point.hang) server.inject("/v2/status", FakeAlgod::Fault::hang);
          at = server.wait_for_request(point.path, stop, static_cast<size_t>(post) + 1);
        }
        if (at >= 0) pipeline.stop(mode, "test");
      });
      StopCause cause = pipeline.run();
      EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
      EXPECT_TRUE(exported().empty());
      EXPECT_FALSE(checkpoint_round(dir.path()).has_value() && *checkpoint_round(dir.path()) != 5u);
      server.release_waiting();
    }
  }
}

// The daemon itself: SIGTERM while the importer waits in a long-poll that is
// never answered exits at once with status 0 and the checkpoint at the round
// it waited for.
// A fast catchup can outlast TimeoutStartSec=: while the daemon starts, every progress
// report goes to systemd with EXTEND_TIMEOUT_USEC, so only an init that stops reporting
// is timed out; READY=1 follows the catchup.
TEST_F(AlgodImporterTest, DaemonExtendsTheStartTimeoutWhileAFastCatchupReportsProgress) {
  CONDUIT_REQUIRE_FIXTURES();
  FakeAlgod server(kToken);
  server.load_fixtures(fixtures_dir(), kRounds, false);
  server.set_last_round(0);  // a fresh node: the delta of round 5 needs a catchup
  server.round_after_catchup = 9;
  write_text(dir_ / "conduit.toml",
             importer_config(server.address(), "follower", kToken,
                             catchup_config(std::string("4#") + kHash, server.admin_token)) +
                 "[exporter]\nname = \"noop\"\n");
  TempDir sockets;
  DatagramSocket notify(sockets / "notify");
  Subprocess daemon({conduit_bin(), "-d", dir_.path().string(), "--bus", "none", "-r", "5"},
                    {"NOTIFY_SOCKET=" + notify.path().string()});
  std::vector<std::string> before_ready;
  for (;;) {
    auto message = notify.receive();
    ASSERT_TRUE(message) << daemon.output();
    if (message->rfind("READY=1", 0) == 0) break;
    before_ready.push_back(*message);
  }
  size_t reports = 0, extended = 0;
  for (const auto& m : before_ready) {
    if (m.rfind("STATUS=algod importer: ", 0) != 0) continue;
    ++reports;
    if (m.ends_with("\nEXTEND_TIMEOUT_USEC=60000000")) ++extended;
  }
  EXPECT_GE(reports, 3u) << daemon.output();  // started, one phase at least, finished
  EXPECT_EQ(extended, reports);
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0) << daemon.output();
}

// The daemon waiting for algod at start says so in STATUS= (each report
// extending the start timeout), becomes ready once algod answers, and a stop
// then ends it with exit 0.
TEST_F(AlgodImporterTest, DaemonWaitingForAlgodReportsItInStatus) {
  CONDUIT_REQUIRE_FIXTURES();
  FakeAlgod server(kToken);
  server.load_fixtures(fixtures_dir(), 3, false);
  server.inject("/genesis", FakeAlgod::Fault::http_500, 2);
  write_text(dir_ / "conduit.toml", "retry-count = 0\nretry-delay = \"10ms\"\n" +
                                        importer_config(server.address(), "follower") +
                                        "[exporter]\nname = \"noop\"\n");
  TempDir sockets;
  DatagramSocket notify(sockets / "notify");
  Subprocess daemon({conduit_bin(), "-d", dir_.path().string(), "--bus", "none"},
                    {"NOTIFY_SOCKET=" + notify.path().string()});
  std::vector<std::string> waiting;
  for (;;) {
    auto message = notify.receive();
    ASSERT_TRUE(message) << daemon.output();
    if (message->rfind("READY=1", 0) == 0) break;
    if (message->rfind("STATUS=waiting for importer:algod: ", 0) == 0) waiting.push_back(*message);
  }
  ASSERT_EQ(waiting.size(), 2u) << daemon.output();
  EXPECT_NE(waiting[1].find("; retry 2 in 10ms\nEXTEND_TIMEOUT_USEC="), std::string::npos)
      << waiting[1];
  // Rounds 0-2 delivered: an end-of-round stop exports them all.
  ASSERT_GE(server.wait_for_request("/v2/status/wait-for-block-after/2"), 0);
  daemon.signal(SIGUSR1);
  EXPECT_EQ(daemon.wait(), 0) << daemon.output();
  EXPECT_EQ(checkpoint_round(dir_.path()), 3u);
}

TEST_F(AlgodImporterTest, DaemonExitsCleanlyOnSigtermDuringLongPoll) {
  CONDUIT_REQUIRE_FIXTURES();
  FakeAlgod server(kToken);
  server.load_fixtures(fixtures_dir(), 3, false);
  write_text(dir_ / "conduit.toml",
             importer_config(server.address(), "follower") + "[exporter]\nname = \"noop\"\n");
  Subprocess daemon({conduit_bin(), "-d", dir_.path().string(), "--bus", "none"});
  ASSERT_GE(server.wait_for_request("/v2/status/wait-for-block-after/2"), 0);
  // A `now` stop abandons rounds not yet committed: wait until 0-2 are, so
  // the only thing in progress is the long poll.
  ASSERT_TRUE(wait_for_checkpoint(dir_.path(), 3)) << daemon.output();
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0) << daemon.output();
  EXPECT_TRUE(server.requests().back().path == "/v2/status/wait-for-block-after/2" &&
              !server.requests().back().answered);
  EXPECT_EQ(checkpoint_round(dir_.path()), 3u);
  EXPECT_EQ(daemon.output().find(kToken), std::string::npos);
}
