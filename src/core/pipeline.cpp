#include "core/pipeline.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <system_error>
#include <thread>

namespace conduit {
namespace {

StopReason reason_for(PluginKind kind) {
  switch (kind) {
    case PluginKind::importer:
      return StopReason::importer_error;
    case PluginKind::processor:
      return StopReason::processor_error;
    case PluginKind::exporter:
      return StopReason::exporter_error;
  }
  return StopReason::internal_error;
}

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void mark_once(std::atomic<int64_t>& at) {
  int64_t unset = 0;
  at.compare_exchange_strong(unset, steady_now_ns());
}

// The retry policy of round calls and start-up alike: after `failures`
// failed attempts, "retry N [of M] in D", or nothing once retry-count is
// spent (0 retries forever).
std::optional<std::string> next_retry(const PipelineOptions& options, uint64_t failures) {
  if (options.retry_count != 0 && failures > options.retry_count) return std::nullopt;
  return "retry " + std::to_string(failures) +
         (options.retry_count ? " of " + std::to_string(options.retry_count) : "") + " in " +
         format_duration(options.retry_delay);
}

}  // namespace

Pipeline::Pipeline(PipelinePlugins plugins, PipelineOptions options, Logger& logger,
                   Observer* observer)
    : plugins_(std::move(plugins)),
      options_(std::move(options)),
      logger_(logger),
      observer_(observer),
      checkpoint_(options_.data_dir, options_.durable_checkpoint),
      in_call_since_(new std::atomic<int64_t>[plugins_.processors.size() + 4]),
      in_call_what_(new std::atomic<const char*>[plugins_.processors.size() + 4]) {
  for (size_t i = 0; i < slot_count(); ++i) {
    in_call_since_[i] = 0;
    in_call_what_[i] = "";
  }
}

Pipeline::InCall::InCall(Pipeline& pipeline, std::size_t slot, const char* call)
    : pipeline_(pipeline), slot_(slot) {
  pipeline_.in_call_what_[slot_] = call;
  pipeline_.in_call_since_[slot_] = steady_now_ns();
}
Pipeline::InCall::~InCall() {
  pipeline_.in_call_since_[slot_] = 0;
}

std::string Pipeline::slot_label(std::size_t slot) const {
  if (slot == checkpoint_slot()) return "checkpoint (metadata.json)";
  if (slot == 0 || slot == fetch_slot())
    return plugin_label(PluginKind::importer, plugins_.importer_name);
  if (slot == exporter_stage()) return plugin_label(PluginKind::exporter, plugins_.exporter_name);
  return plugin_label(PluginKind::processor, plugins_.processor_names[slot - 1]);
}

std::optional<std::string> Pipeline::wedged_stage(std::chrono::nanoseconds bound) const {
  int64_t now = steady_now_ns();
  for (size_t i = 0; i < slot_count(); ++i) {
    int64_t since = in_call_since_[i].load();
    if (since == 0) continue;
    if (i == fetch_slot()) {
      int64_t cancelled = importer_cancelled_at_.load();
      if (cancelled == 0) continue;  // waiting for a block
      since = std::max(since, cancelled);
    }
    if (now - since <= bound.count()) continue;
    return slot_label(i) + " in " + in_call_what_[i].load();
  }
  return std::nullopt;
}

Pipeline::~Pipeline() {
  // A pipeline that never ran still owns configured plugins: close them once.
  close_plugins();
}

std::string Pipeline::plugin_label(PluginKind kind, const std::string& name) const {
  return std::string(to_string(kind)) + ":" + name;
}

StopCause Pipeline::why_stopped() const {
  std::lock_guard lock(mutex_);
  return cause_;
}

void Pipeline::cancel_locked(StopMode mode) {
  mode_ = mode;
  importer_stop_.request_stop();
  mark_once(importer_cancelled_at_);
  if (mode == StopMode::now) {
    now_.request_stop();
    mark_once(now_cancelled_at_);
  }
  changed_.notify_all();
}

void Pipeline::stop(StopMode mode, const StopCause& why) {
  std::lock_guard lock(mutex_);
  if (mode_ == StopMode::now || mode_ == mode) return;  // nothing more to cancel
  // A failure is the cause even when a stop comes after it.
  if (cause_.reason == StopReason::none || cause_.reason == StopReason::stop_requested) {
    cause_ = why;
    if (why.reason == StopReason::stop_requested) cause_.mode = mode;
  }
  cancel_locked(mode);
}

void Pipeline::fail(StopReason reason, const std::string& detail) {
  {
    std::lock_guard lock(mutex_);
    // A failure after `now` is a consequence of cancelling, not a cause. A failure
    // during an end-of-round drain is: the promised drain did not complete.
    bool replace = cause_.reason == StopReason::none ||
                   (cause_.reason == StopReason::stop_requested && mode_ == StopMode::end_of_round);
    if (!replace) return;
    cause_ = StopCause::failure(reason, detail);
    cancel_locked(StopMode::now);
  }
  // warn, not error: the final stop entry (service layer) repeats this cause at
  // priority err with the unexpected-stop MESSAGE_ID, and an operator must find
  // exactly one err entry per failed run (docs/contract.md section 6).
  logger_.warn(detail, {.stop_reason = std::string(to_string(reason))});
  if (observer_) observer_->on_failed(StopCause::failure(reason, detail));
}

template <class F>
bool Pipeline::attempt(PluginKind kind, const std::string& plugin, uint64_t round,
                       std::stop_token stop, F&& call) {
  LogFields fields{.round = round, .plugin = plugin_label(kind, plugin)};
  for (uint64_t failures = 1;; ++failures) {
    std::string error;
    bool retryable = true;
    try {
      call();
      return true;
    } catch (const Cancelled&) {
      if (stop.stop_requested()) return false;
      error = "cancelled without a stop request";
    } catch (const PluginError& e) {
      if (stop.stop_requested()) return false;
      error = e.what();
      retryable = e.retryable();
    } catch (const std::exception& e) {
      if (stop.stop_requested()) return false;
      error = e.what();
    }
    std::string what =
        plugin_label(kind, plugin) + " failed at round " + std::to_string(round) + ": " + error;
    if (observer_) observer_->on_plugin_error(what);
    if (!retryable) {
      fail(reason_for(kind), what);
      return false;
    }
    auto retry = next_retry(options_, failures);
    if (!retry) {
      fail(reason_for(kind), what + " (gave up after " + std::to_string(failures) + " attempts)");
      return false;
    }
    logger_.warn(what + "; " + *retry, fields);
    if (observer_) observer_->on_retry(kind, plugin, round);
    if (!interruptible_sleep(options_.retry_delay, stop)) return false;
  }
}

// A plugin that cannot reach its service at start (a database restarting
// during a deploy, algod not up yet) throws a retryable PluginError: the
// process stays up and tries again under the round calls' retry policy, saying
// so in STATUS= (the service manager's start timeout is extended on each
// report), instead of exiting and spending systemd's start limit. A stop ends
// the wait at once. Other errors propagate to the caller's handler.
template <class F>
bool Pipeline::retry_startup(PluginKind kind, const std::string& plugin, const std::string& step,
                             std::stop_token stop, F&& call) {
  std::string label = plugin_label(kind, plugin);
  for (uint64_t failures = 1;; ++failures) {
    try {
      call();
      return true;
    } catch (const PluginError& e) {
      if (!e.retryable() || stop.stop_requested()) throw;
      auto retry = next_retry(options_, failures);
      if (!retry) {
        fail(reason_for(kind), label + " failed to " + step + ": " + e.what() + " (gave up after " +
                                   std::to_string(failures) + " attempts)");
        return false;
      }
      if (observer_) observer_->on_plugin_error(label + " failed to " + step + ": " + e.what());
      logger_.status("waiting for " + label + ": " + e.what() + "; " + *retry, {.plugin = label});
    }
    if (!interruptible_sleep(options_.retry_delay, stop)) return false;
  }
}

void Pipeline::initialise() {
  std::stop_token stop = importer_stop_.get_token();  // any stop cancels init
  std::optional<Metadata> stored;
  if (!load_checkpoint(stored)) return;
  std::optional<RoundRequest> request;
  if (!collect_round_requests(stop, request)) return;
  std::optional<uint64_t> next = resume_round(stored, request);
  if (!next) return;
  next_round_ = *next;
  init_plugins(stop, stored, *next);
}

bool Pipeline::load_checkpoint(std::optional<Metadata>& stored) {
  try {
    stored = checkpoint_.load();
    if (checkpoint_.ignored_empty_file())  // as Go Conduit does
      logger_.warn(checkpoint_.path().string() + " is empty; treated as absent (a first run)");
  } catch (const CheckpointError& e) {
    fail(StopReason::checkpoint_error, e.what());
    return false;
  }
  return true;
}

// Round requests (Go Conduit's RoundRequestor): plugins that keep their own
// state (a database) say where they must resume. They must agree with each
// other and with -r.
bool Pipeline::collect_round_requests(std::stop_token stop, std::optional<RoundRequest>& request) {
  auto ask = [&](Plugin& plugin, PluginKind kind, const std::string& name, std::size_t slot) {
    std::filesystem::path dir = options_.data_dir / (std::string(to_string(kind)) + "_" + name);
    uint64_t round = 0;
    if (!retry_startup(kind, name, "report its round", stop, [&] {
          InCall guard(*this, slot, "round_request()");
          round = plugin.requested_round(dir, stop);
        }))
      return false;
    if (round == 0) return true;
    if (request && request->round != round) {
      fail(StopReason::checkpoint_error, "conflicting round requests: " + request->plugin +
                                             " needs round " + std::to_string(request->round) +
                                             ", " + plugin_label(kind, name) + " needs round " +
                                             std::to_string(round));
      return false;
    }
    request = RoundRequest{plugin_label(kind, name), round};
    return true;
  };
  try {
    if (!ask(*plugins_.importer, PluginKind::importer, plugins_.importer_name, 0)) return false;
    for (size_t i = 0; i < plugins_.processors.size(); ++i)
      if (!ask(*plugins_.processors[i], PluginKind::processor, plugins_.processor_names[i], i + 1))
        return false;
    return ask(*plugins_.exporter, PluginKind::exporter, plugins_.exporter_name, exporter_stage());
  } catch (const std::exception& e) {
    if (stop.stop_requested()) return false;  // a stop cancelled the request
    fail(StopReason::checkpoint_error, std::string("round request failed: ") + e.what());
    return false;
  }
}

std::optional<uint64_t> Pipeline::resume_round(const std::optional<Metadata>& stored,
                                               const std::optional<RoundRequest>& request) {
  uint64_t next = stored ? stored->next_round : 0;
  if (options_.next_round_override) {
    if (request && request->round != *options_.next_round_override) {
      fail(StopReason::checkpoint_error,
           "next-round override " + std::to_string(*options_.next_round_override) +
               " conflicts with " + request->plugin + ", which must resume at round " +
               std::to_string(request->round));
      return std::nullopt;
    }
    return *options_.next_round_override;
  }
  if (request) {
    if (stored && stored->next_round != request->round)
      logger_.info("resuming at round " + std::to_string(request->round) + " as requested by " +
                   request->plugin + " (metadata.json said " + std::to_string(next) + ")");
    return request->round;
  }
  return next;
}

// The importer first (it gives the genesis), then the checkpoint is checked
// against the genesis and stored, then processors and the exporter.
void Pipeline::init_plugins(std::stop_token stop, const std::optional<Metadata>& stored,
                            uint64_t next) {
  auto guarded_init = [&](PluginKind kind, const std::string& name, InitContext& ctx, auto&& init) {
    try {
      ctx.data_dir = options_.data_dir / (std::string(to_string(kind)) + "_" + name);
      std::filesystem::create_directories(ctx.data_dir);
      return retry_startup(kind, name, "initialise", stop, init) && !stop.stop_requested();
    } catch (const std::exception& e) {
      if (stop.stop_requested()) return false;
      fail(reason_for(kind), plugin_label(kind, name) + " failed to initialise: " + e.what());
      return false;
    }
  };

  InitContext ctx{.next_round = next, .genesis = nullptr, .logger = &logger_};
  if (!guarded_init(PluginKind::importer, plugins_.importer_name, ctx,
                    [&] { genesis_ = plugins_.importer->init(ctx, stop); }))
    return;
  if (!record_genesis(stored, next)) return;

  ctx.genesis = &genesis_;
  for (size_t i = 0; i < plugins_.processors.size(); ++i)
    if (!guarded_init(PluginKind::processor, plugins_.processor_names[i], ctx,
                      [&] { plugins_.processors[i]->init(ctx, stop); }))
      return;
  guarded_init(PluginKind::exporter, plugins_.exporter_name, ctx,
               [&] { plugins_.exporter->init(ctx, stop); });
}

bool Pipeline::record_genesis(const std::optional<Metadata>& stored, uint64_t next) {
  if (stored && !stored->genesis_hash.empty() && stored->genesis_hash != genesis_.hash) {
    fail(StopReason::checkpoint_error,
         options_.data_dir.string() + " holds data of network '" + stored->network +
             "' (genesis hash " + stored->genesis_hash + ") but the importer serves network '" +
             genesis_.network + "' (genesis hash " + genesis_.hash +
             "); use another data directory");
    return false;
  }
  metadata_ = {genesis_.hash, genesis_.network, next};
  try {
    if (!stored || stored->next_round != next || stored->genesis_hash != genesis_.hash ||
        stored->network != genesis_.network)
      checkpoint_.store(metadata_);
  } catch (const CheckpointError& e) {
    fail(StopReason::checkpoint_error, e.what());
    return false;
  }
  return true;
}

void Pipeline::stage_finished() {
  std::lock_guard lock(mutex_);
  --running_stages_;
  changed_.notify_all();
}

void Pipeline::run_importer() {
  std::stop_token stop = importer_stop_.get_token();
  std::stop_token now = now_.get_token();
  auto& out = *queues_.front();
  uint64_t round = next_round_.load();
  while (!stop.stop_requested()) {
    if (round == UINT64_MAX) {  // no checkpoint can name a round after it; never wrap
      fail(StopReason::importer_error, "round " + std::to_string(round) +
                                           " is past the largest round a checkpoint can name; "
                                           "conduit stops here instead of wrapping to round 0");
      break;
    }
    BlockData block;
    std::chrono::nanoseconds elapsed{0};
    bool ok = attempt(PluginKind::importer, plugins_.importer_name, round, stop, [&] {
      InCall guard(*this, fetch_slot(), "get_block()");
      auto started = std::chrono::steady_clock::now();
      block = plugins_.importer->get_block(round, stop);
      elapsed = std::chrono::steady_clock::now() - started;
    });
    if (!ok) break;
    if (observer_)
      observer_->on_plugin_time(PluginKind::importer, plugins_.importer_name, round, elapsed);
    if (block.round() != round) {
      fail(StopReason::importer_error, plugin_label(PluginKind::importer, plugins_.importer_name) +
                                           " returned round " + std::to_string(block.round()) +
                                           " when asked for round " + std::to_string(round));
      break;
    }
    // Delivered: from here only `now` may drop it.
    if (!out.push(std::move(block), now)) break;
    ++round;
  }
  out.close();
}

void Pipeline::run_processor(std::size_t index) {
  std::stop_token now = now_.get_token();
  auto& in = *queues_[index];
  auto& out = *queues_[index + 1];
  const auto& name = plugins_.processor_names[index];
  while (auto block = in.pop(now)) {
    uint64_t round = block->round();
    std::chrono::nanoseconds elapsed{0};
    if (!attempt(PluginKind::processor, name, round, now, [&] {
          InCall guard(*this, index + 1, "process()");
          auto started = std::chrono::steady_clock::now();
          plugins_.processors[index]->process(*block, now);
          elapsed = std::chrono::steady_clock::now() - started;
        }))
      break;
    if (observer_) observer_->on_plugin_time(PluginKind::processor, name, round, elapsed);
    if (!out.push(std::move(*block), now)) break;
  }
  out.close();
}

// The rounds staged in the exporter but not yet committed.
struct Pipeline::Unit {
  std::vector<BlockData> blocks;
  std::vector<std::chrono::nanoseconds> times;  // each round's stage() time
  uint64_t bytes = 0;
  std::chrono::steady_clock::time_point deadline;  // latency cap, from the first round
  // False when a failed stage/commit may have left the exporter with part of
  // the unit: the next attempt aborts and stages the whole unit again.
  bool staged_cleanly = true;
  uint64_t first_round() const { return blocks.front().round(); }
};

std::unique_ptr<BoundedQueue<BlockData>> Pipeline::make_queue(std::size_t rounds,
                                                              uint64_t bytes) const {
  // Every queue holds rounds up to a byte budget (or one larger round, so that
  // it still flows), counted as the blocks take memory: what waits on a
  // stalled stage stays bounded whatever the stage does.
  auto queue = std::make_unique<BoundedQueue<BlockData>>(
      rounds, bytes, [](const BlockData& block) { return block.size_hint(); });
  if (options_.on_queue_full)
    queue->on_full([seam = options_.on_queue_full, index = queues_.size()](
                       std::size_t items, std::size_t bytes, std::size_t waiting) {
      seam(index, items, bytes, waiting);
    });
  return queue;
}

std::unique_ptr<BoundedQueue<BlockData>> Pipeline::make_exporter_queue() const {
  if (!plugins_.exporter || !plugins_.exporter->supports_units() || options_.unit_max_rounds <= 1)
    return make_queue(options_.queue_capacity, options_.unit_max_bytes);
  // Room for the next unit's rounds while one is made durable, and for the
  // prepare helpers to work ahead of the exporter; a quarter of the unit's
  // byte budget (a unit still grows to the whole budget as rounds arrive):
  // rounds queued beyond that only cost memory (measured by bench_daemon).
  return make_queue(std::max<std::size_t>(options_.queue_capacity, options_.unit_max_rounds),
                    std::max<uint64_t>(options_.unit_max_bytes / 4, 1));
}

void Pipeline::run_prepare_helper() {
  // Rounds queued for the exporter are prepared (encoded, compressed, turned
  // into rows) here, on every core, while the exporter writes earlier ones; the
  // exporter does the work itself for a round no helper got to (at the tip, the
  // round it waits for). A failed prepare leaves the round to the exporter,
  // which reports the error on its own thread.
  auto& queue = *queues_.back();
  const Exporter& exporter = *plugins_.exporter;
  std::stop_token now = now_.get_token();
  while (queue.work_on_next(now, [&](BlockData& block) { exporter.prepare(block); })) {
  }
}

std::size_t Pipeline::prepare_helper_count() {
  // The CPUs this process may run on (a unit's CPUAffinity=, taskset), at most four.
  cpu_set_t cpus;
  std::size_t usable = ::sched_getaffinity(0, sizeof cpus, &cpus) == 0
                           ? static_cast<std::size_t>(CPU_COUNT(&cpus))
                           : std::thread::hardware_concurrency();
  return std::clamp<std::size_t>(usable, 1, 4);
}

bool Pipeline::stage_in_unit(Unit& unit, BlockData&& block, std::stop_token now) {
  auto& exporter = *plugins_.exporter;
  std::chrono::nanoseconds elapsed{0};
  bool ok = attempt(PluginKind::exporter, plugins_.exporter_name, block.round(), now, [&] {
    InCall guard(*this, exporter_stage(), "stage()");
    if (!unit.staged_cleanly) {
      exporter.abort_unit();
      for (const auto& staged : unit.blocks) exporter.stage(staged, now);
    }
    unit.staged_cleanly = false;
    auto started = std::chrono::steady_clock::now();
    exporter.stage(block, now);
    elapsed = std::chrono::steady_clock::now() - started;
    unit.staged_cleanly = true;
  });
  if (!ok) return false;
  if (unit.blocks.empty())
    unit.deadline = std::chrono::steady_clock::now() + options_.unit_max_latency;
  // Staged: the exporter has taken what it needs of the bytes kept with the
  // block (encoded or prepared; a retry makes them again), so until the
  // commit the unit holds only the block itself.
  block.drop_encoded();
  unit.bytes += block.size_hint();
  unit.blocks.push_back(std::move(block));
  unit.times.push_back(elapsed);
  return true;
}

bool Pipeline::commit_unit(Unit& unit, std::stop_token now) {
  auto& exporter = *plugins_.exporter;
  uint64_t first = unit.first_round();
  uint64_t last = unit.blocks.back().round();
  // `now` drops a unit not yet committed. Without units, stage() was
  // receive(): that round is committed already and the checkpoint must follow.
  if (exporter.supports_units() && now.stop_requested()) return false;
  std::chrono::nanoseconds elapsed{0};
  bool ok = attempt(PluginKind::exporter, plugins_.exporter_name, first, now, [&] {
    InCall guard(*this, exporter_stage(), "commit_unit()");
    if (!unit.staged_cleanly) {
      exporter.abort_unit();
      for (const auto& staged : unit.blocks) exporter.stage(staged, now);
    }
    unit.staged_cleanly = false;
    auto started = std::chrono::steady_clock::now();
    exporter.commit_unit(now);
    elapsed = std::chrono::steady_clock::now() - started;
    unit.staged_cleanly = true;
  });
  if (!ok) return false;
  // Committed by the exporter: the checkpoint must follow, even under `now`.
  metadata_.next_round = last + 1;
  try {
    InCall guard(*this, checkpoint_slot(), "store()");
    checkpoint_.store(metadata_);
  } catch (const CheckpointError& e) {
    fail(StopReason::checkpoint_error,
         std::string(e.what()) + " after exporting round " + std::to_string(last));
    return false;
  }
  next_round_ = last + 1;
  if (observer_) {
    unit.times.back() += elapsed;
    for (std::size_t i = 0; i < unit.blocks.size(); ++i) {
      observer_->on_plugin_time(PluginKind::exporter, plugins_.exporter_name, first + i,
                                unit.times[i]);
      observer_->on_exported(first + i, unit.blocks[i].txn_count());
      observer_->on_exported_block(unit.blocks[i]);
    }
  }
  unit = Unit{};
  return true;
}

void Pipeline::run_exporter() {
  std::stop_token now = now_.get_token();
  auto& in = *queues_.back();
  auto& exporter = *plugins_.exporter;
  const uint64_t max_rounds =
      exporter.supports_units() ? std::max<uint64_t>(options_.unit_max_rounds, 1) : 1;
  uint64_t expected = next_round_.load();
  Unit unit;
  for (;;) {
    // A unit grows only while rounds are already queued (the importer is
    // ahead) and within its budget; at the tip each round is committed alone.
    std::optional<BlockData> block;
    bool room = unit.blocks.size() < max_rounds && unit.bytes < options_.unit_max_bytes &&
                std::chrono::steady_clock::now() < unit.deadline;
    if (unit.blocks.empty())
      block = in.pop(now);
    else if (room)
      block = in.try_pop(now);
    if (!block) {
      if (unit.blocks.empty()) break;  // closed and drained, or `now`
      if (!commit_unit(unit, now)) break;
      continue;
    }
    if (block->round() != expected) {
      fail(StopReason::internal_error, "round " + std::to_string(block->round()) +
                                           " reached the exporter when round " +
                                           std::to_string(expected) + " was expected");
      break;
    }
    if (!stage_in_unit(unit, std::move(*block), now)) break;
    ++expected;
    // Without units, stage() committed the round: record it at once.
    if (max_rounds == 1 && !commit_unit(unit, now)) break;
  }
  // Whatever is left was not committed (a `now` stop or a failure).
  if (!unit.blocks.empty()) exporter.abort_unit();
}

void Pipeline::close_plugins() {
  if (closed_) return;
  closed_ = true;
  // Never throws: a close that fails is logged and the next plugin is closed.
  auto close_one = [&](Plugin* plugin, PluginKind kind, const std::string& name, size_t slot) {
    if (!plugin) return;
    std::string error;
    try {
      InCall guard(*this, slot, "close()");
      plugin->close();
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "unknown exception";
    }
    if (!error.empty())
      logger_.error(plugin_label(kind, name) + " failed to close: " + error,
                    {.plugin = plugin_label(kind, name)});
  };
  close_one(plugins_.importer.get(), PluginKind::importer, plugins_.importer_name, 0);
  for (size_t i = 0; i < plugins_.processors.size(); ++i)
    close_one(plugins_.processors[i].get(), PluginKind::processor, plugins_.processor_names[i],
              i + 1);
  close_one(plugins_.exporter.get(), PluginKind::exporter, plugins_.exporter_name,
            exporter_stage());
}

StopCause Pipeline::run() {
  {
    std::lock_guard lock(mutex_);
    if (ran_) throw std::logic_error("Pipeline::run() called twice");
    ran_ = true;
  }
  // Nothing escapes run(): whatever throws becomes an internal-error, and the
  // plugins are closed all the same.
  try {
    initialise();
  } catch (const std::exception& e) {
    fail(StopReason::internal_error, std::string("initialisation failed: ") + e.what());
  } catch (...) {
    fail(StopReason::internal_error, "initialisation failed: unknown exception");
  }
  if (!importer_stop_.stop_requested()) run_stages();

  close_plugins();
  StopCause cause = why_stopped();
  if (cause.reason == StopReason::none) {
    // Every stage ended without a stop request or an error: the importer
    // reported end of input by being cancelled. Not expected in production.
    fail(StopReason::internal_error, "pipeline stages ended without a stop request");
    cause = why_stopped();
  }
  return cause;
}

std::string Pipeline::thread_name(std::size_t stage) const {
  if (stage == 0) return "importer";
  if (stage == exporter_stage()) return "exporter";
  return "processor " + std::to_string(stage);
}

void Pipeline::run_stages() {
  std::vector<std::jthread> threads;
  try {
    for (size_t i = 0; i < plugins_.processors.size(); ++i)
      queues_.push_back(make_queue(options_.queue_capacity, options_.unit_max_bytes));
    queues_.push_back(make_exporter_queue());  // sized for group commit
    if (observer_) observer_->on_ready(next_round_.load());
    logger_.info("pipeline running from round " + std::to_string(next_round_.load()));

    // Each stage (and helper) reports when it has finished; run() returns once all have.
    auto spawn = [&](std::string name, auto body) {
      threads.emplace_back([this, body, name] {
        // Named for `top -H`, perf and /proc/PID/task/*/comm (15 bytes at most).
        ::pthread_setname_np(::pthread_self(), name.c_str());
        try {
          body();
        } catch (const std::exception& e) {
          fail(StopReason::internal_error, std::string("pipeline stage crashed: ") + e.what());
        } catch (...) {
          fail(StopReason::internal_error, "pipeline stage crashed: unknown exception");
        }
        stage_finished();
      });
      std::lock_guard lock(mutex_);
      ++running_stages_;
    };
    auto spawn_stage = [&](std::size_t stage, auto body) {
      if (options_.before_stage_start) options_.before_stage_start(stage);
      spawn(thread_name(stage), body);
    };
    spawn_stage(0, [this] { run_importer(); });
    for (size_t i = 0; i < plugins_.processors.size(); ++i)
      spawn_stage(i + 1, [this, i] { run_processor(i); });
    spawn_stage(exporter_stage(), [this] { run_exporter(); });
    const std::size_t helpers =
        plugins_.exporter && plugins_.exporter->prepares() ? prepare_helper_count() : 0;
    for (std::size_t i = 0; i < helpers; ++i)
      spawn("prepare " + std::to_string(i + 1), [this] { run_prepare_helper(); });
  } catch (const std::exception& e) {
    // The stages already started end on the abort: none waits for a stage that
    // never came.
    fail(StopReason::internal_error, std::string("pipeline failed to start: ") + e.what());
  } catch (...) {
    fail(StopReason::internal_error, "pipeline failed to start: unknown exception");
  }

  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return running_stages_ == 0; });
  }
  for (auto& thread : threads) thread.join();
}

}  // namespace conduit
