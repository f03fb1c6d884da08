#include "core/supervisor.hpp"

namespace conduit {

Supervisor::Supervisor(const Registry& registry, SupervisorOptions options, Logger& logger)
    : registry_(registry),
      options_(std::move(options)),
      logger_(logger),
      started_(std::chrono::steady_clock::now()) {
  config_ = load_config(options_.data_dir);
  pending_ = build_plugins(registry_, config_);
  logger_.set_level(config_.log_level);
  try {
    if (auto stored = Checkpoint(options_.data_dir).load()) next_round_ = stored->next_round;
  } catch (const CheckpointError&) {
    // Reported by the pipeline as a checkpoint-error when it starts.
  }
}

Supervisor::~Supervisor() = default;

void Supervisor::publish(State state) {
  std::lock_guard lock(notify_mutex_);
  if (state_.exchange(state) == state) return;
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

std::optional<std::string> Supervisor::wedged_stage(std::chrono::nanoseconds bound) const {
  std::lock_guard lock(mutex_);
  return pipeline_ ? pipeline_->wedged_stage(bound) : std::nullopt;
}

void Supervisor::on_state(State state) {
  // Map the pipeline's states onto the service's: a pipeline stopping or
  // starting because of a reload is the service reloading.
  bool reloading = reloading_.load();
  switch (state) {
    case State::starting:
      if (reloading) publish(State::reloading);
      break;
    case State::running:
      publish(State::running);
      break;
    case State::stopping:
      publish(reloading ? State::reloading : State::stopping);
      break;
    case State::stopped:
    case State::reloading:
      break;  // the run loop decides between stopped and the next pipeline
  }
}

void Supervisor::on_ready(uint64_t next_round) {
  bool was_reload = reloading_.exchange(false);
  next_round_ = next_round;
  std::lock_guard lock(notify_mutex_);
  if (observer_) {
    observer_->on_ready(next_round);
    if (was_reload)
      observer_->on_reload_finished(true,
                                    "reloaded; resuming at round " + std::to_string(next_round));
  }
}

void Supervisor::on_exported(uint64_t round, std::size_t txn_count) {
  next_round_ = round + 1;
  ++rounds_exported_;
  std::lock_guard lock(notify_mutex_);
  if (observer_) observer_->on_exported(round, txn_count);
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

void Supervisor::stop(StopMode mode, const std::string& origin) {
  std::lock_guard lock(mutex_);
  if (stop_mode_ == StopMode::now) return;
  bool first = !stop_mode_;
  if (first) stop_origin_ = origin;
  if (first || mode == StopMode::now) stop_mode_ = mode;
  // Between pipelines (a reload rebuilding, or before run()) run() sees stop_mode_.
  if (!pipeline_) return;
  if (reloading_ && first && mode == StopMode::end_of_round) {
    // The reload is already draining at end of round: just don't restart.
    logger_.info("stop requested by " + origin +
                 " during a reload: finishing the drain, then stopping");
    publish(State::stopping);
    return;
  }
  pipeline_->stop(mode, origin);
}

std::string Supervisor::reload(const std::string& origin) {
  // Validate first, outside the lock: the running pipeline is not touched by a bad file.
  Config config;
  PipelinePlugins plugins;
  try {
    config = load_config(options_.data_dir);
    plugins = build_plugins(registry_, config);
  } catch (const std::exception& e) {
    std::string message = std::string("reload refused: ") + e.what();
    logger_.error(message);
    return message;
  }
  std::lock_guard lock(mutex_);
  if (stop_mode_) return "reload refused: the pipeline is stopping";
  if (reloading_) return "reload refused: a reload is already in progress";
  if (!pipeline_) return "reload refused: the pipeline is not running yet";
  pending_config_ = std::move(config);
  pending_ = std::move(plugins);
  reloading_ = true;
  logger_.info("reload requested by " + origin + ": draining to the end of the round");
  pipeline_->stop(StopMode::end_of_round, "reload (" + origin + ")");
  return {};
}

StopCause Supervisor::run() {
  std::optional<uint64_t> override_round = options_.next_round_override;
  for (;;) {
    PipelineOptions popts;
    {
      std::lock_guard lock(mutex_);
      if (stop_mode_) {
        // Stopped between pipelines (before the first, or during a reload).
        if (pending_) {
          // Plugins validated for the next run: hand them to a pipeline that
          // never runs so they are closed exactly once.
          Pipeline discard(std::move(*pending_), {.data_dir = options_.data_dir}, logger_);
          pending_.reset();
        }
        final_cause_ = {StopReason::stop_requested, stop_origin_ + " requested stop (" +
                                                        std::string(to_string(*stop_mode_)) + ")"};
        break;
      }
      if (pending_config_) {
        config_ = std::move(*pending_config_);
        pending_config_.reset();
        logger_.set_level(config_.log_level);
      }
      popts.data_dir = options_.data_dir;
      popts.retry_count = config_.retry_count;
      popts.retry_delay = config_.retry_delay;
      popts.stop_timeout = config_.stop_timeout;
      popts.next_round_override = override_round;
      popts.queue_capacity = options_.queue_capacity;
      popts.durable_checkpoint = options_.durable_checkpoint;
      popts.unit_max_rounds = config_.group_commit_rounds;
      popts.unit_max_bytes = config_.group_commit_bytes;
      popts.unit_max_latency = config_.group_commit_latency;
      pipeline_ = std::make_unique<Pipeline>(std::move(*pending_), popts, logger_, this);
      pending_.reset();
    }
    override_round.reset();  // -r applies to the first run only

    StopCause cause = pipeline_->run();
    next_round_ = pipeline_->next_round();

    std::lock_guard lock(mutex_);
    std::unique_ptr<Pipeline> finished = std::move(pipeline_);
    bool restart = reloading_ && !stop_mode_ && cause.reason == StopReason::stop_requested;
    if (restart) continue;
    if (pending_) {
      // A stop cut the reload short: the validated plugins never ran.
      Pipeline discard(std::move(*pending_), {.data_dir = options_.data_dir}, logger_);
      pending_.reset();
      pending_config_.reset();
    }
    if (reloading_) {
      reloading_ = false;
      std::lock_guard nlock(notify_mutex_);
      if (observer_) observer_->on_reload_finished(false, cause.detail);
    }
    if (cause.reason == StopReason::stop_requested && stop_mode_) {
      // A stop during a reload drain: name the stop, not the reload.
      if (cause.detail.rfind("reload", 0) == 0)
        cause.detail =
            stop_origin_ + " requested stop (" + std::string(to_string(*stop_mode_)) + ")";
    }
    final_cause_ = cause;
    break;
  }
  publish(State::stopped);
  return final_cause_;
}

}  // namespace conduit
