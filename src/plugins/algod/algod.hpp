// The `algod` importer: follows an algod node (Go Conduit's algod importer).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/block.hpp"
#include "core/registry.hpp"

namespace conduit::plugins {

void register_algod(Registry& registry);

// Re-shapes algod's GET /v2/blocks/{round}?format=msgpack response
// ({"block": header + "txns", "cert": ...}) and, in follower mode, the
// GET /v2/deltas/{round}?format=msgpack body into Go Conduit's BlockData
// ({"block", "cert", "delta", "payset"}, sorted keys, empty fields omitted).
// Throws BlockDecodeError when either body is not what algod sends, and
// BlockTooLargeError (before unpacking) when decoding them would take more
// than `max_memory` bytes (BlockData::memory_cost).
BlockData algod_block_to_block_data(std::string_view block_response,
                                    std::optional<std::string_view> delta,
                                    std::size_t max_memory = SIZE_MAX);

}  // namespace conduit::plugins
