// Reload and stop at the service level (docs/contract.md section 2).
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "core/supervisor.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;
using namespace std::chrono_literals;

namespace {

struct Recorder : Observer {
  std::mutex mutex;
  std::vector<State> states;
  std::vector<std::pair<bool, std::string>> reloads;
  void on_state(State s) override {
    std::lock_guard lock(mutex);
    states.push_back(s);
  }
  void on_reload_finished(bool ok, const std::string& detail) override {
    std::lock_guard lock(mutex);
    reloads.emplace_back(ok, detail);
  }
};

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = test_registry();
    write_text(dir_ / "conduit.toml", test_config(1));
  }
  std::vector<uint64_t> commits(int generation = 0) const {
    std::vector<uint64_t> out;
    for (const auto& e : world_.events())
      if (e.call.plugin == "exporter" && e.what == "commit" &&
          (generation == 0 || e.call.generation == generation))
        out.push_back(e.call.round);
    return out;
  }
  World world_;
  TempDir dir_;
  Registry registry_;
  Logger logger_{nullptr, LogLevel::error};
};

}  // namespace

TEST_F(SupervisorTest, ReloadDrainsRebuildsAndResumesWithoutLosingARound) {
  Supervisor supervisor(registry_, {.data_dir = dir_.path(), .durable_checkpoint = false}, logger_);
  Recorder recorder;
  supervisor.set_observer(&recorder);
  std::string reload_result = "not called";
  int gen2_rounds = 0;  // touched by the exporter thread only
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "exporter" && c.step == "receive" && c.generation == 1 && c.round == 5)
      world_.signal("reload");
    if (c.plugin == "exporter" && c.step == "receive" && c.generation == 2 && ++gen2_rounds == 3)
      world_.signal("stop");
  };
  std::jthread controller([&] {
    world_.wait("reload");
    // The new config adds a processor: the change must show in generation 2.
    write_text(dir_ / "conduit.toml", test_config(2));
    reload_result = supervisor.reload("test");
    world_.wait("stop");
    supervisor.stop(StopMode::end_of_round, "test");
  });
  StopCause cause = supervisor.run();
  controller.join();
  EXPECT_EQ(reload_result, "");
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  auto all = commits();
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i) << "no round lost or repeated";
  ASSERT_FALSE(commits(2).empty());
  EXPECT_EQ(commits(2).front(), commits(1).back() + 1);
  bool second_processor_ran = false;
  for (const auto& e : world_.events())
    if (e.call.plugin == "processor1" && e.call.generation == 2) second_processor_ran = true;
  EXPECT_TRUE(second_processor_ran);
  ASSERT_EQ(recorder.reloads.size(), 1u);
  EXPECT_TRUE(recorder.reloads[0].first);
  EXPECT_NE(std::find(recorder.states.begin(), recorder.states.end(), State::reloading),
            recorder.states.end());
  EXPECT_EQ(recorder.states.back(), State::stopped);
  // Every plugin instance of both generations closed exactly once.
  std::map<std::pair<std::string, int>, int> closes;
  for (const auto& e : world_.events())
    if (e.what == "closed") ++closes[{e.call.plugin, e.call.generation}];
  EXPECT_EQ(closes.size(), 3u + 4u);
  for (const auto& [key, count] : closes) EXPECT_EQ(count, 1) << key.first << "#" << key.second;
}

TEST_F(SupervisorTest, InvalidReloadIsRefusedAndThePipelineKeepsRunning) {
  Supervisor supervisor(registry_, {.data_dir = dir_.path(), .durable_checkpoint = false}, logger_);
  std::string reload_result;
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 3) world_.signal("reload");
    // Rounds keep flowing after the refused reload.
    if (c.plugin == "exporter" && c.step == "receive" && c.round > 3 && world_.signalled("refused"))
      world_.signal("stop");
  };
  std::jthread controller([&] {
    world_.wait("reload");
    write_text(dir_ / "conduit.toml",
               "[importer]\nname = \"test_importer\"\n[exporter]\nname = \"nope\"\n");
    reload_result = supervisor.reload("test");
    world_.signal("refused");
    world_.wait("stop");
    supervisor.stop(StopMode::end_of_round, "test");
  });
  StopCause cause = supervisor.run();
  controller.join();
  EXPECT_NE(reload_result.find("reload refused"), std::string::npos);
  EXPECT_NE(reload_result.find("unknown exporter 'nope'"), std::string::npos) << reload_result;
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  for (const auto& e : world_.events())
    EXPECT_EQ(e.call.generation, 1)
        << "the pipeline was not rebuilt: " << e.call.plugin << " " << e.call.step;
  EXPECT_GE(commits().size(), 5u);
}

TEST_F(SupervisorTest, EndOfRoundStopDuringAReloadDrainStopsInsteadOfRestarting) {
  Supervisor supervisor(registry_, {.data_dir = dir_.path(), .durable_checkpoint = false}, logger_);
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 2 && !world_.signalled("go")) {
      world_.signal("go");
      EXPECT_EQ(supervisor.reload("test"), "");
      supervisor.stop(StopMode::end_of_round, "operator");
    }
  };
  StopCause cause = supervisor.run();
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  EXPECT_NE(cause.detail.find("operator requested stop (end-of-round)"), std::string::npos)
      << cause.detail;
  EXPECT_EQ(world_.generation(), 2) << "the reload's plugins were built (validated) once";
  std::map<std::pair<std::string, int>, int> closes;
  for (const auto& e : world_.events())
    if (e.what == "closed") ++closes[{e.call.plugin, e.call.generation}];
  EXPECT_EQ(closes.size(), 6u) << "validated but never run plugins are closed too";
  for (const auto& [key, count] : closes) EXPECT_EQ(count, 1);
  EXPECT_EQ(supervisor.status().state, State::stopped);
}

TEST_F(SupervisorTest, ReloadWhileStoppingIsRefused) {
  Supervisor supervisor(registry_, {.data_dir = dir_.path(), .durable_checkpoint = false}, logger_);
  std::string result;
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 1 && result.empty()) {
      supervisor.stop(StopMode::end_of_round, "test");
      result = supervisor.reload("test");
    }
  };
  supervisor.run();
  EXPECT_EQ(result, "reload refused: the pipeline is stopping");
}

TEST_F(SupervisorTest, BadConfigAtStartIsAConfigError) {
  write_text(dir_ / "conduit.toml", "[importer]\nname = \"test_importer\"\n");
  EXPECT_THROW(Supervisor(registry_, {.data_dir = dir_.path()}, logger_), ConfigError);
}

// ---------------------------------------------------------------------------
// One stop state machine.

namespace {

// Records every log line; a test may hold one line back (see below).
struct CapturingSink : LogSink {
  std::mutex mutex;
  std::vector<std::pair<LogLevel, std::string>> lines;
  std::function<void(std::string_view)> on_line;
  void write(LogLevel level, std::string_view message, const LogFields&) override {
    if (on_line) on_line(message);
    std::lock_guard lock(mutex);
    lines.emplace_back(level, std::string(message));
  }
};

struct StateRecorder : Observer {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<State> states;
  std::vector<std::pair<bool, std::string>> reloads;
  int readies = 0;
  void on_state(State s) override {
    std::lock_guard lock(mutex);
    states.push_back(s);
    changed.notify_all();
  }
  void on_ready(uint64_t) override {
    std::lock_guard lock(mutex);
    ++readies;
  }
  void on_reload_finished(bool ok, const std::string& detail) override {
    std::lock_guard lock(mutex);
    reloads.emplace_back(ok, detail);
  }
  bool wait_for(State s, std::chrono::seconds limit) {
    std::unique_lock lock(mutex);
    return changed.wait_for(
        lock, limit, [&] { return std::find(states.begin(), states.end(), s) != states.end(); });
  }
  std::vector<State> snapshot() {
    std::lock_guard lock(mutex);
    return states;
  }
};

// The published states are a valid path: starting, then running / reloading
// alternating, then exactly one stopping, then stopped, and nothing after.
void expect_valid_state_path(const std::vector<State>& states) {
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(std::count(states.begin(), states.end(), State::stopping), 1)
      << "STOPPING=1 exactly once per process stop";
  EXPECT_EQ(states.back(), State::stopped);
  auto stopping = std::find(states.begin(), states.end(), State::stopping);
  ASSERT_NE(stopping, states.end());
  EXPECT_EQ(stopping + 1, states.end() - 1) << "nothing between stopping and stopped";
  for (auto it = states.begin(); it != stopping; ++it)
    EXPECT_TRUE(*it == State::running || *it == State::reloading)
        << "state " << to_string(*it) << " before stopping";
}

// Runs the supervisor on a thread; if it has not stopped within the limit, the
// test fails and a `now` stop ends it (so a lost stop fails instead of hanging).
StopCause run_with_deadline(Supervisor& supervisor, std::chrono::seconds limit) {
  std::promise<StopCause> done;
  auto result = done.get_future();
  std::jthread runner([&] { done.set_value(supervisor.run()); });
  if (result.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "the supervisor did not stop within " << limit.count() << "s";
    supervisor.stop(StopMode::now, "test deadline");
  }
  return result.get();
}

}  // namespace

// Item 2: a `now` stop whose `stopping` notification raced with the pipeline's
// end was dropped (State went running -> stopped, no STOPPING=1). Here the
// stop's log line is held back until the pipeline has surely finished.
TEST_F(SupervisorTest, StoppingIsPublishedEvenWhenThePipelineEndsFirst) {
  auto sink = std::make_unique<CapturingSink>();
  CapturingSink& lines = *sink;
  Logger logger(std::move(sink), LogLevel::info);
  Supervisor supervisor(registry_, {.data_dir = dir_.path(), .durable_checkpoint = false}, logger);
  StateRecorder recorder;
  supervisor.set_observer(&recorder);
  lines.on_line = [&](std::string_view message) {
    // Until `stopping` is published (bounded: on a broken state machine the
    // pipeline has long finished by the deadline).
    if (message.rfind("stop requested by", 0) == 0) recorder.wait_for(State::stopping, 5s);
  };
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 2) world_.signal("go");
  };
  std::jthread controller([&] {
    world_.wait("go");
    supervisor.stop(StopMode::now, "test");
  });
  StopCause cause = run_with_deadline(supervisor, 60s);
  controller.join();
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  expect_valid_state_path(recorder.snapshot());
}

// Item 3: an end-of-round stop while the rebuilt pipeline initialises stops it
// (no rounds, State never back to running), and a second request escalates.
TEST_F(SupervisorTest, EndOfRoundStopDuringTheRebuiltPipelinesInitStopsIt) {
  Supervisor supervisor(registry_, {.data_dir = dir_.path(), .durable_checkpoint = false}, logger_);
  StateRecorder recorder;
  supervisor.set_observer(&recorder);
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.generation == 1 && c.plugin == "exporter" && c.step == "receive" && c.round == 2 &&
        !world_.signalled("reload")) {
      world_.signal("reload");
      EXPECT_EQ(supervisor.reload("test"), "");
    }
    if (c.generation == 2 && c.plugin == "exporter" && c.step == "init") {
      supervisor.stop(StopMode::end_of_round, "operator");
      supervisor.stop(StopMode::end_of_round, "operator-again");
    }
  };
  StopCause cause = run_with_deadline(supervisor, 30s);
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  EXPECT_EQ(cause.detail.rfind("operator requested stop (end-of-round)", 0), 0u) << cause.detail;
  EXPECT_NE(cause.detail.find("escalated to now by second stop request (operator-again"),
            std::string::npos)
      << cause.detail;
  EXPECT_EQ(cause.mode, StopMode::now);
  EXPECT_TRUE(commits(2).empty()) << "the rebuilt pipeline moved rounds after a stop";
  auto states = recorder.snapshot();
  expect_valid_state_path(states);
  EXPECT_EQ(states, (std::vector<State>{State::running, State::reloading, State::stopping,
                                        State::stopped}));
  EXPECT_EQ(recorder.readies, 1) << "no READY=1 for a pipeline stopped during its init";
  ASSERT_EQ(recorder.reloads.size(), 1u);
  EXPECT_FALSE(recorder.reloads[0].first);
  std::map<std::pair<std::string, int>, int> closes;
  for (const auto& e : world_.events())
    if (e.what == "closed") ++closes[{e.call.plugin, e.call.generation}];
  EXPECT_EQ(closes.size(), 6u);
  for (const auto& [key, count] : closes) EXPECT_EQ(count, 1) << key.first << "#" << key.second;
}

// Item 4: `now` (SIGTERM, Stop("now")) during a reload's drain is a stop:
// State goes reloading -> stopping -> stopped, nothing at err.
TEST_F(SupervisorTest, NowDuringAReloadDrainIsAnOrdinaryStop) {
  auto sink = std::make_unique<CapturingSink>();
  CapturingSink& lines = *sink;
  Logger logger(std::move(sink), LogLevel::info);
  Supervisor supervisor(registry_, {.data_dir = dir_.path(), .durable_checkpoint = false}, logger);
  StateRecorder recorder;
  supervisor.set_observer(&recorder);
  world_.hook = [&](const Call& c, std::stop_token stop) {
    if (c.generation == 1 && c.plugin == "exporter" && c.step == "receive" && c.round == 3) {
      EXPECT_EQ(supervisor.reload("test"), "");
      world_.signal("reloading");
      World::block_until_cancelled(stop);  // the drain cannot finish: only `now` ends it
    }
  };
  std::jthread controller([&] {
    world_.wait("reloading");
    supervisor.stop(StopMode::now, "SIGTERM from pid 1");
  });
  StopCause cause = run_with_deadline(supervisor, 30s);
  controller.join();
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  EXPECT_EQ(cause.detail, "SIGTERM from pid 1 requested stop (now)");
  EXPECT_EQ(cause.origin, "SIGTERM from pid 1");
  auto states = recorder.snapshot();
  expect_valid_state_path(states);
  EXPECT_EQ(states, (std::vector<State>{State::running, State::reloading, State::stopping,
                                        State::stopped}));
  EXPECT_EQ(world_.generation(), 2) << "validated once, never started";
  EXPECT_EQ(commits(), (std::vector<uint64_t>{0, 1, 2}));
  std::lock_guard lock(lines.mutex);
  for (const auto& [level, text] : lines.lines) EXPECT_NE(level, LogLevel::error) << text;
}

// The objective only moves up: reload, end_of_round, now; requests below it are no-ops
// or refusals, never a step back.
TEST_F(SupervisorTest, TheObjectiveOnlyMovesUp) {
  Supervisor supervisor(registry_, {.data_dir = dir_.path(), .durable_checkpoint = false}, logger_);
  std::vector<Objective> seen;
  std::vector<std::string> reload_results;
  world_.hook = [&](const Call& c, std::stop_token) {
    if (c.generation != 1 || c.plugin != "exporter" || c.step != "receive" || c.round != 1) return;
    seen.push_back(supervisor.objective());
    supervisor.stop(StopMode::end_of_round, "first");
    seen.push_back(supervisor.objective());
    reload_results.push_back(supervisor.reload("late"));
    seen.push_back(supervisor.objective());
    supervisor.stop(StopMode::now, "second");
    seen.push_back(supervisor.objective());
    supervisor.stop(StopMode::end_of_round, "third");
    seen.push_back(supervisor.objective());
  };
  StopCause cause = run_with_deadline(supervisor, 30s);
  EXPECT_EQ(seen,
            (std::vector<Objective>{Objective::run, Objective::end_of_round,
                                    Objective::end_of_round, Objective::now, Objective::now}));
  EXPECT_EQ(reload_results, (std::vector<std::string>{"reload refused: the pipeline is stopping"}));
  EXPECT_EQ(cause.detail, "first requested stop (end-of-round); escalated to now by second");
}

// A second end-of-round request escalates a drain that hangs to `now`.
TEST_F(SupervisorTest, SecondStopEscalatesADrainToNow) {
  Supervisor supervisor(registry_, {.data_dir = dir_.path(), .durable_checkpoint = false}, logger_);
  world_.hook = [&](const Call& c, std::stop_token stop) {
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 2) {
      supervisor.stop(StopMode::end_of_round, "first");
      world_.signal("draining");
      World::block_until_cancelled(stop);  // only `now` releases it
    }
  };
  std::jthread stopper([&] {
    world_.wait("draining");
    supervisor.stop(StopMode::end_of_round, "second");
  });
  StopCause cause = run_with_deadline(supervisor, 30s);
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  EXPECT_NE(cause.detail.find("escalated to now by second stop request (second"), std::string::npos)
      << cause.detail;
  EXPECT_EQ(checkpoint_round(dir_.path()), 2u);
}

// stop-timeout escalates an end-of-round drain that hangs to `now`.
TEST_F(SupervisorTest, StopTimeoutEscalatesADrainThatHangs) {
  write_text(dir_ / "conduit.toml", test_config(0, "stop-timeout = \"20ms\"\n"));
  Supervisor supervisor(registry_, {.data_dir = dir_.path(), .durable_checkpoint = false}, logger_);
  world_.hook = [&](const Call& c, std::stop_token stop) {
    if (c.plugin == "exporter" && c.step == "receive" && c.round == 1) {
      supervisor.stop(StopMode::end_of_round, "test");
      World::block_until_cancelled(stop);
    }
  };
  StopCause cause = run_with_deadline(supervisor, 30s);
  EXPECT_EQ(cause.reason, StopReason::stop_requested);
  EXPECT_NE(cause.detail.find("stop-timeout (20ms)"), std::string::npos) << cause.detail;
  EXPECT_EQ(checkpoint_round(dir_.path()), 1u);
}
