#pragma once
#include <string_view>
#include <vector>

#include "core/registry.hpp"

namespace conduit::plugins {
// Go Conduit's filter_processor (filter_processor.cpp).
void register_filter_processor(Registry& registry);
// The filter tags it knows (Go Conduit's Filter_tags.md), for tests and docs.
std::vector<std::string_view> filter_processor_tags();
}  // namespace conduit::plugins
