#include "cli/bus_client.hpp"

#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <vector>

#include "core/fs.hpp"
#include "org_conduit_pipeline_proxy.h"
#include "service/bus_names.hpp"

namespace conduit::cli {
namespace {

class PipelineProxy final
    : public sdbus::ProxyInterfaces<org::conduit::Pipeline_proxy, sdbus::Properties_proxy> {
 public:
  PipelineProxy(sdbus::IConnection& connection, std::string name)
      : ProxyInterfaces(connection, std::move(name), service::kObjectPath) {
    registerProxy();
  }
  ~PipelineProxy() { unregisterProxy(); }

  std::optional<std::string> stop_reason;
  std::optional<std::string> stop_detail;

 private:
  void onPropertiesChanged(const std::string& interface,
                           const std::map<std::string, sdbus::Variant>& changed,
                           const std::vector<std::string>&) override {
    if (interface != service::kInterface) return;
    if (auto it = changed.find("StopReason"); it != changed.end())
      stop_reason = it->second.get<std::string>();
    if (auto it = changed.find("StopDetail"); it != changed.end())
      stop_detail = it->second.get<std::string>();
  }
};

struct Connected {
  std::unique_ptr<sdbus::IConnection> connection;
  std::string bus;
  pid_t pid = 0;
};

// The buses to look on: the one asked for; under systemd the one the service
// would use; interactively the system bus, then the session bus.
std::vector<service::BusMode> buses_to_try(const std::string& bus) {
  using service::BusMode;
  if (bus == "none") return {};
  if (bus == "system") return {BusMode::system};
  if (bus == "session") return {BusMode::session};
  if (std::getenv("INVOCATION_ID")) {
    BusMode mode = service::resolve_bus_mode(BusMode::automatic);
    if (mode == BusMode::none) return {};
    return {mode};
  }
  return {BusMode::system, BusMode::session};
}

std::optional<Connected> connect(const std::string& bus, const std::string& name,
                                 std::optional<pid_t> expected_pid) {
  for (auto mode : buses_to_try(bus)) {
    Connected c;
    try {
      c.connection = mode == service::BusMode::system ? sdbus::createSystemBusConnection()
                                                      : sdbus::createSessionBusConnection();
      c.bus = mode == service::BusMode::system ? "system" : "session";
      auto dbus =
          sdbus::createProxy(*c.connection, "org.freedesktop.DBus", "/org/freedesktop/DBus");
      uint32_t pid = 0;
      dbus->callMethod("GetConnectionUnixProcessID")
          .onInterface("org.freedesktop.DBus")
          .withArguments(name)
          .storeResultsTo(pid);
      c.pid = static_cast<pid_t>(pid);
    } catch (const sdbus::Error&) {
      continue;  // no such bus, or the name has no owner there
    }
    if (expected_pid && *expected_pid != c.pid) continue;  // a conduit of another data dir
    return c;
  }
  return std::nullopt;
}

}  // namespace

std::optional<BusStatus> status_over_bus(const std::string& bus,
                                         std::optional<pid_t> expected_pid) {
  std::string name = service::bus_name_from_environment();
  auto c = connect(bus, name, expected_pid);
  if (!c) return std::nullopt;
  try {
    PipelineProxy proxy(*c->connection, name);
    BusStatus s;
    s.pid = c->pid;
    s.bus = c->bus;
    s.name = name;
    s.state = proxy.State();
    s.next_round = proxy.NextRound();
    s.stop_reason = proxy.StopReason();
    s.stop_detail = proxy.StopDetail();
    return s;
  } catch (const sdbus::Error& e) {
    std::fprintf(stderr, "conduit status: %s: %s\n", e.getName().c_str(), e.getMessage().c_str());
    return std::nullopt;
  }
}

namespace {

// Waits until conduit has exited (`pidfd` readable) and left the bus (`gone`),
// or `timeout_seconds` (0: for ever) have passed. False on the timeout.
bool wait_for_exit(Connected& c, const UniqueFd& pidfd, const bool& gone, double timeout_seconds) {
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
  bool exited = !pidfd;
  while (!(exited && gone)) {
    while (c.connection->processPendingRequest()) {
    }
    if (exited && gone) break;
    auto poll_data = c.connection->getEventLoopPollData();
    pollfd fds[2] = {{poll_data.fd, poll_data.events, 0}, {pidfd.get(), POLLIN, 0}};
    int timeout_ms = -1;
    if (timeout_seconds > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      timeout_ms = static_cast<int>(left.count());
    }
    if (poll_data.timeout_usec != UINT64_MAX) {
      timespec ts{};
      ::clock_gettime(CLOCK_MONOTONIC, &ts);
      uint64_t now_usec = static_cast<uint64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
      int bus_ms = poll_data.timeout_usec > now_usec
                       ? static_cast<int>((poll_data.timeout_usec - now_usec + 999) / 1000)
                       : 0;
      timeout_ms = timeout_ms < 0 ? bus_ms : std::min(timeout_ms, bus_ms);
    }
    int n = ::poll(fds, exited ? 1 : 2, timeout_ms);
    if (n < 0 && errno != EINTR) break;
    if (!exited && (fds[1].revents & POLLIN)) exited = true;
  }
  return true;
}

// Errors that mean conduit left the bus while we asked: it released its name
// (which it does only when it stops) or closed its connection (dbus-daemon's
// NoReply "... disconnected ...", unlike a method call timing out).
bool left_the_bus(const sdbus::Error& e) {
  const std::string& name = e.getName();
  if (name == "org.freedesktop.DBus.Error.NoReply")
    return e.getMessage().find("disconnected") != std::string::npos;
  return name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
         name == "org.freedesktop.DBus.Error.NameHasNoOwner";
}

// Asks for the stop. True once asked, false when conduit left the bus first:
// a stop racing ours got there, and its outcome is what we report.
bool request_stop(PipelineProxy& proxy, const std::string& mode) {
  try {
    proxy.Stop(mode);
    return true;
  } catch (const sdbus::Error& e) {
    if (!left_the_bus(e)) throw;
    return false;
  }
}

}  // namespace

std::optional<int> stop_over_bus(const StopOptions& options, std::optional<pid_t> expected_pid,
                                 const std::function<std::optional<StopCause>()>& stop_record) {
  std::string name = service::bus_name_from_environment();
  auto c = connect(options.bus, name, expected_pid);
  if (!c) return std::nullopt;

  // pidfd before the request, so the exit cannot be missed and a reused PID is
  // never mistaken for conduit.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, c->pid, 0)));
  bool gone = false;
  try {
    PipelineProxy proxy(*c->connection, name);
    auto dbus = sdbus::createProxy(*c->connection, "org.freedesktop.DBus", "/org/freedesktop/DBus");
    // dbus-daemon routes everything the service sent before announcing that its
    // name is gone: after this signal no PropertiesChanged can be missing.
    dbus->uponSignal("NameOwnerChanged")
        .onInterface("org.freedesktop.DBus")
        .call([&](const std::string& owned, const std::string&, const std::string& now) {
          if (owned == name && now.empty()) gone = true;
        });
    dbus->finishRegistration();

    bool asked = request_stop(proxy, options.mode);
    if (options.no_wait) {
      if (asked)
        std::printf("asked conduit (pid %d) on the %s bus to stop (%s)\n", c->pid, c->bus.c_str(),
                    options.mode.c_str());
      else
        std::printf("conduit (pid %d) is already stopping\n", c->pid);
      return 0;
    }
    if (!asked) gone = true;  // off the bus already: only the exit is left to wait for
    if (!wait_for_exit(*c, pidfd, gone, options.timeout_seconds)) {
      std::fprintf(stderr, "conduit stop: pid %d still running after %gs\n", c->pid,
                   options.timeout_seconds);
      return 1;
    }
    std::string reason;
    StopCause cause;
    if (auto record = stop_record()) {
      cause = *record;
      reason = to_string(cause.reason);
    } else if (proxy.stop_reason) {
      reason = *proxy.stop_reason;
      cause.reason = parse_stop_reason(reason).value_or(StopReason::internal_error);
      cause.detail = proxy.stop_detail.value_or("");
    } else {
      std::printf("conduit (pid %d) exited without reporting a stop reason\n", c->pid);
      return 1;
    }
    std::printf("stopped: %s (%s)\n", reason.c_str(), cause.detail.c_str());
    return cause.exit_code();
  } catch (const sdbus::Error& e) {
    std::fprintf(stderr, "conduit stop: %s: %s\n", e.getName().c_str(), e.getMessage().c_str());
    return 1;
  }
}

}  // namespace conduit::cli
