// The registry of every plugin built into conduit, for the command line to
// hand to the daemon (the core and the service layer know no plugin by name).
#pragma once
#include "core/registry.hpp"

namespace conduit {
const Registry& builtin_registry();
}  // namespace conduit
