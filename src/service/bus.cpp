#include "service/bus.hpp"

#include <pwd.h>
#include <sdbus-c++/sdbus-c++.h>
#include <systemd/sd-event.h>
#include <unistd.h>
#include <cstdlib>

#include "org_conduit_pipeline_adaptor.h"

namespace conduit::service {

BusMode resolve_bus_mode(BusMode mode) {
  if (mode != BusMode::automatic) return mode;
  if (!std::getenv("INVOCATION_ID")) return BusMode::none;
  uid_t uid = ::getuid();
  if (uid == 0) return BusMode::system;
  if (const passwd* pw = ::getpwuid(uid); pw && std::string(pw->pw_name) == "conduit")
    return BusMode::system;
  return BusMode::session;
}

std::string bus_name_from_environment() {
  const char* name = std::getenv("CONDUIT_BUS_NAME");
  return name && *name ? name : kBusName;
}

class BusService::Object final : public sdbus::AdaptorInterfaces<org::conduit::Pipeline_adaptor> {
 public:
  Object(sdbus::IConnection& connection, Supervisor& supervisor)
      : AdaptorInterfaces(connection, kObjectPath), supervisor_(supervisor) {
    registerAdaptor();
  }
  ~Object() {
    // Destructors must not throw: on a broken connection these calls can.
    try {
      reload_finished(false, "reload not completed: conduit is shutting down");
    } catch (const std::exception&) {
    }
    try {
      unregisterAdaptor();
    } catch (const std::exception&) {
    }
  }

  void emit(const std::vector<std::string>& properties) {
    getObject().emitPropertiesChangedSignal(kInterface, properties);
  }

  void reload_finished(bool ok, const std::string& detail) {
    if (!pending_reload_) return;
    if (ok)
      pending_reload_->returnResults();
    else
      pending_reload_->returnError(sdbus::Error("org.conduit.Pipeline.Error.ReloadFailed", detail));
    pending_reload_.reset();
  }

  std::optional<StopCause> final_cause;
  uint64_t published_round = 0;
  // What State says: the state as of the last event the loop has handled, so
  // that each PropertiesChanged carries the state it announces, in order.
  std::string state;

 private:
  std::string caller() {
    const sdbus::Message* message = getObject().getCurrentlyProcessedMessage();
    return message ? "D-Bus caller " + message->getSender() : "D-Bus caller";
  }

  void Stop(const std::string& mode) override {
    auto parsed = parse_stop_mode(mode);
    if (!parsed)
      throw sdbus::Error("org.freedesktop.DBus.Error.InvalidArgs",
                         "unknown stop mode '" + mode + "': expected now or end-of-round");
    supervisor_.stop(*parsed, caller());
  }

  void Reload(sdbus::Result<>&& result) override {
    if (pending_reload_) {
      result.returnError(sdbus::Error("org.conduit.Pipeline.Error.ReloadRefused",
                                      "reload refused: a reload is already in progress"));
      return;
    }
    std::string error = supervisor_.reload(caller());
    if (!error.empty()) {
      result.returnError(sdbus::Error("org.conduit.Pipeline.Error.ReloadRefused", error));
      return;
    }
    pending_reload_ = std::move(result);
  }

  std::string StopReason() override {
    return final_cause ? std::string(to_string(final_cause->reason)) : "";
  }
  std::string StopDetail() override { return final_cause ? final_cause->detail : ""; }
  std::string State() override { return state; }
  uint64_t NextRound() override { return supervisor_.status().next_round; }

  Supervisor& supervisor_;
  std::optional<sdbus::Result<>> pending_reload_;
};

struct BusService::Impl {
  std::string name;
  std::unique_ptr<sdbus::IConnection> connection;
  std::unique_ptr<Object> object;
  sd_event_source* io = nullptr;
  sd_event_source* timer = nullptr;

  ~Impl() {
    if (io) sd_event_source_disable_unref(io);
    if (timer) sd_event_source_disable_unref(timer);
  }
};

BusService::BusService(EventLoop& loop, BusMode mode, const std::string& name,
                       Supervisor& supervisor, Logger& logger)
    : logger_(logger), supervisor_(supervisor), impl_(std::make_unique<Impl>()) {
  impl_->connection = mode == BusMode::system ? sdbus::createSystemBusConnection(name)
                                              : sdbus::createSessionBusConnection(name);
  impl_->name = name;
  impl_->object = std::make_unique<Object>(*impl_->connection, supervisor);
  impl_->object->published_round = supervisor.status().next_round;
  impl_->object->state = std::string(to_string(supervisor.status().state));

  // The bus fd, its events and its timeout change after every dispatch: sd-event
  // asks for them in the prepare callback, right before each poll.
  auto data = impl_->connection->getEventLoopPollData();
  auto on_io = [](sd_event_source*, int, uint32_t, void* self) -> int {
    static_cast<BusService*>(self)->process();
    return 0;
  };
  auto on_time = [](sd_event_source*, uint64_t, void* self) -> int {
    static_cast<BusService*>(self)->process();
    return 0;
  };
  auto prepare = [](sd_event_source*, void* userdata) -> int {
    auto* self = static_cast<BusService*>(userdata);
    if (!self->connected()) return 0;
    try {
      auto poll = self->impl_->connection->getEventLoopPollData();
      sd_event_source_set_io_events(self->impl_->io, static_cast<uint32_t>(poll.events));
      if (poll.timeout_usec == UINT64_MAX) {
        sd_event_source_set_enabled(self->impl_->timer, SD_EVENT_OFF);
      } else {
        sd_event_source_set_time(self->impl_->timer, poll.timeout_usec);
        sd_event_source_set_enabled(self->impl_->timer, SD_EVENT_ONESHOT);
      }
    } catch (const std::exception& e) {
      self->lost(e.what());
    }
    return 0;
  };
  if (int r = sd_event_add_io(loop.get(), &impl_->io, data.fd, static_cast<uint32_t>(data.events),
                              on_io, this);
      r < 0)
    throw std::system_error(-r, std::generic_category(), "sd_event_add_io (bus)");
  sd_event_source_set_prepare(impl_->io, prepare);
  if (int r = sd_event_add_time(loop.get(), &impl_->timer, CLOCK_MONOTONIC, 0, 0, on_time, this);
      r < 0)
    throw std::system_error(-r, std::generic_category(), "sd_event_add_time (bus)");
  sd_event_source_set_enabled(impl_->timer, SD_EVENT_OFF);
  logger_.info("on the " + std::string(mode == BusMode::system ? "system" : "session") +
               " bus as " + name + " " + kObjectPath);
}

BusService::~BusService() = default;

bool BusService::connected() const {
  return impl_->connection != nullptr;
}

void BusService::process() {
  if (!connected()) return;
  try {
    while (impl_->connection->processPendingRequest()) {
    }
  } catch (const std::exception& e) {
    lost(e.what());
  }
}

void BusService::lost(const std::string& why) {
  // Never fatal: the pipeline goes on, only the remote control is gone.
  logger_.error("lost the D-Bus connection (" + why +
                "); the pipeline keeps running without D-Bus control");
  if (impl_->io) sd_event_source_set_enabled(impl_->io, SD_EVENT_OFF);
  if (impl_->timer) sd_event_source_set_enabled(impl_->timer, SD_EVENT_OFF);
  impl_->object.reset();
  impl_->connection.reset();
}

void BusService::state_changed(State state) {
  if (!connected()) return;
  impl_->object->state = std::string(to_string(state));
  try {
    impl_->object->emit({"State"});
  } catch (const std::exception& e) {
    lost(e.what());
  }
}

void BusService::tick() {
  if (!connected()) return;
  uint64_t round = supervisor_.status().next_round;
  if (round == impl_->object->published_round) return;
  impl_->object->published_round = round;
  try {
    impl_->object->emit({"NextRound"});
  } catch (const std::exception& e) {
    lost(e.what());
  }
}

void BusService::reload_finished(bool ok, const std::string& detail) {
  if (!connected()) return;
  try {
    impl_->object->reload_finished(ok, detail);
  } catch (const std::exception& e) {
    lost(e.what());
  }
}

void BusService::stopped(const StopCause& cause) {
  if (!connected()) return;
  impl_->object->final_cause = cause;
  impl_->object->state = std::string(to_string(State::stopped));
  impl_->object->published_round = supervisor_.status().next_round;
  try {
    impl_->object->emit({"State", "StopReason", "StopDetail", "NextRound"});
    leave();
  } catch (const std::exception& e) {
    lost(e.what());
  }
}

// Leaves the bus so that no caller is left with "disconnected without
// replying": first the name goes (dbus-daemon then answers a new call itself,
// ServiceUnknown, which `conduit stop` takes as the stop it asked for); every
// call routed here before that reached our socket ahead of ReleaseName's reply,
// so processing what is queued answers all of them (Stop: the success reply,
// Reload: ReloadRefused), and a Reload still pending gets ReloadFailed. The
// replies are flushed when the connection closes (sd_bus_flush_close_unref).
void BusService::leave() {
  impl_->connection->releaseName(impl_->name);
  process();
  if (connected()) impl_->object->reload_finished(false, "reload not completed: conduit stopped");
}

}  // namespace conduit::service
