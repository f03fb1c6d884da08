#pragma once
#include "core/registry.hpp"

namespace conduit::plugins {
// Go Conduit's filter_processor (filter_processor.cpp).
void register_filter_processor(Registry& registry);
}  // namespace conduit::plugins
