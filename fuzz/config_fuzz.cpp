// libFuzzer target: arbitrary bytes as conduit.toml (issue 14). The reader may
// refuse the input (ConfigError) but must never crash, whatever the nesting or
// size: the pre-scan keeps deep documents away from toml++'s recursion.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/config.hpp"
#include "core/registry.hpp"
#include "plugins/builtin.hpp"

using namespace conduit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    Config config = parse_config(text, "/data", "/data/conduit.toml");
    // Plugins read their own sections: validate them too (nothing runs).
    (void)build_plugins(builtin_registry(), config);
  } catch (const ConfigError&) {
  }
  return 0;
}
