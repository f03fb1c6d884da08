// The one observer interface: what the pipeline reports (progress, per-call
// figures, failures) and what the Supervisor adds (State, reload outcomes).
// Every hook has a no-op default, so an observer overrides only what it uses
// and a new hook is added here and in ObserverFanout, nowhere else.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/block.hpp"
#include "core/plugin.hpp"
#include "core/stop.hpp"

namespace conduit {

// Called from pipeline threads, never with a pipeline lock held. The
// Supervisor serialises on_state, on_ready, on_exported and on_reload_finished
// under its notification lock (an observer must not call back into it
// synchronously); the per-call hooks come from several stage threads at once.
class Observer {
 public:
  virtual ~Observer() = default;
  // The service State moved (Supervisor only).
  virtual void on_state(State state) { (void)state; }
  // Every plugin is initialised; rounds start flowing from `next_round`.
  virtual void on_ready(uint64_t next_round) { (void)next_round; }
  // Round `round` is committed: the checkpoint now says round + 1.
  virtual void on_exported(uint64_t round, std::size_t txn_count) { (void)round, (void)txn_count; }
  // The block just committed, for metrics by transaction type (exporter thread).
  virtual void on_exported_block(const BlockData& block) { (void)block; }
  // A reload finished (Supervisor only).
  virtual void on_reload_finished(bool ok, const std::string& detail) { (void)ok, (void)detail; }
  // A plugin call failed and will be retried.
  virtual void on_retry(PluginKind kind, const std::string& plugin, uint64_t round) {
    (void)kind, (void)plugin, (void)round;
  }
  // A plugin call for `round` succeeded after `elapsed` (the successful attempt only).
  virtual void on_plugin_time(PluginKind kind, const std::string& plugin, uint64_t round,
                              std::chrono::nanoseconds elapsed) {
    (void)kind, (void)plugin, (void)round, (void)elapsed;
  }
  // A plugin call failed (it may be retried); `message` names plugin and round.
  virtual void on_plugin_error(const std::string& message) { (void)message; }
  // The pipeline stopped itself because of `cause` (not stop_requested); it is
  // already stopping in mode `now` (Pipeline only).
  virtual void on_failed(const StopCause& cause) { (void)cause; }
};

// Calls every observer added, in order.
class ObserverFanout final : public Observer {
 public:
  void add(Observer* observer) { observers_.push_back(observer); }

  void on_state(State state) override { each(&Observer::on_state, state); }
  void on_ready(uint64_t next_round) override { each(&Observer::on_ready, next_round); }
  void on_exported(uint64_t round, std::size_t txn_count) override {
    each(&Observer::on_exported, round, txn_count);
  }
  void on_exported_block(const BlockData& block) override {
    each(&Observer::on_exported_block, block);
  }
  void on_reload_finished(bool ok, const std::string& detail) override {
    each(&Observer::on_reload_finished, ok, detail);
  }
  void on_retry(PluginKind kind, const std::string& plugin, uint64_t round) override {
    each(&Observer::on_retry, kind, plugin, round);
  }
  void on_plugin_time(PluginKind kind, const std::string& plugin, uint64_t round,
                      std::chrono::nanoseconds elapsed) override {
    each(&Observer::on_plugin_time, kind, plugin, round, elapsed);
  }
  void on_plugin_error(const std::string& message) override {
    each(&Observer::on_plugin_error, message);
  }
  void on_failed(const StopCause& cause) override { each(&Observer::on_failed, cause); }

 private:
  template <class... Params, class... Args>
  void each(void (Observer::*hook)(Params...), const Args&... args) {
    for (auto* observer : observers_) (observer->*hook)(args...);
  }
  std::vector<Observer*> observers_;
};

}  // namespace conduit
