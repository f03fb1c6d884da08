// Reload and stop at the service level (CONTRACT section 2).
#include <gtest/gtest.h>

#include <thread>

#include "core/supervisor.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;

namespace {

struct Recorder : SupervisorObserver {
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
