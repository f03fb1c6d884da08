#include "service/daemon.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "conduit_config.h"
#include "core/fs.hpp"
#include "core/observer.hpp"
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

// Journal MESSAGE_IDs of the final stop entry (docs/contract.md section 6), also in
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

// A state message to the service manager, also logged at debug (the
// end-to-end tests count them in the journal).
void notify(const Notifier& notifier, Logger& logger, const std::string& message) {
  notifier.send(message);
  logger.debug("sd_notify " + message.substr(0, message.find('\n')));
}

// STOPPING=1, once per process: send() is a no-op after the first call, and the
// daemon holds a scope guard that calls it when the run ends, so the service
// manager hears it on every path, exactly once, before the final STATUS=.
class StoppingNotice {
 public:
  StoppingNotice(const Notifier& notifier, Logger& logger) : notifier_(notifier), logger_(logger) {}
  void send() {
    if (std::exchange(sent_, true)) return;
    notify(notifier_, logger_, "STOPPING=1\nSTATUS=stopping");
  }
  bool sent() const { return sent_; }

  // Sends the notice when the scope it guards ends.
  class Guard {
   public:
    explicit Guard(StoppingNotice& notice) : notice_(notice) {}
    ~Guard() { notice_.send(); }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    StoppingNotice& notice_;
  };

 private:
  const Notifier& notifier_;
  Logger& logger_;
  bool sent_ = false;  // loop thread, then the main thread once the loop is done
};

// Progress and state, handed from pipeline threads to the loop thread, which
// tells the service manager (sd_notify), the bus and the log. The Supervisor
// publishes each State once, in order (never back from stopping); this only
// translates: starting -> nothing, running -> READY=1 (on_ready), reloading ->
// RELOADING=1, stopping -> STOPPING=1 (StoppingNotice).
class LoopObserver final : public Observer {
 public:
  LoopObserver(EventLoop& loop, Logger& logger, const Notifier& notifier,
               const Supervisor& supervisor, StoppingNotice& stopping)
      : loop_(loop),
        logger_(logger),
        notifier_(notifier),
        supervisor_(supervisor),
        stopping_(stopping) {}

  void set_bus(BusService* bus) { bus_ = bus; }
  // A terminal shows the progress line instead of a log line a second.
  void set_quiet_progress() { quiet_progress_ = true; }

  void on_state(State state) override {
    loop_.post([this, state] {
      logger_.debug("state " + std::string(to_string(state)));
      if (state == State::stopping) {
        stopping_.send();
      } else if (state == State::reloading && !stopping_.sent()) {
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
      if (stopping_.sent()) return;  // never READY=1 after STOPPING=1
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

  void notify(const std::string& message) { service::notify(notifier_, logger_, message); }

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
    if (stopping_.sent() || reloading_) notifier_.send("EXTEND_TIMEOUT_USEC=5000000");
  }

 private:
  EventLoop& loop_;
  Logger& logger_;
  const Notifier& notifier_;
  const Supervisor& supervisor_;
  StoppingNotice& stopping_;
  BusService* bus_ = nullptr;
  bool quiet_progress_ = false;
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

// One run of the daemon: set up the adapters around a Supervisor, run it on a
// thread of its own while the loop thread serves signals, the bus and timers,
// and finish() with the cause. Each set-up step returns an exit code to stop at
// (2: the configuration or the data dir is unusable), or nothing to go on.
class Daemon {
 public:
  Daemon(const DaemonOptions& options, const Registry& registry)
      : options_(options), registry_(registry) {}

  int run() {
    block_signals();  // before any thread exists, so that only the loop sees them
    for (auto step : {&Daemon::load_config, &Daemon::open_log, &Daemon::lock_data_dir,
                      &Daemon::start_observers})
      if (auto code = (this->*step)()) return *code;
    connect_bus();
    watch_health();
    handle_signals();
    return finish(serve());
  }

 private:
  std::optional<int> load_config();
  std::optional<int> open_log();
  std::optional<int> lock_data_dir();
  std::optional<int> start_observers();
  void connect_bus();
  void watch_health();
  void handle_signals();
  StopCause serve();
  int finish(const StopCause& cause);

  const DaemonOptions& options_;
  const Registry& registry_;
  Logger logger_;
  std::optional<Supervisor> supervisor_;
  TerminalSink* terminal_ = nullptr;  // set when stderr is a terminal (progress line)
  std::optional<InstanceLock> lock_;
  EventLoop loop_;
  Notifier notifier_;
  StoppingNotice stopping_{notifier_, logger_};
  std::optional<LoopObserver> observer_;
  ObserverFanout observers_;
  std::unique_ptr<HttpApi> http_api_;
  std::optional<ProgressLine> progress_;
  std::optional<Watchdog> watchdog_;
  // Declared last: destroyed first, while the loop and the supervisor still exist.
  std::unique_ptr<BusService> bus_;
};

std::optional<int> Daemon::load_config() {
  try {
    supervisor_.emplace(registry_,
                        SupervisorOptions{.data_dir = options_.data_dir,
                                          .next_round_override = options_.next_round_override},
                        logger_);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "conduit: %s\n", e.what());
    return 2;
  }
  return std::nullopt;
}

std::optional<int> Daemon::open_log() {
  const Config& config = supervisor_->config();
  if (!config.log_file.empty()) {
    // Signals are blocked already: an open() waiting on a FIFO would leave
    // only SIGKILL. A FIFO or a socket is refused; a regular file or a device.
    RegularFile log = open_regular_file(config.log_file, O_WRONLY | O_APPEND | O_CREAT, 0644,
                                        /*devices_too=*/true);
    std::FILE* file = log ? ::fdopen(log.fd.get(), "a") : nullptr;
    if (!file) {
      std::fprintf(stderr, "conduit: cannot open log-file %s: %s\n", config.log_file.c_str(),
                   log ? std::strerror(errno) : log.error.c_str());
      return 2;
    }
    (void)log.fd.release();  // the FILE owns it now
    logger_.set_sink(std::make_unique<StreamSink>(file, true));
  } else if (stderr_is_journal() || std::getenv("INVOCATION_ID")) {
    logger_.set_sink(std::make_unique<JournalSink>());
  } else if (::isatty(STDERR_FILENO)) {
    auto sink = std::make_unique<TerminalSink>(stderr);
    terminal_ = sink.get();
    logger_.set_sink(std::move(sink));
  }
  return std::nullopt;
}

std::optional<int> Daemon::lock_data_dir() {
  const Config& config = supervisor_->config();
  try {
    lock_.emplace(options_.data_dir, config.pid_file);
  } catch (const std::exception& e) {  // AlreadyRunning or an unusable PID file
    std::fprintf(stderr, "conduit: %s\n", e.what());
    return 2;
  }
  if (!config.hide_banner)
    logger_.info("conduit " CONDUIT_VERSION " starting: data dir " + options_.data_dir.string() +
                 ", importer " + config.importer.name + ", exporter " + config.exporter.name);
  for (const auto& warning : config.warnings) logger_.warn(warning);  // Go-only keys
  return std::nullopt;
}

std::optional<int> Daemon::start_observers() {
  // A plugin's progress during a long init (algod fast catchup, which can take
  // longer than TimeoutStartSec=) as STATUS=; while starting or reloading, each
  // report also gives systemd's timeout another minute, so only an init that
  // stops reporting is timed out (the catchup reports every poll-interval).
  logger_.set_status_listener([this](std::string_view text) {
    std::string message = "STATUS=" + std::string(text);
    if (State state = supervisor_->state(); state == State::starting || state == State::reloading)
      message += "\nEXTEND_TIMEOUT_USEC=60000000";
    notifier_.send(message);
  });
  observer_.emplace(loop_, logger_, notifier_, *supervisor_, stopping_);
  observers_.add(&*observer_);
  // [api] and [metrics]: read at start-up only (a reload keeps the servers).
  if (HttpApi::wanted(supervisor_->config())) {
    try {
      http_api_ = std::make_unique<HttpApi>(supervisor_->config(), *supervisor_, logger_);
      observers_.add(&http_api_->observer());
    } catch (const ConfigError& e) {
      std::fprintf(stderr, "conduit: %s\n", e.what());
      return 2;
    } catch (const std::exception& e) {
      // Like the bus: the pipeline runs, only the monitoring endpoint is missing.
      logger_.error(std::string("no HTTP API: ") + e.what());
    }
  }
  if (terminal_) {
    progress_.emplace(*terminal_);
    observers_.add(&*progress_);
    observer_->set_quiet_progress();
  }
  supervisor_->set_observer(&observers_);
  return std::nullopt;
}

void Daemon::connect_bus() {
  BusMode mode = resolve_bus_mode(options_.bus);
  if (mode == BusMode::none) return;
  std::string name = bus_name_from_environment();
  try {
    bus_ = std::make_unique<BusService>(loop_, mode, name, *supervisor_, logger_);
    observer_->set_bus(bus_.get());
  } catch (const std::exception& e) {
    // Not fatal: the pipeline runs; only the remote control is missing.
    logger_.error("not on the " + std::string(mode == BusMode::system ? "system" : "session") +
                  " bus as " + name + ": " + e.what());
  }
}

void Daemon::watch_health() {
  const Config& config = supervisor_->config();
  std::chrono::nanoseconds wedge_bound =
      config.wedge_timeout.count() > 0 ? config.wedge_timeout
                                       : std::chrono::nanoseconds(notifier_.watchdog_period());
  watchdog_.emplace(notifier_, *supervisor_, logger_, wedge_bound);
  if (notifier_.watchdog_period().count() > 0)
    loop_.every(notifier_.watchdog_period() / 2, [this] { watchdog_->tick(); });
  loop_.every(std::chrono::seconds(1), [this] { observer_->report_progress(); });
  if (progress_) loop_.every(std::chrono::seconds(1), [this] { progress_->tick(); });
}

void Daemon::handle_signals() {
  auto stop = [this](StopMode mode) {
    return [this, mode](const signalfd_siginfo& i) { supervisor_->stop(mode, signal_origin(i)); };
  };
  loop_.on_signal(SIGTERM, stop(StopMode::now));
  loop_.on_signal(SIGINT, stop(StopMode::now));
  loop_.on_signal(SIGUSR1, stop(StopMode::end_of_round));
  loop_.on_signal(SIGHUP, [this](const signalfd_siginfo& i) {
    // Validation reads the config file: off the loop thread it would be no
    // faster, and a refusal is only logged for a signal.
    (void)supervisor_->reload(signal_origin(i));
  });
}

// Runs the supervisor until it stops; the loop serves the adapters meanwhile.
StopCause Daemon::serve() {
  StoppingNotice::Guard stopping(stopping_);  // STOPPING=1 before finish(), whatever happens
  StopCause cause;
  std::jthread runner([&] {
    // Supervisor::run never throws; this guard keeps it that way for anything
    // added around it: no path ends in std::terminate.
    try {
      cause = supervisor_->run();
    } catch (const std::exception& e) {
      cause = StopCause::failure(StopReason::internal_error,
                                 std::string("supervisor failed: ") + e.what());
    } catch (...) {
      cause = StopCause::failure(StopReason::internal_error, "supervisor failed");
    }
    loop_.post([this] { loop_.exit(0); });
  });
  loop_.run();
  runner.join();
  if (terminal_) terminal_->finish();
  return cause;
}

// The daemon's end: the final STATUS=, the bus's StopReason, the one journal
// entry that says why (MESSAGE_ID: expected or unexpected stop), the PID file's
// stop record, and the exit code.
int Daemon::finish(const StopCause& cause) {
  std::string reason(to_string(cause.reason));
  uint64_t next_round = supervisor_->status().next_round;
  notifier_.send("STATUS=stopped: " + reason + ": " + cause.detail);
  if (bus_) bus_->stopped(cause);

  LogFields fields{.round = next_round,
                   .stop_reason = reason,
                   .message_id = cause.expected() ? kExpectedStopId : kUnexpectedStopId};
  std::string message = "conduit stopped: " + reason + ": " + cause.detail + "; next round " +
                        std::to_string(next_round);
  if (cause.expected())
    logger_.info(message, fields);
  else
    logger_.error(message, fields);
  lock_->release(cause);
  bus_.reset();
  return cause.exit_code();
}

}  // namespace

namespace {

// Every round allocates and frees a few hundred KB (the gunzipped block, its
// decoded tree, the encoded output). With glibc's defaults such blocks were
// mmapped afresh or trimmed back to the kernel after each round, so every round
// paid page faults and page zeroing (measured: a fifth of the importer's and of
// the exporter's CPU). Freed memory up to these sizes stays in the heap for the
// next round instead; a block over the mmap threshold is still returned at once.
void keep_round_sized_memory() {
  ::mallopt(M_MMAP_THRESHOLD, 4 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 16 << 20);
}

}  // namespace

int run_daemon(const DaemonOptions& options, const Registry& registry) {
  keep_round_sized_memory();
  return Daemon(options, registry).run();
}

}  // namespace conduit::service
