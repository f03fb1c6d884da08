// Raw msgpack access to a BlockData, for plugins that read or edit fields.
#pragma once

#include <msgpack.hpp>
#include <string>
#include <string_view>

#include "core/block.hpp"

namespace conduit {

struct BlockData::Tree {
  msgpack::zone zone;  // owns every object below root
  msgpack::object root;
  // The msgpack the tree was decoded from: its strings and byte strings point
  // into it (not copied). Never moved while the tree lives (the tree is on the heap).
  std::string source;
  // False once the tree may differ from `source` (mutable access, edits).
  bool matches_source = true;
};

namespace mp {

// Looks up a string key in a msgpack map; nullptr when absent or not a map.
const msgpack::object* find(const msgpack::object& map, std::string_view key);
msgpack::object* find(msgpack::object& map, std::string_view key);
// Unsigned integer value of a field, 0 when absent (Go's zero value).
uint64_t get_uint(const msgpack::object& map, std::string_view key);

}  // namespace mp
}  // namespace conduit
