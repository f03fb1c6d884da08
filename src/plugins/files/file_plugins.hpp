#pragma once
#include "core/registry.hpp"

namespace conduit::plugins {
// Go Conduit's file_reader importer and file_writer exporter (file_plugins.cpp).
void register_file_plugins(Registry& registry);
}  // namespace conduit::plugins
