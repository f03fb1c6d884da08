// Test-only plugins, built with -Dtest_plugins=true (CONDUIT_TEST_PLUGINS).
#pragma once
#include "core/registry.hpp"

namespace conduit::plugins {
void register_wedge(Registry& registry);
void register_corrupt_importer(Registry& registry);
}  // namespace conduit::plugins
