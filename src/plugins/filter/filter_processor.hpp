#pragma once
#include <cstddef>
#include <functional>
#include <string_view>
#include <vector>

#include "core/registry.hpp"

namespace conduit::plugins {
// Go Conduit's filter_processor (filter_processor.cpp).
void register_filter_processor(Registry& registry);
// The filter tags it knows (Go Conduit's Filter_tags.md), for tests and docs.
std::vector<std::string_view> filter_processor_tags();
// Tests only: `hook` runs on the processing thread before each expression is
// evaluated (and its stop check made), with the count evaluated so far in that
// process() call. Set it while no filter runs; an empty function removes it.
void set_filter_evaluation_hook(std::function<void(size_t evaluated)> hook);
}  // namespace conduit::plugins
