// The D-Bus face of the daemon (docs/contract.md section 5): org.conduit.Pipeline on
// /org/conduit/Pipeline, driven by the sd-event loop (no bus thread). Every
// method here runs on the loop thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/log.hpp"
#include "core/supervisor.hpp"
#include "service/bus_names.hpp"
#include "service/event_loop.hpp"

namespace conduit::service {

class BusService {
 public:
  // Connects to the bus and owns `name`. Throws std::exception (sdbus::Error)
  // when the bus or the name is unavailable; the caller logs and runs without.
  BusService(EventLoop& loop, BusMode mode, const std::string& name, Supervisor& supervisor,
             Logger& logger);
  ~BusService();
  BusService(const BusService&) = delete;
  BusService& operator=(const BusService&) = delete;

  bool connected() const;
  // The state moved to `state`: emits PropertiesChanged(State).
  void state_changed(State state);
  // Called once a second: emits PropertiesChanged(NextRound) if it moved.
  void tick();
  // Answers a pending Reload() call.
  void reload_finished(bool ok, const std::string& detail);
  // The pipeline has stopped for good: publishes StopReason/StopDetail/State.
  void stopped(const StopCause& cause);

  class Object;  // the generated adaptor's implementation

 private:
  void process();
  void leave();
  void lost(const std::string& why);

  Logger& logger_;
  Supervisor& supervisor_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace conduit::service
