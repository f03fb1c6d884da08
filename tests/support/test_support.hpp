// Shared test helpers: temp dirs, fixture lookup, and scriptable test plugins
// whose every call passes through a hook the test controls.
#pragma once

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "core/plugin.hpp"
#include "core/registry.hpp"

namespace conduit::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// ../shared/fixtures/conduit-blocks, or empty when absent (tests then skip).
std::filesystem::path fixtures_dir();
#define CONDUIT_REQUIRE_FIXTURES()                                                          \
  do {                                                                                      \
    if (::conduit::test::fixtures_dir().empty())                                            \
      GTEST_SKIP() << "../shared/fixtures/conduit-blocks not found (set CONDUIT_FIXTURES)"; \
  } while (0)

void write_text(const std::filesystem::path& path, const std::string& text);
std::string read_text(const std::filesystem::path& path);
// next-round in DIR/metadata.json, nullopt when there is none.
std::optional<uint64_t> checkpoint_round(const std::filesystem::path& data_dir);
// Waits on the data dir's inotify events (no polling) until its checkpoint
// names at least `round`; false when `deadline` passes first (a hang guard).
bool wait_for_checkpoint(const std::filesystem::path& data_dir, uint64_t round,
                         std::chrono::seconds deadline = std::chrono::seconds(180));

// ---------------------------------------------------------------------------
// Test plugins. Every call reports to the World, which records it and runs the
// test's hook; the hook may block (honouring or ignoring the stop token) or throw.

struct Call {
  std::string plugin;  // "importer", "processor0", "processor1", ..., "exporter"
  std::string step;    // "init", "get", "process", "receive", "close", "round_request"
  uint64_t round = 0;
  int generation = 0;  // which pipeline build (importer instance number), from 1
};

struct Event {
  Call call;
  // "enter", "deliver" (importer), "commit" (exporter), "closed", and
  // "after-close" for any call to an instance already closed (a bug).
  std::string what;
};

// Every wait of the test support gives up after this (and fails the test), so a
// bug fails instead of hanging until meson's timeout.
inline constexpr std::chrono::seconds kWaitLimit{60};

class World {
 public:
  World();
  ~World();
  static World* current();

  // The hook runs at the start of every plugin call (except close).
  std::function<void(const Call&, std::stop_token)> hook;
  // The genesis the importer reports.
  Genesis genesis{"test-network", "v1", "dGVzdC1nZW5lc2lz", ""};
  // Round requests per plugin name ("exporter" etc.); 0 = none.
  std::function<uint64_t(const std::string& plugin)> round_request;
  // Runs at the start of every close() (no stop token: close is not cancellable).
  std::function<void(const Call&)> close_hook;

  void record(const Call& call, const std::string& what);
  std::vector<Event> events() const;
  int next_generation();
  int generation() const;

  // Blocks until `stop` fires, then throws Cancelled.
  static void block_until_cancelled(std::stop_token stop);

  // A one-shot latch for cross-thread triggers (no sleeps).
  void signal(const std::string& name);
  void wait(const std::string& name);
  bool wait_for(const std::string& name, std::stop_token stop);
  bool signalled(const std::string& name) const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  std::vector<Event> events_;
  std::vector<std::string> signals_;
  int generation_ = 0;
};

// Starts a minimal block's msgpack, {"block": {"rnd": 1}, "payset": [...]}: the caller
// packs the `payset_entries` entries next.
void pack_round_one_block_head(msgpack::packer<msgpack::sbuffer>& p, uint32_t payset_entries);

// Blocks whose decoded form is far larger than their bytes (hostile input):
// {"block": {"rnd": round, "x": [0, 0, ...]}} with `values` zeros, one byte
// each in msgpack, two characters in JSON, 24 bytes each once decoded.
std::string msgpack_block_of_zeros(uint64_t round, uint32_t values);
std::string json_block_of_zeros(uint64_t round, uint32_t values);

// Registers test_importer, test_processor, test_exporter (and the noop and
// generator built-ins) into a registry of the test's own.
Registry test_registry();

// A conduit.toml for the test plugins with `processors` processors.
std::string test_config(int processors, const std::string& extra_top = "");

}  // namespace conduit::test

namespace conduit::test {

// A child process with its stdout+stderr captured through a pipe. Lines can be
// awaited (the event a test synchronises on), never slept for.
class Subprocess {
 public:
  explicit Subprocess(std::vector<std::string> argv, std::vector<std::string> extra_env = {});
  ~Subprocess();  // kills (SIGKILL) and reaps a child still running
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // How long one wait may take before the test fails instead of hanging to meson's timeout.
  static constexpr std::chrono::seconds kDefaultDeadline{180};

  pid_t pid() const { return pid_; }
  // Reads output until a line containing `needle` arrives; false on EOF or when `deadline`
  // passes (the output then says which line was awaited).
  bool wait_for_line(const std::string& needle, std::chrono::seconds deadline = kDefaultDeadline);
  // Waits for exit; returns the exit status (128+signal when killed). A child still running
  // after `deadline` is killed (SIGKILL, status 137) and the output says so.
  int wait(std::chrono::seconds deadline = kDefaultDeadline);
  // All output read so far (wait() reads the rest).
  std::string output() const { return output_; }
  void signal(int sig);

 private:
  // Reads what is available, waiting until `until`; false on EOF or at `until`.
  bool read_more(std::chrono::steady_clock::time_point until);
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string output_;
  size_t scanned_ = 0;
  std::optional<int> status_;
};

// Runs a command to completion; returns {exit status, output}.
std::pair<int, std::string> run_command(std::vector<std::string> argv,
                                        std::vector<std::string> extra_env = {});

// The conduit binary under test ($CONDUIT_BIN).
std::string conduit_bin();

}  // namespace conduit::test
