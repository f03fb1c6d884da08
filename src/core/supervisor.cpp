#include "core/supervisor.hpp"

#include <thread>

namespace conduit {

Supervisor::Supervisor(const Registry& registry, SupervisorOptions options, Logger& logger)
    : registry_(registry),
      options_(std::move(options)),
      logger_(logger),
      started_(std::chrono::steady_clock::now()) {
  config_ = load_config(options_.data_dir);
  pending_ = Prepared{config_, build_plugins(registry_, config_)};
  logger_.set_level(config_.log_level);
  try {
    if (auto stored = Checkpoint(options_.data_dir).load()) next_round_ = stored->next_round;
  } catch (const CheckpointError&) {
    // Reported by the pipeline as a checkpoint-error when it starts.
  }
}

Supervisor::~Supervisor() = default;

State Supervisor::derive_locked() const {
  if (finished_) return State::stopped;
  switch (objective_) {
    case Objective::end_of_round:
    case Objective::now:
      return State::stopping;
    case Objective::reload:
      return State::reloading;
    case Objective::run:
      // After a reload the objective returns to `run` only once the rebuilt
      // pipeline is ready, so `run` without a ready pipeline is the first start.
      return ready_ ? State::running : State::starting;
  }
  return State::stopping;
}

void Supervisor::publish_locked() {
  State state = derive_locked();
  if (state == published_) return;
  published_ = state;
  state_ = state;
  std::lock_guard lock(notify_mutex_);
  if (observer_) observer_->on_state(state);
}

Status Supervisor::status() const {
  Status s;
  s.state = state_.load();
  s.next_round = next_round_.load();
  s.rounds_exported = rounds_exported_.load();
  s.started = started_;
  std::lock_guard lock(mutex_);
  s.cause = final_cause_;
  return s;
}

Objective Supervisor::objective() const {
  std::lock_guard lock(mutex_);
  return objective_;
}

std::optional<std::string> Supervisor::wedged_stage(std::chrono::nanoseconds bound) const {
  std::lock_guard lock(mutex_);
  return pipeline_ ? pipeline_->wedged_stage(bound) : std::nullopt;
}

void Supervisor::stop(StopMode mode, const std::string& origin) {
  request(objective_for(mode), StopCause::requested(mode, origin));
}

std::string Supervisor::reload(const std::string& origin) {
  // Validate first, outside the lock: the running pipeline is not touched by a bad file.
  Prepared next;
  try {
    next.config = load_config(options_.data_dir);
    next.plugins = build_plugins(registry_, next.config);
  } catch (const std::exception& e) {
    std::string message = std::string("reload refused: ") + e.what();
    logger_.error(message);
    return message;
  }
  StopCause why;
  why.origin = origin;
  return request(Objective::reload, why, std::move(next));
}

std::string Supervisor::request(Objective target, const StopCause& why,
                                std::optional<Prepared> next) {
  std::string note;  // logged once the lock is released
  std::string refusal;
  {
    std::lock_guard lock(mutex_);
    refusal = request_locked(target, why, std::move(next), note);
  }
  if (!note.empty()) logger_.info(note);
  return refusal;
}

void Supervisor::ask_locked(StopMode mode, const StopCause& cause) {
  if (!pipeline_) return;  // between pipelines: run() sees the objective
  if (asked_ == StopMode::now || asked_ == mode) return;
  asked_ = mode;
  // stop-timeout bounds an end-of-round drain; `now` needs no bound.
  drain_cause_ = cause;
  drain_deadline_.reset();
  if (mode == StopMode::end_of_round)
    drain_deadline_ = std::chrono::steady_clock::now() + config_.stop_timeout;
  timer_changed_.notify_all();
  pipeline_->stop(mode, cause);
}

std::string Supervisor::request_locked(Objective target, const StopCause& why,
                                       std::optional<Prepared> next, std::string& note) {
  std::string refusal;
  switch (target) {
    case Objective::run:
      return {};
    case Objective::reload:
      refusal = reload_locked(why.origin, std::move(next), note);
      break;
    case Objective::end_of_round:
      end_of_round_locked(why, note);
      break;
    case Objective::now:
      now_locked(why, note);
      break;
  }
  if (refusal.empty()) publish_locked();
  return refusal;
}

std::string Supervisor::reload_locked(const std::string& origin, std::optional<Prepared> next,
                                      std::string& note) {
  if (finished_ || objective_ >= Objective::end_of_round)
    return "reload refused: the pipeline is stopping";
  if (objective_ == Objective::reload) return "reload refused: a reload is already in progress";
  if (!pipeline_ || !ready_) return "reload refused: the pipeline is not running yet";
  objective_ = Objective::reload;
  reload_unanswered_ = true;
  pending_ = std::move(next);
  note = "reload requested by " + origin + ": draining to the end of the round";
  ask_locked(StopMode::end_of_round,
             StopCause::requested(StopMode::end_of_round, "reload (" + origin + ")"));
  return {};
}

void Supervisor::end_of_round_locked(const StopCause& why, std::string& note) {
  if (finished_ || objective_ == Objective::now) return;
  if (objective_ == Objective::end_of_round) {
    // A second request while draining escalates to `now`.
    stop_cause_->escalate("second stop request (" + why.origin + ", end-of-round)");
    objective_ = Objective::now;
    note = "second stop request by " + why.origin + ": stopping now";
    ask_locked(StopMode::now, *stop_cause_);
    return;
  }
  note = "stop requested by " + why.origin + ": end-of-round" +
         (objective_ == Objective::reload ? " (during a reload: no rebuild)" : "");
  objective_ = Objective::end_of_round;
  stop_cause_ = why;
  // During a reload's own drain the old pipeline is already draining; a
  // rebuilt pipeline still initialising is asked here.
  ask_locked(StopMode::end_of_round, why);
}

void Supervisor::now_locked(const StopCause& why, std::string& note) {
  if (finished_) return;
  if (why.reason != StopReason::stop_requested) {
    // A pipeline failure; the pipeline is already stopping in mode `now`.
    if (!failure_) failure_ = why;
  } else if (objective_ == Objective::now) {
    return;  // `now` after `now` is a no-op
  } else if (stop_cause_) {
    stop_cause_->escalate(why.origin);
    note = "stop escalated to now by " + why.origin;
  } else {
    note = "stop requested by " + why.origin + ": now" +
           (objective_ == Objective::reload ? " (during a reload: no rebuild)" : "");
    stop_cause_ = why;
  }
  objective_ = Objective::now;
  ask_locked(StopMode::now, why.reason == StopReason::stop_requested ? *stop_cause_ : why);
}

void Supervisor::drain_timed_out_locked(std::string& note) {
  std::string why = "stop-timeout (" + format_duration(config_.stop_timeout) + ")";
  if (objective_ == Objective::reload) {
    // A reload's drain cut short by stop-timeout still rebuilds.
    StopCause cause = drain_cause_;
    cause.escalate(why);
    ask_locked(StopMode::now, cause);
    return;
  }
  now_locked(StopCause::requested(StopMode::now, why), note);
  publish_locked();
}

void Supervisor::watch_stop_timeout(std::stop_token stop) {
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    if (!drain_deadline_) {
      timer_changed_.wait(lock, stop, [this] { return drain_deadline_.has_value(); });
      continue;
    }
    auto deadline = *drain_deadline_;
    if (timer_changed_.wait_until(lock, stop, deadline,
                                  [&] { return drain_deadline_ != deadline; }))
      continue;  // asked again, or the pipeline is gone
    drain_deadline_.reset();
    // Only the stages' drain is bounded: a stop during init cancels init itself.
    if (!pipeline_ || !ready_) continue;
    std::string note;
    drain_timed_out_locked(note);
    lock.unlock();
    logger_.warn("end-of-round drain exceeded stop-timeout " +
                 format_duration(config_.stop_timeout) + "; stopping now");
    if (!note.empty()) logger_.info(note);
    lock.lock();
  }
}

void Supervisor::on_ready(uint64_t next_round) {
  std::lock_guard lock(mutex_);
  next_round_ = next_round;
  ready_ = true;
  bool reloaded = objective_ == Objective::reload;
  if (reloaded) {
    objective_ = Objective::run;
    reload_unanswered_ = false;
  }
  State before = published_;
  publish_locked();
  // READY=1 only for a pipeline that is really running: a stop that arrived
  // during its init keeps the service `stopping`.
  if (published_ != State::running || before == State::running) return;
  std::lock_guard nlock(notify_mutex_);
  if (!observer_) return;
  observer_->on_ready(next_round);
  if (reloaded)
    observer_->on_reload_finished(true,
                                  "reloaded; resuming at round " + std::to_string(next_round));
}

void Supervisor::on_exported(uint64_t round, std::size_t txn_count) {
  next_round_ = round + 1;
  ++rounds_exported_;
  std::lock_guard lock(notify_mutex_);
  if (observer_) observer_->on_exported(round, txn_count);
}

void Supervisor::on_exported_block(const BlockData& block) {
  if (observer_) observer_->on_exported_block(block);  // metrics only: no notify lock
}

// Per-call hooks: no notify_mutex_, since they only feed counters and come from
// several stage threads at once; observers synchronise themselves.
void Supervisor::on_retry(PluginKind kind, const std::string& plugin, uint64_t round) {
  if (observer_) observer_->on_retry(kind, plugin, round);
}

void Supervisor::on_plugin_time(PluginKind kind, const std::string& plugin, uint64_t round,
                                std::chrono::nanoseconds elapsed) {
  if (observer_) observer_->on_plugin_time(kind, plugin, round, elapsed);
}

void Supervisor::on_plugin_error(const std::string& message) {
  if (observer_) observer_->on_plugin_error(message);
}

void Supervisor::on_failed(const StopCause& cause) {
  request(Objective::now, cause);
}

StopCause Supervisor::run_one(Pipeline& pipeline) {
  try {
    return pipeline.run();
  } catch (const std::exception& e) {
    return StopCause::failure(StopReason::internal_error,
                              std::string("pipeline failed: ") + e.what());
  } catch (...) {
    return StopCause::failure(StopReason::internal_error, "pipeline failed: unknown exception");
  }
}

std::unique_ptr<Pipeline> Supervisor::next_pipeline_locked(std::optional<uint64_t> override_round,
                                                           StopCause& cause) {
  std::unique_ptr<Pipeline> pipeline;
  try {
    config_ = std::move(pending_->config);
    logger_.set_level(config_.log_level);
    PipelineOptions popts;
    popts.data_dir = options_.data_dir;
    popts.retry_count = config_.retry_count;
    popts.retry_delay = config_.retry_delay;
    popts.next_round_override = override_round;
    popts.queue_capacity = options_.queue_capacity;
    popts.durable_checkpoint = options_.durable_checkpoint;
    popts.before_stage_start = options_.before_stage_start;
    popts.unit_max_rounds = config_.group_commit_rounds;
    popts.unit_max_bytes = config_.group_commit_bytes;
    popts.unit_max_latency = config_.group_commit_latency;
    pipeline = std::make_unique<Pipeline>(std::move(pending_->plugins), popts, logger_, this);
  } catch (const std::exception& e) {
    cause = StopCause::failure(StopReason::internal_error,
                               std::string("cannot build the pipeline: ") + e.what());
  }
  pending_.reset();
  set_pipeline_locked(pipeline.get());
  return pipeline;
}

void Supervisor::set_pipeline_locked(Pipeline* pipeline) {
  pipeline_ = pipeline;
  asked_.reset();
  ready_ = false;
  drain_deadline_.reset();
  timer_changed_.notify_all();
}

StopCause Supervisor::run_pipelines() {
  std::optional<uint64_t> override_round = options_.next_round_override;
  StopCause cause;
  for (;;) {
    std::unique_ptr<Pipeline> pipeline;
    {
      std::lock_guard lock(mutex_);
      if (objective_ >= Objective::end_of_round) break;  // stopped between pipelines
      pipeline = next_pipeline_locked(override_round, cause);
    }
    if (!pipeline) break;
    override_round.reset();  // -r applies to the first run only

    cause = run_one(*pipeline);
    next_round_ = pipeline->next_round();
    bool restart;
    {
      std::lock_guard lock(mutex_);
      set_pipeline_locked(nullptr);
      // A reload's drain ended as asked: rebuild. Anything else ends the run.
      restart = objective_ == Objective::reload && cause.reason == StopReason::stop_requested;
    }
    pipeline.reset();  // closed already; outside the lock
    if (!restart) break;
  }
  return cause;
}

StopCause Supervisor::finish_locked(const StopCause& last) {
  if (last.reason != StopReason::stop_requested && last.reason != StopReason::none) {
    final_cause_ = last;  // a failure wins over a requested stop
  } else if (failure_) {
    final_cause_ = *failure_;
  } else if (stop_cause_) {
    final_cause_ = *stop_cause_;
  } else {
    final_cause_ = StopCause::failure(StopReason::internal_error,
                                      "the pipeline stopped without a stop request");
  }
  // `stopping` is published before `stopped`, whatever ended the run.
  if (objective_ < Objective::end_of_round) objective_ = Objective::now;
  publish_locked();
  finished_ = true;
  publish_locked();
  if (reload_unanswered_) {
    reload_unanswered_ = false;
    std::lock_guard nlock(notify_mutex_);
    if (observer_)
      observer_->on_reload_finished(false, "reload not completed: conduit stopped (" +
                                               std::string(to_string(final_cause_.reason)) + ": " +
                                               final_cause_.detail + ")");
  }
  return final_cause_;
}

StopCause Supervisor::run() {
  StopCause cause;
  {
    std::jthread timer([this](std::stop_token stop) { watch_stop_timeout(stop); });
    cause = run_pipelines();
  }
  std::optional<Prepared> discard;
  {
    std::lock_guard lock(mutex_);
    discard = std::move(pending_);
    pending_.reset();
    cause = finish_locked(cause);
  }
  if (discard && discard->plugins.importer) {
    // Validated plugins that never ran: a pipeline that never runs closes them once.
    Pipeline unused(std::move(discard->plugins), {.data_dir = options_.data_dir}, logger_);
  }
  return cause;
}

}  // namespace conduit
