#pragma once
#include "core/registry.hpp"

namespace conduit::plugins {
void register_generator(Registry& registry);
}  // namespace conduit::plugins
