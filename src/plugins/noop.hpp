#pragma once
#include "core/registry.hpp"

namespace conduit::plugins {
void register_noop(Registry& registry);
void register_generator(Registry& registry);
// Test-only plugins (CONDUIT_TEST_PLUGINS).
void register_wedge(Registry& registry);
}  // namespace conduit::plugins
