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
#include <stop_token>
#include <string>

#include "core/config.hpp"
#include "core/pipeline.hpp"

namespace conduit {

struct SupervisorOptions {
  std::filesystem::path data_dir;
  std::optional<uint64_t> next_round_override;  // first pipeline run only
  std::size_t queue_capacity = 2;
  bool durable_checkpoint = true;
  std::function<void(std::size_t stage)> before_stage_start;  // PipelineOptions' test seam
};

// A snapshot of what D-Bus, `conduit status` and sd_notify show.
struct Status {
  State state = State::starting;
  uint64_t next_round = 0;
  StopCause cause;  // reason none while running
  uint64_t rounds_exported = 0;
  std::chrono::steady_clock::time_point started;
};

// What the service is asked to do. It only moves up (like PostgreSQL's smart /
// fast / immediate shutdown), with one exception: a reload returns to `run`
// once the rebuilt pipeline is ready.
// The stop objectives are named after the StopMode they ask the pipeline for.
enum class Objective { run, reload, end_of_round, now };
inline Objective objective_for(StopMode mode) {
  return mode == StopMode::now ? Objective::now : Objective::end_of_round;
}

// The one owner of the stop policy. Every request (signal, D-Bus, CLI,
// stop-timeout, a pipeline failure) goes through request(); the published
// State and the observer's notifications are derived from the objective and
// the pipeline's progress, in order, so they never go backwards or skip
// `stopping`:
//
//   starting --ready--> running --reload--> reloading --ready--> running
//      |                   |                    |
//      +-------------------+--------------------+--stop/failure--> stopping --exit--> stopped
class Supervisor : public Observer {
 public:
  // Loads and validates the configuration: throws ConfigError (exit code 2).
  Supervisor(const Registry& registry, SupervisorOptions options, Logger& logger);
  ~Supervisor() override;

  const Config& config() const { return config_; }
  void set_observer(Observer* observer) { observer_ = observer; }

  // Runs pipelines until a stop (reloads in between); returns the final cause.
  // Never throws: anything escaping a pipeline is an internal-error.
  StopCause run();

  // Thread-safe. A second end-of-round request escalates to `now`; so does an
  // end-of-round drain still running after stop-timeout.
  void stop(StopMode mode, const std::string& origin);

  // Validates the configuration on disk (bounded work: a size-limited file and
  // plugin configure(), which does no I/O). On success an end-of-round drain
  // starts and the pipeline is rebuilt with it; returns an empty string. On
  // failure the running pipeline is untouched and the error text is returned.
  std::string reload(const std::string& origin);

  Status status() const;
  State state() const { return state_.load(); }  // lock-free: for any thread
  Objective objective() const;

  // The running pipeline's wedged call, if any (Pipeline::wedged_stage).
  std::optional<std::string> wedged_stage(std::chrono::nanoseconds bound) const;

 private:
  struct Prepared {
    Config config;
    PipelinePlugins plugins;
  };
  // The entry point of every request. `why`: for a stop the cause this
  // request gives the stop (a failure's cause, or StopCause::requested); for a
  // reload only its origin. Returns a refusal's text, or empty.
  std::string request(Objective target, const StopCause& why,
                      std::optional<Prepared> next = std::nullopt);
  std::string request_locked(Objective target, const StopCause& why, std::optional<Prepared> next,
                             std::string& note);
  std::string reload_locked(const std::string& origin, std::optional<Prepared> next,
                            std::string& note);
  void end_of_round_locked(const StopCause& why, std::string& note);
  void now_locked(const StopCause& why, std::string& note);
  // Asks the running pipeline to stop in `mode`, at most once per mode.
  void ask_locked(StopMode mode, const StopCause& cause);
  // The stop-timeout timer: escalates a drain that outlives its deadline.
  void watch_stop_timeout(std::stop_token stop);
  void drain_timed_out_locked(std::string& note);
  // The State the objective and the pipeline's progress give; mutex_ held.
  State derive_locked() const;
  // Tells the observer about a State change; mutex_ held (which orders them).
  void publish_locked();
  // Runs one pipeline; returns its cause, internal-error for anything thrown.
  StopCause run_one(Pipeline& pipeline);
  // Runs pipelines until one ends without a reload; returns the last one's cause.
  StopCause run_pipelines();
  // Builds the pipeline for pending_ (nullptr and `cause` set if that fails).
  std::unique_ptr<Pipeline> next_pipeline_locked(std::optional<uint64_t> override_round,
                                                 StopCause& cause);
  void set_pipeline_locked(Pipeline* pipeline);
  // Settles the final cause and publishes `stopping` then `stopped`.
  StopCause finish_locked(const StopCause& last);

  // Observer: the running pipeline's reports.
  void on_ready(uint64_t next_round) override;
  void on_exported(uint64_t round, std::size_t txn_count) override;
  void on_exported_block(const BlockData& block) override;
  void on_retry(PluginKind kind, const std::string& plugin, uint64_t round) override;
  void on_plugin_time(PluginKind kind, const std::string& plugin, uint64_t round,
                      std::chrono::nanoseconds elapsed) override;
  void on_plugin_error(const std::string& message) override;
  void on_failed(const StopCause& cause) override;

  const Registry& registry_;
  SupervisorOptions options_;
  Logger& logger_;
  Observer* observer_ = nullptr;

  // Lock order: mutex_, then the pipeline's own locks, then notify_mutex_.
  mutable std::mutex mutex_;
  Config config_;
  Objective objective_ = Objective::run;
  std::optional<StopCause> stop_cause_;  // the first stop request, escalations appended
  std::optional<StopCause> failure_;     // a pipeline failure (wins over a requested stop)
  bool reload_unanswered_ = false;       // a reload was accepted and has not finished
  std::optional<Prepared> pending_;      // validated for the next pipeline
  Pipeline* pipeline_ = nullptr;         // the one running now (owned by run())
  std::optional<StopMode> asked_;        // what pipeline_ has been asked to do
  StopCause drain_cause_;                // what pipeline_'s end-of-round drain was given
  std::optional<std::chrono::steady_clock::time_point> drain_deadline_;  // stop-timeout
  std::condition_variable_any timer_changed_;  // drain_deadline_ changed (mutex_)
  bool ready_ = false;                         // pipeline_ has reported on_ready
  bool finished_ = false;                      // run() is done: stopped
  State published_ = State::starting;
  StopCause final_cause_;
  std::chrono::steady_clock::time_point started_;

  std::mutex notify_mutex_;
  std::atomic<State> state_{State::starting};
  std::atomic<uint64_t> next_round_{0};
  std::atomic<uint64_t> rounds_exported_{0};
};

}  // namespace conduit
