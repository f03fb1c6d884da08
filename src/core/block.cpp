#include "core/block.hpp"

#include "core/block_msgpack.hpp"

namespace conduit {
namespace mp {

const msgpack::object* find(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR &&
        std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
      return &kv.val;
  }
  return nullptr;
}

msgpack::object* find(msgpack::object& map, std::string_view key) {
  return const_cast<msgpack::object*>(find(static_cast<const msgpack::object&>(map), key));
}

uint64_t get_uint(const msgpack::object& map, std::string_view key) {
  const auto* value = find(map, key);
  if (!value) return 0;
  if (value->type == msgpack::type::POSITIVE_INTEGER) return value->via.u64;
  throw BlockDecodeError("field '" + std::string(key) + "' is not an unsigned integer");
}

}  // namespace mp

namespace {
// Deep enough for Algorand's nesting (inner transactions go 8 levels deep, each a
// few maps), shallow enough that recursive encoding cannot exhaust the stack.
constexpr std::size_t kMaxDepth = 256;
}  // namespace

BlockData::BlockData() : tree_(std::make_unique<Tree>()) {
  // An empty map: a block with no fields, round 0.
  tree_->root.type = msgpack::type::MAP;
  tree_->root.via.map.size = 0;
  tree_->root.via.map.ptr = nullptr;
}
BlockData::~BlockData() = default;
BlockData::BlockData(BlockData&&) noexcept = default;
BlockData& BlockData::operator=(BlockData&&) noexcept = default;

BlockData BlockData::decode_msgpack(std::string_view bytes) {
  BlockData block;
  try {
    std::size_t offset = 0;
    msgpack::unpack_limit limits(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
                                 kMaxDepth);
    block.tree_->root = msgpack::unpack(block.tree_->zone, bytes.data(), bytes.size(), offset,
                                        nullptr, nullptr, limits);
    if (offset != bytes.size())
      throw BlockDecodeError("trailing bytes after the block (" +
                             std::to_string(bytes.size() - offset) + " bytes)");
  } catch (const BlockDecodeError&) {
    throw;
  } catch (const std::exception& e) {
    throw BlockDecodeError(std::string("malformed msgpack: ") + e.what());
  }
  if (block.tree_->root.type != msgpack::type::MAP)
    throw BlockDecodeError("a block must be a msgpack map");
  block.refresh();
  return block;
}

std::string BlockData::encode_msgpack() const {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, tree_->root);
  return std::string(buffer.data(), buffer.size());
}

BlockData BlockData::clone() const {
  BlockData copy;
  copy.tree_->root = msgpack::object(tree_->root, copy.tree_->zone);
  copy.round_ = round_;
  copy.txn_count_ = txn_count_;
  return copy;
}

void BlockData::refresh() {
  const auto& root = tree_->root;
  round_ = 0;
  txn_count_ = 0;
  if (const auto* header = mp::find(root, "block")) {
    if (header->type != msgpack::type::MAP) throw BlockDecodeError("'block' is not a map");
    round_ = mp::get_uint(*header, "rnd");
  }
  if (const auto* payset = mp::find(root, "payset")) {
    if (payset->type == msgpack::type::ARRAY)
      txn_count_ = payset->via.array.size;
    else if (payset->type != msgpack::type::NIL)
      throw BlockDecodeError("'payset' is not an array");
  }
}

}  // namespace conduit
