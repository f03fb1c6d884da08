// Go Conduit's conduit.yml -> conduit.toml (`conduit init --from-yaml`).
//
// Every key Go reads is carried over under conduit's name (pid-filepath ->
// pid-file, retry-delay in nanoseconds -> a duration string, ...); plugin
// configs are carried over key for key with their YAML types. Keys with no
// equivalent (cpu-profile, telemetry, data-dir) are written as comments that
// say why, and so are keys Go itself ignores.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace conduit {

// Bounds on a conduit.yml, beyond the input's size (kMaxConfigBytes, like
// conduit.toml): nodes counted with every alias expanded (a real configuration
// has a few hundred; an alias bomb has billions), nesting depth (conduit.toml's).
// An alias inside its own anchor (a cycle) is refused too.
inline constexpr size_t kMaxYamlNodes = 100000;
inline constexpr size_t kMaxYamlNesting = 64;

// The TOML text; throws ConfigError (naming source_name, line and column) when
// the YAML is malformed, beyond the bounds above, or not shaped as Go Conduit's
// configuration, or when the TOML would be larger than kMaxConfigBytes.
std::string convert_go_yaml_config(std::string_view yaml, const std::string& source_name);

}  // namespace conduit
