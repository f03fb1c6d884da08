// Deterministic pipeline behaviour: ordering, errors, retries, round requests,
// checkpoints, close order. Stops are triggered from inside plugin hooks or by
// latches, never by sleeping.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <algorithm>
#include <cerrno>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "core/checkpoint.hpp"
#include "core/fs.hpp"
#include "core/pipeline.hpp"
#include "core/queue.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;

namespace {

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override { registry_ = test_registry(); }

  std::unique_ptr<Pipeline> make(int processors, PipelineOptions options = {},
                                 const std::string& extra = "") {
    write_text(dir_ / "conduit.toml", test_config(processors, extra));
    Config config = load_config(dir_.path());
    auto plugins = build_plugins(registry_, config);
    options.data_dir = dir_.path();
    options.retry_count = config.retry_count;
    if (options.retry_delay == std::chrono::seconds(1)) options.retry_delay = config.retry_delay;
    return std::make_unique<Pipeline>(std::move(plugins), options, logger_);
  }

  // Rounds of `plugin`'s events `what`; "enter" events of init are left out.
  std::vector<uint64_t> rounds(const std::string& plugin, const std::string& what) const {
    std::vector<uint64_t> out;
    for (const auto& e : world_.events())
      if (e.call.plugin == plugin && e.what == what && e.call.step != "init" &&
          e.call.step != "round_request")
        out.push_back(e.call.round);
    return out;
  }

  std::vector<std::string> closes() const {
    std::vector<std::string> out;
    for (const auto& e : world_.events())
      if (e.what == "closed") out.push_back(e.call.plugin);
    return out;
  }

  World world_;
  TempDir dir_;
  Registry registry_;
  Logger logger_{nullptr, LogLevel::error};
};

std::vector<uint64_t> iota(uint64_t from, uint64_t to) {
  std::vector<uint64_t> v;
  for (uint64_t r = from; r < to; ++r) v.push_back(r);
  return v;
}

}  // namespace

TEST_F(PipelineTest, EndOfRoundExportsEveryDeliveredRoundInOrder) {
  Pipeline* p = nullptr;
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "importer" && c.step == "get" && c.round == 20)
      p->stop(StopMode::end_of_round, "test");
  };
  auto pipeline = make(2);
  p = pipeline.get();
  StopCause cause = pipeline->run();
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  EXPECT_NE(cause.detail.find("test requested stop (end-of-round)"), std::string::npos);
  // Round 20's get returned after the request: it was delivered, so it is exported.
  EXPECT_EQ(rounds("importer", "deliver"), iota(0, 21));
  EXPECT_EQ(rounds("exporter", "commit"), iota(0, 21));
  EXPECT_EQ(rounds("processor1", "enter"), iota(0, 21));
  EXPECT_EQ(checkpoint_round(dir_.path()), 21u);
  EXPECT_EQ(pipeline->next_round(), 21u);
  EXPECT_EQ(closes(),
            (std::vector<std::string>{"importer", "processor0", "processor1", "exporter"}));
  EXPECT_EQ(pipeline->why_stopped().reason, StopReason::stop_requested);
}

TEST_F(PipelineTest, NowCancelsTheExporterAndCheckpointsTheFirstUncommittedRound) {
  Pipeline* p = nullptr;
  world_.hook = [&](const Call& c, std::stop_token stop) {
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 5) {
      p->stop(StopMode::now, "test");
      World::block_until_cancelled(stop);
    }
  };
  auto pipeline = make(1);
  p = pipeline.get();
  StopCause cause = pipeline->run();
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  EXPECT_EQ(rounds("exporter", "commit"), iota(0, 5));
  EXPECT_EQ(checkpoint_round(dir_.path()), 5u);
  EXPECT_EQ(closes(), (std::vector<std::string>{"importer", "processor0", "exporter"}));
}

TEST_F(PipelineTest, NowWakesAnImporterBlockedWaitingForABlock) {
  Pipeline* p = nullptr;
  world_.hook = [&](const Call& c, std::stop_token stop) {
    if (c.plugin == "importer" && c.step == "get" && c.round == 3) {
      world_.signal("blocked");
      World::block_until_cancelled(stop);
    }
  };
  auto pipeline = make(0);
  p = pipeline.get();
  std::jthread stopper([&] {
    world_.wait("blocked");
    p->stop(StopMode::now, "test");
  });
  EXPECT_EQ(pipeline->run().reason, StopReason::stop_requested);
  EXPECT_LE(rounds("exporter", "commit").size(), 3u);
  EXPECT_EQ(checkpoint_round(dir_.path()), rounds("exporter", "commit").size());
}

// A second request and stop-timeout escalate a drain: policy, so tested in
// supervisor_test.cpp. The mechanism: `now` cancels what a drain left running.
TEST_F(PipelineTest, NowDuringADrainCancelsTheRest) {
  Pipeline* p = nullptr;
  world_.hook = [&](const Call& c, std::stop_token stop) {
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 2) {
      p->stop(StopMode::end_of_round, "first");
      world_.signal("draining");
      World::block_until_cancelled(stop);  // only `now` releases it
    }
  };
  auto pipeline = make(0);
  p = pipeline.get();
  std::jthread stopper([&] {
    world_.wait("draining");
    p->stop(StopMode::now, "second");
  });
  StopCause cause = pipeline->run();
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  EXPECT_EQ(cause.detail, "second requested stop (now)");
  EXPECT_EQ(cause.mode, StopMode::now);
  EXPECT_EQ(checkpoint_round(dir_.path()), 2u);
}

TEST_F(PipelineTest, RetryableErrorsAreRetriedThenSucceed) {
  Pipeline* p = nullptr;
  int failures = 0;
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 3 && failures < 2) {
      ++failures;
      throw PluginError("disk hiccup", true);
    }
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 6)
      p->stop(StopMode::end_of_round, "test");
  };
  auto pipeline = make(0);
  p = pipeline.get();
  EXPECT_EQ(pipeline->run().reason, StopReason::stop_requested);
  EXPECT_EQ(failures, 2);
  EXPECT_EQ(rounds("exporter", "commit").front(), 0u);
  auto commits = rounds("exporter", "commit");
  EXPECT_TRUE(std::is_sorted(commits.begin(), commits.end()));
  EXPECT_EQ(std::adjacent_find(commits.begin(), commits.end()), commits.end());
}

TEST_F(PipelineTest, RetriesExhaustedStopWithThePluginsError) {
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "processor0" && c.step == "process" && c.round == 4)
      throw std::runtime_error("bad block");
  };
  auto pipeline = make(1);  // retry-count = 3 in test_config
  StopCause cause = pipeline->run();
  EXPECT_EQ(cause.reason, StopReason::processor_error);
  EXPECT_NE(cause.detail.find(
                "processor:test_processor failed at round 4: bad block (gave up after 4 attempts)"),
            std::string::npos)
      << cause.detail;
  EXPECT_EQ(cause.exit_code(), 1);
  EXPECT_EQ(rounds("processor0", "enter").size(), 4u + 4u);  // rounds 0-3 once, round 4 four times
  EXPECT_EQ(checkpoint_round(dir_.path()), 4u);
  EXPECT_EQ(closes(), (std::vector<std::string>{"importer", "processor0", "exporter"}));
}

TEST_F(PipelineTest, NonRetryableErrorStopsAtOnce) {
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "importer" && c.step == "get" && c.round == 2)
      throw PluginError("corrupt block file 2_block.msgp", false);
  };
  auto pipeline = make(0);
  StopCause cause = pipeline->run();
  EXPECT_EQ(cause.reason, StopReason::importer_error);
  EXPECT_NE(cause.detail.find("corrupt block file 2_block.msgp"), std::string::npos);
  EXPECT_EQ(rounds("importer", "enter").size(), 3u);
}

TEST_F(PipelineTest, AStopInterruptsARetryWait) {
  Pipeline* p = nullptr;
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 1) {
      if (!world_.signalled("failed")) world_.signal("failed");
      throw PluginError("unavailable", true);
    }
  };
  PipelineOptions options;
  options.retry_delay = std::chrono::hours(1);
  auto pipeline = make(0, options);
  p = pipeline.get();
  std::jthread stopper([&] {
    world_.wait("failed");
    p->stop(StopMode::now, "test");
  });
  EXPECT_EQ(pipeline->run().reason, StopReason::stop_requested);
  EXPECT_EQ(checkpoint_round(dir_.path()), 1u);
}

TEST_F(PipelineTest, ImporterReturningTheWrongRoundIsAnImporterError) {
  // The test importer returns the round it is asked for; a processor that
  // rewrites rounds makes the exporter see an out-of-order round instead.
  class Rewriter final : public Processor {
   public:
    void configure(PluginConfig&) override {}
    void init(const InitContext&, std::stop_token) override {}
    void process(BlockData& block, std::stop_token) override {
      if (block.round() == 3) block = BlockData();  // round 0 again
    }
    void close() override {}
  };
  registry_.add_processor({"rewriter", "", "", false}, [] { return std::make_unique<Rewriter>(); });
  write_text(dir_ / "conduit.toml",
             "[importer]\nname = \"test_importer\"\n[[processors]]\nname = "
             "\"rewriter\"\n[exporter]\nname = \"test_exporter\"\n");
  Config config = load_config(dir_.path());
  Pipeline pipeline(build_plugins(registry_, config), {.data_dir = dir_.path()}, logger_);
  StopCause cause = pipeline.run();
  EXPECT_EQ(cause.reason, StopReason::internal_error);
  EXPECT_NE(cause.detail.find("round 0 reached the exporter when round 3 was expected"),
            std::string::npos);
  EXPECT_EQ(checkpoint_round(dir_.path()), 3u);
}

TEST_F(PipelineTest, ResumesAtTheCheckpoint) {
  Checkpoint(dir_.path()).store({"dGVzdC1nZW5lc2lz", "test-network", 17});
  Pipeline* p = nullptr;
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 19)
      p->stop(StopMode::end_of_round, "test");
  };
  auto pipeline = make(0);
  p = pipeline.get();
  pipeline->run();
  EXPECT_EQ(rounds("importer", "enter").front(), 17u);
  EXPECT_EQ(rounds("exporter", "commit").front(), 17u);
}

TEST_F(PipelineTest, OverrideAndRoundRequests) {
  Checkpoint(dir_.path()).store({"dGVzdC1nZW5lc2lz", "test-network", 17});
  world_.round_request = [](const std::string& plugin) -> uint64_t {
    return plugin == "exporter" ? 30 : 0;
  };
  Pipeline* p = nullptr;
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.step == "get") p->stop(StopMode::end_of_round, "test");
  };
  {
    auto pipeline = make(0);
    p = pipeline.get();
    pipeline->run();
    EXPECT_EQ(rounds("importer", "enter").front(), 30u)
        << "the exporter's request wins over metadata";
  }
  {
    PipelineOptions options;
    options.next_round_override = 12;
    auto pipeline = make(0, options);
    StopCause cause = pipeline->run();
    EXPECT_EQ(cause.reason, StopReason::checkpoint_error);
    EXPECT_NE(
        cause.detail.find("next-round override 12 conflicts with exporter:test_exporter, which "
                          "must resume at round 30"),
        std::string::npos)
        << cause.detail;
  }
  world_.round_request = [](const std::string& plugin) -> uint64_t {
    return plugin == "exporter" ? 30 : plugin == "importer" ? 31 : 0;
  };
  {
    auto pipeline = make(0);
    StopCause cause = pipeline->run();
    EXPECT_EQ(cause.reason, StopReason::checkpoint_error);
    EXPECT_NE(cause.detail.find("conflicting round requests"), std::string::npos);
  }
}

TEST_F(PipelineTest, OverrideWithoutRequestsStartsThere) {
  Pipeline* p = nullptr;
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.step == "get") p->stop(StopMode::end_of_round, "test");
  };
  PipelineOptions options;
  options.next_round_override = 1000;
  auto pipeline = make(0, options);
  p = pipeline.get();
  pipeline->run();
  EXPECT_EQ(rounds("exporter", "commit"), (std::vector<uint64_t>{1000}));
  EXPECT_EQ(checkpoint_round(dir_.path()), 1001u);
}

TEST_F(PipelineTest, DifferentNetworkInTheDataDirIsRefused) {
  Checkpoint(dir_.path()).store({"b3RoZXI=", "othernet", 5});
  auto pipeline = make(0);
  StopCause cause = pipeline->run();
  EXPECT_EQ(cause.reason, StopReason::checkpoint_error);
  EXPECT_NE(cause.detail.find("holds data of network 'othernet'"), std::string::npos);
  EXPECT_EQ(Checkpoint(dir_.path()).load()->network, "othernet") << "nothing overwritten";
  EXPECT_EQ(closes(), (std::vector<std::string>{"importer", "exporter"}));
}

TEST_F(PipelineTest, StopBeforeRunClosesEverythingOnce) {
  auto pipeline = make(2);
  pipeline->stop(StopMode::now, "test");
  pipeline->stop(StopMode::now, "again");
  EXPECT_EQ(pipeline->run().reason, StopReason::stop_requested);
  EXPECT_TRUE(rounds("importer", "enter").empty());
  EXPECT_EQ(closes(),
            (std::vector<std::string>{"importer", "processor0", "processor1", "exporter"}));
}

TEST_F(PipelineTest, InitFailureNamesThePlugin) {
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "exporter" && c.step == "init") throw std::runtime_error("cannot connect");
  };
  auto pipeline = make(1);
  StopCause cause = pipeline->run();
  EXPECT_EQ(cause.reason, StopReason::exporter_error);
  EXPECT_NE(cause.detail.find("exporter:test_exporter failed to initialise: cannot connect"),
            std::string::npos);
  EXPECT_EQ(closes(), (std::vector<std::string>{"importer", "processor0", "exporter"}));
}

TEST_F(PipelineTest, PipelineNeverRunClosesOnDestruction) {
  { auto pipeline = make(1); }
  EXPECT_EQ(closes(), (std::vector<std::string>{"importer", "processor0", "exporter"}));
}

TEST_F(PipelineTest, PluginDataDirectoriesAreCreated) {
  Pipeline* p = nullptr;
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.step == "get") p->stop(StopMode::end_of_round, "test");
  };
  auto pipeline = make(1);
  p = pipeline.get();
  pipeline->run();
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "importer_test_importer"));
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "processor_test_processor"));
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "exporter_test_exporter"));
}

// ---------------------------------------------------------------------------
// The watchdog sees wedged close(), checkpoint writes and round
// requests, and not init. wedged_stage(0ns): any call still running is past the
// bound, so no timing is involved.

namespace {

// Runs `pipeline` on a thread; the caller stops it. Joined with a deadline by
// the caller's latch waits.
struct Background {
  explicit Background(Pipeline& p) : thread([&p, this] { cause = p.run(); }) {}
  StopCause cause;
  std::jthread thread;
};

}  // namespace

TEST_F(PipelineTest, WedgeWatchCoversCloseButNotInit) {
  world_.hook = [&](const Call& c, std::stop_token stop) {
    if (c.plugin == "exporter" && c.step == "init") {
      world_.signal("in-init");
      world_.wait("init-checked");
    }
    if (c.step == "get" && c.round == 2) World::block_until_cancelled(stop);
  };
  world_.close_hook = [&](const Call& c) {
    if (c.plugin != "processor0") return;
    world_.signal("in-close");
    world_.wait("close-checked");
  };
  auto pipeline = make(1);
  Background run(*pipeline);
  world_.wait("in-init");
  EXPECT_EQ(pipeline->wedged_stage(std::chrono::nanoseconds(0)), std::nullopt)
      << "init is not bounded by the wedge timeout";
  world_.signal("init-checked");
  pipeline->stop(StopMode::now, "test");
  world_.wait("in-close");
  EXPECT_EQ(pipeline->wedged_stage(std::chrono::nanoseconds(0)),
            "processor:test_processor in close()");
  world_.signal("close-checked");
  run.thread.join();
  EXPECT_EQ(run.cause.reason, StopReason::stop_requested);
}

TEST_F(PipelineTest, WedgeWatchCoversRoundRequests) {
  world_.round_request = [](const std::string&) -> uint64_t { return 0; };
  world_.hook = [&](const Call& c, std::stop_token stop) {
    if (c.plugin == "exporter" && c.step == "round_request") {
      world_.signal("in-request");
      world_.wait("request-checked");
    }
    if (c.step == "get") World::block_until_cancelled(stop);
  };
  auto pipeline = make(0);
  Background run(*pipeline);
  world_.wait("in-request");
  EXPECT_EQ(pipeline->wedged_stage(std::chrono::nanoseconds(0)),
            "exporter:test_exporter in round_request()");
  pipeline->stop(StopMode::now, "test");
  world_.signal("request-checked");
  run.thread.join();
}

#if defined(__linux__)
// A checkpoint write stuck in the kernel (here: metadata.json.tmp is a FIFO no
// one reads, so open() blocks) is a wedge like a stuck plugin call.
TEST_F(PipelineTest, WedgeWatchCoversCheckpointWrites) {
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 1) {
      ASSERT_EQ(::mkfifo((dir_ / "metadata.json.tmp").c_str(), 0600), 0);
      world_.signal("fifo");
    }
  };
  auto pipeline = make(0);
  Background run(*pipeline);
  world_.wait("fifo");
  std::optional<std::string> wedged;
  // The exporter reaches the write right after receive() returns: wait for it
  // (bounded; each check is an event, not a timed sleep).
  auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (!wedged && std::chrono::steady_clock::now() < deadline) {
    wedged = pipeline->wedged_stage(std::chrono::nanoseconds(0));
    if (wedged && wedged->find("checkpoint") == std::string::npos) wedged.reset();
    std::this_thread::yield();
  }
  EXPECT_EQ(wedged, "checkpoint (metadata.json) in store()");
  pipeline->stop(StopMode::now, "test");
  // Release the writer: open the FIFO for reading and drain it.
  {
    UniqueFd reader(::open((dir_ / "metadata.json.tmp").c_str(), O_RDONLY | O_CLOEXEC));
    char buffer[4096];
    while (reader && ::read(reader.get(), buffer, sizeof buffer) > 0) {
    }
  }
  run.thread.join();
}
#endif

// Nothing that throws ends in std::terminate or a hang.
TEST_F(PipelineTest, ObserverThrowingIsAnInternalErrorWithPluginsClosed) {
  struct Throwing : Observer {
    void on_ready(uint64_t) override { throw std::runtime_error("observer broke"); }
  } observer;
  write_text(dir_ / "conduit.toml", test_config(1));
  Config config = load_config(dir_.path());
  Pipeline pipeline(build_plugins(registry_, config), {.data_dir = dir_.path()}, logger_,
                    &observer);
  StopCause cause;
  EXPECT_NO_THROW(cause = pipeline.run());
  EXPECT_EQ(cause.reason, StopReason::internal_error);
  EXPECT_NE(cause.detail.find("observer broke"), std::string::npos) << cause.detail;
  EXPECT_EQ(closes(), (std::vector<std::string>{"importer", "processor0", "exporter"}));
}

TEST_F(PipelineTest, AStageThatFailsToStartAbortsTheOthers) {
  for (std::size_t failing : {0u, 1u, 2u, 3u}) {
    SCOPED_TRACE("stage " + std::to_string(failing) + " fails to start");
    size_t mark = world_.events().size();
    TempDir dir;
    write_text(dir / "conduit.toml", test_config(2));
    Config config = load_config(dir.path());
    PipelineOptions options{.data_dir = dir.path()};
    options.before_stage_start = [failing](std::size_t stage) {
      if (stage == failing)
        throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                                "thread");
    };
    Pipeline pipeline(build_plugins(registry_, config), options, logger_);
    StopCause cause = pipeline.run();  // returns: the started stages were aborted
    EXPECT_EQ(cause.reason, StopReason::internal_error);
    EXPECT_NE(cause.detail.find("failed to start"), std::string::npos) << cause.detail;
    std::vector<std::string> closed;
    auto events = world_.events();
    for (size_t i = mark; i < events.size(); ++i)
      if (events[i].what == "closed") closed.push_back(events[i].call.plugin);
    EXPECT_EQ(closed,
              (std::vector<std::string>{"importer", "processor0", "processor1", "exporter"}));
  }
}

// Round requests are cancellable (a plugin querying its database there obeys a
// stop): either mode cancels a blocked request.
TEST_F(PipelineTest, AStopCancelsABlockedRoundRequest) {
  for (StopMode mode : {StopMode::end_of_round, StopMode::now}) {
    SCOPED_TRACE(std::string(to_string(mode)));
    size_t mark = world_.events().size();
    std::string latch = "in-request-" + std::string(to_string(mode));
    world_.round_request = [](const std::string&) -> uint64_t { return 0; };
    world_.hook = [&](const Call& c, std::stop_token stop) {
      if (c.plugin == "exporter" && c.step == "round_request") {
        world_.signal(latch);
        World::block_until_cancelled(stop);
      }
    };
    auto pipeline = make(1);
    Background run(*pipeline);
    world_.wait(latch);
    pipeline->stop(mode, "test");
    run.thread.join();
    EXPECT_EQ(run.cause.reason, StopReason::stop_requested) << run.cause.detail;
    auto events = world_.events();
    for (size_t i = mark; i < events.size(); ++i)
      EXPECT_NE(events[i].call.step, "init") << "nothing initialised after the stop";
  }
}

// The exporter's queue lets helper threads work on queued items in place: the
// consumer never gets an item a helper is still working on, and gets every
// item once, in order, worked on or not.
TEST(BoundedQueueHelpers, TheConsumerWaitsForAnItemAHelperIsWorkingOn) {
  BoundedQueue<int> queue(4);
  std::stop_source stop;
  ASSERT_TRUE(queue.push(1, stop.get_token()));
  std::promise<void> started, release;
  std::jthread helper([&] {
    queue.work_on_next(stop.get_token(), [&](int& item) {
      started.set_value();
      release.get_future().wait();
      item = -item;
    });
  });
  started.get_future().wait();
  std::optional<int> got;
  std::jthread consumer([&] { got = queue.pop(stop.get_token()); });
  release.set_value();
  consumer.join();
  EXPECT_EQ(got, -1) << "the consumer took the item while a helper worked on it";
}

TEST(BoundedQueueHelpers, ItemsArriveOnceInOrderAndHelpersEndOnClose) {
  BoundedQueue<int> queue(8);
  std::stop_source stop;
  std::atomic<int> worked{0};
  std::vector<std::jthread> helpers;
  for (int i = 0; i < 3; ++i)
    helpers.emplace_back([&] {
      while (queue.work_on_next(stop.get_token(), [&](int& item) {
        item = -item;
        ++worked;
      })) {
      }
    });
  std::jthread producer([&] {
    for (int i = 1; i <= 500; ++i)
      if (!queue.push(int(i), stop.get_token())) break;
    queue.close();
  });
  std::vector<int> got;
  while (auto item = queue.pop(stop.get_token())) got.push_back(*item);
  for (auto& helper : helpers) helper.join();  // they end: closed, nothing left to take
  ASSERT_EQ(got.size(), 500u);
  int negated = 0;
  for (int i = 0; i < 500; ++i) {
    EXPECT_EQ(std::abs(got[i]), i + 1);
    negated += got[i] < 0;
  }
  EXPECT_EQ(negated, worked.load()) << "an item was worked on twice, or lost its work";
}

TEST(BoundedQueueHelpers, AStopEndsAWaitingHelper) {
  BoundedQueue<int> queue(2);
  std::stop_source stop;
  std::promise<bool> result;
  std::jthread helper([&] { result.set_value(queue.work_on_next(stop.get_token(), [](int&) {})); });
  stop.request_stop();
  EXPECT_FALSE(result.get_future().get());
}

// fs_fsync_all: every file synced (several at once), fault injections seen in
// the targets' order, the first failure (in order) reported with its errno.
TEST(FsyncAll, ReportsTheFirstFailureInOrder) {
  TempDir dir;
  std::vector<UniqueFd> fds;
  std::vector<FsyncTarget> targets;
  for (int i = 0; i < 12; ++i) {
    auto path = dir.path() / std::to_string(i);
    fds.emplace_back(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(fds.back());
    targets.push_back({fds.back().get(), path});
  }
  EXPECT_EQ(fs_fsync_all(targets), targets.size());
  std::vector<std::filesystem::path> seen;
  {
    FaultInjection faults([&](FsOp op, const std::filesystem::path& path) {
      if (op != FsOp::fsync) return 0;
      seen.push_back(path);
      return path.filename() == "7" ? EIO : path.filename() == "9" ? ENOSPC : 0;
    });
    EXPECT_EQ(fs_fsync_all(targets), 7u);
    EXPECT_EQ(errno, EIO);
  }
  ASSERT_EQ(seen.size(), targets.size());
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], targets[i].path);
}

// Each stage runs on a thread named after it, and the exporter's prepare
// helpers run beside it: what `top -H`, perf and /proc/PID/task show.
TEST_F(PipelineTest, StageThreadsAreNamedAfterTheirStage) {
  Pipeline* p = nullptr;
  std::mutex mutex;
  std::map<std::string, std::string> thread_of;
  std::vector<std::string> tasks;
  world_.hook = [&](const Call& c, std::stop_token) {
    char name[16] = {};
    ::pthread_getname_np(::pthread_self(), name, sizeof name);
    std::lock_guard lock(mutex);
    if (c.step != "init" && c.step != "round_request") thread_of[c.plugin] = name;
    if (c.plugin == "exporter" && c.round == 2 && tasks.empty()) {
      for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        std::string comm = read_text(task.path() / "comm");
        tasks.push_back(comm.substr(0, comm.find('\n')));
      }
      p->stop(StopMode::end_of_round, "test");
    }
  };
  auto pipeline = make(1);
  p = pipeline.get();
  EXPECT_EQ(pipeline->run().reason, StopReason::stop_requested);
  EXPECT_EQ(thread_of["importer"], "importer");
  EXPECT_EQ(thread_of["processor0"], "processor 1");
  EXPECT_EQ(thread_of["exporter"], "exporter");
  EXPECT_NE(std::find(tasks.begin(), tasks.end(), "prepare 1"), tasks.end())
      << "no prepare helper beside the exporter";
}
