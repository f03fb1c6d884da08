// Test-only (compiled with -Dtest_plugins=true): an importer whose every block is
// corrupt, the way a file_reader meets a damaged block file. Its get_block fails
// with a non-retryable error, so the pipeline stops with importer-error (the e2e
// suite's importer-failure scenario: unit failed, journal, Restart=on-failure).
#include <string>

#include "plugins/testing/testing.hpp"

namespace conduit::plugins {
namespace {

class CorruptImporter final : public Importer {
 public:
  void configure(PluginConfig& config) override {
    network_ = config.get_string("network", "corrupt-network");
  }
  Genesis init(const InitContext&, std::stop_token) override {
    Genesis genesis;
    genesis.network = network_;
    genesis.id = "v1";
    genesis.hash = "Y29ycnVwdC1pbXBvcnRlci1nZW5lc2lzLWhhc2g=";
    return genesis;
  }
  BlockData get_block(uint64_t round, std::stop_token) override {
    throw PluginError("round " + std::to_string(round) + ": corrupt block (test plugin)",
                      /*retryable=*/false);
  }
  void close() override {}

 private:
  std::string network_;
};

}  // namespace

void register_corrupt_importer(Registry& registry) {
  registry.add_importer(
      {"corrupt", "TEST ONLY: every block is corrupt (a non-retryable importer error)",
       "network = \"corrupt-network\"\n", false},
      [] { return std::make_unique<CorruptImporter>(); });
}

}  // namespace conduit::plugins
