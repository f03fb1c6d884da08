// Go Conduit's conduit.yml -> conduit.toml (`conduit init --from-yaml`).
//
// Every key Go reads is carried over under conduit's name (pid-filepath ->
// pid-file, retry-delay in nanoseconds -> a duration string, ...); plugin
// configs are carried over key for key with their YAML types. Keys with no
// equivalent (cpu-profile, telemetry, data-dir) are written as comments that
// say why, and so are keys Go itself ignores.
#pragma once

#include <string>
#include <string_view>

namespace conduit {

// The TOML text; throws ConfigError (naming source_name, line and column) when
// the YAML is malformed or not shaped as Go Conduit's configuration.
std::string convert_go_yaml_config(std::string_view yaml, const std::string& source_name);

}  // namespace conduit
