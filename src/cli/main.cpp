// conduit's command line (docs/contract.md section 3).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "cli/commands.hpp"
#include "cli/plugin_check.hpp"
#include "conduit_config.h"
#include "core/config.hpp"
#include "plugins/builtin.hpp"
#include "service/daemon.hpp"

namespace {

std::filesystem::path default_data_dir() {
  const char* env = std::getenv("CONDUIT_DATA_DIR");
  return env ? env : "";
}

// Every option of every command, filled in by CLI11's parse.
struct CommandLine {
  std::string data_dir = default_data_dir();
  std::optional<uint64_t> next_round;
  std::string bus = "auto";
  conduit::cli::InitOptions init;
  std::vector<std::string> processor_list, processor_single;
  std::string list_which, list_name, list_dir;
  conduit::cli::StopOptions stop;
  conduit::cli::StatusOptions status;
  conduit::cli::PluginCheckOptions check;
  CLI::App* init_cmd = nullptr;
  CLI::App* list_cmd = nullptr;
  CLI::App* stop_cmd = nullptr;
  CLI::App* status_cmd = nullptr;
  CLI::App* check_cmd = nullptr;
};

void add_daemon_options(CLI::App& app, CommandLine& cl) {
  app.add_option("-d,--data-dir", cl.data_dir,
                 "data directory holding conduit.toml ($CONDUIT_DATA_DIR)");
  app.add_option("-r,--next-round-override", cl.next_round,
                 "start at this round instead of the checkpoint")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {  // not "-1", which would wrap to 2^64-1
            bool digits =
                !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
            bool fits = text.size() < 20 || (text.size() == 20 && text <= "18446744073709551615");
            return digits && fits ? "" : "must be an integer in [0, 18446744073709551615]";
          },
          "ROUND"));
  app.add_option("--bus", cl.bus, "D-Bus to register on")
      ->check(CLI::IsMember({"auto", "system", "session", "none"}));
}

void add_init_and_list(CLI::App& app, CommandLine& cl) {
  auto* init = cl.init_cmd = app.add_subcommand(
      "init", "write DIR/conduit.toml (to stdout without -d), or convert a Go conduit.yml");
  init->add_option("-d,--data-dir,--data", cl.init.data_dir,
                   "data directory (without it the configuration goes to stdout)");
  init->add_option("-i,--importer", cl.init.importer, "importer plugin (default algod)");
  init->add_option("-p,--processors", cl.processor_list, "processor plugins, comma-separated")
      ->delimiter(',');
  init->add_option("--processor", cl.processor_single, "processor plugin (repeatable)");
  init->add_option("-e,--exporter", cl.init.exporter, "exporter plugin (default file_writer)");
  init->add_option("--from-yaml", cl.init.from_yaml,
                   "a Go Conduit conduit.yml to convert (conduit.toml goes next to it "
                   "unless -d is given)");
  init->add_flag("--force", cl.init.force, "overwrite an existing conduit.toml");

  auto* list = cl.list_cmd = app.add_subcommand("list", "list plugins and their sample configs");
  list->add_option("kind", cl.list_which, "importers, processors or exporters (or singular)")
      ->check(CLI::IsMember(
          {"importers", "processors", "exporters", "importer", "processor", "exporter"}));
  list->add_option("name", cl.list_name, "one plugin: its description and sample config");
  list->add_option("-d,--data-dir", cl.list_dir,
                   "data directory: external plugins in DIR/plugins and conduit.toml's "
                   "plugin-dirs ($CONDUIT_DATA_DIR)");
}

void add_stop_and_status(CLI::App& app, CommandLine& cl) {
  auto* stop = cl.stop_cmd = app.add_subcommand("stop", "stop a running conduit");
  stop->add_option("mode", cl.stop.mode, "now (default) or end-of-round")
      ->check(CLI::IsMember({"now", "end-of-round"}));
  stop->add_option("-d,--data-dir", cl.stop.data_dir, "data directory");
  stop->add_option("--pid-file", cl.stop.pid_file, "PID file of the conduit to stop");
  stop->add_option("--bus", cl.stop.bus, "D-Bus to use")
      ->check(CLI::IsMember({"auto", "system", "session", "none"}));
  stop->add_flag("--no-wait", cl.stop.no_wait, "return once the request is sent");
  stop->add_option("--timeout", cl.stop.timeout_seconds, "give up waiting after SECONDS");

  auto* status = cl.status_cmd = app.add_subcommand("status", "show State, NextRound, StopReason");
  status->add_option("-d,--data-dir", cl.status.data_dir, "data directory");
  status->add_option("--bus", cl.status.bus, "D-Bus to use");
  status->add_flag("--json", cl.status.json, "machine-readable output");
}

void add_plugin_check(CLI::App& app, CommandLine& cl) {
  auto* check = cl.check_cmd = app.add_subcommand(
      "plugin-check", "drive an external plugin through the plugin protocol and report");
  check->add_option("path", cl.check.plugin, "the plugin's executable")->required();
  check->add_option("--config", cl.check.config,
                    "TOML file: the plugin's config table (default: its sample config)");
  check->add_option("--fixtures", cl.check.fixtures,
                    "directory with genesis.json and N_block.msgp.gz blocks");
  check->add_flag("--keep", cl.check.keep, "keep the temporary data directory");
}

// The data dir is made absolute once, here, for every command, so the daemon,
// `stop` and `status` name the same files however it was spelt.
void make_paths_absolute(CommandLine& cl) {
  auto make_absolute = [](auto& dir) {
    std::error_code ec;
    if (!std::filesystem::path(dir).empty())
      dir = std::filesystem::absolute(dir, ec).lexically_normal().string();
  };
  if (cl.list_dir.empty()) cl.list_dir = cl.data_dir;
  if (cl.stop.data_dir.empty() && cl.stop.pid_file.empty()) cl.stop.data_dir = cl.data_dir;
  if (cl.status.data_dir.empty()) cl.status.data_dir = cl.data_dir;
  make_absolute(cl.data_dir);
  make_absolute(cl.stop.data_dir);
  make_absolute(cl.stop.pid_file);
  make_absolute(cl.status.data_dir);
  make_absolute(cl.init.data_dir);
  make_absolute(cl.list_dir);
}

int run_daemon(const CommandLine& cl) {
  if (cl.data_dir.empty()) {
    std::fprintf(stderr, "conduit: no data directory: give -d DIR or set $CONDUIT_DATA_DIR\n");
    return 2;
  }
  conduit::service::DaemonOptions options;
  options.data_dir = cl.data_dir;
  options.next_round_override = cl.next_round;
  options.bus = cl.bus == "system"    ? conduit::service::BusMode::system
                : cl.bus == "session" ? conduit::service::BusMode::session
                : cl.bus == "none"    ? conduit::service::BusMode::none
                                      : conduit::service::BusMode::automatic;
  return conduit::service::run_daemon(options, conduit::builtin_registry());
}

int dispatch(CommandLine& cl) {
  if (*cl.init_cmd) {
    cl.init.processors = cl.processor_list;
    cl.init.processors.insert(cl.init.processors.end(), cl.processor_single.begin(),
                              cl.processor_single.end());
    return conduit::cli::cmd_init(cl.init);
  }
  if (*cl.list_cmd) return conduit::cli::cmd_list(cl.list_which, cl.list_name, cl.list_dir);
  if (*cl.check_cmd) return conduit::cli::cmd_plugin_check(cl.check);
  if (*cl.stop_cmd) {
    if (cl.stop.data_dir.empty() && cl.stop.pid_file.empty()) {
      std::fprintf(stderr, "conduit stop: give -d DIR, --pid-file FILE or $CONDUIT_DATA_DIR\n");
      return 2;
    }
    return conduit::cli::cmd_stop(cl.stop);
  }
  if (*cl.status_cmd) {
    if (cl.status.data_dir.empty()) {
      std::fprintf(stderr, "conduit status: give -d DIR or $CONDUIT_DATA_DIR\n");
      return 2;
    }
    return conduit::cli::cmd_status(cl.status);
  }
  return run_daemon(cl);
}

int run(int argc, char** argv) {
  CLI::App app{"conduit: moves Algorand block data round by round through a pipeline"};
  app.set_version_flag("-v,--version", "conduit " CONDUIT_VERSION);
  app.require_subcommand(0, 1);
  CommandLine cl;
  add_daemon_options(app, cl);
  add_init_and_list(app, cl);
  add_stop_and_status(app, cl);
  add_plugin_check(app, cl);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // usage error (docs/contract.md section 2)
  }
  make_paths_absolute(cl);
  return dispatch(cl);
}

}  // namespace

// Every command reports its own errors; this is the net under them, so that no
// exception (an allocation failure included) ends in std::terminate's abort.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const conduit::ConfigError& e) {
    std::fprintf(stderr, "conduit: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fputs("conduit: out of memory\n", stderr);  // fputs: nothing more to allocate
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conduit: internal error: %s\n", e.what());
    return 1;
  } catch (...) {
    std::fputs("conduit: internal error: an unknown exception\n", stderr);
    return 1;
  }
}
