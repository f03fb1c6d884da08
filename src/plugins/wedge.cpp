// Test-only (compiled with -Dtest_plugins=true): a processor that, from round
// `wedge-at-round` on, blocks forever and ignores cancellation, the way a buggy
// plugin stuck in an uninterruptible call would. The service must stop pinging
// the systemd watchdog so that systemd kills and restarts it.
#include <chrono>
#include <thread>

#include "plugins/noop.hpp"

namespace conduit::plugins {
namespace {

class WedgeProcessor final : public Processor {
 public:
  void configure(PluginConfig& config) override {
    wedge_at_round_ = config.get_uint("wedge-at-round", 0);
  }
  void init(const InitContext& ctx, std::stop_token) override { logger_ = ctx.logger; }
  void process(BlockData& block, std::stop_token) override {
    if (block.round() < wedge_at_round_) return;
    if (logger_)
      logger_->warn(
          "wedge: blocking at round " + std::to_string(block.round()) + ", ignoring cancellation",
          {.round = block.round(), .plugin = "processor:wedge"});
    // Deliberately ignores the stop token.
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  void close() override {}

 private:
  uint64_t wedge_at_round_ = 0;
  Logger* logger_ = nullptr;
};

}  // namespace

void register_wedge(Registry& registry) {
  registry.add_processor({"wedge",
                          "TEST ONLY: blocks forever at round wedge-at-round, ignoring "
                          "cancellation (exercises the watchdog)",
                          "wedge-at-round = 0\n", false},
                         [] { return std::make_unique<WedgeProcessor>(); });
}

}  // namespace conduit::plugins
