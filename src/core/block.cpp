#include "core/block.hpp"

#include "core/block_msgpack.hpp"

#include <algorithm>
#include <optional>
#include <vector>

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

namespace {
// Rejects input whose container headers promise more elements than there are
// bytes left, before msgpack-cxx allocates for them (it sizes each array and
// map from its header: 9 bytes could otherwise ask for 100 GB). Every element
// takes at least one byte, so an honest encoding never fails this, and the
// objects allocated stay proportional to the input. One pass, no allocation.
// Returns what msgpack::unpack will allocate (BlockData::memory_cost): an
// object per value, and a copy of every str, bin and ext payload.
class MsgpackCursor {
 public:
  explicit MsgpackCursor(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), n_(bytes.size()) {}
  std::size_t left() const { return n_ - i_; }
  void need(uint64_t k) const {
    if (left() < k) throw BlockDecodeError("truncated msgpack");
  }
  uint8_t next_byte() {
    need(1);
    return p_[i_++];
  }
  uint64_t big_endian(std::size_t k) {
    need(k);
    uint64_t v = 0;
    for (std::size_t j = 0; j < k; ++j) v = (v << 8) | p_[i_ + j];
    i_ += k;
    return v;
  }
  void skip(uint64_t k) {
    need(k);
    i_ += k;
  }

 private:
  const uint8_t* p_;
  std::size_t n_;
  std::size_t i_ = 0;
};

// What a value's header announces: the values nested in it, and the bytes
// that follow the header.
struct ValueExtent {
  uint64_t children = 0;
  uint64_t bytes = 0;
};

// Format bytes 0xc0-0xdf, whose lengths (if any) follow them.
ValueExtent long_form_extent(uint8_t b, MsgpackCursor& in) {
  switch (b) {
    case 0xc1:
      throw BlockDecodeError("malformed msgpack: reserved byte 0xc1");
    case 0xc4:  // bin8, str8
    case 0xd9:
      return {0, in.big_endian(1)};
    case 0xc5:  // bin16, str16
    case 0xda:
      return {0, in.big_endian(2)};
    case 0xc6:  // bin32, str32
    case 0xdb:
      return {0, in.big_endian(4)};
    case 0xc7:  // ext8, 16, 32: a type byte and the data
      return {0, in.big_endian(1) + 1};
    case 0xc8:
      return {0, in.big_endian(2) + 1};
    case 0xc9:
      return {0, in.big_endian(4) + 1};
    case 0xdc:  // array16, array32
      return {in.big_endian(2), 0};
    case 0xdd:
      return {in.big_endian(4), 0};
    case 0xde:  // map16, map32: a key and a value per entry
      return {2 * in.big_endian(2), 0};
    case 0xdf:
      return {2 * in.big_endian(4), 0};
    default:
      break;
  }
  // nil, false, true; then float32, float64, uint8-64, int8-64, fixext1-16.
  static constexpr uint8_t kFixedBytes[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4,  8, 1, 2,
                                            4, 8, 1, 2, 4, 8, 2, 3, 5, 9, 17, 0, 0, 0};
  return {0, kFixedBytes[b - 0xc0]};
}

ValueExtent extent_of(uint8_t b, MsgpackCursor& in) {
  if (b <= 0x7f || b >= 0xe0) return {};              // fixint
  if (b <= 0x8f) return {2 * uint64_t(b & 0x0f), 0};  // fixmap
  if (b <= 0x9f) return {uint64_t(b & 0x0f), 0};      // fixarray
  if (b <= 0xbf) return {0, uint64_t(b & 0x1f)};      // fixstr
  return long_form_extent(b, in);
}

// Format bytes of str (fixstr, str8-32), map (fixmap, map16/32) and array headers.
bool is_str_header(uint8_t b) {
  return (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb);
}
bool is_map_header(uint8_t b) {
  return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
}
bool is_array_header(uint8_t b) {
  return (b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd;
}

// str, bin and ext bodies are copied by msgpack::unpack; other bytes are not.
bool copies_payload(uint8_t b) {
  return (b >= 0xa0 && b <= 0xbf) || (b >= 0xc4 && b <= 0xc9) || (b >= 0xd4 && b <= 0xdb);
}

// What the pre-pass learns about the first value of the input.
struct MsgpackScan {
  std::size_t cost = 0;   // what msgpack::unpack will allocate for it
  std::size_t depth = 0;  // containers nested in one another, at most
  std::size_t end = 0;    // where it ends: input past it is trailing bytes
  // When it is a map: where the values of its first "block" and "payset" str
  // keys start (npos when absent).
  bool map = false;
  std::size_t block_at = std::string_view::npos;
  std::size_t payset_at = std::string_view::npos;
};

// The root map's keys as the scan meets them: which field's value comes next.
class RootFields {
 public:
  explicit RootFields(MsgpackScan& scan) : scan_(scan) {}
  // A root-level key (its first byte and text when a str) or value (at `at`).
  void key(uint8_t b, std::string_view text) {
    bool str = is_str_header(b);
    next_ = nullptr;
    if (str && text == "block" && scan_.block_at == std::string_view::npos)
      next_ = &scan_.block_at;
    else if (str && text == "payset" && scan_.payset_at == std::string_view::npos)
      next_ = &scan_.payset_at;
  }
  void value(std::size_t at) {
    if (next_) *next_ = at;
    next_ = nullptr;
  }

 private:
  MsgpackScan& scan_;
  std::size_t* next_ = nullptr;
};

MsgpackScan scan_msgpack(std::string_view bytes) {
  MsgpackScan scan;
  RootFields fields(scan);
  MsgpackCursor in(bytes);
  uint64_t pending = 1;  // values still to read
  uint64_t values = 0, payload = 0;
  std::vector<uint64_t> open;  // the elements still to come in each open container
  std::size_t depth = 0;
  while (pending > 0) {
    --pending;
    ++values;
    std::size_t at = bytes.size() - in.left();
    uint8_t b = in.next_byte();
    ValueExtent extent = extent_of(b, in);
    if (scan.map && open.size() == 1) {  // an entry of the root map: key, value, key...
      if (open.back() % 2 == 0)
        fields.key(b, bytes.substr(bytes.size() - in.left(), std::min(extent.bytes, in.left())));
      else
        fields.value(at);
    }
    if (values == 1) scan.map = is_map_header(b);
    in.skip(extent.bytes);
    if (copies_payload(b)) payload += extent.bytes;
    pending += extent.children;
    if (pending > in.left())
      throw BlockDecodeError(
          "malformed msgpack: containers declare more elements than the input holds");
    if (!open.empty()) --open.back();
    if (extent.children > 0) {
      open.push_back(extent.children);
      depth = std::max(depth, open.size());
    }
    while (!open.empty() && open.back() == 0) open.pop_back();
  }
  scan.cost = values * sizeof(msgpack::object) + payload;
  scan.depth = depth;
  scan.end = bytes.size() - in.left();
  return scan;
}

std::size_t checked_decoded_cost(std::string_view bytes) {
  return scan_msgpack(bytes).cost;
}

// A whole value (and what it contains) skipped.
void skip_value(MsgpackCursor& in) {
  for (uint64_t pending = 1; pending > 0; --pending) {
    uint8_t b = in.next_byte();
    ValueExtent extent = extent_of(b, in);
    in.skip(extent.bytes);
    pending += extent.children;
  }
}

// A str key's text, or nullopt (and the key skipped) for any other key.
std::optional<std::string_view> read_str_key(MsgpackCursor& in, std::string_view bytes) {
  uint8_t b = in.next_byte();
  bool str = is_str_header(b);
  ValueExtent extent = extent_of(b, in);
  std::size_t body = bytes.size() - in.left();
  in.skip(extent.bytes);
  if (!str) {
    for (uint64_t pending = extent.children; pending > 0; --pending) skip_value(in);
    return std::nullopt;
  }
  return bytes.substr(body, extent.bytes);
}

// A map's header: its entries, or nullopt (nothing read) when the value is not a map.
std::optional<uint64_t> map_entries(MsgpackCursor& in, std::string_view bytes) {
  auto b = static_cast<uint8_t>(bytes[bytes.size() - in.left()]);
  if (!is_map_header(b)) return std::nullopt;
  in.next_byte();
  return extent_of(b, in).children / 2;
}

// One object per value plus the payloads, as checked_decoded_cost counts them.
// Iterative: a tree built by a plugin may nest deeper than the stack allows.
std::size_t tree_cost(const msgpack::object& root) {
  std::size_t cost = 0;
  std::vector<const msgpack::object*> todo{&root};
  while (!todo.empty()) {
    const msgpack::object* o = todo.back();
    todo.pop_back();
    cost += sizeof(msgpack::object);
    switch (o->type) {
      case msgpack::type::STR:
        cost += o->via.str.size;
        break;
      case msgpack::type::BIN:
        cost += o->via.bin.size;
        break;
      case msgpack::type::EXT:
        cost += o->via.ext.size + 1;
        break;
      case msgpack::type::ARRAY:
        for (uint32_t k = 0; k < o->via.array.size; ++k) todo.push_back(&o->via.array.ptr[k]);
        break;
      case msgpack::type::MAP:
        for (uint32_t k = 0; k < o->via.map.size; ++k) {
          todo.push_back(&o->via.map.ptr[k].key);
          todo.push_back(&o->via.map.ptr[k].val);
        }
        break;
      default:
        break;
    }
  }
  return cost;
}

std::string mebibytes(std::size_t bytes) {
  return std::to_string((bytes + (std::size_t{1} << 20) - 1) >> 20) + " MiB";
}
}  // namespace

std::size_t msgpack_decoded_cost(std::string_view bytes) {
  return checked_decoded_cost(bytes);
}

BlockTooLargeError::BlockTooLargeError(std::size_t estimate, std::size_t limit)
    : BlockDecodeError(
          "decoding the block would take at least " + mebibytes(estimate) +
          " of memory (24 bytes per value plus its strings), over max-block-memory = " +
          std::to_string(limit) +
          " bytes; raise max-block-memory in the importer's config to accept it"),
      estimate_(estimate),
      limit_(limit) {}

namespace {

// Payloads are referenced where they lie in the tree's source, not copied.
bool reference_payloads(msgpack::type::object_type, std::size_t, void*) {
  return true;
}

// The tree of `source` (kept in the tree, which refers into it).
std::unique_ptr<BlockData::Tree> unpack_tree(std::string source) {
  auto tree = std::make_unique<BlockData::Tree>();
  tree->source = std::move(source);
  std::string_view bytes = tree->source;
  try {
    std::size_t offset = 0;
    msgpack::unpack_limit limits(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
                                 kMaxDepth);
    bool referenced = false;
    tree->root = msgpack::unpack(tree->zone, bytes.data(), bytes.size(), offset, referenced,
                                 reference_payloads, nullptr, limits);
    if (offset != bytes.size())
      throw BlockDecodeError("trailing bytes after the block (" +
                             std::to_string(bytes.size() - offset) + " bytes)");
  } catch (const BlockDecodeError&) {
    throw;
  } catch (const std::exception& e) {
    throw BlockDecodeError(std::string("malformed msgpack: ") + e.what());
  }
  if (tree->root.type != msgpack::type::MAP)
    throw BlockDecodeError("a block must be a msgpack map");
  return tree;
}

// The header's round ("block"."rnd") and the payset's length, read from the
// encoding as read_summary reads them from the tree (the first str key of each
// name counts; an absent one is zero). Nothing when the input is not a map.
struct MsgpackSummary {
  uint64_t round = 0;
  std::size_t txn_count = 0;
};

uint64_t read_round(MsgpackCursor& in, std::string_view bytes) {
  auto entries = map_entries(in, bytes);
  if (!entries) throw BlockDecodeError("'block' is not a map");
  std::optional<uint64_t> round;
  for (uint64_t i = 0; i < *entries; ++i) {
    auto key = read_str_key(in, bytes);
    if (round || key != "rnd") {
      skip_value(in);
      continue;
    }
    uint8_t b = in.next_byte();
    if (b <= 0x7f)
      round = b;
    else if (b >= 0xcc && b <= 0xcf)
      round = in.big_endian(std::size_t{1} << (b - 0xcc));
    else if (b >= 0xd0 && b <= 0xd3) {
      std::size_t size = std::size_t{1} << (b - 0xd0);
      uint64_t raw = in.big_endian(size);
      // msgpack reads a signed encoding of a value >= 0 as an unsigned integer.
      if (raw >> (8 * size - 1) & 1)
        throw BlockDecodeError("field 'rnd' is not an unsigned integer");
      round = raw;
    } else
      throw BlockDecodeError("field 'rnd' is not an unsigned integer");
  }
  return round.value_or(0);
}

// From where the scan found the root's "block" and "payset" values: only the
// header is read again, and the payset's array header.
std::optional<MsgpackSummary> read_summary_from(std::string_view bytes, const MsgpackScan& scan) {
  if (!scan.map) return std::nullopt;
  MsgpackSummary summary;
  if (scan.block_at != std::string_view::npos) {
    std::string_view header = bytes.substr(scan.block_at);
    MsgpackCursor in(header);
    summary.round = read_round(in, header);
  }
  if (scan.payset_at != std::string_view::npos) {
    MsgpackCursor in(bytes.substr(scan.payset_at));
    uint8_t b = in.next_byte();
    if (b == 0xc0) return summary;  // nil
    if (!is_array_header(b)) throw BlockDecodeError("'payset' is not an array");
    summary.txn_count = extent_of(b, in).children;
  }
  return summary;
}

// Nothing when in doubt (not a map, or a field read_summary would refuse):
// then the tree is built at once, and reports what is wrong as it always did.
std::optional<MsgpackSummary> summarise(std::string_view bytes, const MsgpackScan& scan) {
  try {
    return read_summary_from(bytes, scan);
  } catch (const BlockDecodeError&) {
    return std::nullopt;
  }
}

}  // namespace

BlockData BlockData::decode_msgpack(std::string_view bytes, std::size_t max_memory) {
  MsgpackScan scan = scan_msgpack(bytes);
  if (scan.cost > max_memory) throw BlockTooLargeError(scan.cost, max_memory);
  BlockData block;
  block.memory_cost_ = scan.cost;  // what the pre-pass counted: no second walk of the tree
  // The tree is built when first looked at, so that a round no one reads (a
  // pass-through file_reader -> file_writer writes the bytes it read) is
  // never decoded. Only input msgpack::unpack is sure to accept waits; for the
  // rest, unpack reports its error now.
  if (scan.end == bytes.size() && scan.depth < kMaxDepth)
    if (auto summary = summarise(bytes, scan)) {
      block.tree_.reset();
      block.undecoded_.assign(bytes);
      block.round_ = summary->round;
      block.txn_count_ = summary->txn_count;
      return block;
    }
  block.tree_ = unpack_tree(std::string(bytes));
  block.read_summary();
  return block;
}

BlockData::Tree& BlockData::built_tree() const {
  if (!tree_) {
    tree_ = unpack_tree(std::move(undecoded_));
    undecoded_.clear();
  }
  return *tree_;
}

BlockData::Tree& BlockData::tree() {
  Tree& tree = built_tree();
  encoded_.reset();
  tree.matches_source = false;
  return tree;
}

void BlockData::compact() {
  if (!tree_) return;
  bool unchanged = tree_->matches_source && !tree_->source.empty();
  undecoded_ = unchanged ? std::move(tree_->source) : encode_msgpack();
  tree_.reset();
}

const BlockData::Tree& BlockData::tree() const {
  return built_tree();
}

BlockData BlockData::empty(uint64_t round) {
  msgpack::sbuffer buffer;
  msgpack::packer packer(buffer);
  packer.pack_map(1);
  packer.pack("block");
  packer.pack_map(round ? 1 : 0);
  if (round) {
    packer.pack("rnd");
    packer.pack(round);
  }
  return decode_msgpack({buffer.data(), buffer.size()});
}

namespace {
// msgpack::pack's stream, writing straight into the string returned (no
// sbuffer to copy from), sized up front for a real block's encoding (about
// half of its decoded cost), so that it is rarely reallocated.
struct StringStream {
  std::string& out;
  void write(const char* data, std::size_t size) { out.append(data, size); }
};
}  // namespace

std::string BlockData::encode_msgpack() const {
  std::string out;
  out.reserve(memory_cost_ / 2);
  StringStream stream{out};
  msgpack::pack(stream, built_tree().root);
  return out;
}

BlockData BlockData::clone() const {
  BlockData copy;
  if (tree_)
    copy.tree_->root = msgpack::object(tree_->root, copy.tree_->zone);
  else {
    copy.tree_.reset();
    copy.undecoded_ = undecoded_;
  }
  copy.round_ = round_;
  copy.txn_count_ = txn_count_;
  copy.encoded_ = encoded_;
  copy.memory_cost_ = memory_cost_;
  return copy;
}

void BlockData::set_encoded(std::string format, std::string bytes) {
  encoded_ = std::make_shared<const Encoded>(Encoded{std::move(format), std::move(bytes)});
}

const std::string* BlockData::encoded(std::string_view format) const {
  return encoded_ && encoded_->format == format ? &encoded_->bytes : nullptr;
}

namespace {
const msgpack::object* node(const void* p) {
  return static_cast<const msgpack::object*>(p);
}
}  // namespace

FieldView::Type FieldView::type() const {
  if (!node_) return Type::absent;
  switch (node(node_)->type) {
    case msgpack::type::NIL:
      return Type::nil;
    case msgpack::type::BOOLEAN:
      return Type::boolean;
    case msgpack::type::POSITIVE_INTEGER:
      return Type::uint;
    case msgpack::type::NEGATIVE_INTEGER:
      return Type::negative_int;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return Type::floating;
    case msgpack::type::STR:
      return Type::string;
    case msgpack::type::BIN:
      return Type::bytes;
    case msgpack::type::ARRAY:
      return Type::array;
    case msgpack::type::MAP:
      return Type::map;
    default:
      return Type::other;
  }
}

FieldView FieldView::operator[](std::string_view key) const {
  return FieldView(node_ ? mp::find(*node(node_), key) : nullptr);
}

FieldView FieldView::path(std::string_view dotted) const {
  FieldView view = *this;
  while (view.present()) {
    auto dot = dotted.find('.');
    view = view[dotted.substr(0, dot)];
    if (dot == std::string_view::npos) break;
    dotted.remove_prefix(dot + 1);
  }
  return view;
}

size_t FieldView::size() const {
  if (!node_) return 0;
  const auto* o = node(node_);
  if (o->type == msgpack::type::ARRAY) return o->via.array.size;
  if (o->type == msgpack::type::MAP) return o->via.map.size;
  return 0;
}

FieldView FieldView::at(size_t index) const {
  if (!node_ || node(node_)->type != msgpack::type::ARRAY || index >= size()) return {};
  return FieldView(&node(node_)->via.array.ptr[index]);
}

std::string_view FieldView::key_at(size_t index) const {
  if (!node_ || node(node_)->type != msgpack::type::MAP || index >= size()) return {};
  const auto& key = node(node_)->via.map.ptr[index].key;
  if (key.type != msgpack::type::STR) return {};
  return {key.via.str.ptr, key.via.str.size};
}

FieldView FieldView::value_at(size_t index) const {
  if (!node_ || node(node_)->type != msgpack::type::MAP || index >= size()) return {};
  return FieldView(&node(node_)->via.map.ptr[index].val);
}

std::optional<uint64_t> FieldView::as_uint() const {
  if (!node_ || node(node_)->type != msgpack::type::POSITIVE_INTEGER) return std::nullopt;
  return node(node_)->via.u64;
}

std::optional<int64_t> FieldView::as_int() const {
  if (!node_) return std::nullopt;
  const auto* o = node(node_);
  if (o->type == msgpack::type::NEGATIVE_INTEGER) return o->via.i64;
  if (o->type == msgpack::type::POSITIVE_INTEGER && o->via.u64 <= uint64_t(INT64_MAX))
    return static_cast<int64_t>(o->via.u64);
  return std::nullopt;
}

std::optional<bool> FieldView::as_bool() const {
  if (!node_ || node(node_)->type != msgpack::type::BOOLEAN) return std::nullopt;
  return node(node_)->via.boolean;
}

std::optional<double> FieldView::as_double() const {
  if (!node_) return std::nullopt;
  const auto* o = node(node_);
  if (o->type == msgpack::type::FLOAT32 || o->type == msgpack::type::FLOAT64) return o->via.f64;
  return std::nullopt;
}

std::optional<std::string_view> FieldView::as_string() const {
  if (!node_ || node(node_)->type != msgpack::type::STR) return std::nullopt;
  return std::string_view(node(node_)->via.str.ptr, node(node_)->via.str.size);
}

std::optional<std::string_view> FieldView::as_bytes() const {
  if (!node_) return std::nullopt;
  const auto* o = node(node_);
  if (o->type == msgpack::type::BIN) return std::string_view(o->via.bin.ptr, o->via.bin.size);
  if (o->type == msgpack::type::STR) return std::string_view(o->via.str.ptr, o->via.str.size);
  return std::nullopt;
}

FieldView BlockData::root() const {
  return FieldView(&built_tree().root);
}

void BlockData::keep_payset_entries(const std::vector<size_t>& indices) {
  encoded_.reset();
  Tree& tree = built_tree();
  tree.matches_source = false;
  auto* payset = mp::find(tree.root, "payset");
  if (!payset || payset->type != msgpack::type::ARRAY) {
    if (!indices.empty()) throw std::out_of_range("the block has no payset");
    return;
  }
  auto& array = payset->via.array;
  for (size_t i = 0; i < indices.size(); ++i)
    if (indices[i] >= array.size || (i > 0 && indices[i] <= indices[i - 1]))
      throw std::out_of_range("payset indices must be ascending and in range");
  size_t kept = 0;
  // In place: indices ascend, so entry indices[i] >= i is never overwritten early.
  for (size_t index : indices) array.ptr[kept++] = array.ptr[index];
  array.size = static_cast<uint32_t>(kept);
  // Go omits an empty payset (omitempty), so an emptied one goes too.
  if (kept == 0) {
    auto& map = tree_->root.via.map;
    for (uint32_t i = 0; i < map.size; ++i)
      if (&map.ptr[i].val == payset) {
        for (uint32_t j = i + 1; j < map.size; ++j) map.ptr[j - 1] = map.ptr[j];
        --map.size;
        break;
      }
  }
  // The memory cost stays: the dropped entries stay in the block's zone.
  read_summary();
}

void BlockData::refresh() {
  read_summary();
  memory_cost_ = tree_cost(built_tree().root);
}

void BlockData::read_summary() {
  encoded_.reset();
  const auto& root = built_tree().root;
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
