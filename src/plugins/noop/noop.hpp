#pragma once
#include "core/registry.hpp"

namespace conduit::plugins {
void register_noop(Registry& registry);
}  // namespace conduit::plugins
