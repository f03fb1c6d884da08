// Helpers of the 'service' suite: a private dbus-daemon, a datagram socket of
// the test's own (NOTIFY_SOCKET, the journal's native protocol), configs.
#pragma once

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/fs.hpp"
#include "test_support.hpp"

namespace conduit::test {

// The environment of the test process leaks into every conduit it starts: drop
// what a CI job run by systemd would add, so each test sets exactly what it means.
inline void clear_service_environment() {
  for (const char* name : {"INVOCATION_ID", "JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                           "WATCHDOG_PID", "CONDUIT_BUS_NAME", "DBUS_SESSION_BUS_ADDRESS",
                           "DBUS_SYSTEM_BUS_ADDRESS", "DBUS_STARTER_BUS_TYPE"})
    ::unsetenv(name);
}

// A conduit.toml: generator -> processors -> noop exporter.
inline std::string generator_config(
    const std::string& round_interval,
    const std::string& processors = "[[processors]]\nname = \"noop\"\n",
    const std::string& top = "") {
  return top +
         "stop-timeout = \"30s\"\n[importer]\nname = \"generator\"\n[importer.config]\n"
         "txns-per-round = 10\nround-interval = \"" +
         round_interval + "\"\n" + processors + "[exporter]\nname = \"noop\"\n";
}

// dbus-daemon with a config file of the test's own; the address is known once
// it has printed it (it listens by then).
class PrivateBus {
 public:
  // `kind`: "session" (anyone may own and call) or "system" (a system bus's
  // default policy plus `include`, e.g. the shipped policy file).
  PrivateBus(const std::filesystem::path& dir, const std::string& kind,
             const std::string& include = "") {
    socket_ = dir / (kind + "_bus_socket");
    std::string policy;
    if (kind == "session") {
      policy = R"(<policy context="default"><allow send_destination="*" eavesdrop="true"/>
        <allow eavesdrop="true"/><allow own="*"/></policy>)";
    } else {
      // The essentials of Debian's /usr/share/dbus-1/system.conf.
      policy = R"(<policy context="default">
        <allow user="*"/>
        <deny own="*"/>
        <deny send_type="method_call"/>
        <allow send_type="signal"/>
        <allow send_requested_reply="true" send_type="method_return"/>
        <allow send_requested_reply="true" send_type="error"/>
        <allow receive_type="method_call"/>
        <allow receive_type="method_return"/>
        <allow receive_type="error"/>
        <allow receive_type="signal"/>
        <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
        <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
        <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
      </policy>)";
      if (!include.empty()) policy += "<include>" + include + "</include>";
    }
    auto config = dir / (kind + "-bus.conf");
    write_text(
        config,
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" "
        "\"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig><type>" +
            kind + "</type><listen>unix:path=" + socket_.string() +
            "</listen><auth>EXTERNAL</auth>" + policy + "</busconfig>\n");
    daemon_ = std::make_unique<Subprocess>(
        std::vector<std::string>{"/usr/bin/dbus-daemon", "--config-file=" + config.string(),
                                 "--nofork", "--print-address=1"});
    if (!daemon_->wait_for_line("unix:path="))
      throw std::runtime_error("dbus-daemon did not start: " + daemon_->output());
  }
  std::string address() const { return "unix:path=" + socket_.string(); }
  const std::filesystem::path& socket() const { return socket_; }

 private:
  std::filesystem::path socket_;
  std::unique_ptr<Subprocess> daemon_;
};

// A bound AF_UNIX datagram socket: stands in for systemd's notify socket or
// journald's native socket. Messages are awaited with poll (a generous bound
// only turns a hang into a failure).
class DatagramSocket {
 public:
  explicit DatagramSocket(const std::filesystem::path& path) : path_(path) {
    fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd_) throw std::runtime_error("socket failed");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("bind " + path.string() + " failed");
    int big = 8 << 20;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  }
  const std::filesystem::path& path() const { return path_; }

  // The next datagram; nullopt if none within `limit`.
  std::optional<std::string> receive(std::chrono::milliseconds limit = std::chrono::seconds(60)) {
    pollfd pfd{fd_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(limit.count())) <= 0) return std::nullopt;
    std::string buffer(1 << 16, '\0');
    ssize_t n = ::recv(fd_.get(), buffer.data(), buffer.size(), 0);
    if (n < 0) return std::nullopt;
    buffer.resize(static_cast<size_t>(n));
    return buffer;
  }
  // Everything already queued, without waiting.
  std::vector<std::string> drain() {
    std::vector<std::string> out;
    while (auto m = receive(std::chrono::milliseconds(0))) out.push_back(*m);
    return out;
  }

 private:
  std::filesystem::path path_;
  UniqueFd fd_;
};

}  // namespace conduit::test
