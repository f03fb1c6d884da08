// Stop-anywhere property test. Seeded random scenarios stop, reload,
// double-stop, fail or retry at random points of random pipelines, with the
// trigger fired inline from a plugin call or from a controller thread, and then
// a restart. Windows: any round call, init, a round request, a real (1h) retry
// wait, and after a reload: the rebuilt pipeline's init and round requests and
// the old pipeline's close(). Invariants (docs/contract.md section 2):
//   - every plugin instance of every generation is closed exactly once,
//     importer -> processors -> exporter, and never called after its close();
//   - the supervisor stops: every wait has a deadline, a lost stop fails;
//   - end-of-round exports every round the importer delivered;
//   - after `now` the checkpoint is the first uncommitted round;
//   - across the stop and a restart no round is exported twice or skipped.
// CONDUIT_PROPERTY_CASES overrides the number of cases, CONDUIT_PROPERTY_SEED the first seed.
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "core/supervisor.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;

namespace {

enum class Action {
  stop_now,
  stop_end_of_round,
  reload,        // then an end-of-round stop in the second generation
  eor_then_eor,  // second request escalates to now
  eor_then_now,
  retry_then_stop,  // a retryable failure, then a stop during the (1h) retry wait
  fatal_error,
  reload_then_stop,  // a reload, then a stop (either mode) in a window of the rebuild
};
constexpr int kActions = 8;

// Where reload_then_stop's stop fires.
enum class RebuildWindow {
  old_close,         // the old pipeline's close() of `plugin`
  new_init,          // the rebuilt pipeline's init of `plugin`
  new_round_request  // the rebuilt pipeline's round request of `plugin`
};

enum class Delivery {
  inline_call,      // the hook itself calls stop() from the plugin thread
  controller,       // a controller thread calls stop(); the hook carries on at once
  wait_requested,   // a controller calls stop(); the hook waits until it has
  block_cancelled,  // a controller calls stop(); the hook blocks until its token fires
};

struct Scenario {
  uint64_t seed;
  int processors;
  int reload_processors;
  Action action;
  Delivery delivery;
  std::string plugin;  // where the trigger fires
  std::string step;
  uint64_t round;
  bool second_from_controller;
  RebuildWindow window = RebuildWindow::old_close;
  std::string window_plugin;  // for reload_then_stop
  StopMode rebuild_stop_mode = StopMode::now;

  std::string describe() const {
    static const char* actions[] = {"now",     "end-of-round", "reload", "eor+eor",
                                    "eor+now", "retry+stop",   "fatal",  "reload+stop"};
    static const char* deliveries[] = {"inline", "controller", "wait-requested", "block-cancelled"};
    static const char* windows[] = {"old close", "new init", "new round_request"};
    std::string text = "seed " + std::to_string(seed) + ": " + std::to_string(processors) +
                       " processors, " + actions[static_cast<int>(action)] + " via " +
                       deliveries[static_cast<int>(delivery)] + " at " + plugin + "." + step + "(" +
                       std::to_string(round) + ")";
    if (action == Action::reload_then_stop)
      text += ", then " + std::string(to_string(rebuild_stop_mode)) + " in " +
              windows[static_cast<int>(window)] + " of " + window_plugin;
    return text;
  }
};

Scenario make_scenario(uint64_t seed) {
  std::mt19937_64 rng(seed);
  Scenario s{};
  s.seed = seed;
  s.processors = static_cast<int>(rng() % 3);
  s.reload_processors = static_cast<int>(rng() % 3);
  s.action = static_cast<Action>(rng() % kActions);
  s.delivery = static_cast<Delivery>(rng() % 4);
  s.second_from_controller = rng() % 2;
  std::vector<std::string> plugins{"importer"};
  for (int i = 0; i < s.processors; ++i) plugins.push_back("processor" + std::to_string(i));
  plugins.push_back("exporter");
  s.plugin = plugins[rng() % plugins.size()];
  unsigned where = rng() % 8;
  bool at_init = where == 0;
  bool at_round_request = where == 1;
  s.step = at_init                  ? "init"
           : at_round_request       ? "round_request"
           : s.plugin == "importer" ? "get"
           : s.plugin == "exporter" ? "receive"
                                    : "process";
  s.round = at_init || at_round_request ? 0 : rng() % 8;
  // The rebuild's windows: any plugin of the old (close) or the new pipeline.
  s.window = static_cast<RebuildWindow>(rng() % 3);
  s.rebuild_stop_mode = rng() % 2 ? StopMode::now : StopMode::end_of_round;
  {
    int window_processors =
        s.window == RebuildWindow::old_close ? s.processors : s.reload_processors;
    std::vector<std::string> names{"importer"};
    for (int i = 0; i < window_processors; ++i) names.push_back("processor" + std::to_string(i));
    names.push_back("exporter");
    s.window_plugin = names[rng() % names.size()];
  }
  // Failures and reloads are scripted on round calls, not init.
  bool round_step_only = s.action == Action::retry_then_stop || s.action == Action::fatal_error ||
                         s.action == Action::reload || s.action == Action::reload_then_stop;
  if (round_step_only && (s.step == "init" || s.step == "round_request"))
    s.step = s.plugin == "importer" ? "get" : s.plugin == "exporter" ? "receive" : "process";
  if (s.action == Action::retry_then_stop || s.action == Action::fatal_error)
    s.delivery = Delivery::controller;
  // A round request has no stop token to block on.
  if (s.step == "round_request" && s.delivery == Delivery::block_cancelled)
    s.delivery = Delivery::wait_requested;
  // Blocking until cancelled must be released by something: the importer's and
  // init's tokens fire on any stop; processors and exporters only on `now`.
  bool token_fires_for_any_stop = s.plugin == "importer" || s.step == "init";
  bool now_follows = s.action == Action::stop_now || s.action == Action::eor_then_eor ||
                     s.action == Action::eor_then_now;
  if (s.delivery == Delivery::block_cancelled && !token_fires_for_any_stop && !now_follows)
    s.delivery = Delivery::wait_requested;
  return s;
}

struct Outcome {
  StopCause cause;
  std::vector<Event> events;
};

class Controller {
 public:
  explicit Controller(World& world) : world_(world) {}
  // Queue a request for the controller thread.
  void request(std::function<void()> fn) {
    {
      std::lock_guard lock(mutex_);
      work_.push_back(std::move(fn));
    }
    cv_.notify_all();
  }
  void run(std::stop_token stop) {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mutex_);
        if (!cv_.wait(lock, stop, [&] { return !work_.empty(); })) return;
        fn = std::move(work_.front());
        work_.erase(work_.begin());
      }
      fn();
    }
  }

 private:
  World& world_;
  std::mutex mutex_;
  std::condition_variable_any cv_;
  std::vector<std::function<void()>> work_;
};

Outcome run_first(const Scenario& s, const std::filesystem::path& dir, const Registry& registry,
                  Logger& logger, World& world) {
  // A real retry wait: the stop must interrupt it, or the run hits the deadline.
  std::string top = "stop-timeout = \"1h\"\n";
  if (s.action == Action::retry_then_stop) top += "retry-delay = \"1h\"\n";
  write_text(dir / "conduit.toml", test_config(s.processors, top));
  Supervisor supervisor(registry, {.data_dir = dir, .durable_checkpoint = false}, logger);
  world.round_request = [](const std::string&) -> uint64_t { return 0; };
  Controller controller(world);
  std::jthread controller_thread([&](std::stop_token st) { controller.run(st); });
  std::atomic<bool> fired{false};
  std::atomic<bool> second_fired{false};
  std::mutex reload_mutex;
  std::optional<uint64_t> gen2_first;

  auto first_stop = [&]() -> std::function<void()> {
    switch (s.action) {
      case Action::stop_now:
        return [&] { supervisor.stop(StopMode::now, "test"); };
      case Action::stop_end_of_round:
      case Action::eor_then_eor:
      case Action::eor_then_now:
        return [&] { supervisor.stop(StopMode::end_of_round, "test"); };
      case Action::reload:
      case Action::reload_then_stop:
        return [&] {
          write_text(dir / "conduit.toml",
                     test_config(s.reload_processors, "stop-timeout = \"1h\"\n"));
          std::string result = supervisor.reload("test");
          // The reload may lose a race with the pipeline stopping for no
          // reason we caused; it may not fail otherwise.
          EXPECT_EQ(result, "") << s.describe();
        };
      case Action::retry_then_stop:
        return [&] {
          world.wait("failed-once");
          bool exporter_side = s.plugin != "importer";
          supervisor.stop(exporter_side ? StopMode::now : StopMode::end_of_round, "test");
        };
      case Action::fatal_error:
        return [] {};
    }
    return [] {};
  }();
  auto second_stop = [&] {
    if (s.action == Action::eor_then_eor) supervisor.stop(StopMode::end_of_round, "second");
    if (s.action == Action::eor_then_now) supervisor.stop(StopMode::now, "second");
  };

  auto rebuild_stop = [&] {
    if (!second_fired.exchange(true)) supervisor.stop(s.rebuild_stop_mode, "test-rebuild");
  };
  if (s.action == Action::reload_then_stop && s.window == RebuildWindow::old_close) {
    world.close_hook = [&](const Call& c) {
      if (c.generation == 1 && c.plugin == s.window_plugin && fired.load()) rebuild_stop();
    };
  }
  world.hook = [&](const Call& c, std::stop_token stop) {
    if (s.action == Action::reload_then_stop && c.generation == 2 && c.plugin == s.window_plugin &&
        ((s.window == RebuildWindow::new_init && c.step == "init") ||
         (s.window == RebuildWindow::new_round_request && c.step == "round_request"))) {
      rebuild_stop();
      return;
    }
    // Second generation (after a reload): stop two rounds in.
    if (c.generation >= 2 && c.plugin == "exporter" && c.step == "receive") {
      std::lock_guard lock(reload_mutex);
      if (!gen2_first) gen2_first = c.round;
      if (c.round == *gen2_first + 2 && !second_fired.exchange(true))
        controller.request([&] { supervisor.stop(StopMode::end_of_round, "test-gen2"); });
      return;
    }
    if (c.generation != 1 || c.plugin != s.plugin || c.step != s.step || c.round != s.round) return;
    if (s.action == Action::fatal_error) {
      if (!fired.exchange(true)) throw PluginError("scripted fatal error", false);
      return;
    }
    if (s.action == Action::retry_then_stop) {
      if (!fired.exchange(true)) {
        controller.request(first_stop);
        world.signal("failed-once");
        throw PluginError("scripted retryable error", true);
      }
      return;
    }
    if (fired.exchange(true)) return;
    bool has_second = s.action == Action::eor_then_eor || s.action == Action::eor_then_now;
    switch (s.delivery) {
      case Delivery::inline_call:
        first_stop();
        if (has_second) {
          if (s.second_from_controller)
            controller.request(second_stop);
          else
            second_stop();
        }
        break;
      case Delivery::controller:
        controller.request([&, has_second] {
          first_stop();
          if (has_second) second_stop();
        });
        break;
      case Delivery::wait_requested:
        controller.request([&, has_second] {
          first_stop();
          world.signal("requested");
          if (has_second) second_stop();
        });
        world.wait("requested");
        break;
      case Delivery::block_cancelled:
        controller.request([&, has_second] {
          first_stop();
          if (has_second) second_stop();
        });
        World::block_until_cancelled(stop);
    }
  };

  Outcome out;
  std::promise<StopCause> done;
  auto result = done.get_future();
  std::jthread runner([&] { done.set_value(supervisor.run()); });
  if (result.wait_for(kWaitLimit) != std::future_status::ready) {
    ADD_FAILURE() << s.describe() << ": the supervisor did not stop";
    supervisor.stop(StopMode::now, "test deadline");
  }
  out.cause = result.get();
  runner.join();
  controller_thread.request_stop();
  controller_thread.join();
  world.hook = nullptr;
  world.close_hook = nullptr;
  out.events = world.events();
  return out;
}

// Per generation built (whether or not it recorded any other event): every
// plugin closed once, in pipeline order, and nothing called after its close.
void check_closes(const Scenario& s, const std::vector<Event>& events, int generations,
                  const std::map<int, int>& processors_of) {
  std::map<int, std::vector<std::string>> closed;
  for (const auto& e : events) {
    if (e.what == "closed") closed[e.call.generation].push_back(e.call.plugin);
    EXPECT_NE(e.what, "after-close") << s.describe() << ": " << e.call.plugin << "." << e.call.step
                                     << " called after its close()";
  }
  for (int g = 1; g <= generations; ++g) {
    std::vector<std::string> expected{"importer"};
    auto it = processors_of.find(g);
    int processors = it == processors_of.end() ? -1 : it->second;
    for (int i = 0; i < processors; ++i) expected.push_back("processor" + std::to_string(i));
    expected.push_back("exporter");
    if (processors < 0) {
      // Unknown processor count: only importer first, exporter last, no repeats.
      const auto& order = closed[g];
      ASSERT_FALSE(order.empty()) << s.describe() << ": generation " << g << " never closed";
      EXPECT_EQ(order.front(), "importer") << s.describe();
      EXPECT_EQ(order.back(), "exporter") << s.describe();
      continue;
    }
    EXPECT_EQ(closed[g], expected) << s.describe() << ": generation " << g;
  }
}

std::vector<uint64_t> collect(const std::vector<Event>& events, const std::string& plugin,
                              const std::string& what, int generation = 0) {
  std::vector<uint64_t> out;
  for (const auto& e : events)
    if (e.call.plugin == plugin && e.what == what &&
        (generation == 0 || e.call.generation == generation))
      out.push_back(e.call.round);
  return out;
}

void check_scenario(const Scenario& s, const Registry& registry) {
  SCOPED_TRACE(s.describe());
  TempDir dir;
  Logger logger(nullptr, LogLevel::error);
  World world;
  Outcome first = run_first(s, dir.path(), registry, logger, world);

  // Stop cause.
  if (s.action == Action::fatal_error) {
    StopReason expected = s.plugin == "importer"   ? StopReason::importer_error
                          : s.plugin == "exporter" ? StopReason::exporter_error
                                                   : StopReason::processor_error;
    EXPECT_EQ(first.cause.reason, expected) << first.cause.detail;
  } else {
    EXPECT_EQ(first.cause.reason, StopReason::stop_requested) << first.cause.detail;
  }
  // Generation 1 has s.processors; a reload's validated build s.reload_processors.
  std::map<int, int> processors_of{{1, s.processors}};
  if (s.action == Action::reload || s.action == Action::reload_then_stop)
    processors_of[2] = s.reload_processors;
  check_closes(s, first.events, world.generation(), processors_of);

  // Committed rounds: contiguous from 0, no duplicates, checkpoint right after.
  auto commits = collect(first.events, "exporter", "commit");
  for (size_t i = 0; i < commits.size(); ++i)
    ASSERT_EQ(commits[i], i) << "round skipped or repeated";
  auto checkpoint = checkpoint_round(dir.path());
  if (!commits.empty() || checkpoint) {
    EXPECT_EQ(checkpoint.value_or(0), commits.size());
  }

  // End-of-round: every delivered round exported (per generation).
  bool pure_drain = s.action == Action::stop_end_of_round || s.action == Action::reload ||
                    (s.action == Action::retry_then_stop && s.plugin == "importer") ||
                    (s.action == Action::reload_then_stop && s.window != RebuildWindow::old_close);
  if (pure_drain) {
    for (int g = 1; g <= world.generation(); ++g)
      EXPECT_EQ(collect(first.events, "importer", "deliver", g),
                collect(first.events, "exporter", "commit", g))
          << "generation " << g;
  }
  // `now` while the exporter blocks on round k: exactly rounds [0, k) committed.
  if (s.action == Action::stop_now && s.delivery == Delivery::block_cancelled &&
      s.plugin == "exporter" && s.step == "receive") {
    EXPECT_EQ(commits.size(), s.round);
  }
  if (s.action == Action::reload && s.step != "init" && world.generation() >= 2) {
    EXPECT_FALSE(collect(first.events, "exporter", "commit", 2).empty()) << "reloaded pipeline ran";
  }
  // A stop in the rebuild's init or round request: the rebuilt pipeline never ran.
  if (s.action == Action::reload_then_stop && s.window != RebuildWindow::old_close) {
    EXPECT_TRUE(collect(first.events, "importer", "deliver", 2).empty()) << "rebuilt pipeline ran";
    EXPECT_TRUE(collect(first.events, "exporter", "commit", 2).empty()) << "rebuilt pipeline ran";
  }

  // Restart: resumes at the checkpoint and continues without gaps or repeats.
  uint64_t resume = checkpoint.value_or(0);
  write_text(dir / "conduit.toml", test_config(s.processors));
  int restart_generation = world.generation() + 1;  // the importer built next
  Supervisor again(registry, {.data_dir = dir.path(), .durable_checkpoint = false}, logger);
  world.hook = [&](const Call& c, std::stop_token) {
    if (c.generation == restart_generation && c.plugin == "exporter" && c.step == "receive" &&
        c.round == resume + 2)
      again.stop(StopMode::end_of_round, "restart-test");
  };
  EXPECT_EQ(again.run().reason, StopReason::stop_requested);
  auto resumed = collect(world.events(), "exporter", "commit", restart_generation);
  ASSERT_FALSE(resumed.empty());
  EXPECT_EQ(resumed.front(), resume);
  for (size_t i = 0; i < resumed.size(); ++i) EXPECT_EQ(resumed[i], resume + i);
  EXPECT_EQ(checkpoint_round(dir.path()), resume + resumed.size());
}

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::stoull(v) : fallback;
}

}  // namespace

TEST(StopProperty, StopAnywhere) {
  Registry registry = test_registry();
  uint64_t cases = env_or("CONDUIT_PROPERTY_CASES", 1500);
  uint64_t first_seed = env_or("CONDUIT_PROPERTY_SEED", 1);
  std::map<int, int> by_action;
  for (uint64_t seed = first_seed; seed < first_seed + cases; ++seed) {
    Scenario s = make_scenario(seed);
    ++by_action[static_cast<int>(s.action)];
    check_scenario(s, registry);
    if (::testing::Test::HasFatalFailure() || ::testing::Test::HasFailure()) {
      ADD_FAILURE() << "first failing case: " << s.describe()
                    << " (rerun with CONDUIT_PROPERTY_SEED=" << seed
                    << " CONDUIT_PROPERTY_CASES=1)";
      break;
    }
  }
  if (cases >= 100) {
    for (int a = 0; a < kActions; ++a)
      EXPECT_GT(by_action[a], 0) << "action " << a << " never drawn";
  }
}
