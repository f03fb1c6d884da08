// One run of a configured pipeline: importer -> processors -> exporter, each on
// its own thread, joined by bounded queues. Run() blocks until everything has
// stopped and returns why. Mechanism only: it holds no stop policy (a second
// request, stop-timeout, reloads: the Supervisor decides those); its owner asks
// it to stop in a StopMode, from any thread, any number of times.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "core/checkpoint.hpp"
#include "core/log.hpp"
#include "core/observer.hpp"
#include "core/queue.hpp"
#include "core/registry.hpp"
#include "core/stop.hpp"

namespace conduit {

struct PipelineOptions {
  std::filesystem::path data_dir;
  uint64_t retry_count = 10;  // 0 = retry forever
  std::chrono::nanoseconds retry_delay = std::chrono::seconds(1);
  std::optional<uint64_t> next_round_override;
  std::size_t queue_capacity = 2;  // rounds buffered between two stages
  bool durable_checkpoint = true;  // false only for benchmarks
  // Test seam: called before each stage thread starts (0 importer, 1.. processors,
  // then the exporter); an exception here is a stage that failed to start.
  std::function<void(std::size_t stage)> before_stage_start;
  // Group commit (Exporter::supports_units): while rounds are queued, up to
  // this many rounds / bytes (BlockData::size_hint) go in one unit, and a unit
  // is committed no later than this after its first round was staged; a
  // staged round is kept (for a retry) without its encoded bytes. The
  // exporter's input queue holds up to a quarter of the byte budget, so that
  // rounds keep arriving (and helper threads prepare them for the exporter)
  // while a unit is made durable. Every other queue between two stages is held
  // to unit_max_bytes (or one larger round), whatever the exporter.
  uint64_t unit_max_rounds = 64;
  uint64_t unit_max_bytes = uint64_t{64} << 20;
  std::chrono::nanoseconds unit_max_latency = std::chrono::milliseconds(250);
  // Test seam: a stage's push found queue `queue` (0: after the importer) full
  // and waits: the rounds and bytes (size_hint) it holds, the bytes waiting.
  std::function<void(std::size_t queue, std::size_t rounds, std::size_t bytes, std::size_t waiting)>
      on_queue_full;
};

class Pipeline {
 public:
  Pipeline(PipelinePlugins plugins, PipelineOptions options, Logger& logger,
           Observer* observer = nullptr);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Initialises the plugins, moves rounds until stopped, closes every plugin
  // exactly once (importer, processors in order, exporter) and returns the cause.
  StopCause run();

  // Thread-safe. end_of_round: the importer's fetch is cancelled and every
  // delivered round is exported. now: every plugin call is cancelled and
  // uncommitted rounds are abandoned. A request that asks for no more than the
  // mode in force is a no-op; `now` during an end-of-round stop cancels the rest.
  // `why` (reason stop_requested) replaces the cause run() returns unless a
  // failure already did.
  void stop(StopMode mode, const StopCause& why);
  // For a pipeline run on its own (tests, benchmarks).
  void stop(StopMode mode, const std::string& origin) {
    stop(mode, StopCause::requested(mode, origin));
  }

  // The cause once the pipeline has stopped (or is stopping); reason `none` before.
  StopCause why_stopped() const;
  // The checkpoint: the first round not yet committed by the exporter.
  uint64_t next_round() const { return next_round_.load(); }

  // Health for a watchdog: the label of a wedged call ("processor:wedge in
  // process()"), or nullopt. Wedged means stuck inside one call for longer than
  // `bound`. Watched: round requests, every round call, checkpoint writes and
  // close(); not init (a schema migration may take long; systemd's start timeout
  // and EXTEND_TIMEOUT_USEC cover it). Counted from the start of the call,
  // except the importer's fetch: waiting for the next block (algod's next
  // round) is legitimate for ever, so it counts from the fetch's cancellation.
  std::optional<std::string> wedged_stage(std::chrono::nanoseconds bound) const;

 private:
  // Marks a watched slot as inside a call (the watchdog heartbeat). Slots: one
  // per plugin (0 importer, 1.. processors, then the exporter), then the
  // importer's fetch, then the checkpoint write.
  class InCall {
   public:
    InCall(Pipeline& pipeline, std::size_t slot, const char* call);
    ~InCall();

   private:
    Pipeline& pipeline_;
    std::size_t slot_;
  };
  std::size_t exporter_stage() const { return plugins_.processors.size() + 1; }
  std::size_t fetch_slot() const { return plugins_.processors.size() + 2; }
  std::size_t checkpoint_slot() const { return plugins_.processors.size() + 3; }
  std::size_t slot_count() const { return plugins_.processors.size() + 4; }
  std::string slot_label(std::size_t slot) const;
  std::string thread_name(std::size_t stage) const;

  enum class Stage { importer, processor, exporter };

  // initialise's steps; each returns false (or nullopt) once it has failed the run.
  struct RoundRequest {
    std::string plugin;
    uint64_t round;
  };
  void initialise();
  bool load_checkpoint(std::optional<Metadata>& stored);
  bool collect_round_requests(std::stop_token stop, std::optional<RoundRequest>& request);
  std::optional<uint64_t> resume_round(const std::optional<Metadata>& stored,
                                       const std::optional<RoundRequest>& request);
  void init_plugins(std::stop_token stop, const std::optional<Metadata>& stored, uint64_t next);
  bool record_genesis(const std::optional<Metadata>& stored, uint64_t next);
  void run_stages();
  void run_importer();
  void run_processor(std::size_t index);
  void run_exporter();
  // run_exporter's parts: one unit of rounds staged, committed, checkpointed.
  struct Unit;
  bool stage_in_unit(Unit& unit, BlockData&& block, std::stop_token now);
  bool commit_unit(Unit& unit, std::stop_token now);
  std::unique_ptr<BoundedQueue<BlockData>> make_queue(std::size_t rounds, uint64_t bytes) const;
  std::unique_ptr<BoundedQueue<BlockData>> make_exporter_queue() const;
  // Exporter::prepare on the rounds queued for the exporter, on helper threads.
  void run_prepare_helper();
  static std::size_t prepare_helper_count();
  void close_plugins();
  // Retries `call` per retry-count / retry-delay. False when stopped or failed.
  template <class F>
  bool attempt(PluginKind kind, const std::string& plugin, uint64_t round, std::stop_token stop,
               F&& call);
  // A start-up call (round request, init): retried per retry-count / retry-delay
  // while it fails retryably. False when stopped or given up (failed).
  template <class F>
  bool retry_startup(PluginKind kind, const std::string& plugin, const std::string& step,
                     std::stop_token stop, F&& call);
  void fail(StopReason reason, const std::string& detail);
  void cancel_locked(StopMode mode);
  void stage_finished();
  std::string plugin_label(PluginKind kind, const std::string& name) const;

  PipelinePlugins plugins_;
  PipelineOptions options_;
  Logger& logger_;
  Observer* observer_;
  Checkpoint checkpoint_;
  Metadata metadata_;
  Genesis genesis_;

  // `now` cancels every plugin call; `importer_stop_` fires for either mode.
  std::vector<std::unique_ptr<BoundedQueue<BlockData>>> queues_;  // stage i -> stage i+1
  std::stop_source now_;
  std::stop_source importer_stop_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<StopMode> mode_;
  StopCause cause_;
  int running_stages_ = 0;
  bool ran_ = false;
  bool closed_ = false;

  std::atomic<uint64_t> next_round_{0};

  // Steady-clock nanoseconds (0 = not set): when each watched slot entered its
  // current call, and which call it is (a string literal); and when calls were
  // cancelled (importer_stop_ / now_).
  std::unique_ptr<std::atomic<int64_t>[]> in_call_since_;
  std::unique_ptr<std::atomic<const char*>[]> in_call_what_;
  std::atomic<int64_t> importer_cancelled_at_{0};
  std::atomic<int64_t> now_cancelled_at_{0};
};

}  // namespace conduit
