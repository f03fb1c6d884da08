// Stop latency and peak RSS:
// runs the conduit binary many times and measures the time from the signal to
// the process's exit, while rounds are flowing and while the importer is
// blocked waiting for a block and from the blocking points of the
// core: a round call blocked until cancelled (the test-only `wedge` processor
// with honour-cancellation), a retry wait (retry-delay 1h after a failing
// round, the test-only `corrupt` importer). Those two cases need a conduit
// built with -Dtest_plugins=true and are skipped otherwise. PostgreSQL and HTTP
// blocking points are measured by bench/postgresql_bench.cpp and the HTTP API's
// own bench. Prints one JSON object per line.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/pipeline.hpp"

extern char** environ;
using Clock = std::chrono::steady_clock;

namespace {

struct Child {
  pid_t pid;
  int out;
};

Child spawn(const std::string& bin, const std::string& dir) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) std::exit(1);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  std::vector<std::string> args{bin, "-d", dir, "--bus", "none"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, bin.c_str(), &actions, nullptr, argv.data(), environ) != 0) std::exit(1);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  return {pid, fds[0]};
}

// Reads the child's output until `needle` appears.
bool wait_for(int fd, const std::string& needle, std::string& seen) {
  char buffer[4096];
  for (;;) {
    if (seen.find(needle) != std::string::npos) return true;
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) return false;
    seen.append(buffer, static_cast<size_t>(n));
  }
}

struct Sample {
  double ms;
  long max_rss_kb;
};

Sample stop_once(const std::string& bin, const std::string& dir, int sig, const std::string& ready,
                 double run_seconds = 0) {
  Child child = spawn(bin, dir);
  std::string seen;
  if (!wait_for(child.out, ready, seen)) {
    std::fprintf(stderr, "conduit did not start:\n%s\n", seen.c_str());
    std::exit(1);
  }
  if (run_seconds > 0) {
    // RSS probe: let rounds flow for a while before stopping.
    auto until = Clock::now() + std::chrono::duration<double>(run_seconds);
    char buffer[4096];
    while (Clock::now() < until) {
      fd_set set;
      FD_ZERO(&set);
      FD_SET(child.out, &set);
      timeval tv{0, 100000};
      if (select(child.out + 1, &set, nullptr, nullptr, &tv) > 0 &&
          read(child.out, buffer, sizeof buffer) <= 0)
        break;
    }
  }
  auto start = Clock::now();
  kill(child.pid, sig);
  int status;
  rusage usage{};
  wait4(child.pid, &status, 0, &usage);
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  close(child.out);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "conduit exited with status %d\n", status);
    std::exit(1);
  }
  return {ms, usage.ru_maxrss};
}

void write_config(const std::string& dir, const std::string& importer_config,
                  const std::string& processor = "[[processors]]\nname = \"noop\"\n",
                  const std::string& top = "") {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/conduit.toml")
      << "hide-banner = true\nlog-level = \"info\"\n"
      << top << "[importer]\n"
      << (importer_config.rfind("name", 0) == 0 ? "" : "name = \"generator\"\n[importer.config]\n")
      << importer_config << "\n"
      << processor << "[exporter]\nname = \"noop\"\n";
}

// Whether `bin list KIND` shows plugin `name` (the test-only ones are optional).
bool has_plugin(const std::string& bin, const std::string& kind, const std::string& name) {
  std::string command = bin + " list " + kind + " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return false;
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out.find("  " + name + " ") != std::string::npos;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

// ---------------------------------------------------------------------------
// In process: Pipeline::stop(now) -> run() returning, with the
// pipeline blocked in each of the core's blocking points. No process start or
// exit in the figure: the core's own latency.

using namespace conduit;

// Where the round call at round kBlockAt blocks until its stop token fires.
enum class BlockPoint { processor_round, exporter_round, retry_wait, importer_fetch };
constexpr uint64_t kBlockAt = 3;

struct Latch {
  std::mutex mutex;
  std::condition_variable cv;
  bool set = false;
  void signal() {
    std::lock_guard lock(mutex);
    set = true;
    cv.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return set; });
  }
};

void block_until(std::stop_token stop, Latch& blocked) {
  std::mutex mutex;
  std::condition_variable_any cv;
  std::unique_lock lock(mutex);
  blocked.signal();
  cv.wait(lock, stop, [] { return false; });
  throw Cancelled();
}

class BenchImporter final : public Importer {
 public:
  BenchImporter(BlockPoint point, Latch& blocked) : point_(point), blocked_(blocked) {}
  void configure(PluginConfig&) override {}
  Genesis init(const InitContext&, std::stop_token) override {
    return {"bench-net", "v1", "YmVuY2gtZ2VuZXNpcw==", ""};
  }
  BlockData get_block(uint64_t round, std::stop_token stop) override {
    if (point_ == BlockPoint::importer_fetch && round == kBlockAt) block_until(stop, blocked_);
    return BlockData::empty(round);
  }
  void close() override {}

 private:
  BlockPoint point_;
  Latch& blocked_;
};

class BenchProcessor final : public Processor {
 public:
  BenchProcessor(BlockPoint point, Latch& blocked) : point_(point), blocked_(blocked) {}
  void configure(PluginConfig&) override {}
  void init(const InitContext&, std::stop_token) override {}
  void process(BlockData& block, std::stop_token stop) override {
    if (block.round() != kBlockAt) return;
    if (point_ == BlockPoint::processor_round) block_until(stop, blocked_);
    if (point_ == BlockPoint::retry_wait && !failed_) {
      failed_ = true;
      blocked_.signal();  // the retry wait (1 h) starts right after this throw
      throw PluginError("bench: retryable failure", true);
    }
  }
  void close() override {}

 private:
  BlockPoint point_;
  Latch& blocked_;
  bool failed_ = false;
};

class BenchExporter final : public Exporter {
 public:
  BenchExporter(BlockPoint point, Latch& blocked) : point_(point), blocked_(blocked) {}
  void configure(PluginConfig&) override {}
  void init(const InitContext&, std::stop_token) override {}
  void receive(const BlockData& block, std::stop_token stop) override {
    if (point_ == BlockPoint::exporter_round && block.round() == kBlockAt)
      block_until(stop, blocked_);
  }
  void close() override {}

 private:
  BlockPoint point_;
  Latch& blocked_;
};

double abort_latency_ms(BlockPoint point, const std::string& dir) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  Latch blocked;
  PipelinePlugins plugins;
  plugins.importer = std::make_unique<BenchImporter>(point, blocked);
  plugins.importer_name = "bench";
  plugins.processors.push_back(std::make_unique<BenchProcessor>(point, blocked));
  plugins.processor_names.push_back("bench");
  plugins.exporter = std::make_unique<BenchExporter>(point, blocked);
  plugins.exporter_name = "bench";
  Logger logger(nullptr, LogLevel::error);
  PipelineOptions options{.data_dir = dir};
  options.retry_count = 0;
  options.retry_delay = std::chrono::hours(1);
  options.durable_checkpoint = false;
  Pipeline pipeline(std::move(plugins), options, logger);
  std::thread runner([&] { pipeline.run(); });
  blocked.wait();
  auto start = Clock::now();
  pipeline.stop(StopMode::now, "bench");
  runner.join();
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string bin = argc > 1 ? argv[1] : "build/src/conduit";
  int runs = argc > 2 ? std::stoi(argv[2]) : 200;
  std::string dir = argc > 3 ? argv[3] : "/var/tmp/conduit-bench-stop";
  struct Case {
    const char* name;
    const char* importer_config;
    int sig;
  } cases[] = {
      {"flowing-sigterm", "txns-per-round = 100", SIGTERM},
      {"flowing-sigusr1", "txns-per-round = 100", SIGUSR1},
      {"importer-blocked-sigterm", "txns-per-round = 100\nround-interval = \"1h\"", SIGTERM},
      {"importer-blocked-sigusr1", "txns-per-round = 100\nround-interval = \"1h\"", SIGUSR1},
  };
  auto report = [&](const char* name, const std::vector<double>& ms) {
    std::printf(
        "{\"bench\": \"stop-latency\", \"name\": \"%s\", \"runs\": %zu, \"median_ms\": %.2f, "
        "\"p99_ms\": %.2f, \"max_ms\": %.2f}\n",
        name, ms.size(), percentile(ms, 0.5), percentile(ms, 0.99), percentile(ms, 1.0));
    std::fflush(stdout);
  };
  // The core alone: stop(now) to run() returning (includes closing the plugins).
  struct InProcess {
    const char* name;
    BlockPoint point;
  } in_process[] = {
      {"core-abort-processor-round", BlockPoint::processor_round},
      {"core-abort-exporter-round", BlockPoint::exporter_round},
      {"core-abort-retry-wait", BlockPoint::retry_wait},
      {"core-abort-importer-fetch", BlockPoint::importer_fetch},
  };
  for (const auto& c : in_process) {
    std::vector<double> ms;
    for (int i = 0; i < runs * 5; ++i) ms.push_back(abort_latency_ms(c.point, dir));
    report(c.name, ms);
  }

  for (const auto& c : cases) {
    std::filesystem::remove_all(dir);
    write_config(dir, c.importer_config);
    std::vector<double> ms;
    for (int i = 0; i < runs; ++i) ms.push_back(stop_once(bin, dir, c.sig, "pipeline running").ms);
    report(c.name, ms);
  }
  // Blocking points of the core: the time from SIGTERM, sent once the
  // call is known to block (its log line), to the exit.
  struct Blocked {
    const char* name;
    const char* importer_config;
    const char* processor;
    const char* top;
    const char* ready;  // the log line that says the call is blocking
    const char* needs_kind;
    const char* needs;
  } blocked[] = {
      {"round-blocked-until-cancelled-sigterm", "txns-per-round = 10",
       "[[processors]]\nname = \"wedge\"\n[processors.config]\nwedge-at-round = 3\n"
       "honour-cancellation = true\n",
       "", "wedge: blocking at round 3 until cancelled", "processors", "wedge"},
      // file_reader over an empty block dir: "does not exist (yet)" is retryable.
      {"retry-wait-sigterm",
       "name = \"file_reader\"\n[importer.config]\nblock-dir = \"@DIR@/blocks\"\n"
       "missing-file-wait = \"1ms\"",
       "", "retry-count = 0\nretry-delay = \"1h\"\n", "; retry 1", "importers", "file_reader"},
  };
  for (const auto& c : blocked) {
    if (!has_plugin(bin, c.needs_kind, c.needs)) {
      std::printf(
          "{\"bench\": \"stop-latency\", \"name\": \"%s\", \"skipped\": \"no %s plugin\"}\n",
          c.name, c.needs);
      continue;
    }
    std::filesystem::remove_all(dir);
    std::string importer = c.importer_config;
    if (auto at = importer.find("@DIR@"); at != std::string::npos) importer.replace(at, 5, dir);
    write_config(dir, importer, c.processor, c.top);
    std::filesystem::create_directories(dir + "/blocks");
    std::ofstream(dir + "/blocks/genesis.json")
        << R"({"id": "v1", "network": "bench-net", "proto": "bench", "rwd": "bench", )"
           R"("fees": "bench", "timestamp": 0})";
    std::vector<double> ms;
    for (int i = 0; i < runs; ++i) ms.push_back(stop_once(bin, dir, SIGTERM, c.ready).ms);
    report(c.name, ms);
  }
  // Peak RSS must not grow with the number of rounds: 1 s against 8 s of flow.
  std::filesystem::remove_all(dir);
  write_config(dir, "txns-per-round = 100");
  for (double seconds : {1.0, 8.0}) {
    Sample s = stop_once(bin, dir, SIGTERM, "pipeline running", seconds);
    std::printf(
        "{\"bench\": \"rss\", \"name\": \"generator-noop-noop-%gs\", \"max_rss_kb\": %ld}\n",
        seconds, s.max_rss_kb);
    std::fflush(stdout);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
