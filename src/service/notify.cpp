#include "service/notify.hpp"

#include <systemd/sd-daemon.h>
#include <cstdlib>

namespace conduit::service {

Notifier::Notifier() {
  enabled_ = std::getenv("NOTIFY_SOCKET") != nullptr;
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec);
}

void Notifier::send(const std::string& message) const {
  if (enabled_) sd_notify(0, message.c_str());
}

}  // namespace conduit::service
