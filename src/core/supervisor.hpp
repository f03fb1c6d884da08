// The service core: owns the configuration and the current Pipeline, and turns
// stop and reload requests into pipeline runs. Service adapters (signals,
// D-Bus, sd_notify) talk to conduit only through this class.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/pipeline.hpp"

namespace conduit {

struct SupervisorOptions {
  std::filesystem::path data_dir;
  std::optional<uint64_t> next_round_override;  // first pipeline run only
  std::size_t queue_capacity = 2;
  bool durable_checkpoint = true;
};

// A snapshot of what D-Bus, `conduit status` and sd_notify show.
struct Status {
  State state = State::starting;
  uint64_t next_round = 0;
  StopCause cause;  // reason none while running
  uint64_t rounds_exported = 0;
  std::chrono::steady_clock::time_point started;
};

class SupervisorObserver {
 public:
  virtual ~SupervisorObserver() = default;
  // Called from any thread, serialised, with no supervisor lock held except the
  // notification lock: it must not call back into the Supervisor synchronously.
  virtual void on_state(State state) { (void)state; }
  virtual void on_ready(uint64_t next_round) { (void)next_round; }
  virtual void on_exported(uint64_t round, std::size_t txn_count) { (void)round, (void)txn_count; }
  virtual void on_exported_block(const BlockData& block) { (void)block; }
  virtual void on_reload_finished(bool ok, const std::string& detail) { (void)ok, (void)detail; }
  // PipelineObserver's per-call hooks, passed through (metrics).
  virtual void on_retry(PluginKind kind, const std::string& plugin, uint64_t round) {
    (void)kind, (void)plugin, (void)round;
  }
  virtual void on_plugin_time(PluginKind kind, const std::string& plugin, uint64_t round,
                              std::chrono::nanoseconds elapsed) {
    (void)kind, (void)plugin, (void)round, (void)elapsed;
  }
  virtual void on_plugin_error(const std::string& message) { (void)message; }
};

class Supervisor : public PipelineObserver {
 public:
  // Loads and validates the configuration: throws ConfigError (exit code 2).
  Supervisor(const Registry& registry, SupervisorOptions options, Logger& logger);
  ~Supervisor() override;

  const Config& config() const { return config_; }
  void set_observer(SupervisorObserver* observer) { observer_ = observer; }

  // Runs pipelines until a stop (reloads in between); returns the final cause.
  StopCause run();

  // Thread-safe, idempotent (CONTRACT section 2).
  void stop(StopMode mode, const std::string& origin);

  // Validates the configuration on disk. On success an end-of-round drain starts
  // and the pipeline is rebuilt with it; returns an empty string. On failure the
  // running pipeline is untouched and the error text is returned.
  std::string reload(const std::string& origin);

  Status status() const;

  // The running pipeline's wedged stage, if any (Pipeline::wedged_stage).
  std::optional<std::string> wedged_stage(std::chrono::nanoseconds bound) const;

 private:
  // PipelineObserver
  void on_state(State state) override;
  void on_ready(uint64_t next_round) override;
  void on_exported(uint64_t round, std::size_t txn_count) override;
  void on_exported_block(const BlockData& block) override;
  void on_retry(PluginKind kind, const std::string& plugin, uint64_t round) override;
  void on_plugin_time(PluginKind kind, const std::string& plugin, uint64_t round,
                      std::chrono::nanoseconds elapsed) override;
  void on_plugin_error(const std::string& message) override;

  void publish(State state);

  const Registry& registry_;
  SupervisorOptions options_;
  Logger& logger_;
  SupervisorObserver* observer_ = nullptr;

  mutable std::mutex mutex_;
  Config config_;
  std::unique_ptr<Pipeline> pipeline_;      // the one running now
  std::optional<PipelinePlugins> pending_;  // validated plugins for a reload
  std::optional<Config> pending_config_;
  // Read by the pipeline's state callbacks, which run while Supervisor::stop holds
  // mutex_ (stop -> Pipeline::stop -> on_state): atomic, never under mutex_ there.
  std::atomic<bool> reloading_{false};
  std::optional<StopMode> stop_mode_;  // a real stop (not a reload) was requested
  std::string stop_origin_;
  StopCause final_cause_;
  std::chrono::steady_clock::time_point started_;

  std::mutex notify_mutex_;
  std::atomic<State> state_{State::starting};
  std::atomic<uint64_t> next_round_{0};
  std::atomic<uint64_t> rounds_exported_{0};
};

}  // namespace conduit
