// libFuzzer target: arbitrary bytes as a Go Conduit conduit.yml for
// `conduit init --from-yaml`. The converter may refuse the input (ConfigError)
// but must never crash or run away: alias cycles, alias bombs, deep nesting and
// oversized output are refused. What it accepts is no larger than a
// conduit.toml may be, and is read as one without crashing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/config.hpp"
#include "core/yaml_import.hpp"

using namespace conduit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string toml;
  try {
    toml = convert_go_yaml_config(text, "/data/conduit.yml");
  } catch (const ConfigError&) {
    return 0;
  }
  if (toml.size() > kMaxConfigBytes) std::abort();  // the converter's own bound
  try {
    (void)parse_config(toml, "/data", "/data/conduit.toml");
  } catch (const ConfigError&) {
  }
  return 0;
}
