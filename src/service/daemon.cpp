#include "service/daemon.hpp"

#include <unistd.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "conduit_config.h"
#include "core/pidfile.hpp"
#include "core/registry.hpp"
#include "core/supervisor.hpp"
#include "service/bus.hpp"
#include "service/event_loop.hpp"
#include "service/http_api.hpp"
#include "service/journal_sink.hpp"
#include "service/notify.hpp"
#include "service/progress.hpp"

namespace conduit::service {
namespace {

// Journal MESSAGE_IDs of the final stop entry (CONTRACT section 6), also in
// data/catalog/conduit.catalog and man conduit(1).
constexpr const char* kExpectedStopId = "6b0a1c7e3d2f4e58a9c1b2d3e4f5a601";
constexpr const char* kUnexpectedStopId = "e2c94f1d7a3b4c6d8e9f0a1b2c3d4e02";

std::string signal_origin(const signalfd_siginfo& info) {
  const char* name = "signal";
  switch (info.ssi_signo) {
    case SIGTERM:
      name = "SIGTERM";
      break;
    case SIGINT:
      name = "SIGINT";
      break;
    case SIGUSR1:
      name = "SIGUSR1";
      break;
    case SIGHUP:
      name = "SIGHUP";
      break;
  }
  return std::string(name) + " from pid " + std::to_string(info.ssi_pid);
}

// Progress and state, handed from pipeline threads to the loop thread, which
// tells the service manager (sd_notify), the bus and the log. The Supervisor
// publishes each State once, in order (never back from stopping); this only
// translates: starting -> nothing, running -> READY=1 (on_ready), reloading ->
// RELOADING=1, stopping -> STOPPING=1 (once per process, see stopping_sent()).
class LoopObserver final : public SupervisorObserver {
 public:
  LoopObserver(EventLoop& loop, Logger& logger, const Notifier& notifier,
               const Supervisor& supervisor)
      : loop_(loop), logger_(logger), notifier_(notifier), supervisor_(supervisor) {}

  void set_bus(BusService* bus) { bus_ = bus; }
  // A terminal shows the progress line instead of a log line a second.
  void set_quiet_progress() { quiet_progress_ = true; }

  void on_state(State state) override {
    loop_.post([this, state] {
      logger_.debug("state " + std::string(to_string(state)));
      if (state == State::stopping) {
        send_stopping();
      } else if (state == State::reloading && !stopping_) {
        reloading_ = true;
        notify("RELOADING=1\nSTATUS=reloading: draining to the end of the round");
      }
      // `stopped` is published with StopReason and StopDetail in one signal
      // (BusService::stopped), so a client never sees it without the reason.
      if (bus_ && state != State::stopped) bus_->state_changed(state);
    });
  }
  void on_ready(uint64_t next_round) override {
    loop_.post([this, next_round] {
      reloading_ = false;
      if (stopping_) return;  // never READY=1 after STOPPING=1
      notify("READY=1\nSTATUS=running from round " + std::to_string(next_round));
    });
  }
  void on_exported(uint64_t round, std::size_t txns) override {
    last_round_.store(round);
    rounds_.fetch_add(1);
    txns_.fetch_add(txns);
  }
  void on_reload_finished(bool ok, const std::string& detail) override {
    loop_.post([this, ok, detail] {
      // A reload that did not complete always ends the run: the final stop
      // entry says why (at err if unexpected, exactly once), so this is no err.
      if (ok)
        logger_.info(detail);
      else if (supervisor_.status().cause.expected())
        logger_.info(detail);
      else
        logger_.warn(detail);
      if (bus_) bus_->reload_finished(ok, detail);
    });
  }

  // STOPPING=1 exactly once per process, before it exits (loop thread only).
  void send_stopping() {
    if (stopping_) return;
    stopping_ = true;
    notify("STOPPING=1\nSTATUS=stopping");
  }

  // A state message to the service manager, also logged at debug (the
  // end-to-end tests count them in the journal).
  void notify(const std::string& message) {
    notifier_.send(message);
    logger_.debug("sd_notify " + message.substr(0, message.find('\n')));
  }

  // Called once a second on the loop thread: the log line, STATUS=, the bus's
  // NextRound, and more stop time for a drain that is still making progress.
  void report_progress() {
    uint64_t rounds = rounds_.exchange(0);
    uint64_t txns = txns_.exchange(0);
    if (bus_) bus_->tick();
    if (rounds == 0) return;
    std::string text = "round " + std::to_string(last_round_.load()) + " exported; " +
                       std::to_string(rounds) + " rounds/s, " + std::to_string(txns) + " txn/s";
    if (!quiet_progress_) logger_.info(text, {.round = last_round_.load()});
    notifier_.send("STATUS=" + text);
    // A drain that exported something in the last second is progressing: keep
    // systemd's stop (or reload) timeout from firing while it does.
    if (stopping_ || reloading_) notifier_.send("EXTEND_TIMEOUT_USEC=5000000");
  }

 private:
  EventLoop& loop_;
  Logger& logger_;
  const Notifier& notifier_;
  const Supervisor& supervisor_;
  BusService* bus_ = nullptr;
  bool quiet_progress_ = false;
  bool stopping_ = false;   // loop thread only
  bool reloading_ = false;  // loop thread only
  std::atomic<uint64_t> last_round_{0};
  std::atomic<uint64_t> rounds_{0};
  std::atomic<uint64_t> txns_{0};
};

// WATCHDOG=1 only while healthy: this runs on the loop thread (so a stuck loop
// stops the pings) and skips the ping while a call is wedged
// (Pipeline::wedged_stage, bound by wedge-timeout, default one watchdog
// period): a round call, round request, checkpoint write or close() running
// longer than that, or an importer's fetch still running that long after it
// was cancelled. An importer merely waiting for the next block, or a plugin's
// init, is healthy. systemd kills the service at most one more watchdog period
// later (Result=watchdog) and Restart=on-failure restarts it.
class Watchdog {
 public:
  Watchdog(const Notifier& notifier, const Supervisor& supervisor, Logger& logger,
           std::chrono::nanoseconds bound)
      : notifier_(notifier), supervisor_(supervisor), logger_(logger), bound_(bound) {}

  void tick() {
    auto wedged = supervisor_.wedged_stage(bound_);
    if (!wedged) {
      unhealthy_since_.reset();
      last_status_.clear();
      notifier_.send("WATCHDOG=1");
      return;
    }
    auto now = std::chrono::steady_clock::now();
    if (!unhealthy_since_) {
      unhealthy_since_ = now;
      // The one err entry of this run: systemd's watchdog kill follows.
      std::string plugin = wedged->substr(0, wedged->find(' '));
      logger_.error("internal-error: " + *wedged + " is stuck for longer than " +
                        format_duration(bound_) + "; no more watchdog pings",
                    {.plugin = plugin, .stop_reason = "internal-error"});
    }
    auto seconds =
        std::chrono::duration_cast<std::chrono::seconds>(now - *unhealthy_since_).count();
    std::string status = "STATUS=wedged: " + *wedged +
                         " is stuck in a plugin call; no watchdog ping for " +
                         std::to_string(seconds) + "s";
    if (status != last_status_) notifier_.send(status);
    last_status_ = status;
  }

 private:
  const Notifier& notifier_;
  const Supervisor& supervisor_;
  Logger& logger_;
  std::chrono::nanoseconds bound_;
  std::optional<std::chrono::steady_clock::time_point> unhealthy_since_;
  std::string last_status_;
};

}  // namespace

int run_daemon(const DaemonOptions& options) {
  Logger logger;
  // Signals are blocked before any thread exists so that only the loop sees them.
  block_signals();

  std::optional<Supervisor> supervisor;
  try {
    supervisor.emplace(builtin_registry(),
                       SupervisorOptions{.data_dir = options.data_dir,
                                         .next_round_override = options.next_round_override},
                       logger);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "conduit: %s\n", e.what());
    return 2;
  }
  const Config& config = supervisor->config();
  TerminalSink* terminal = nullptr;  // set when stderr is a terminal (progress line)
  if (!config.log_file.empty()) {
    std::FILE* file = std::fopen(config.log_file.c_str(), "ae");
    if (!file) {
      std::fprintf(stderr, "conduit: cannot open log-file %s: %s\n", config.log_file.c_str(),
                   std::strerror(errno));
      return 2;
    }
    logger.set_sink(std::make_unique<StreamSink>(file, true));
  } else if (stderr_is_journal() || std::getenv("INVOCATION_ID")) {
    logger.set_sink(std::make_unique<JournalSink>());
  } else if (::isatty(STDERR_FILENO)) {
    auto sink = std::make_unique<TerminalSink>(stderr);
    terminal = sink.get();
    logger.set_sink(std::move(sink));
  }

  std::optional<InstanceLock> lock;
  try {
    lock.emplace(options.data_dir, config.pid_file);
  } catch (const AlreadyRunning& e) {
    std::fprintf(stderr, "conduit: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conduit: %s\n", e.what());
    return 2;
  }

  if (!config.hide_banner)
    logger.info("conduit " CONDUIT_VERSION " starting: data dir " + options.data_dir.string() +
                ", importer " + config.importer.name + ", exporter " + config.exporter.name);
  for (const auto& warning : config.warnings) logger.warn(warning);  // Go-only keys

  EventLoop loop;
  Notifier notifier;
  // A plugin's progress during a long init (algod fast catchup, which can take
  // longer than TimeoutStartSec=) as STATUS=; while starting or reloading, each
  // report also gives systemd's timeout another minute, so only an init that
  // stops reporting is timed out (the catchup reports every poll-interval).
  logger.set_status_listener([&notifier, &sup = *supervisor](std::string_view text) {
    std::string message = "STATUS=" + std::string(text);
    if (State state = sup.state(); state == State::starting || state == State::reloading)
      message += "\nEXTEND_TIMEOUT_USEC=60000000";
    notifier.send(message);
  });
  LoopObserver observer(loop, logger, notifier, *supervisor);
  ObserverFanout observers;
  observers.add(&observer);
  // [api] and [metrics]: read at start-up only (a reload keeps the servers).
  std::unique_ptr<HttpApi> http_api;
  if (HttpApi::wanted(config)) {
    try {
      http_api = std::make_unique<HttpApi>(config, *supervisor, logger);
      observers.add(&http_api->observer());
    } catch (const ConfigError& e) {
      std::fprintf(stderr, "conduit: %s\n", e.what());
      return 2;
    } catch (const std::exception& e) {
      // Like the bus: the pipeline runs, only the monitoring endpoint is missing.
      logger.error(std::string("no HTTP API: ") + e.what());
    }
  }
  std::optional<ProgressLine> progress;
  if (terminal) {
    progress.emplace(*terminal);
    observers.add(&*progress);
    observer.set_quiet_progress();
  }
  supervisor->set_observer(&observers);

  std::unique_ptr<BusService> bus;
  if (BusMode mode = resolve_bus_mode(options.bus); mode != BusMode::none) {
    std::string name = bus_name_from_environment();
    try {
      bus = std::make_unique<BusService>(loop, mode, name, *supervisor, logger);
      observer.set_bus(bus.get());
    } catch (const std::exception& e) {
      // Not fatal: the pipeline runs; only the remote control is missing.
      logger.error("not on the " + std::string(mode == BusMode::system ? "system" : "session") +
                   " bus as " + name + ": " + e.what());
    }
  }
  std::chrono::nanoseconds wedge_bound = config.wedge_timeout.count() > 0
                                             ? config.wedge_timeout
                                             : std::chrono::nanoseconds(notifier.watchdog_period());
  Watchdog watchdog(notifier, *supervisor, logger, wedge_bound);
  if (notifier.watchdog_period().count() > 0)
    loop.every(notifier.watchdog_period() / 2, [&] { watchdog.tick(); });

  loop.on_signal(SIGTERM, [&](const signalfd_siginfo& i) {
    supervisor->stop(StopMode::now, signal_origin(i));
  });
  loop.on_signal(SIGINT, [&](const signalfd_siginfo& i) {
    supervisor->stop(StopMode::now, signal_origin(i));
  });
  loop.on_signal(SIGUSR1, [&](const signalfd_siginfo& i) {
    supervisor->stop(StopMode::end_of_round, signal_origin(i));
  });
  loop.on_signal(SIGHUP, [&](const signalfd_siginfo& i) {
    // Validation reads the config file: off the loop thread it would be no
    // faster, and a refusal is only logged for a signal.
    (void)supervisor->reload(signal_origin(i));
  });
  loop.every(std::chrono::seconds(1), [&] { observer.report_progress(); });
  if (progress) loop.every(std::chrono::seconds(1), [&] { progress->tick(); });

  StopCause cause;
  std::jthread runner([&] {
    // Supervisor::run never throws; this guard keeps it that way for anything
    // added around it: no path ends in std::terminate.
    try {
      cause = supervisor->run();
    } catch (const std::exception& e) {
      cause = StopCause::failure(StopReason::internal_error,
                                 std::string("supervisor failed: ") + e.what());
    } catch (...) {
      cause = StopCause::failure(StopReason::internal_error, "supervisor failed");
    }
    loop.post([&] { loop.exit(0); });
  });
  loop.run();
  runner.join();
  if (terminal) terminal->finish();
  observer.send_stopping();  // a no-op unless `stopping` was somehow never published

  notifier.send("STATUS=stopped: " + std::string(to_string(cause.reason)) + ": " + cause.detail);
  if (bus) bus->stopped(cause);

  LogFields fields{.round = supervisor->status().next_round,
                   .stop_reason = std::string(to_string(cause.reason)),
                   .message_id = cause.expected() ? kExpectedStopId : kUnexpectedStopId};
  std::string message = "conduit stopped: " + std::string(to_string(cause.reason)) + ": " +
                        cause.detail + "; next round " +
                        std::to_string(supervisor->status().next_round);
  if (cause.expected())
    logger.info(message, fields);
  else
    logger.error(message, fields);
  lock->release(cause);
  bus.reset();
  return cause.exit_code();
}

}  // namespace conduit::service
