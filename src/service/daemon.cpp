#include "service/daemon.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <thread>
#include <unistd.h>

#include "conduit_config.h"
#include "core/pidfile.hpp"
#include "core/registry.hpp"
#include "core/supervisor.hpp"
#include "service/event_loop.hpp"

namespace conduit::service {
namespace {

// Journal MESSAGE_IDs of the final stop entry (CONTRACT section 6), also in
// data/catalog/conduit.catalog and man conduit(1).
constexpr const char* kExpectedStopId = "6b0a1c7e3d2f4e58a9c1b2d3e4f5a601";
constexpr const char* kUnexpectedStopId = "e2c94f1d7a3b4c6d8e9f0a1b2c3d4e02";

std::string signal_origin(const signalfd_siginfo& info) {
  const char* name = "signal";
  switch (info.ssi_signo) {
    case SIGTERM: name = "SIGTERM"; break;
    case SIGINT: name = "SIGINT"; break;
    case SIGUSR1: name = "SIGUSR1"; break;
    case SIGHUP: name = "SIGHUP"; break;
  }
  return std::string(name) + " from pid " + std::to_string(info.ssi_pid);
}

// Progress and state, handed from pipeline threads to the loop thread.
class LoopObserver final : public SupervisorObserver {
 public:
  LoopObserver(EventLoop& loop, Logger& logger) : loop_(loop), logger_(logger) {}

  void on_state(State state) override {
    loop_.post([this, state] { logger_.debug("state " + std::string(to_string(state))); });
  }
  void on_exported(uint64_t round, std::size_t txns) override {
    last_round_.store(round);
    rounds_.fetch_add(1);
    txns_.fetch_add(txns);
  }
  void on_reload_finished(bool ok, const std::string& detail) override {
    loop_.post([this, ok, detail] {
      if (ok)
        logger_.info(detail);
      else
        logger_.error("reload failed: " + detail);
    });
  }

  // Called once a second on the loop thread.
  void report_progress() {
    uint64_t rounds = rounds_.exchange(0);
    uint64_t txns = txns_.exchange(0);
    if (rounds == 0) return;
    logger_.info("round " + std::to_string(last_round_.load()) + " exported; " +
                     std::to_string(rounds) + " rounds/s, " + std::to_string(txns) + " txn/s",
                 {.round = last_round_.load()});
  }

 private:
  EventLoop& loop_;
  Logger& logger_;
  std::atomic<uint64_t> last_round_{0};
  std::atomic<uint64_t> rounds_{0};
  std::atomic<uint64_t> txns_{0};
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
  if (!config.log_file.empty()) {
    std::FILE* file = std::fopen(config.log_file.c_str(), "ae");
    if (!file) {
      std::fprintf(stderr, "conduit: cannot open log-file %s: %s\n", config.log_file.c_str(),
                   std::strerror(errno));
      return 2;
    }
    logger.set_sink(std::make_unique<StreamSink>(file, true));
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

  EventLoop loop;
  LoopObserver observer(loop, logger);
  supervisor->set_observer(&observer);

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

  StopCause cause;
  std::jthread runner([&] {
    cause = supervisor->run();
    loop.post([&] { loop.exit(0); });
  });
  loop.run();
  runner.join();

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
  return cause.exit_code();
}

}  // namespace conduit::service
