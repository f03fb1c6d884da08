// Test-only (compiled with -Dtest_plugins=true): a processor that, from round
// `wedge-at-round` on, blocks forever and ignores cancellation, the way a buggy
// plugin stuck in an uninterruptible call would. The service must stop pinging
// the systemd watchdog so that systemd kills and restarts it. With
// `honour-cancellation = true` it blocks the same way but returns when its stop
// token fires: a slow round that obeys `now` (bench/stop_latency.cpp).
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "plugins/testing/testing.hpp"

namespace conduit::plugins {
namespace {

class WedgeProcessor final : public Processor {
 public:
  void configure(PluginConfig& config) override {
    wedge_at_round_ = config.get_uint("wedge-at-round", 0);
    honour_cancellation_ = config.get_bool("honour-cancellation", false);
  }
  void init(const InitContext& ctx, std::stop_token) override { logger_ = ctx.logger; }
  void process(BlockData& block, std::stop_token stop) override {
    if (block.round() < wedge_at_round_) return;
    if (logger_)
      logger_->warn("wedge: blocking at round " + std::to_string(block.round()) +
                        (honour_cancellation_ ? " until cancelled" : ", ignoring cancellation"),
                    {.round = block.round(), .plugin = "processor:wedge"});
    if (honour_cancellation_) {
      std::mutex mutex;
      std::condition_variable_any cv;
      std::unique_lock lock(mutex);
      cv.wait(lock, stop, [] { return false; });
      throw Cancelled();
    }
    // Deliberately ignores the stop token.
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  void close() override {}

 private:
  uint64_t wedge_at_round_ = 0;
  bool honour_cancellation_ = false;
  Logger* logger_ = nullptr;
};

}  // namespace

void register_wedge(Registry& registry) {
  registry.add_processor({"wedge",
                          "TEST ONLY: blocks forever at round wedge-at-round, ignoring "
                          "cancellation (exercises the watchdog)",
                          "wedge-at-round = 0\nhonour-cancellation = false\n", false},
                         [] { return std::make_unique<WedgeProcessor>(); });
}

}  // namespace conduit::plugins
