// Group commit: while the importer is ahead, an exporter that
// supports units commits several rounds at once and the checkpoint is written
// once per unit; at the tip every round commits alone; `now` drops the unit
// not yet committed and a restart exports it exactly once; end-of-round
// commits every delivered round; failures inside a unit (retried or fatal)
// never commit a round twice or skip one. Synchronised by latches, no sleeps.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <thread>

#include "core/checkpoint.hpp"
#include "core/pipeline.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;

namespace {

// What the unit exporter saw: every committed unit, in order, and aborts.
struct UnitLog {
  std::mutex mutex;
  std::vector<std::vector<uint64_t>> units;
  std::vector<uint64_t> committed;  // every committed round, in order, across runs
  int aborts = 0;
  uint64_t last_staged = 0;  // the last round of the unit being committed
  size_t staged_before = 0;  // rounds of the unit staged before the one being staged
  // Each stage() call: the round, and whether its block still held encoded bytes.
  std::vector<std::pair<uint64_t, bool>> stagings;
  std::function<void(const std::string& step, uint64_t round, std::stop_token)> hook;
};
UnitLog* g_log = nullptr;

// The tag of the bytes the encoding importer keeps with its blocks.
constexpr const char* kEncodedTag = "test-encoded";

// An exporter with real unit semantics: staged rounds become visible only at
// commit_unit, and an abort (or a failure) forgets them.
class UnitExporter final : public Exporter {
 public:
  void configure(PluginConfig&) override {}
  void init(const InitContext& ctx, std::stop_token) override { next_ = ctx.next_round; }
  void receive(const BlockData& block, std::stop_token stop) override {
    stage(block, stop);
    commit_unit(stop);
  }
  bool supports_units() const override { return true; }
  void stage(const BlockData& block, std::stop_token stop) override {
    try {
      g_log->staged_before = staged_.size();
      {
        std::lock_guard lock(g_log->mutex);
        g_log->stagings.emplace_back(block.round(), block.encoded(kEncodedTag) != nullptr);
      }
      if (g_log->hook) g_log->hook("stage", block.round(), stop);
      if (block.round() != next_ + staged_.size())
        throw PluginError("unit exporter: round " + std::to_string(block.round()) + " out of order",
                          false);
      staged_.push_back(block.round());
    } catch (...) {
      abort_unit();
      throw;
    }
  }
  void commit_unit(std::stop_token stop) override {
    try {
      g_log->last_staged = staged_.back();
      if (g_log->hook) g_log->hook("commit", staged_.front(), stop);
    } catch (...) {
      abort_unit();
      throw;
    }
    std::lock_guard lock(g_log->mutex);
    g_log->units.push_back(staged_);
    g_log->committed.insert(g_log->committed.end(), staged_.begin(), staged_.end());
    next_ += staged_.size();
    staged_.clear();
  }
  void abort_unit() noexcept override {
    if (staged_.empty()) return;
    staged_.clear();
    std::lock_guard lock(g_log->mutex);
    ++g_log->aborts;
  }
  void close() override {}

 private:
  uint64_t next_ = 0;
  std::vector<uint64_t> staged_;
};

// Checks, at every exported round, that the checkpoint already names the end
// of the round's unit: written once per unit, after the unit's commit.
class CheckpointWatcher : public Observer {
 public:
  CheckpointWatcher(std::filesystem::path dir, std::optional<uint64_t> stop_after)
      : dir_(std::move(dir)), stop_after_(stop_after) {}
  Pipeline* pipeline = nullptr;
  void on_exported(uint64_t round, std::size_t) override {
    uint64_t end = 0;
    {
      std::lock_guard lock(g_log->mutex);
      for (const auto& unit : g_log->units)
        if (round >= unit.front() && round <= unit.back()) end = unit.back() + 1;
    }
    if (checkpoint_round(dir_) != end) ++mismatches;
    if (stop_after_ && round == *stop_after_) pipeline->stop(StopMode::end_of_round, "test");
  }
  std::atomic<int> mismatches{0};

 private:
  std::filesystem::path dir_;
  std::optional<uint64_t> stop_after_;
};

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_log = &log_;
    registry_ = test_registry();
    registry_.add_exporter({"unit_exporter", "test exporter with group commit", "", false},
                           [] { return std::make_unique<UnitExporter>(); });
  }
  void TearDown() override { g_log = nullptr; }

  StopCause run(uint64_t unit_rounds, std::optional<uint64_t> stop_after,
                std::function<void(Pipeline&)> started = {},
                const std::string& importer = "test_importer") {
    write_text(dir_ / "conduit.toml",
               "retry-count = 3\nretry-delay = \"1ms\"\ngroup-commit-rounds = " +
                   std::to_string(unit_rounds) + "\n[importer]\nname = \"" + importer +
                   "\"\n[exporter]\nname = \"unit_exporter\"\n");
    Config config = load_config(dir_.path());
    PipelineOptions options{.data_dir = dir_.path(),
                            .retry_count = config.retry_count,
                            .retry_delay = config.retry_delay,
                            .durable_checkpoint = false,
                            .unit_max_rounds = config.group_commit_rounds};
    CheckpointWatcher watcher(dir_.path(), stop_after);
    Pipeline pipeline(build_plugins(registry_, config), options, logger_, &watcher);
    watcher.pipeline = &pipeline;
    current_ = &pipeline;
    if (started) started(pipeline);
    StopCause cause = pipeline.run();
    current_ = nullptr;
    EXPECT_EQ(watcher.mismatches.load(), 0) << "checkpoint not written once per unit";
    return cause;
  }

  // Holds the first commit until the importer is `rounds` ahead, so that the
  // following units find rounds queued.
  void build_backlog(uint64_t rounds) {
    std::string ahead = "ahead-" + std::to_string(++backlogs_);
    world_.hook = [this, rounds, ahead](const Call& c, std::stop_token) {
      if (c.plugin == "importer" && c.step == "get" && c.round >= rounds) world_.signal(ahead);
    };
    log_.hook = [this, ahead](const std::string& step, uint64_t round, std::stop_token stop) {
      if (step == "commit" && round == 0) world_.wait_for(ahead, stop);
    };
  }
  int backlogs_ = 0;

  static std::vector<uint64_t> iota(uint64_t from, uint64_t to) {
    std::vector<uint64_t> v;
    for (uint64_t r = from; r < to; ++r) v.push_back(r);
    return v;
  }

  std::vector<uint64_t> delivered() const {
    std::vector<uint64_t> out;
    for (const auto& e : world_.events())
      if (e.call.plugin == "importer" && e.what == "deliver") out.push_back(e.call.round);
    return out;
  }

  UnitLog log_;
  World world_;
  TempDir dir_;
  Registry registry_;
  Logger logger_{nullptr, LogLevel::error};
  Pipeline* current_ = nullptr;
};

}  // namespace

TEST_F(GroupCommitTest, BacklogCommitsSeveralRoundsPerUnitWithinTheBound) {
  build_backlog(8);
  StopCause cause = run(8, 60);
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  EXPECT_EQ(log_.committed, iota(0, log_.committed.size()));  // each round once, in order
  ASSERT_GE(log_.committed.size(), 61u);
  size_t largest = 0;
  for (const auto& unit : log_.units) largest = std::max(largest, unit.size());
  EXPECT_GT(largest, 1u) << "no unit of several rounds under a backlog";
  EXPECT_LE(largest, 8u) << "a unit passed group-commit-rounds";
  EXPECT_LT(log_.units.size(), log_.committed.size());
  EXPECT_EQ(checkpoint_round(dir_.path()), log_.committed.size());
}

namespace {

// Rounds that carry encoded bytes, as a reader's file bytes or an exporter's
// prepared rows are kept with a block.
class EncodingImporter final : public Importer {
 public:
  void configure(PluginConfig&) override {}
  Genesis init(const InitContext&, std::stop_token) override { return World::current()->genesis; }
  BlockData get_block(uint64_t round, std::stop_token stop) override {
    if (stop.stop_requested()) throw Cancelled();
    World* world = World::current();
    Call call{"importer", "get", round, 1};
    if (world->hook) world->hook(call, stop);
    world->record(call, "deliver");
    BlockData block = BlockData::empty(round);
    block.set_encoded(kEncodedTag, std::string(64 * 1024, 'e'));
    return block;
  }
  void close() override {}
};

}  // namespace

// A unit keeps its staged rounds only for a retry: without the bytes the
// exporter has already taken from them (memory a large unit would otherwise
// hold twice), so a retried unit is staged again from the blocks alone.
TEST_F(GroupCommitTest, AStagedRoundIsKeptWithoutItsEncodedBytes) {
  registry_.add_importer({"encoding_importer", "rounds with encoded bytes", "", false},
                         [] { return std::make_unique<EncodingImporter>(); });
  build_backlog(4);
  auto backlog_hook = log_.hook;
  bool failed = false;
  log_.hook = [&](const std::string& step, uint64_t round, std::stop_token stop) {
    backlog_hook(step, round, stop);
    if (step == "commit" && round > 0 && !failed) {
      failed = true;
      throw PluginError("injected failure", true);
    }
  };
  StopCause cause = run(4, 12, {}, "encoding_importer");
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  ASSERT_TRUE(failed);
  EXPECT_EQ(log_.committed, iota(0, log_.committed.size()));  // each round once, in order
  std::map<uint64_t, int> times_staged;
  int restaged = 0;
  for (const auto& [round, had_bytes] : log_.stagings) {
    if (times_staged[round]++ == 0) {
      EXPECT_TRUE(had_bytes) << "round " << round << " first staged without its bytes";
    } else {
      ++restaged;
      EXPECT_FALSE(had_bytes) << "round " << round << " kept its bytes in the unit";
    }
  }
  EXPECT_GT(restaged, 0) << "the failed commit staged nothing again";
}

TEST_F(GroupCommitTest, AtTheTipEveryRoundCommitsAlone) {
  // Round r is fetched only once round r-1 is committed: nothing is ever queued.
  world_.hook = [this](const Call& c, std::stop_token stop) {
    if (c.plugin == "importer" && c.step == "get" && c.round > 0)
      world_.wait_for("committed-" + std::to_string(c.round - 1), stop);
  };
  log_.hook = [this](const std::string& step, uint64_t round, std::stop_token) {
    if (step == "commit") world_.signal("committed-" + std::to_string(round));
  };
  StopCause cause = run(64, 20);
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  // Up to the stop (the drain after it may find two rounds queued).
  for (const auto& unit : log_.units)
    if (unit.front() <= 20) {
      EXPECT_EQ(unit.size(), 1u) << "round " << unit.front();
    }
  EXPECT_EQ(log_.committed, iota(0, log_.committed.size()));
}

TEST_F(GroupCommitTest, NowDropsTheUncommittedUnitAndARestartExportsItOnce) {
  // Every commit waits until the importer is 8 rounds past the unit's last
  // round, so at least 7 rounds are queued when the next unit starts: every
  // unit after the first holds 7 or 8 rounds.
  world_.hook = [this](const Call& c, std::stop_token) {
    if (c.plugin == "importer" && c.step == "get") world_.signal("got-" + std::to_string(c.round));
  };
  // Stop `now` while the 4th round of a unit past round 8 is being staged.
  uint64_t stopped_at = 0, unit_first = 0;
  log_.hook = [&](const std::string& step, uint64_t round, std::stop_token stop) {
    if (step == "commit") world_.wait_for("got-" + std::to_string(log_.last_staged + 8), stop);
    if (step == "stage" && round > 8 && log_.staged_before >= 3 && stopped_at == 0) {
      stopped_at = round;
      unit_first = round - log_.staged_before;
      current_->stop(StopMode::now, "test");
      World::block_until_cancelled(stop);
    }
  };
  StopCause cause = run(8, std::nullopt);
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  ASSERT_GT(stopped_at, 0u) << "no unit of four rounds or more";
  uint64_t checkpoint = checkpoint_round(dir_.path()).value_or(0);
  EXPECT_EQ(checkpoint, unit_first) << "the checkpoint is not the first round of the dropped unit";
  EXPECT_LT(checkpoint, stopped_at);
  EXPECT_GE(log_.aborts, 1) << "the unit in progress was not aborted";
  EXPECT_EQ(log_.committed, iota(0, checkpoint));

  // Restart: resumes at the checkpoint; every round exactly once overall.
  log_.hook = {};
  world_.hook = {};
  cause = run(8, 30);
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  EXPECT_EQ(log_.committed, iota(0, log_.committed.size()));
  EXPECT_GE(log_.committed.size(), 31u);
}

TEST_F(GroupCommitTest, EndOfRoundCommitsEveryDeliveredRound) {
  build_backlog(8);
  auto backlog_hook = world_.hook;
  world_.hook = [&](const Call& c, std::stop_token stop) {
    backlog_hook(c, stop);
    if (c.plugin == "importer" && c.step == "get" && c.round == 40)
      current_->stop(StopMode::end_of_round, "test");
  };
  StopCause cause = run(16, std::nullopt);
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  EXPECT_EQ(delivered(), iota(0, 41));
  EXPECT_EQ(log_.committed, iota(0, 41));
  EXPECT_EQ(checkpoint_round(dir_.path()), 41u);
}

// Seeded failures inside units: a retryable failure (the unit is aborted and
// staged again) or a fatal one (the run stops as after a crash of the exporter),
// in stage or in commit, at random rounds and unit sizes. After a restart every
// round is committed exactly once, in order.
TEST_F(GroupCommitTest, FailuresInsideUnitsNeverDuplicateOrSkipARound) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 random(seed);
    uint64_t unit_rounds = 2 + random() % 9;
    uint64_t fail_round = 3 + random() % 30;
    bool in_commit = random() % 2;
    bool fatal = random() % 2;
    log_.committed.clear();
    log_.units.clear();
    std::filesystem::remove(dir_ / "metadata.json");
    world_.hook = {};
    build_backlog(unit_rounds);
    auto backlog_hook = log_.hook;
    bool failed = false;
    log_.hook = [&](const std::string& step, uint64_t round, std::stop_token stop) {
      backlog_hook(step, round, stop);
      bool here = in_commit
                      ? step == "commit" && round <= fail_round && fail_round < round + unit_rounds
                      : step == "stage" && round == fail_round;
      if (here && !failed) {
        failed = true;
        throw PluginError("injected failure", !fatal);
      }
    };
    StopCause cause = run(unit_rounds, fatal ? std::nullopt : std::optional<uint64_t>(50));
    EXPECT_TRUE(failed);
    EXPECT_EQ(cause.reason, fatal ? StopReason::exporter_error : StopReason::stop_requested)
        << cause.detail;
    uint64_t checkpoint = checkpoint_round(dir_.path()).value_or(0);
    EXPECT_EQ(checkpoint, log_.committed.size());
    log_.hook = {};
    world_.hook = {};
    cause = run(unit_rounds, checkpoint + 10);  // the drain may have gone past 50
    EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
    EXPECT_EQ(log_.committed, iota(0, log_.committed.size()));
    EXPECT_GE(log_.committed.size(), checkpoint + 11);
  }
}

// The queues between stages are held to group-commit-bytes counted as the
// blocks take memory, whatever the exporter does: with the exporter stalled
// on its first round, the importer waits once the bytes in flight reach the
// bound (16 queued rounds of 48 MiB reached 1.59 GB before). Rounds here take
// about 1.9 MB decoded from 80 KB of msgpack, against a 3 MiB budget.
namespace {

constexpr uint64_t kQueueBudget = uint64_t{3} << 20;

class ZerosImporter final : public Importer {
 public:
  void configure(PluginConfig&) override {}
  Genesis init(const InitContext&, std::stop_token) override { return World::current()->genesis; }
  BlockData get_block(uint64_t round, std::stop_token stop) override {
    // Round 1 only once the exporter holds round 0: the queue is then empty,
    // and the first push that waits is the one the bound stops.
    if (round == 1 && !World::current()->wait_for("stalled", stop)) throw Cancelled();
    if (stop.stop_requested()) throw Cancelled();
    World::current()->record({"importer", "get", round, 1}, "deliver");
    return BlockData::decode_msgpack(msgpack_block_of_zeros(round, 80000));
  }
  void close() override {}
};

class StopAtRound : public Observer {
 public:
  explicit StopAtRound(std::optional<uint64_t> round) : round_(round) {}
  Pipeline* pipeline = nullptr;
  void on_exported(uint64_t round, std::size_t) override {
    if (round_ && round == *round_) pipeline->stop(StopMode::end_of_round, "test");
  }

 private:
  std::optional<uint64_t> round_;
};

// A push that found a queue full: what the queue held, and what the importer
// had produced by then.
struct FullQueue {
  std::size_t queue, rounds, bytes, waiting, produced;
};

class QueueBoundTest : public GroupCommitTest, public ::testing::WithParamInterface<std::string> {
 protected:
  bool units() const { return GetParam() == "unit_exporter"; }

  // Runs with the exporter stalled in its first round until `released`;
  // `when_full` runs on a thread of its own once a push first waits.
  StopCause run_stalled(const std::function<void(Pipeline&)>& when_full,
                        std::optional<uint64_t> stop_at) {
    registry_.add_importer({"zeros_importer", "rounds of zeros", "", false},
                           [] { return std::make_unique<ZerosImporter>(); });
    auto stall = [this](std::stop_token stop) {
      world_.signal("stalled");
      if (!world_.wait_for("released", stop)) throw Cancelled();
    };
    log_.hook = [stall](const std::string& step, uint64_t round, std::stop_token stop) {
      if (step == "stage" && round == 0) stall(stop);
    };
    world_.hook = [stall](const Call& c, std::stop_token stop) {
      if (c.plugin == "exporter" && c.step == "receive" && c.round == 0) stall(stop);
    };
    write_text(dir_ / "conduit.toml",
               "retry-count = 3\nretry-delay = \"1ms\"\ngroup-commit-bytes = " +
                   std::to_string(kQueueBudget) + "\n[importer]\nname = \"zeros_importer\"\n" +
                   "[exporter]\nname = \"" + GetParam() + "\"\n");
    Config config = load_config(dir_.path());
    PipelineOptions options{.data_dir = dir_.path(),
                            .retry_count = config.retry_count,
                            .retry_delay = config.retry_delay,
                            .durable_checkpoint = false,
                            .unit_max_rounds = config.group_commit_rounds,
                            .unit_max_bytes = config.group_commit_bytes,
                            .on_queue_full = [this](std::size_t queue, std::size_t rounds,
                                                    std::size_t bytes, std::size_t waiting) {
                              std::lock_guard lock(full_mutex_);
                              full_.push_back({queue, rounds, bytes, waiting, delivered().size()});
                              world_.signal("full");
                            }};
    StopAtRound observer(stop_at);
    Pipeline pipeline(build_plugins(registry_, config), options, logger_, &observer);
    observer.pipeline = &pipeline;
    std::jthread controller([&] {
      world_.wait("full");
      when_full(pipeline);
    });
    return pipeline.run();
  }

  std::vector<FullQueue> full() {
    std::lock_guard lock(full_mutex_);
    return full_;
  }

  std::vector<uint64_t> committed() const {
    if (units()) return log_.committed;
    std::vector<uint64_t> out;
    for (const auto& e : world_.events())
      if (e.call.plugin == "exporter" && e.what == "commit") out.push_back(e.call.round);
    return out;
  }

  std::mutex full_mutex_;
  std::vector<FullQueue> full_;
};

}  // namespace

TEST_P(QueueBoundTest, AStalledExporterHoldsTheImporterAtTheByteBound) {
  StopCause cause = run_stalled(
      [this](Pipeline&) {
        FullQueue first = full().front();
        EXPECT_EQ(first.queue, 0u);
        // Held by bytes, not by the count of rounds: one round of ~1.9 MB
        // (with round 0 in the exporter and round 2 waiting to be pushed).
        EXPECT_EQ(first.rounds, 1u);
        EXPECT_LE(first.bytes, kQueueBudget);
        EXPECT_GT(first.bytes + first.waiting, kQueueBudget);
        EXPECT_EQ(first.produced, 3u);
        world_.signal("released");
      },
      12);
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  std::vector<uint64_t> rounds = committed();
  ASSERT_GE(rounds.size(), 13u);
  EXPECT_EQ(rounds, iota(0, rounds.size()));  // every round once, in order
  EXPECT_EQ(checkpoint_round(dir_.path()), rounds.size());
  for (const FullQueue& f : full())  // a round over the budget is only ever alone
    EXPECT_TRUE(f.bytes <= kQueueBudget || f.rounds == 1) << f.rounds << " rounds, " << f.bytes;
}

TEST_P(QueueBoundTest, ANowStopWakesAnImporterWaitingOnTheByteBound) {
  StopCause cause =
      run_stalled([](Pipeline& pipeline) { pipeline.stop(StopMode::now, "test"); }, std::nullopt);
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  EXPECT_TRUE(committed().empty());
  EXPECT_EQ(checkpoint_round(dir_.path()).value_or(0), 0u);
  EXPECT_FALSE(world_.signalled("released"));
}

INSTANTIATE_TEST_SUITE_P(Exporters, QueueBoundTest,
                         ::testing::Values("unit_exporter", "test_exporter"));
