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

int run(int argc, char** argv) {
  CLI::App app{"conduit: moves Algorand block data round by round through a pipeline"};
  app.set_version_flag("-v,--version", "conduit " CONDUIT_VERSION);
  app.require_subcommand(0, 1);

  std::string data_dir = default_data_dir();
  std::optional<uint64_t> next_round;
  std::string bus = "auto";
  app.add_option("-d,--data-dir", data_dir,
                 "data directory holding conduit.toml ($CONDUIT_DATA_DIR)");
  app.add_option("-r,--next-round-override", next_round,
                 "start at this round instead of the checkpoint")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {  // not "-1", which would wrap to 2^64-1
            bool digits =
                !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
            bool fits = text.size() < 20 || (text.size() == 20 && text <= "18446744073709551615");
            return digits && fits ? "" : "must be an integer in [0, 18446744073709551615]";
          },
          "ROUND"));
  app.add_option("--bus", bus, "D-Bus to register on")
      ->check(CLI::IsMember({"auto", "system", "session", "none"}));

  conduit::cli::InitOptions init;
  std::vector<std::string> processor_list, processor_single;
  auto* init_cmd = app.add_subcommand(
      "init", "write DIR/conduit.toml (to stdout without -d), or convert a Go conduit.yml");
  init_cmd->add_option("-d,--data-dir,--data", init.data_dir,
                       "data directory (without it the configuration goes to stdout)");
  init_cmd->add_option("-i,--importer", init.importer, "importer plugin (default algod)");
  init_cmd->add_option("-p,--processors", processor_list, "processor plugins, comma-separated")
      ->delimiter(',');
  init_cmd->add_option("--processor", processor_single, "processor plugin (repeatable)");
  init_cmd->add_option("-e,--exporter", init.exporter, "exporter plugin (default file_writer)");
  init_cmd->add_option("--from-yaml", init.from_yaml,
                       "a Go Conduit conduit.yml to convert (conduit.toml goes next to it "
                       "unless -d is given)");
  init_cmd->add_flag("--force", init.force, "overwrite an existing conduit.toml");

  std::string list_which, list_name, list_dir;
  auto* list_cmd = app.add_subcommand("list", "list plugins and their sample configs");
  list_cmd->add_option("kind", list_which, "importers, processors or exporters (or singular)")
      ->check(CLI::IsMember(
          {"importers", "processors", "exporters", "importer", "processor", "exporter"}));
  list_cmd->add_option("name", list_name, "one plugin: its description and sample config");
  list_cmd->add_option("-d,--data-dir", list_dir,
                       "data directory: external plugins in DIR/plugins and conduit.toml's "
                       "plugin-dirs ($CONDUIT_DATA_DIR)");

  conduit::cli::StopOptions stop;
  auto* stop_cmd = app.add_subcommand("stop", "stop a running conduit");
  stop_cmd->add_option("mode", stop.mode, "now (default) or end-of-round")
      ->check(CLI::IsMember({"now", "end-of-round"}));
  stop_cmd->add_option("-d,--data-dir", stop.data_dir, "data directory");
  stop_cmd->add_option("--pid-file", stop.pid_file, "PID file of the conduit to stop");
  stop_cmd->add_option("--bus", stop.bus, "D-Bus to use")
      ->check(CLI::IsMember({"auto", "system", "session", "none"}));
  stop_cmd->add_flag("--no-wait", stop.no_wait, "return once the request is sent");
  stop_cmd->add_option("--timeout", stop.timeout_seconds, "give up waiting after SECONDS");

  conduit::cli::StatusOptions status;
  auto* status_cmd = app.add_subcommand("status", "show State, NextRound, StopReason");
  status_cmd->add_option("-d,--data-dir", status.data_dir, "data directory");
  status_cmd->add_option("--bus", status.bus, "D-Bus to use");
  status_cmd->add_flag("--json", status.json, "machine-readable output");

  conduit::cli::PluginCheckOptions check;
  auto* check_cmd = app.add_subcommand(
      "plugin-check", "drive an external plugin through the plugin protocol and report");
  check_cmd->add_option("path", check.plugin, "the plugin's executable")->required();
  check_cmd->add_option("--config", check.config,
                        "TOML file: the plugin's config table (default: its sample config)");
  check_cmd->add_option("--fixtures", check.fixtures,
                        "directory with genesis.json and N_block.msgp.gz blocks");
  check_cmd->add_flag("--keep", check.keep, "keep the temporary data directory");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // usage error (docs/contract.md section 2)
  }

  // The data dir is made absolute once, here, for every command, so
  // the daemon, `stop` and `status` name the same files however it was spelt.
  auto make_absolute = [](auto& dir) {
    std::error_code ec;
    if (!std::filesystem::path(dir).empty())
      dir = std::filesystem::absolute(dir, ec).lexically_normal().string();
  };
  make_absolute(data_dir);
  make_absolute(stop.data_dir);
  make_absolute(stop.pid_file);
  make_absolute(status.data_dir);
  make_absolute(init.data_dir);
  if (*init_cmd) {
    init.processors = processor_list;
    init.processors.insert(init.processors.end(), processor_single.begin(), processor_single.end());
    return conduit::cli::cmd_init(init);
  }
  if (list_dir.empty()) list_dir = data_dir;
  make_absolute(list_dir);
  if (*list_cmd) return conduit::cli::cmd_list(list_which, list_name, list_dir);
  if (*check_cmd) return conduit::cli::cmd_plugin_check(check);
  if (*stop_cmd) {
    if (stop.data_dir.empty() && stop.pid_file.empty()) stop.data_dir = data_dir;
    if (stop.data_dir.empty() && stop.pid_file.empty()) {
      std::fprintf(stderr, "conduit stop: give -d DIR, --pid-file FILE or $CONDUIT_DATA_DIR\n");
      return 2;
    }
    return conduit::cli::cmd_stop(stop);
  }
  if (*status_cmd) {
    if (status.data_dir.empty()) status.data_dir = data_dir;
    if (status.data_dir.empty()) {
      std::fprintf(stderr, "conduit status: give -d DIR or $CONDUIT_DATA_DIR\n");
      return 2;
    }
    return conduit::cli::cmd_status(status);
  }

  if (data_dir.empty()) {
    std::fprintf(stderr, "conduit: no data directory: give -d DIR or set $CONDUIT_DATA_DIR\n");
    return 2;
  }
  conduit::service::DaemonOptions options;
  options.data_dir = data_dir;
  options.next_round_override = next_round;
  options.bus = bus == "system"    ? conduit::service::BusMode::system
                : bus == "session" ? conduit::service::BusMode::session
                : bus == "none"    ? conduit::service::BusMode::none
                                   : conduit::service::BusMode::automatic;
  return conduit::service::run_daemon(options, conduit::builtin_registry());
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
