// org.conduit.Pipeline against a private dbus-daemon: methods, errors,
// properties, PropertiesChanged, introspection, and the shipped system policy.
#include <gtest/gtest.h>

#include <grp.h>
#include <pwd.h>
#include <sdbus-c++/sdbus-c++.h>
#include <csignal>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "org_conduit_pipeline_proxy.h"
#include "service_support.hpp"

using namespace conduit;
using namespace conduit::test;

namespace {

constexpr const char* kName = "org.conduit.Pipeline";
constexpr const char* kPath = "/org/conduit/Pipeline";

class PipelineProxy final
    : public sdbus::ProxyInterfaces<org::conduit::Pipeline_proxy, sdbus::Properties_proxy> {
 public:
  PipelineProxy(sdbus::IConnection& connection) : ProxyInterfaces(connection, kName, kPath) {
    registerProxy();
  }
  ~PipelineProxy() { unregisterProxy(); }

  // Every PropertiesChanged, in order: "Name=value".
  std::vector<std::string> changes;
  bool has_change(const std::string& text) const {
    return std::find(changes.begin(), changes.end(), text) != changes.end();
  }

 private:
  void onPropertiesChanged(const std::string&, const std::map<std::string, sdbus::Variant>& changed,
                           const std::vector<std::string>&) override {
    for (const auto& [name, value] : changed) {
      if (name == "NextRound")
        changes.push_back(name + "=" + std::to_string(value.get<uint64_t>()));
      else
        changes.push_back(name + "=" + value.get<std::string>());
    }
  }
};

// Dispatches the connection's messages until `done` (bounded, so a bug fails
// the test instead of hanging it).
bool pump_until(sdbus::IConnection& connection, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    while (connection.processPendingRequest()) {
    }
    if (done()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    auto data = connection.getEventLoopPollData();
    pollfd pfd{data.fd, data.events, 0};
    ::poll(&pfd, 1, 100);
  }
}

class DbusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clear_service_environment();
    bus_ = std::make_unique<PrivateBus>(dir_.path(), "session");
    ::setenv("DBUS_SESSION_BUS_ADDRESS", bus_->address().c_str(), 1);
    data_ = dir_ / "data";
    std::filesystem::create_directories(data_);
  }
  void TearDown() override { ::unsetenv("DBUS_SESSION_BUS_ADDRESS"); }

  void start(const std::string& config) {
    write_text(data_ / "conduit.toml", config);
    conduit_ = std::make_unique<Subprocess>(
        std::vector<std::string>{conduit_bin(), "-d", data_.string(), "--bus", "session"});
    ASSERT_TRUE(conduit_->wait_for_line("on the session bus as org.conduit.Pipeline"))
        << conduit_->output();
    ASSERT_TRUE(conduit_->wait_for_line("pipeline running")) << conduit_->output();
    connection_ = sdbus::createSessionBusConnection();
    proxy_ = std::make_unique<PipelineProxy>(*connection_);
  }

  TempDir dir_;
  std::filesystem::path data_;
  std::unique_ptr<PrivateBus> bus_;
  std::unique_ptr<Subprocess> conduit_;
  std::unique_ptr<sdbus::IConnection> connection_;
  std::unique_ptr<PipelineProxy> proxy_;
};

TEST_F(DbusTest, PropertiesWhileRunning) {
  start(generator_config("5ms"));
  EXPECT_EQ(proxy_->State(), "running");
  EXPECT_EQ(proxy_->StopReason(), "");
  EXPECT_EQ(proxy_->StopDetail(), "");
  uint64_t first = proxy_->NextRound();
  // NextRound grows, and its PropertiesChanged arrives (coalesced, not per round).
  ASSERT_TRUE(pump_until(*connection_, [&] {
    for (auto& c : proxy_->changes)
      if (c.rfind("NextRound=", 0) == 0 && std::stoull(c.substr(10)) > first) return true;
    return false;
  }));
  EXPECT_GT(proxy_->NextRound(), first);
  proxy_->Stop("now");
  EXPECT_EQ(conduit_->wait(), 0);
}

TEST_F(DbusTest, StopNow) {
  start(generator_config("5ms"));
  proxy_->Stop("now");
  ASSERT_TRUE(pump_until(*connection_, [&] { return proxy_->has_change("State=stopped"); }));
  EXPECT_TRUE(proxy_->has_change("StopReason=stop-requested"));
  EXPECT_EQ(conduit_->wait(), 0);
  bool detail_names_mode = false;
  for (auto& c : proxy_->changes)
    if (c.rfind("StopDetail=", 0) == 0 && c.find("(now)") != std::string::npos)
      detail_names_mode = true;
  EXPECT_TRUE(detail_names_mode);
  EXPECT_NE(conduit_->output().find("stop-reason=stop-requested"), std::string::npos);
}

TEST_F(DbusTest, StopEndOfRound) {
  start(generator_config("5ms"));
  proxy_->Stop("end-of-round");
  ASSERT_TRUE(pump_until(*connection_, [&] { return proxy_->has_change("State=stopped"); }));
  EXPECT_TRUE(proxy_->has_change("State=stopping"));
  EXPECT_TRUE(proxy_->has_change("StopReason=stop-requested"));
  EXPECT_EQ(conduit_->wait(), 0);
  EXPECT_NE(conduit_->output().find("requested stop (end-of-round)"), std::string::npos);
}

TEST_F(DbusTest, UnknownModeIsInvalidArgsAndHarmless) {
  start(generator_config("5ms"));
  try {
    proxy_->Stop("sideways");
    FAIL() << "Stop(sideways) succeeded";
  } catch (const sdbus::Error& e) {
    EXPECT_EQ(e.getName(), "org.freedesktop.DBus.Error.InvalidArgs");
    EXPECT_NE(e.getMessage().find("sideways"), std::string::npos);
  }
  EXPECT_EQ(proxy_->State(), "running");
  EXPECT_EQ(proxy_->StopReason(), "");
  proxy_->Stop("now");
  EXPECT_EQ(conduit_->wait(), 0);
}

TEST_F(DbusTest, ReloadRepliesWhenTheNewPipelineRuns) {
  start(generator_config("5ms"));
  proxy_->Reload();  // returns only once the reload has finished
  EXPECT_EQ(proxy_->State(), "running");
  EXPECT_TRUE(conduit_->wait_for_line("reloaded; resuming at round"));
  ASSERT_TRUE(pump_until(*connection_, [&] { return proxy_->has_change("State=running"); }));
  EXPECT_TRUE(proxy_->has_change("State=reloading"));
  proxy_->Stop("now");
  EXPECT_EQ(conduit_->wait(), 0);
  // One process throughout: the same PID stopped.
  EXPECT_NE(conduit_->output().find("stop-reason=stop-requested"), std::string::npos);
}

// Reload() followed at once by Stop(): one ordinary
// stop (exit 0, State ... reloading -> stopping -> stopped, never back to
// running), the pending Reload() answered, nothing logged as an error.
TEST_F(DbusTest, StopRightAfterReloadIsAnOrdinaryStop) {
  for (std::string mode : {"end-of-round", "now"}) {
    SCOPED_TRACE(mode);
    start(generator_config("5ms"));
    // Reload() without waiting for its reply (it comes when the reload ends).
    auto [status, out] = run_command(
        {"/usr/bin/busctl", "--user", "--expect-reply=no", "call", kName, kPath, kName, "Reload"});
    ASSERT_EQ(status, 0) << out;
    proxy_->Stop(mode);
    ASSERT_TRUE(pump_until(*connection_, [&] { return proxy_->has_change("State=stopped"); }))
        << conduit_->output();
    EXPECT_EQ(conduit_->wait(), 0) << conduit_->output();
    std::vector<std::string> states;
    for (const auto& c : proxy_->changes)
      if (c.rfind("State=", 0) == 0) states.push_back(c.substr(6));
    auto stopping = std::find(states.begin(), states.end(), "stopping");
    ASSERT_NE(stopping, states.end()) << ::testing::PrintToString(states);
    EXPECT_EQ(std::vector<std::string>(stopping, states.end()),
              (std::vector<std::string>{"stopping", "stopped"}))
        << ::testing::PrintToString(states);
    EXPECT_TRUE(proxy_->has_change("StopReason=stop-requested"));
    EXPECT_EQ(conduit_->output().find("reload failed"), std::string::npos) << conduit_->output();
    EXPECT_EQ(conduit_->output().find(" error "), std::string::npos) << conduit_->output();
    proxy_.reset();
    connection_.reset();
    conduit_.reset();
  }
}

TEST_F(DbusTest, ReloadWithABadConfigFailsAndKeepsRunning) {
  start(generator_config("5ms"));
  write_text(data_ / "conduit.toml", generator_config("5ms") + "bogus-key = 1\n");
  try {
    proxy_->Reload();
    FAIL() << "Reload with a bad config succeeded";
  } catch (const sdbus::Error& e) {
    EXPECT_EQ(e.getName(), "org.conduit.Pipeline.Error.ReloadRefused");
    EXPECT_NE(e.getMessage().find("conduit.toml"), std::string::npos) << e.getMessage();
    EXPECT_NE(e.getMessage().find("bogus-key"), std::string::npos) << e.getMessage();
  }
  EXPECT_EQ(proxy_->State(), "running");
  EXPECT_EQ(proxy_->StopReason(), "");
  uint64_t round = proxy_->NextRound();
  ASSERT_TRUE(pump_until(*connection_, [&] { return proxy_->NextRound() > round; }));
  proxy_->Stop("now");
  EXPECT_EQ(conduit_->wait(), 0);
}

// The members of interface org.conduit.Pipeline in an introspection XML, as
// "method Stop(in s mode)" / "property State s read", sorted.
std::set<std::string> members(const std::string& xml) {
  auto begin = xml.find("<interface name=\"org.conduit.Pipeline\"");
  auto end = xml.find("</interface>", begin);
  EXPECT_NE(begin, std::string::npos);
  std::string body = xml.substr(begin, end - begin);
  std::set<std::string> out;
  auto attr = [](const std::string& tag, const std::string& name) {
    auto at = tag.find(" " + name + "=\"");
    if (at == std::string::npos) return std::string();
    at += name.size() + 3;
    return tag.substr(at, tag.find('"', at) - at);
  };
  // Walk the elements in order; args belong to the last method or signal.
  std::string current;
  std::string args;
  auto flush = [&] {
    if (!current.empty()) out.insert(current + "(" + args + ")");
    current.clear();
    args.clear();
  };
  for (size_t pos = body.find('<'); pos != std::string::npos; pos = body.find('<', pos + 1)) {
    std::string tag = body.substr(pos, body.find('>', pos) - pos + 1);
    std::string kind = tag.substr(1, tag.find_first_of(" />\n\t", 1) - 1);
    if (kind == "arg") {
      std::string direction = attr(tag, "direction");
      args += (direction.empty() ? "in" : direction) + " " + attr(tag, "type") + " " +
              attr(tag, "name") + ";";
    } else if (kind == "property") {
      flush();
      out.insert("property " + attr(tag, "name") + " " + attr(tag, "type") + " " +
                 attr(tag, "access"));
    } else if (kind == "method" || kind == "signal") {
      flush();
      current = kind + " " + attr(tag, "name");
    }
  }
  flush();
  return out;
}

TEST_F(DbusTest, IntrospectionMatchesTheXml) {
  start(generator_config("5ms"));
  auto introspectable = sdbus::createProxy(*connection_, kName, kPath);
  std::string live;
  introspectable->callMethod("Introspect")
      .onInterface("org.freedesktop.DBus.Introspectable")
      .storeResultsTo(live);
  std::string shipped = read_text(std::filesystem::path(std::getenv("CONDUIT_SOURCE_ROOT")) /
                                  "data/dbus/org.conduit.Pipeline.xml");
  auto expected = members(shipped);
  EXPECT_EQ(expected.size(), 6u);  // Stop, Reload, four properties
  EXPECT_EQ(members(live), expected);
  proxy_->Stop("now");
  EXPECT_EQ(conduit_->wait(), 0);
}

TEST_F(DbusTest, CliStopAndStatusUseTheBus) {
  start(generator_config("5ms"));
  auto [status_code, status_out] =
      run_command({conduit_bin(), "status", "-d", data_.string(), "--bus", "session"});
  EXPECT_EQ(status_code, 0) << status_out;
  EXPECT_NE(status_out.find("State:      running"), std::string::npos) << status_out;
  EXPECT_NE(status_out.find("session bus"), std::string::npos) << status_out;
  auto [stop_code, stop_out] = run_command(
      {conduit_bin(), "stop", "end-of-round", "-d", data_.string(), "--bus", "session"});
  EXPECT_EQ(stop_code, 0) << stop_out;
  EXPECT_NE(stop_out.find("stopped: stop-requested"), std::string::npos) << stop_out;
  EXPECT_NE(stop_out.find("D-Bus caller"), std::string::npos) << stop_out;  // not a signal
  EXPECT_EQ(conduit_->wait(), 0);
}

// Two `conduit stop` at once over the bus: both report the one stop, exit 0,
// whichever of them reached conduit while it was leaving the bus.
TEST_F(DbusTest, TwoCliStopsAtOnceBothSucceed) {
  for (int run = 0; run < 10; ++run) {
    SCOPED_TRACE(run);
    start(generator_config("5ms"));
    Subprocess now({conduit_bin(), "stop", "now", "-d", data_.string(), "--bus", "session"});
    Subprocess drain(
        {conduit_bin(), "stop", "end-of-round", "-d", data_.string(), "--bus", "session"});
    EXPECT_EQ(now.wait(), 0) << now.output();
    EXPECT_EQ(drain.wait(), 0) << drain.output();
    EXPECT_EQ(conduit_->wait(), 0) << conduit_->output();
    proxy_.reset();
    connection_.reset();
  }
}

// Callers that keep calling Stop and Reload while conduit stops and exits:
// every call is answered by conduit (success, ReloadRefused, ReloadFailed) or,
// once conduit has left the bus, by dbus-daemon (ServiceUnknown); never
// "disconnected without replying" (NoReply).
TEST_F(DbusTest, StopAndReloadDuringTheExitAreAnswered) {
  const std::set<std::string> defined = {
      "org.conduit.Pipeline.Error.ReloadRefused", "org.conduit.Pipeline.Error.ReloadFailed",
      "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"};
  for (int run = 0; run < 5; ++run) {
    SCOPED_TRACE(run);
    start(generator_config("5ms"));
    std::mutex mutex;
    std::vector<std::string> undefined;
    auto caller = [&](const std::string& method) {
      auto proxy = sdbus::createProxy(sdbus::createSessionBusConnection(), kName, kPath);
      for (;;) {
        try {
          if (method == "Stop")
            proxy->callMethod("Stop").onInterface(kName).withArguments(std::string("now"));
          else
            proxy->callMethod("Reload").onInterface(kName);
        } catch (const sdbus::Error& e) {
          if (e.getName() == "org.freedesktop.DBus.Error.ServiceUnknown" ||
              e.getName() == "org.freedesktop.DBus.Error.NameHasNoOwner")
            return;  // conduit has left the bus
          if (!defined.count(e.getName())) {
            std::lock_guard lock(mutex);
            undefined.push_back(method + ": " + e.getName() + ": " + e.getMessage());
          }
        }
      }
    };
    std::vector<std::thread> callers;
    for (const char* method : {"Reload", "Stop", "Reload", "Stop"})
      callers.emplace_back(caller, method);
    for (auto& t : callers) t.join();
    EXPECT_EQ(conduit_->wait(), 0) << conduit_->output();
    EXPECT_TRUE(undefined.empty()) << ::testing::PrintToString(undefined);
    proxy_.reset();
    connection_.reset();
  }
}

TEST(DbusLoss, LosingTheBusDoesNotStopThePipeline) {
  clear_service_environment();
  TempDir dir;
  auto bus = std::make_unique<PrivateBus>(dir.path(), "session");
  auto data = dir / "data";
  std::filesystem::create_directories(data);
  write_text(data / "conduit.toml", generator_config("5ms"));
  Subprocess conduit({conduit_bin(), "-d", data.string(), "--bus", "session"},
                     {"DBUS_SESSION_BUS_ADDRESS=" + bus->address()});
  ASSERT_TRUE(conduit.wait_for_line("on the session bus")) << conduit.output();
  bus.reset();  // kills dbus-daemon
  ASSERT_TRUE(conduit.wait_for_line("lost the D-Bus connection")) << conduit.output();
  ASSERT_TRUE(conduit.wait_for_line("exported;")) << conduit.output();  // still moving
  conduit.signal(SIGTERM);
  EXPECT_EQ(conduit.wait(), 0) << conduit.output();
}

// The shipped system policy on a private system-style bus: conduit runs as the
// `conduit` user; `nobody` may read properties but gets AccessDenied for Stop.
TEST(DbusPolicy, OnlyAdminsMayStop) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root to run dbus-daemon's system policy and switch users";
  clear_service_environment();
  // The sysusers.d file's user and group (created here as CI runs as root).
  if (!::getpwnam("conduit")) {
    ASSERT_EQ(run_command({"/usr/sbin/useradd", "--system", "--no-create-home", "--shell",
                           "/usr/sbin/nologin", "conduit"})
                  .first,
              0);
  }
  if (!::getgrnam("conduit-admin")) {
    ASSERT_EQ(run_command({"/usr/sbin/groupadd", "--system", "conduit-admin"}).first, 0);
  }
  ASSERT_NE(::getpwnam("nobody"), nullptr);

  TempDir dir;
  std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_all |
                                               std::filesystem::perms::group_exec |
                                               std::filesystem::perms::others_exec);
  std::string policy =
      std::string(std::getenv("CONDUIT_SOURCE_ROOT")) + "/data/dbus/org.conduit.Pipeline.conf";
  PrivateBus bus(dir.path(), "system", policy);
  std::string env = "DBUS_SYSTEM_BUS_ADDRESS=" + bus.address();
  auto data = dir / "data";
  std::filesystem::create_directories(data);
  write_text(data / "conduit.toml", generator_config("5ms"));
  ASSERT_EQ(run_command({"/bin/chown", "-R", "conduit:", data.string()}).first, 0);

  Subprocess conduit({"/usr/bin/setpriv", "--reuid=conduit", "--regid=conduit", "--init-groups",
                      conduit_bin(), "-d", data.string(), "--bus", "system"},
                     {env});
  ASSERT_TRUE(conduit.wait_for_line("on the system bus as org.conduit.Pipeline"))
      << conduit.output();
  ASSERT_TRUE(conduit.wait_for_line("pipeline running")) << conduit.output();

  auto as_nobody = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{"/usr/bin/setpriv",
                                  "--reuid=nobody",
                                  "--regid=nogroup",
                                  "--clear-groups",
                                  "/usr/bin/dbus-send",
                                  "--system",
                                  "--print-reply",
                                  "--dest=org.conduit.Pipeline",
                                  kPath};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, {env});
  };
  auto [get_code, get_out] = as_nobody(
      {"org.freedesktop.DBus.Properties.Get", "string:org.conduit.Pipeline", "string:State"});
  EXPECT_EQ(get_code, 0) << get_out;
  EXPECT_NE(get_out.find("\"running\""), std::string::npos) << get_out;
  auto [intro_code, intro_out] = as_nobody({"org.freedesktop.DBus.Introspectable.Introspect"});
  EXPECT_EQ(intro_code, 0) << intro_out;

  auto [stop_code, stop_out] = as_nobody({"org.conduit.Pipeline.Stop", "string:now"});
  EXPECT_NE(stop_code, 0);
  EXPECT_NE(stop_out.find("org.freedesktop.DBus.Error.AccessDenied"), std::string::npos)
      << stop_out;
  auto [reload_code, reload_out] = as_nobody({"org.conduit.Pipeline.Reload"});
  EXPECT_NE(reload_out.find("org.freedesktop.DBus.Error.AccessDenied"), std::string::npos)
      << reload_out;

  // Still running; root may stop it.
  auto [root_code, root_out] =
      run_command({"/usr/bin/dbus-send", "--system", "--print-reply", "--dest=org.conduit.Pipeline",
                   kPath, "org.conduit.Pipeline.Stop", "string:now"},
                  {env});
  EXPECT_EQ(root_code, 0) << root_out;
  EXPECT_EQ(conduit.wait(), 0) << conduit.output();
  EXPECT_NE(conduit.output().find("requested stop (now)"), std::string::npos) << conduit.output();
}

}  // namespace
