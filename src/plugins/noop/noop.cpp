// Go Conduit's noop plugins: an importer of empty blocks, a processor and an
// exporter that do nothing. Useful for measuring the framework itself.
#include "plugins/noop/noop.hpp"

namespace conduit::plugins {
namespace {

class NoopImporter final : public Importer {
 public:
  void configure(PluginConfig&) override {}
  Genesis init(const InitContext&, std::stop_token) override { return {}; }
  BlockData get_block(uint64_t round, std::stop_token stop) override {
    if (stop.stop_requested()) throw Cancelled();
    return BlockData::empty(round);
  }
  void close() override {}
};

class NoopProcessor final : public Processor {
 public:
  void configure(PluginConfig&) override {}
  void init(const InitContext&, std::stop_token) override {}
  void process(BlockData&, std::stop_token) override {}
  void close() override {}
};

class NoopExporter final : public Exporter {
 public:
  void configure(PluginConfig&) override {}
  void init(const InitContext&, std::stop_token) override {}
  void receive(const BlockData&, std::stop_token) override {}
  // Units of several rounds, so that only the checkpoint is left to commit.
  bool supports_units() const override { return true; }
  void stage(const BlockData&, std::stop_token) override {}
  void commit_unit(std::stop_token) override {}
  void close() override {}
};

}  // namespace

void register_noop(Registry& registry) {
  registry.add_importer({"noop", "noop importer: empty blocks, as fast as asked", "", false},
                        [] { return std::make_unique<NoopImporter>(); });
  registry.add_processor({"noop", "noop processor: passes blocks through unchanged", "", false},
                         [] { return std::make_unique<NoopProcessor>(); });
  registry.add_exporter({"noop", "noop exporter: discards every block", "", false},
                        [] { return std::make_unique<NoopExporter>(); });
}

}  // namespace conduit::plugins
