// Plugin interfaces, modelled on Go Conduit's importer / processor / exporter.
//
// Lifecycle of every plugin instance, driven by the pipeline:
//   configure(config)    parse and validate the plugin's own TOML section; no I/O.
//                        Runs before anything starts, and again for a reload.
//   round_request(...)   optional: the round this plugin needs next (0 = none);
//                        cancellable by any stop (requested_round).
//   init(ctx, stop)      acquire resources; the importer reports the genesis.
//   get_block / process / receive, round by round, on the plugin's own thread.
//   close()              exactly once per instance handed to a pipeline, whether
//                        or not init ran (an instance whose configuration was
//                        rejected is destroyed without close).
//
// Cancellation: every blocking call takes a std::stop_token. A plugin blocked in
// I/O must wake up when it fires (std::stop_callback) and throw Cancelled.
// Errors: throw PluginError (retryable or not); other exceptions are retryable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>

#include "core/block.hpp"
#include "core/config.hpp"
#include "core/log.hpp"

namespace conduit {

enum class PluginKind { importer, processor, exporter };
std::string_view to_string(PluginKind kind);

struct PluginMetadata {
  std::string name;
  std::string description;
  std::string sample_config;  // TOML body of the plugin's `config` table
  bool deprecated = false;
};

// Thrown by a plugin call that noticed its stop_token.
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("cancelled") {}
};

class PluginError : public std::runtime_error {
 public:
  PluginError(const std::string& message, bool retryable)
      : std::runtime_error(message), retryable_(retryable) {}
  bool retryable() const { return retryable_; }

 private:
  bool retryable_;
};

// What init() gets (Go Conduit: InitProvider + PluginConfig.DataDir).
struct InitContext {
  std::filesystem::path data_dir;    // DIR/<type>_<name>/, created before init
  uint64_t next_round = 0;           // the first round the pipeline will ask for
  const Genesis* genesis = nullptr;  // null for the importer (it reports it)
  Logger* logger = nullptr;
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual void configure(PluginConfig& config) = 0;
  // A round this plugin must resume at, or 0 for no request (Go Conduit's
  // RoundRequestor). Called after configure, before init.
  virtual uint64_t round_request(const std::filesystem::path& data_dir) {
    (void)data_dir;
    return 0;
  }
  // What the pipeline calls: round_request, interruptibly. A plugin whose
  // request can block (a database connection) overrides this one and returns
  // or throws Cancelled when `stop` fires.
  virtual uint64_t requested_round(const std::filesystem::path& data_dir, std::stop_token stop) {
    (void)stop;
    return round_request(data_dir);
  }
  virtual void close() = 0;
};

class Importer : public Plugin {
 public:
  // Initialises and returns the genesis of the chain it imports.
  virtual Genesis init(const InitContext& ctx, std::stop_token stop) = 0;
  // Returns round `round`. Blocks until it is available or `stop` fires.
  virtual BlockData get_block(uint64_t round, std::stop_token stop) = 0;
};

class Processor : public Plugin {
 public:
  virtual void init(const InitContext& ctx, std::stop_token stop) = 0;
  // Transforms `block` in place. On an exception the block must be unchanged,
  // because the pipeline retries with the same block.
  virtual void process(BlockData& block, std::stop_token stop) = 0;
};

class Exporter : public Plugin {
 public:
  virtual void init(const InitContext& ctx, std::stop_token stop) = 0;
  // Commits `block`. When it throws (or is cancelled) nothing of the round may
  // remain: the round is retried or exported again after a restart.
  virtual void receive(const BlockData& block, std::stop_token stop) = 0;

  // Group commit (optional; the defaults keep one round per receive()).
  // When supports_units() is true and rounds are queued (the importer is
  // ahead), the pipeline hands the exporter a unit of consecutive rounds:
  // stage() for each, in order, then commit_unit() makes all of them durable at
  // once, and the checkpoint is written once for the unit. A unit is atomic:
  // when stage() or commit_unit() throws, or abort_unit() is called, nothing of
  // the unit may remain (the pipeline then aborts and stages the unit again to
  // retry, or drops it under a `now` stop). abort_unit() must be idempotent.
  // At the tip (nothing queued) a unit is a single round, committed at once.
  virtual bool supports_units() const { return false; }
  virtual void stage(const BlockData& block, std::stop_token stop) { receive(block, stop); }
  virtual void commit_unit(std::stop_token stop) { (void)stop; }
  virtual void abort_unit() noexcept {}

  // Optional work on a block before the exporter's thread gets it (such as
  // encoding it, kept with BlockData::set_encoded), run on the pipeline's
  // prepare helpers (one per usable CPU) over the rounds queued for the
  // exporter, so that it overlaps with the exporter making earlier rounds
  // durable. May only read the exporter's configuration: it runs concurrently
  // with the exporter's other calls and with itself on other rounds. On an
  // exception the block is passed on as it was and the exporter does the work
  // itself.
  virtual void prepare(BlockData& block) const { (void)block; }
  // Whether prepare() does any work: the pipeline starts its prepare helpers
  // only then (a helper costs each round a wake-up and a lock).
  virtual bool prepares() const { return false; }
};

}  // namespace conduit
