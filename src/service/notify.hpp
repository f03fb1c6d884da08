// sd_notify(3) messages to the service manager (docs/contract.md section 6). A no-op
// when $NOTIFY_SOCKET is unset.
#pragma once

#include <chrono>
#include <string>

namespace conduit::service {

class Notifier {
 public:
  Notifier();
  // 0 when the service manager does not expect watchdog pings.
  std::chrono::microseconds watchdog_period() const { return watchdog_; }
  void send(const std::string& message) const;

 private:
  bool enabled_ = false;
  std::chrono::microseconds watchdog_{0};
};

}  // namespace conduit::service
