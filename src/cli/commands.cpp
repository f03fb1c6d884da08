#include "cli/commands.hpp"

#include <poll.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "cli/bus_client.hpp"
#include "cli/status_info.hpp"
#include "core/checkpoint.hpp"
#include "core/config.hpp"
#include "core/fs.hpp"
#include "core/pidfile.hpp"
#include "core/registry.hpp"
#include "core/yaml_import.hpp"
#include "plugins/builtin.hpp"
#include "plugins/external/external.hpp"

namespace conduit::cli {
namespace {

std::string indent(const std::string& text, const std::string& prefix) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out += prefix + text.substr(start, end - start) + "\n";
    start = end + 1;
  }
  return out;
}

namespace fs = std::filesystem;

// A plugin as `list` and `init` show it: a built-in or an external one.
struct FoundPlugin {
  PluginKind kind = PluginKind::exporter;
  std::string name;
  std::string description;
  std::string sample_config;
  std::string where;  // "built-in" or the executable's path
};

FoundPlugin from_builtin(PluginKind kind, const PluginMetadata& meta) {
  return {kind, meta.name, meta.description, meta.sample_config, "built-in"};
}

FoundPlugin from_external(const plugins::external::PluginInfo& info) {
  return {info.hello.kind, info.name, info.hello.description, info.hello.sample_config,
          info.path.string()};
}

// Where external plugins are looked for; DIR/conduit.toml's plugin-dirs only
// when that file loads (a broken one must not hide the other plugins).
std::vector<fs::path> plugin_search_dirs(const fs::path& data_dir) {
  std::vector<fs::path> extra;
  if (!data_dir.empty()) {
    try {
      extra = load_config(data_dir).plugin_dirs;
    } catch (const std::exception&) {
    }
  }
  return plugins::external::search_dirs(data_dir, extra);
}

std::string joined(const std::vector<fs::path>& dirs) {
  std::string out;
  for (const auto& dir : dirs) out += (out.empty() ? "" : ", ") + dir.string();
  return out;
}

std::string with_article(PluginKind kind) {
  return (kind == PluginKind::exporter ? "an " : "a ") + std::string(to_string(kind));
}

// The plugin `name` of `kind`, a built-in first; nullopt when there is none.
// Throws ConfigError when an external one cannot run, does not answer or is
// of another kind.
std::optional<FoundPlugin> find_plugin(PluginKind kind, const std::string& name,
                                       const std::vector<fs::path>& dirs) {
  for (const auto& meta : builtin_registry().list(kind))
    if (meta.name == name) return from_builtin(kind, meta);
  auto path = plugins::external::locate(name, dirs);
  if (!path) return std::nullopt;
  FoundPlugin found = from_external(plugins::external::query(*path));
  if (found.kind != kind)
    throw ConfigError(path->string() + ": is " + with_article(found.kind) + ", not " +
                      with_article(kind));
  return found;
}

std::string plugin_section(const char* header, const FoundPlugin& plugin) {
  std::string out = std::string(header) + "\n";
  out += "# " + plugin.description + "\n";
  if (plugin.where != "built-in") out += "# " + plugin.where + "\n";
  out += "name = \"" + plugin.name + "\"\n";
  std::string config_header =
      std::string(header).find("[[") == 0
          ? "[processors.config]"
          : std::string(header).substr(0, std::string(header).size() - 1) + ".config]";
  out += config_header + "\n";
  out += plugin.sample_config;
  if (!plugin.sample_config.empty() && !plugin.sample_config.ends_with('\n')) out += "\n";
  return out;
}

std::filesystem::path resolve_pid_file(const StopOptions& options) {
  if (!options.pid_file.empty()) return options.pid_file;
  try {
    return load_config(options.data_dir).pid_file;
  } catch (const ConfigError&) {
    return options.data_dir / "conduit.pid";
  }
}

void add_runtime_json(nlohmann::ordered_json& j, const RuntimeInfo& runtime) {
  j["uptime-seconds"] = runtime.uptime_seconds ? nlohmann::json(*runtime.uptime_seconds) : nullptr;
  j["rounds-per-second"] =
      runtime.rounds_per_second ? nlohmann::json(*runtime.rounds_per_second) : nullptr;
}

// `pad` keeps the colons of the surrounding lines aligned.
void print_runtime(const RuntimeInfo& runtime, const char* pad) {
  if (runtime.uptime_seconds)
    std::printf("Uptime:%s    %s\n", pad, human_duration(*runtime.uptime_seconds).c_str());
  if (runtime.rounds_per_second)
    std::printf("Rate:%s      %.1f rounds/s\n", pad, *runtime.rounds_per_second);
}

}  // namespace

namespace {

// The configuration `conduit init` writes: Go Conduit's conduit.yml.example in
// TOML, with the chosen plugins' sample configs.
struct InitPlugins {
  FoundPlugin importer;
  std::vector<FoundPlugin> processors;
  FoundPlugin exporter;
};

std::string render_init_config(const InitPlugins& plugins) {
  std::string text = R"(# conduit configuration, written by `conduit init`. See conduit.toml(5).

# error, warn, info, debug, trace (Go's PANIC, FATAL, ... work too)
log-level = "info"
# empty: the journal when run by systemd, else stderr
log-file = ""
# retries of a failing plugin call before the pipeline stops; 0 = forever
retry-count = 10
retry-delay = "1s"
# longest end-of-round drain before a stop escalates to `now`
stop-timeout = "30s"
# empty: DIR/conduit.pid
pid-file = ""
hide-banner = false

# When the address is not empty, GET /health is served on it. Loopback only:
# see conduit.toml(5) to expose it (and /metrics) to other hosts.
[api]
addr = "127.0.0.1:8981"

# When enabled, Prometheus metrics are served on GET /metrics.
[metrics]
mode = "OFF"
addr = "127.0.0.1:9999"
prefix = "conduit"

)";
  text += plugin_section("[importer]", plugins.importer) + "\n";
  for (const auto& p : plugins.processors) text += plugin_section("[[processors]]", p) + "\n";
  text += plugin_section("[exporter]", plugins.exporter);
  return text;
}

int write_config_file(const std::filesystem::path& file, const std::string& text, bool force) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  if (ec) {
    std::fprintf(stderr, "conduit init: cannot create %s: %s\n", file.parent_path().c_str(),
                 ec.message().c_str());
    return 2;
  }
  if (fs::exists(file) && !force) {
    std::fprintf(stderr, "conduit init: %s already exists (use --force to overwrite)\n",
                 file.c_str());
    return 2;
  }
  try {
    replace_file_atomically(file, text);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conduit init: %s\n", e.what());
    return 1;
  }
  return 0;
}

int init_from_yaml(const InitOptions& options) {
  std::string yaml;
  try {
    // A Go conduit.yml is as small as a conduit.toml: the same bound.
    yaml = read_file(options.from_yaml, kMaxConfigBytes);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conduit init: %s\n", e.what());
    return 2;
  }
  std::string toml;
  try {
    toml = convert_go_yaml_config(yaml, options.from_yaml.string());
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "conduit init: %s\n", e.what());
    return 2;
  }
  auto dir = options.data_dir.empty() ? options.from_yaml.parent_path() : options.data_dir;
  if (dir.empty()) dir = ".";
  auto file = dir / "conduit.toml";
  if (int rc = write_config_file(file, toml, options.force); rc != 0) return rc;
  // The result must load: check it as conduit would, without starting anything.
  try {
    load_config(dir);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "conduit init: wrote %s, but it does not load yet (edit it): %s\n",
                 file.c_str(), e.what());
    return 2;
  }
  std::printf("wrote %s from %s\nrun it with: conduit -d %s\n", file.c_str(),
              options.from_yaml.c_str(), dir.c_str());
  return 0;
}

// Go's messages: "unknown importer name: X" (and where external ones were looked for).
std::optional<FoundPlugin> resolve_for_init(PluginKind kind, const std::string& name,
                                            const std::vector<fs::path>& dirs) {
  try {
    if (auto found = find_plugin(kind, name, dirs)) return found;
    std::fprintf(stderr, "conduit init: unknown %s name: %s (looked in %s)\n",
                 std::string(to_string(kind)).c_str(), name.c_str(), joined(dirs).c_str());
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "conduit init: %s %s: %s\n", std::string(to_string(kind)).c_str(),
                 name.c_str(), e.what());
  }
  return std::nullopt;
}

std::optional<InitPlugins> resolve_init_plugins(const InitOptions& options) {
  auto dirs = plugin_search_dirs(options.data_dir);
  InitPlugins plugins;
  auto importer = resolve_for_init(PluginKind::importer, options.importer, dirs);
  if (!importer) return std::nullopt;
  plugins.importer = *importer;
  for (const auto& p : options.processors) {
    auto processor = resolve_for_init(PluginKind::processor, p, dirs);
    if (!processor) return std::nullopt;
    plugins.processors.push_back(*processor);
  }
  auto exporter = resolve_for_init(PluginKind::exporter, options.exporter, dirs);
  if (!exporter) return std::nullopt;
  plugins.exporter = *exporter;
  return plugins;
}

}  // namespace

int cmd_init(const InitOptions& options) {
  if (!options.from_yaml.empty()) return init_from_yaml(options);
  auto plugins = resolve_init_plugins(options);
  if (!plugins) return 2;
  std::string text = render_init_config(*plugins);
  if (options.data_dir.empty()) {  // as Go: no data dir, the configuration on stdout
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }
  auto file = options.data_dir / "conduit.toml";
  if (int rc = write_config_file(file, text, options.force); rc != 0) return rc;
  std::printf("wrote %s\nedit the plugin sections, then run it with: conduit -d %s\n", file.c_str(),
              options.data_dir.c_str());
  return 0;
}

namespace {

void print_plugin(const FoundPlugin& plugin) {
  std::printf("  %-18s %s (%s)\n", plugin.name.c_str(), plugin.description.c_str(),
              plugin.where.c_str());
  if (!plugin.sample_config.empty())
    std::printf("%s", indent(plugin.sample_config, "      ").c_str());
}

int list_one(PluginKind kind, const std::string& name, const fs::path& data_dir) {
  try {
    auto found = find_plugin(kind, name, plugin_search_dirs(data_dir));
    if (!found) {
      std::fprintf(stderr, "Plugin not found: %s\n", name.c_str());
      return 2;
    }
    std::printf("# %s: %s (%s)\n%s", found->name.c_str(), found->description.c_str(),
                found->where.c_str(), found->sample_config.c_str());
    return 0;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "conduit list: %s\n", e.what());
    return 2;
  }
}

}  // namespace

int cmd_list(const std::string& which, const std::string& name, const fs::path& data_dir) {
  auto is = [&](const char* plural) { return which == plural || which + "s" == plural; };
  std::vector<PluginKind> kinds;
  if (which.empty() || is("importers")) kinds.push_back(PluginKind::importer);
  if (which.empty() || is("processors")) kinds.push_back(PluginKind::processor);
  if (which.empty() || is("exporters")) kinds.push_back(PluginKind::exporter);
  if (kinds.empty()) {
    std::fprintf(stderr, "conduit list: expected importers, processors or exporters\n");
    return 2;
  }
  if (!name.empty()) return list_one(kinds.front(), name, data_dir);
  // A plugin that does not answer is reported and the listing goes on.
  auto external = plugins::external::discover(plugin_search_dirs(data_dir));
  for (const auto& why : external.broken) std::fprintf(stderr, "conduit list: %s\n", why.c_str());
  for (auto kind : kinds) {
    std::printf("%ss:\n", std::string(to_string(kind)).c_str());
    for (const auto& meta : builtin_registry().list(kind)) print_plugin(from_builtin(kind, meta));
    for (const auto& info : external.plugins)
      if (info.hello.kind == kind) print_plugin(from_external(info));
  }
  return 0;
}

namespace {

// Reports how the conduit behind `info` stopped once `pidfd` (if any) says it
// has exited: its stop record's exit code.
int report_exit(const StopOptions& options, const PidFileInfo& info, const UniqueFd& pidfd) {
  if (pidfd) {
    pollfd pfd{pidfd.get(), POLLIN, 0};
    int timeout_ms =
        options.timeout_seconds > 0 ? static_cast<int>(options.timeout_seconds * 1000) : -1;
    int r;
    do {
      r = ::poll(&pfd, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
      std::fprintf(stderr, "conduit stop: pid %d still running after %gs\n", info.pid,
                   options.timeout_seconds);
      return 1;
    }
  }
  auto cause = read_stop_record(info);
  if (!cause) {
    std::printf("conduit (pid %d) exited without recording a stop reason\n", info.pid);
    return 1;
  }
  std::printf("stopped: %s (%s)\n", std::string(to_string(cause->reason)).c_str(),
              cause->detail.c_str());
  return cause->exit_code();
}

// The conduit behind `info` is already on its way out (another stop got there
// first: it has released its lock or exited): what it did is the answer.
int report_leaving(const StopOptions& options, const PidFileInfo& info, const UniqueFd& pidfd) {
  if (options.no_wait) {
    std::printf("conduit (pid %d) is already stopping\n", info.pid);
    return 0;
  }
  return report_exit(options, info, pidfd);
}

// Signals the conduit that holds `info`'s lock and (unless --no-wait) waits
// for it to exit; the exit code follows its recorded stop cause.
int signal_and_wait(const StopOptions& options, const PidFileInfo& info,
                    const std::filesystem::path& pid_file, int signal) {
  // pidfd first, then the lock holder checked again: the pidfd then names the
  // process that holds the lock, never a PID reused after an exit we missed.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, info.pid, 0));
  UniqueFd pid_handle(pidfd);
  if (!pid_handle) {
    // Gone since we probed: it held the lock then, so it was conduit.
    if (errno == ESRCH) return report_leaving(options, info, pid_handle);
    std::fprintf(stderr, "conduit stop: pid %d: %s\n", info.pid, std::strerror(errno));
    return 1;
  }
  if (pid_t holder = lock_holder(info.fd.get()); holder != info.pid) {
    // No holder: conduit released its lock, which it does only when it stops.
    if (holder == 0) return report_leaving(options, info, pid_handle);
    std::fprintf(stderr,
                 "conduit stop: pid %d no longer holds the lock on %s (holder: %d); not "
                 "signalling\n",
                 info.pid, pid_file.c_str(), holder);
    return 1;
  }
  if (::syscall(SYS_pidfd_send_signal, pid_handle.get(), signal, nullptr, 0) != 0) {
    if (errno == ESRCH) return report_leaving(options, info, pid_handle);  // exited meanwhile
    std::fprintf(stderr, "conduit stop: cannot signal pid %d: %s\n", info.pid,
                 std::strerror(errno));
    return 1;
  }
  if (options.no_wait) {
    std::printf("sent %s to conduit (pid %d)\n", signal == SIGTERM ? "SIGTERM" : "SIGUSR1",
                info.pid);
    return 0;
  }
  return report_exit(options, info, pid_handle);
}

}  // namespace

int cmd_stop(const StopOptions& options) {
  int signal = options.mode == "now" ? SIGTERM : SIGUSR1;
  auto pid_file = resolve_pid_file(options);
  std::optional<PidFileInfo> info;
  std::string probe_error;
  try {
    info = probe_pid_file(pid_file);
  } catch (const std::exception& e) {
    probe_error = e.what();
  }
  // D-Bus first: the service's own interface, and the only way in for a
  // caller that may not signal the service user's process.
  // Only for a conduit of this data dir: its PID file is held (by the PID that
  // owns the bus name, checked there), or unreadable to us (another user's).
  // Whoever can write the data dir can put any PID in the file and
  // hold some lock on it. Only the process that holds the file's lock and is
  // the PID the file names is a conduit of this data dir.
  if (info && info->held && !info->proven()) {
    std::fprintf(stderr,
                 "conduit stop: PID file %s names pid %d but its lock is held by pid %d; not "
                 "a conduit of this data dir, not signalling anyone\n",
                 pid_file.c_str(), info->pid, info->holder);
    return 1;
  }
  bool maybe_running = !probe_error.empty() || (info && info->held);
  if (options.bus != "none" && maybe_running) {
    std::optional<pid_t> expected;
    if (info && info->held && info->pid > 0) expected = info->pid;
    auto record = [&]() -> std::optional<StopCause> {
      if (!info || !info->held) return std::nullopt;
      return read_stop_record(*info);
    };
    if (auto code = stop_over_bus(options, expected, record)) return *code;
  }
  if (!probe_error.empty()) {
    std::fprintf(stderr, "conduit stop: %s\n", probe_error.c_str());
    return 1;
  }
  if (!info) {
    // Already stopped (docs/contract.md section 3): success, as when systemd runs
    // ExecStop= after conduit has exited on its own.
    std::fprintf(stderr, "conduit stop: no conduit is running (no PID file %s); nothing to stop\n",
                 pid_file.c_str());
    return 0;
  }
  if (!info->held && read_stop_record(*info)) {
    // A conduit that has just stopped left its record and has not yet removed
    // the file (a stop racing ours got there first).
    return report_exit(options, *info, UniqueFd());
  }
  if (!info->held || info->pid <= 0) {
    std::fprintf(stderr,
                 "conduit stop: stale PID file %s (pid %d holds no lock on it); not signalling\n",
                 pid_file.c_str(), info->pid);
    return 1;
  }
  return signal_and_wait(options, *info, pid_file, signal);
}

namespace {

// What the daemon says of itself over D-Bus; the rate from NextRound read
// again one second later.
void print_bus_status(const StatusOptions& options, const BusStatus& status,
                      const std::optional<Metadata>& metadata) {
  RuntimeInfo runtime = runtime_info(status.pid, [&]() -> std::optional<uint64_t> {
    auto again = status_over_bus(options.bus, status.pid);
    return again ? std::optional<uint64_t>(again->next_round) : std::nullopt;
  });
  if (options.json) {
    nlohmann::ordered_json j;
    j["state"] = status.state;
    j["pid"] = status.pid;
    j["next-round"] = status.next_round;
    j["stop-reason"] = status.stop_reason;
    j["stop-detail"] = status.stop_detail;
    j["network"] = metadata ? metadata->network : "";
    j["bus"] = status.bus;
    j["bus-name"] = status.name;
    add_runtime_json(j, runtime);
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("State:      %s\n", status.state.c_str());
  std::printf("PID:        %d\n", status.pid);
  std::printf("NextRound:  %llu\n", static_cast<unsigned long long>(status.next_round));
  std::printf("StopReason: %s\n", status.stop_reason.c_str());
  if (!status.stop_detail.empty()) std::printf("StopDetail: %s\n", status.stop_detail.c_str());
  if (metadata) std::printf("Network:    %s\n", metadata->network.c_str());
  std::printf("Bus:        %s bus, %s\n", status.bus.c_str(), status.name.c_str());
  print_runtime(runtime, " ");
}

// What the data dir says without the bus: the PID file and the checkpoint,
// the rate from metadata.json read again one second later.
void print_file_status(const StatusOptions& options, std::optional<pid_t> running_pid,
                       const std::optional<Metadata>& metadata) {
  RuntimeInfo runtime;
  if (running_pid)
    runtime = runtime_info(*running_pid, [&]() -> std::optional<uint64_t> {
      try {
        auto again = Checkpoint(options.data_dir).load();
        return again ? std::optional<uint64_t>(again->next_round) : std::nullopt;
      } catch (const std::exception&) {
        return std::nullopt;
      }
    });
  uint64_t next_round = metadata ? metadata->next_round : 0;
  if (options.json) {
    nlohmann::ordered_json j;
    j["state"] = running_pid ? "running" : "stopped";
    j["pid"] = running_pid.value_or(0);
    j["next-round"] = next_round;
    j["network"] = metadata ? metadata->network : "";
    add_runtime_json(j, runtime);
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("State:     %s\n", running_pid ? "running" : "stopped");
  if (running_pid) std::printf("PID:       %d\n", *running_pid);
  std::printf("NextRound: %llu\n", static_cast<unsigned long long>(next_round));
  if (metadata) std::printf("Network:   %s\n", metadata->network.c_str());
  print_runtime(runtime, "");
}

std::filesystem::path configured_pid_file(const std::filesystem::path& data_dir) {
  try {
    return load_config(data_dir).pid_file;
  } catch (const ConfigError&) {
    return data_dir / "conduit.pid";
  }
}

}  // namespace

int cmd_status(const StatusOptions& options) {
  std::optional<Metadata> metadata;
  try {
    metadata = Checkpoint(options.data_dir).load();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conduit status: %s\n", e.what());
  }
  std::optional<PidFileInfo> info;
  bool unreadable = false;
  try {
    info = probe_pid_file(configured_pid_file(options.data_dir));
  } catch (const std::exception&) {
    unreadable = true;
  }
  std::optional<pid_t> running_pid;
  if (info && info->proven()) running_pid = info->pid;
  if (options.bus != "none" && (running_pid || unreadable)) {
    std::optional<pid_t> expected;
    if (running_pid && *running_pid > 0) expected = running_pid;
    if (auto status = status_over_bus(options.bus, expected)) {
      print_bus_status(options, *status, metadata);
      return 0;
    }
  }
  print_file_status(options, running_pid, metadata);
  return running_pid ? 0 : 3;
}

}  // namespace conduit::cli
