#include "core/supervisor.hpp"

namespace conduit {

std::string_view to_string(Objective objective) {
  switch (objective) {
    case Objective::run:
      return "run";
    case Objective::reload:
      return "reload";
    case Objective::drain:
      return "drain";
    case Objective::abort:
      return "abort";
  }
  return "abort";
}

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
    case Objective::drain:
    case Objective::abort:
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
  request(mode == StopMode::now ? Objective::abort : Objective::drain,
          StopCause::requested(mode, origin));
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

std::string Supervisor::request_locked(Objective target, const StopCause& why,
                                       std::optional<Prepared> next, std::string& note) {
  // What the running pipeline is asked, at most once per mode.
  auto ask = [&](StopMode mode, const StopCause& cause) {
    if (!pipeline_) return;  // between pipelines: run() sees the objective
    if (mode == StopMode::end_of_round) {
      if (asked_) return;
      asked_ = mode;
      pipeline_->drain(cause);
    } else {
      if (asked_ == StopMode::now) return;
      asked_ = mode;
      pipeline_->abort(cause);
    }
  };
  switch (target) {
    case Objective::run:
      return {};
    case Objective::reload:
      if (finished_ || objective_ >= Objective::drain)
        return "reload refused: the pipeline is stopping";
      if (objective_ == Objective::reload) return "reload refused: a reload is already in progress";
      if (!pipeline_ || !ready_) return "reload refused: the pipeline is not running yet";
      objective_ = Objective::reload;
      reload_origin_ = why.origin;
      reload_unanswered_ = true;
      pending_ = std::move(next);
      note = ("reload requested by " + why.origin + ": draining to the end of the round");
      ask(StopMode::end_of_round,
          StopCause::requested(StopMode::end_of_round, "reload (" + why.origin + ")"));
      break;
    case Objective::drain:
      if (finished_ || objective_ == Objective::abort) return {};
      if (objective_ == Objective::drain) {
        // A second request while draining escalates to `now`.
        stop_cause_->escalate("second stop request (" + why.origin + ", end-of-round)");
        objective_ = Objective::abort;
        note = ("second stop request by " + why.origin + ": stopping now");
        ask(StopMode::now, *stop_cause_);
        break;
      }
      note = ("stop requested by " + why.origin + ": end-of-round" +
              (objective_ == Objective::reload ? " (during a reload: no rebuild)" : ""));
      objective_ = Objective::drain;
      stop_cause_ = why;
      // During a reload's own drain the old pipeline is already draining; a
      // rebuilt pipeline still initialising is asked here.
      ask(StopMode::end_of_round, why);
      break;
    case Objective::abort:
      if (finished_) return {};
      if (why.reason != StopReason::stop_requested) {
        // A pipeline failure; the pipeline is already aborting itself.
        if (!failure_) failure_ = why;
      } else if (objective_ == Objective::abort) {
        return {};  // `now` after `now` is a no-op
      } else if (stop_cause_) {
        stop_cause_->escalate(why.origin);
        note = ("stop escalated to now by " + why.origin);
      } else {
        note = ("stop requested by " + why.origin + ": now" +
                (objective_ == Objective::reload ? " (during a reload: no rebuild)" : ""));
        stop_cause_ = why;
      }
      objective_ = Objective::abort;
      ask(StopMode::now, why.reason == StopReason::stop_requested ? *stop_cause_ : why);
      break;
  }
  publish_locked();
  return {};
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
  request(Objective::abort, cause);
}

void Supervisor::on_drain_timeout(const std::string& why) {
  // A reload's drain escalated by stop-timeout still rebuilds; a stop's drain is
  // now a `now` stop.
  if (objective() == Objective::reload) return;
  request(Objective::abort, StopCause::requested(StopMode::now, why));
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

StopCause Supervisor::run() {
  std::optional<uint64_t> override_round = options_.next_round_override;
  StopCause cause;
  for (;;) {
    std::unique_ptr<Pipeline> pipeline;
    {
      std::lock_guard lock(mutex_);
      if (objective_ >= Objective::drain) break;  // stopped between pipelines
      try {
        config_ = std::move(pending_->config);
        logger_.set_level(config_.log_level);
        PipelineOptions popts;
        popts.data_dir = options_.data_dir;
        popts.retry_count = config_.retry_count;
        popts.retry_delay = config_.retry_delay;
        popts.stop_timeout = config_.stop_timeout;
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
      pipeline_ = pipeline.get();
      asked_.reset();
      ready_ = false;
    }
    if (!pipeline) break;
    override_round.reset();  // -r applies to the first run only

    cause = run_one(*pipeline);
    next_round_ = pipeline->next_round();
    bool restart;
    {
      std::lock_guard lock(mutex_);
      pipeline_ = nullptr;
      // A reload's drain ended as asked: rebuild. Anything else ends the run.
      restart = objective_ == Objective::reload && cause.reason == StopReason::stop_requested;
    }
    pipeline.reset();  // closed already; outside the lock
    if (!restart) break;
  }

  std::optional<Prepared> discard;
  {
    std::lock_guard lock(mutex_);
    discard = std::move(pending_);
    pending_.reset();
    if (cause.reason != StopReason::stop_requested && cause.reason != StopReason::none) {
      final_cause_ = cause;  // a failure wins over a requested stop
    } else if (failure_) {
      final_cause_ = *failure_;
    } else if (stop_cause_) {
      final_cause_ = *stop_cause_;
    } else {
      final_cause_ = StopCause::failure(StopReason::internal_error,
                                        "the pipeline stopped without a stop request");
    }
    // `stopping` is published before `stopped`, whatever ended the run.
    if (objective_ < Objective::drain) objective_ = Objective::abort;
    publish_locked();
    finished_ = true;
    publish_locked();
    cause = final_cause_;
    if (reload_unanswered_) {
      reload_unanswered_ = false;
      std::lock_guard nlock(notify_mutex_);
      if (observer_)
        observer_->on_reload_finished(false, "reload not completed: conduit stopped (" +
                                                 std::string(to_string(cause.reason)) + ": " +
                                                 cause.detail + ")");
    }
  }
  if (discard && discard->plugins.importer) {
    // Validated plugins that never ran: a pipeline that never runs closes them once.
    Pipeline unused(std::move(discard->plugins), {.data_dir = options_.data_dir}, logger_);
  }
  return cause;
}

}  // namespace conduit
