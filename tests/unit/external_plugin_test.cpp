// External plugins (conduit-plugin(7)) under the Supervisor: real child
// processes (tests/plugins/scripted_plugin.py) stopped in each protocol phase
// in both modes, crashing in each phase, ignoring cancel, flooding stderr,
// writing garbage, exiting early. Every wait is for an event the plugin writes
// to a FIFO, with a deadline. Invariants:
//   - the supervisor stops with the expected cause;
//   - each process that was not killed receives close once, in pipeline order;
//   - the exporter's committed rounds are contiguous from 0 with no repeat,
//     across the run and a restart, and the checkpoint follows them;
//   - no plugin process outlives the run.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <future>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "core/supervisor.hpp"
#include "plugins/builtin.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;
namespace fs = std::filesystem;

namespace {

fs::path scripted_plugin() {
  const char* root = std::getenv("CONDUIT_SOURCE_ROOT");
  return fs::path(root ? root : ".") / "tests" / "plugins" / "scripted_plugin.py";
}

// A FIFO the plugins write events to; opened read-write so that it never
// reports end-of-file between writers.
class EventPipe {
 public:
  explicit EventPipe(fs::path path) : path_(std::move(path)) {
    if (::mkfifo(path_.c_str(), 0600) != 0) throw std::runtime_error("mkfifo failed");
    fd_ = ::open(path_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  }
  ~EventPipe() { ::close(fd_); }
  const fs::path& path() const { return path_; }

  // Waits (kWaitLimit at most) for a line containing `needle`.
  bool wait_for(const std::string& needle) {
    auto until = std::chrono::steady_clock::now() + kWaitLimit;
    for (;;) {
      size_t newline;
      while ((newline = buffer_.find('\n')) != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        if (line.find(needle) != std::string::npos) return true;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      until - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) {
        ADD_FAILURE() << "no event \"" << needle << "\" within " << kWaitLimit.count() << " s";
        return false;
      }
      pollfd p{fd_, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left));
      char chunk[4096];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n > 0) buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  fs::path path_;
  int fd_ = -1;
  std::string buffer_;
};

struct Script {
  std::string at;  // "receive:3", "init", ...
  std::string action;
  int times = 1;
  std::string notify_at;
};

struct Layout {
  bool external_importer = false;
  bool processor = true;
  Script importer, processor_script, exporter;
  std::string top = "retry-count = 5\nretry-delay = \"1ms\"\nstop-timeout = \"1h\"\n";
  std::string exporter_extra;  // more keys of [exporter], e.g. env
  std::string exporter_name = "ext_exporter";
};

struct LogLine {
  int pid;
  std::string kind, what;
  std::optional<uint64_t> round;
};

class ExternalPipeline {
 public:
  ExternalPipeline() : events_(dir_ / "events"), release_path_(dir_ / "release") {
    fs::create_directories(dir_ / "plugins");
    for (const char* kind : {"importer", "processor", "exporter"})
      fs::create_symlink(scripted_plugin(), dir_ / "plugins" / (std::string("ext_") + kind));
    ::mkfifo(release_path_.c_str(), 0600);
  }
  const fs::path& dir() const { return dir_.path(); }
  EventPipe& events() { return events_; }

  void configure(const Layout& s) {
    std::ostringstream t;
    t << s.top << "\n[importer]\nname = \"" << (s.external_importer ? "ext_importer" : "noop")
      << "\"\n";
    if (s.external_importer) t << "[importer.config]\n" << script_keys(s.importer);
    if (s.processor)
      t << "[[processors]]\nname = \"ext_processor\"\n[processors.config]\n"
        << script_keys(s.processor_script);
    t << "[exporter]\nname = \"" << s.exporter_name << "\"\n"
      << s.exporter_extra << "[exporter.config]\n"
      << script_keys(s.exporter) << "position = \"" << (dir_ / "position").string() << "\"\n";
    write_text(dir_ / "conduit.toml", t.str());
  }

  // Lets a plugin paused by the `pause` action go on.
  void release() {
    int fd = ::open(release_path_.c_str(), O_WRONLY | O_CLOEXEC);
    (void)!::write(fd, "go\n", 3);
    ::close(fd);
  }

  std::vector<uint64_t> committed() const {
    std::vector<uint64_t> out;
    if (!fs::exists(dir_ / "position")) return out;
    std::istringstream in(read_text(dir_ / "position"));
    for (uint64_t r; in >> r;) out.push_back(r);
    return out;
  }

  std::vector<LogLine> log() const {
    std::vector<LogLine> out;
    if (!fs::exists(dir_ / "log")) return out;
    std::istringstream in(read_text(dir_ / "log"));
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      LogLine l;
      words >> l.pid >> l.kind >> l.what;
      if (uint64_t r; words >> r) l.round = r;
      out.push_back(l);
    }
    return out;
  }

 private:
  std::string script_keys(const Script& s) const {
    std::string keys = "log = \"" + (dir_ / "log").string() + "\"\nevents = \"" +
                       events_.path().string() + "\"\nrelease = \"" + release_path_.string() +
                       "\"\n";
    if (!s.at.empty())
      keys += "at = \"" + s.at + "\"\naction = \"" + s.action +
              "\"\ntimes = " + std::to_string(s.times) + "\n";
    if (!s.notify_at.empty()) keys += "notify-at = \"" + s.notify_at + "\"\n";
    return keys;
  }

  TempDir dir_;
  EventPipe events_;
  fs::path release_path_;
};

// Runs the supervisor on a thread; `during` runs on this one meanwhile.
StopCause run_supervisor(Supervisor& supervisor, const std::function<void()>& during) {
  std::promise<StopCause> done;
  auto result = done.get_future();
  std::jthread runner([&] { done.set_value(supervisor.run()); });
  during();
  if (result.wait_for(kWaitLimit) != std::future_status::ready) {
    ADD_FAILURE() << "the supervisor did not stop";
    supervisor.stop(StopMode::now, "test deadline");
  }
  return result.get();
}

void expect_contiguous(const std::vector<uint64_t>& rounds) {
  for (size_t i = 0; i < rounds.size(); ++i)
    ASSERT_EQ(rounds[i], i) << "round skipped or repeated at position " << i;
}

// Each process closed at most once; the last processes closed importer ->
// processor -> exporter; no process still running.
void expect_closed_in_order(const std::vector<LogLine>& log, bool external_importer,
                            bool processor) {
  std::map<int, int> closes;
  std::vector<std::string> order;
  for (const auto& l : log)
    if (l.what == "close") {
      ++closes[l.pid];
      order.push_back(l.kind);
    }
  for (auto [pid, n] : closes) EXPECT_EQ(n, 1) << "pid " << pid << " closed " << n << " times";
  std::vector<std::string> expected;
  if (external_importer) expected.push_back("importer");
  if (processor) expected.push_back("processor");
  expected.push_back("exporter");
  ASSERT_GE(order.size(), expected.size());
  std::vector<std::string> last(order.end() - static_cast<long>(expected.size()), order.end());
  EXPECT_EQ(last, expected);
}

void expect_no_process_left(const std::vector<LogLine>& log) {
  std::set<int> pids;
  for (const auto& l : log) pids.insert(l.pid);
  for (int pid : pids)
    EXPECT_TRUE(::kill(pid, 0) != 0 && errno == ESRCH) << "pid " << pid << " lives on";
}

// A restart without faults resumes where the exporter stopped and goes on.
void expect_restart_continues(ExternalPipeline& p, Logger& logger) {
  uint64_t before = p.committed().size();
  Layout again;
  again.exporter.notify_at = "receive:" + std::to_string(before + 3);
  p.configure(again);
  Supervisor supervisor(builtin_registry(), {.data_dir = p.dir()}, logger);
  StopCause cause = run_supervisor(supervisor, [&] {
    p.events().wait_for("exporter receive " + std::to_string(before + 3));
    supervisor.stop(StopMode::end_of_round, "test restart");
  });
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  auto rounds = p.committed();
  expect_contiguous(rounds);
  EXPECT_GE(rounds.size(), before + 4);
  EXPECT_EQ(checkpoint_round(p.dir()), rounds.size());
  expect_no_process_left(p.log());
}

struct PhaseCase {
  std::string plugin;  // "processor" or "exporter"
  std::string at;      // "round-request", "init", "process:3", "receive:3"
  StopMode mode;
  std::string action;  // block, block-ignore-cancel, pause
};

std::string describe(const PhaseCase& c) {
  std::string at = c.at;
  for (auto& ch : at)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  std::string action = c.action;
  for (auto& ch : action)
    if (ch == '-') ch = '_';
  return c.plugin + "_" + at + "_" + (c.mode == StopMode::now ? "now" : "eor") + "_" + action;
}

std::vector<PhaseCase> phase_cases() {
  std::vector<PhaseCase> out;
  for (std::string plugin : {"processor", "exporter"}) {
    std::vector<std::string> phases{"init", plugin == "exporter" ? "receive:3" : "process:3"};
    if (plugin == "exporter") phases.push_back("round-request");
    for (const auto& at : phases)
      for (StopMode mode : {StopMode::now, StopMode::end_of_round}) {
        bool round_call = at.find(':') != std::string::npos;
        // An end-of-round stop does not cancel a round call: it waits for it.
        if (round_call && mode == StopMode::end_of_round) {
          out.push_back({plugin, at, mode, "pause"});
          continue;
        }
        out.push_back({plugin, at, mode, "block"});
        out.push_back({plugin, at, mode, "block-ignore-cancel"});
      }
  }
  return out;
}

class StopInPhase : public ::testing::TestWithParam<PhaseCase> {};

TEST_P(StopInPhase, StopsClosesAndLosesNothing) {
  const PhaseCase& c = GetParam();
  ExternalPipeline p;
  Logger logger(nullptr, LogLevel::error);
  Layout s;
  (c.plugin == "exporter" ? s.exporter : s.processor_script) = {c.at, c.action, 1, ""};
  p.configure(s);
  std::string event = c.plugin + " " + c.at.substr(0, c.at.find(':'));
  Supervisor supervisor(builtin_registry(), {.data_dir = p.dir()}, logger);
  StopCause cause = run_supervisor(supervisor, [&] {
    p.events().wait_for(event);
    supervisor.stop(c.mode, "test");
    if (c.action == "pause") p.release();
  });
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  auto log = p.log();
  auto rounds = p.committed();
  expect_contiguous(rounds);
  EXPECT_EQ(checkpoint_round(p.dir()).value_or(0), rounds.size());
  bool killed = c.action == "block-ignore-cancel";
  if (!killed) {
    expect_closed_in_order(log, false, true);
  }
  if (c.mode == StopMode::end_of_round) {
    // Every round the processor was given reached the exporter.
    std::vector<uint64_t> processed;
    for (const auto& l : log)
      if (l.kind == "processor" && l.what == "process") processed.push_back(*l.round);
    EXPECT_EQ(processed, rounds);
  }
  if (c.mode == StopMode::now && c.at == "receive:3") {
    EXPECT_EQ(rounds.size(), 3u);
  }
  expect_no_process_left(log);
  expect_restart_continues(p, logger);
}

INSTANTIATE_TEST_SUITE_P(External, StopInPhase, ::testing::ValuesIn(phase_cases()),
                         [](const auto& info) { return describe(info.param); });

struct FaultCase {
  std::string plugin;
  std::string at;
  std::string action;
};

class FaultInPhase : public ::testing::TestWithParam<FaultCase> {};

// A fault is a retryable plugin error: a new process takes over and the run goes on.
TEST_P(FaultInPhase, NewProcessTakesOver) {
  const FaultCase& c = GetParam();
  ExternalPipeline p;
  Logger logger(nullptr, LogLevel::error);
  Layout s;
  (c.plugin == "exporter" ? s.exporter : s.processor_script) = {c.at, c.action, 1, ""};
  s.exporter.notify_at = "receive:8";
  p.configure(s);
  Supervisor supervisor(builtin_registry(), {.data_dir = p.dir()}, logger);
  StopCause cause = run_supervisor(supervisor, [&] {
    p.events().wait_for("exporter receive 8");
    supervisor.stop(StopMode::end_of_round, "test");
  });
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  auto rounds = p.committed();
  expect_contiguous(rounds);
  EXPECT_GE(rounds.size(), 9u);
  EXPECT_EQ(checkpoint_round(p.dir()).value_or(0), rounds.size());
  std::set<int> pids;
  for (const auto& l : p.log())
    if (l.kind == c.plugin) pids.insert(l.pid);
  if (c.action != "flood" && c.action != "error") {
    EXPECT_GE(pids.size(), 2u) << "no new process";
  }
  expect_closed_in_order(p.log(), false, true);
  expect_no_process_left(p.log());
  expect_restart_continues(p, logger);
}

std::vector<FaultCase> fault_cases() {
  std::vector<FaultCase> out;
  for (std::string action : {"crash", "exit0", "garbage", "oversize", "close-stdout", "error"}) {
    out.push_back({"exporter", "receive:3", action});
    out.push_back({"processor", "process:3", action});
  }
  for (std::string action : {"crash", "garbage"}) {
    out.push_back({"exporter", "round-request", action});
    out.push_back({"exporter", "init", action});
    out.push_back({"processor", "init", action});
  }
  out.push_back({"processor", "process:3", "wrong-round"});
  out.push_back({"processor", "process:2", "flood"});
  out.push_back({"exporter", "receive:2", "flood"});
  return out;
}

INSTANTIATE_TEST_SUITE_P(
    External, FaultInPhase, ::testing::ValuesIn(fault_cases()), [](const auto& info) {
      return describe({info.param.plugin, info.param.at, StopMode::now, info.param.action});
    });

// A call that hangs past wedge-timeout is a plugin error: the process is
// killed and a new one takes over.
TEST(ExternalPlugin, HangPastWedgeTimeoutStartsANewProcess) {
  ExternalPipeline p;
  Logger logger(nullptr, LogLevel::error);
  Layout s;
  s.top += "wedge-timeout = \"300ms\"\n";
  s.exporter = {"receive:3", "block-ignore-cancel", 1, "receive:8"};
  p.configure(s);
  Supervisor supervisor(builtin_registry(), {.data_dir = p.dir()}, logger);
  StopCause cause = run_supervisor(supervisor, [&] {
    p.events().wait_for("exporter receive 8");
    supervisor.stop(StopMode::end_of_round, "test");
  });
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  expect_contiguous(p.committed());
  EXPECT_GE(p.committed().size(), 9u);
  expect_no_process_left(p.log());
}

TEST(ExternalPlugin, CrashInCloseLosesNothing) {
  ExternalPipeline p;
  Logger logger(nullptr, LogLevel::error);
  Layout s;
  s.exporter = {"close", "crash", 1, "receive:5"};
  p.configure(s);
  Supervisor supervisor(builtin_registry(), {.data_dir = p.dir()}, logger);
  StopCause cause = run_supervisor(supervisor, [&] {
    p.events().wait_for("exporter receive 5");
    supervisor.stop(StopMode::end_of_round, "test");
  });
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  expect_contiguous(p.committed());
  EXPECT_EQ(checkpoint_round(p.dir()).value_or(0), p.committed().size());
  expect_no_process_left(p.log());
  expect_restart_continues(p, logger);
}

TEST(ExternalPlugin, FatalErrorStopsWithExporterError) {
  ExternalPipeline p;
  Logger logger(nullptr, LogLevel::error);
  Layout s;
  s.exporter = {"receive:3", "fatal", 1, ""};
  p.configure(s);
  Supervisor supervisor(builtin_registry(), {.data_dir = p.dir()}, logger);
  StopCause cause = run_supervisor(supervisor, [] {});
  EXPECT_EQ(cause.reason, StopReason::exporter_error);
  EXPECT_NE(cause.detail.find("scripted fatal"), std::string::npos) << cause.detail;
  EXPECT_NE(cause.detail.find("ext_exporter"), std::string::npos) << cause.detail;
  EXPECT_EQ(p.committed().size(), 3u);
  EXPECT_EQ(checkpoint_round(p.dir()), 3u);
  expect_closed_in_order(p.log(), false, true);
  expect_no_process_left(p.log());
}

TEST(ExternalPlugin, RepeatedCrashesExhaustRetries) {
  ExternalPipeline p;
  Logger logger(nullptr, LogLevel::error);
  Layout s;
  s.top = "retry-count = 2\nretry-delay = \"1ms\"\n";
  s.processor_script = {"process:2", "crash", 100, ""};
  p.configure(s);
  Supervisor supervisor(builtin_registry(), {.data_dir = p.dir()}, logger);
  StopCause cause = run_supervisor(supervisor, [] {});
  EXPECT_EQ(cause.reason, StopReason::processor_error);
  EXPECT_NE(cause.detail.find("exited with status 3"), std::string::npos) << cause.detail;
  EXPECT_EQ(p.committed().size(), 2u);
  expect_no_process_left(p.log());
}

TEST(ExternalPlugin, ImporterAndUnitsAcrossACrashInCommit) {
  ExternalPipeline p;
  Logger logger(nullptr, LogLevel::error);
  Layout s;
  s.external_importer = true;
  s.exporter_extra = "env = { SCRIPTED_UNITS = \"1\" }\n";
  s.exporter = {"commit", "crash", 1, "receive:40"};
  s.importer.notify_at = "get-block:40";
  p.configure(s);
  Supervisor supervisor(builtin_registry(), {.data_dir = p.dir()}, logger);
  StopCause cause = run_supervisor(supervisor, [&] {
    p.events().wait_for("importer get-block 40");
    supervisor.stop(StopMode::end_of_round, "test");
  });
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  auto rounds = p.committed();
  expect_contiguous(rounds);
  EXPECT_GE(rounds.size(), 40u);
  EXPECT_EQ(checkpoint_round(p.dir()).value_or(0), rounds.size());
  bool staged = false;
  for (const auto& l : p.log()) staged |= l.what == "stage";
  EXPECT_TRUE(staged) << "the exporter never got a unit";
  expect_closed_in_order(p.log(), true, true);
  expect_no_process_left(p.log());
}

TEST(ExternalPlugin, ReloadStartsNewProcesses) {
  ExternalPipeline p;
  Logger logger(nullptr, LogLevel::error);
  Layout s;
  s.exporter.notify_at = "receive:4";
  p.configure(s);
  Supervisor supervisor(builtin_registry(), {.data_dir = p.dir()}, logger);
  StopCause cause = run_supervisor(supervisor, [&] {
    p.events().wait_for("exporter receive 4");
    Layout next;
    next.exporter.notify_at = "init";
    p.configure(next);
    EXPECT_EQ(supervisor.reload("test"), "");
    p.events().wait_for("exporter init");  // the new process, initialised by the rebuilt pipeline
    supervisor.stop(StopMode::end_of_round, "test");
  });
  EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  expect_contiguous(p.committed());
  std::set<int> exporters;
  int closes = 0;
  for (const auto& l : p.log()) {
    if (l.kind == "exporter") exporters.insert(l.pid);
    closes += l.kind == "exporter" && l.what == "close";
  }
  EXPECT_EQ(exporters.size(), 2u);
  EXPECT_EQ(closes, 2);
  expect_no_process_left(p.log());
}

// Configuration errors: exit code 2 material, naming the path and the reason.
std::string config_error(ExternalPipeline& p, const std::string& text) {
  write_text(p.dir() / "conduit.toml", text);
  Logger logger(nullptr, LogLevel::error);
  try {
    Supervisor supervisor(builtin_registry(), {.data_dir = p.dir()}, logger);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no configuration error";
  return "";
}

const char* kImporter = "[importer]\nname = \"noop\"\n";

TEST(ExternalPluginConfig, MissingNotExecutableDirectory) {
  ExternalPipeline p;
  auto missing = config_error(p, std::string(kImporter) + "[exporter]\nname = \"nowhere\"\n");
  EXPECT_NE(missing.find("unknown exporter 'nowhere'"), std::string::npos) << missing;
  EXPECT_NE(missing.find((p.dir() / "plugins").string()), std::string::npos) << missing;

  write_text(p.dir() / "plugins" / "not_exec", "#!/bin/sh\n");
  auto not_exec = config_error(p, std::string(kImporter) + "[exporter]\nname = \"not_exec\"\n");
  EXPECT_NE(not_exec.find("not executable"), std::string::npos) << not_exec;
  EXPECT_NE(not_exec.find((p.dir() / "plugins" / "not_exec").string()), std::string::npos);

  fs::create_directory(p.dir() / "plugins" / "a_dir");
  auto dir = config_error(p, std::string(kImporter) + "[exporter]\nname = \"a_dir\"\n");
  EXPECT_NE(dir.find("is a directory"), std::string::npos) << dir;

  auto slash = config_error(p, std::string(kImporter) + "[exporter]\nname = \"../x\"\n");
  EXPECT_NE(slash.find("not a plugin name"), std::string::npos) << slash;

  auto builtin_args =
      config_error(p, std::string(kImporter) + "[exporter]\nname = \"noop\"\nargs = [\"-v\"]\n");
  EXPECT_NE(builtin_args.find("only for external plugins"), std::string::npos) << builtin_args;
}

TEST(ExternalPluginConfig, WrongKindRejectedConfigAndBadHello) {
  ExternalPipeline p;
  auto wrong = config_error(p, std::string(kImporter) + "[exporter]\nname = \"ext_processor\"\n");
  EXPECT_NE(wrong.find("is a processor, not an exporter"), std::string::npos) << wrong;

  auto rejected = config_error(p, std::string(kImporter) +
                                      "[exporter]\nname = \"ext_exporter\"\n[exporter.config]\n"
                                      "reject = true\n");
  EXPECT_NE(rejected.find("scripted rejection"), std::string::npos) << rejected;
  EXPECT_NE(rejected.find("conduit.toml"), std::string::npos) << rejected;

  for (std::string mode : {"garbage", "crash", "wrong-protocol", "bad-kind"}) {
    auto error = config_error(p, std::string(kImporter) +
                                     "[exporter]\nname = \"ext_exporter\"\nenv = { SCRIPTED_HELLO "
                                     "= \"" +
                                     mode + "\" }\n");
    EXPECT_NE(error.find((p.dir() / "plugins" / "ext_exporter").string()), std::string::npos)
        << mode << ": " << error;
  }
}

TEST(ExternalPluginConfig, SilentPluginIsAConfigurationError) {
  ExternalPipeline p;
  auto error = config_error(p, std::string(kImporter) +
                                   "[exporter]\nname = \"ext_exporter\"\nenv = { SCRIPTED_HELLO = "
                                   "\"silent\" }\n");
  EXPECT_NE(error.find("did not answer hello"), std::string::npos) << error;
}

TEST(ExternalPluginConfig, PluginDirsAreSearched) {
  ExternalPipeline p;
  fs::create_directories(p.dir() / "more");
  fs::create_symlink(scripted_plugin(), p.dir() / "more" / "other_exporter");
  write_text(p.dir() / "conduit.toml", "plugin-dirs = [\"more\"]\n" + std::string(kImporter) +
                                           "[exporter]\nname = \"other_exporter\"\n");
  Logger logger(nullptr, LogLevel::error);
  EXPECT_NO_THROW(
      [&] { Supervisor supervisor(builtin_registry(), {.data_dir = p.dir()}, logger); }());
}

}  // namespace
