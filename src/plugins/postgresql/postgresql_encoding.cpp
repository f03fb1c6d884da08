// Encoding helpers of the postgresql exporter: transaction ids and msgpack->JSON.
#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "core/algorand.hpp"
#include "core/block_msgpack.hpp"
#include "core/encoding.hpp"
#include "plugins/postgresql/postgresql.hpp"

namespace conduit::plugins::pg {

std::string sha512_256(std::string_view bytes) {
  algorand::Digest digest = algorand::sha512_256(bytes);
  return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

namespace {

std::string_view key_of(const msgpack::object_kv& kv) {
  if (kv.key.type != msgpack::type::STR) return {};
  return {kv.key.via.str.ptr, kv.key.via.str.size};
}

}  // namespace

std::string transaction_id(const msgpack::object& stib, const msgpack::object& header) {
  const msgpack::object* txn = mp::find(stib, "txn");
  if (!txn || txn->type != msgpack::type::MAP)
    throw std::runtime_error("signed transaction without a txn map");
  const msgpack::object* hgi = mp::find(stib, "hgi");
  bool has_genesis_id = hgi && hgi->type == msgpack::type::BOOLEAN && hgi->via.boolean;

  // Fields the block strips, restored as go-algorand's DecodeSignedTxn does.
  std::vector<std::pair<std::string_view, const msgpack::object*>> extra;
  const msgpack::object* gen = mp::find(header, "gen");
  if (has_genesis_id && gen && !mp::find(*txn, "gen")) extra.emplace_back("gen", gen);
  const msgpack::object* gh = mp::find(header, "gh");
  if (gh && !mp::find(*txn, "gh")) extra.emplace_back("gh", gh);

  // Re-encode the map with the restored keys in sorted position: canonical
  // msgpack (Go's codec with Canonical) sorts keys bytewise.
  std::vector<std::pair<std::string_view, const msgpack::object*>> fields;
  fields.reserve(txn->via.map.size + extra.size());
  for (uint32_t i = 0; i < txn->via.map.size; ++i)
    fields.emplace_back(key_of(txn->via.map.ptr[i]), &txn->via.map.ptr[i].val);
  fields.insert(fields.end(), extra.begin(), extra.end());
  std::stable_sort(fields.begin(), fields.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  msgpack::sbuffer buffer(512);
  buffer.write("TX", 2);
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_map(static_cast<uint32_t>(fields.size()));
  for (const auto& [key, value] : fields) {
    packer.pack_str(static_cast<uint32_t>(key.size()));
    packer.pack_str_body(key.data(), static_cast<uint32_t>(key.size()));
    packer.pack(*value);
  }
  return encoding::base32_encode(sha512_256({buffer.data(), buffer.size()}));
}

void append_json_string(std::string_view text, std::string& out) {
  encoding::append_quoted(out, text,
                          {.invalid = encoding::Quoting::Invalid::replacement,
                           .nul_as_replacement = true,
                           .escape_line_separators = false});
}

void append_json(const msgpack::object& value, std::string& out) {
  switch (value.type) {
    case msgpack::type::NIL:
      out += "null";
      break;
    case msgpack::type::BOOLEAN:
      out += value.via.boolean ? "true" : "false";
      break;
    case msgpack::type::POSITIVE_INTEGER:
      out += std::to_string(value.via.u64);
      break;
    case msgpack::type::NEGATIVE_INTEGER:
      out += std::to_string(value.via.i64);
      break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", value.via.f64);
      std::string_view text(buf);
      // JSON has no NaN or infinities.
      out += text.find_first_of("ni") == std::string_view::npos ? text : std::string_view("null");
      break;
    }
    case msgpack::type::STR:
      append_json_string({value.via.str.ptr, value.via.str.size}, out);
      break;
    case msgpack::type::BIN:
      out += '"';
      out += encoding::base64_encode({value.via.bin.ptr, value.via.bin.size});
      out += '"';
      break;
    case msgpack::type::EXT:
      out += '"';
      out += encoding::base64_encode({value.via.ext.ptr, value.via.ext.size});
      out += '"';
      break;
    case msgpack::type::ARRAY:
      out += '[';
      for (uint32_t i = 0; i < value.via.array.size; ++i) {
        if (i) out += ',';
        append_json(value.via.array.ptr[i], out);
      }
      out += ']';
      break;
    case msgpack::type::MAP:
      out += '{';
      for (uint32_t i = 0; i < value.via.map.size; ++i) {
        if (i) out += ',';
        const auto& kv = value.via.map.ptr[i];
        if (kv.key.type == msgpack::type::STR) {
          append_json_string({kv.key.via.str.ptr, kv.key.via.str.size}, out);
        } else if (kv.key.type == msgpack::type::BIN) {
          append_json_string(encoding::base64_encode({kv.key.via.bin.ptr, kv.key.via.bin.size}),
                             out);
        } else {
          // Numbers (and anything else, never seen in Algorand data) as their JSON text.
          std::string key;
          append_json(kv.key, key);
          if (key.empty() || key.front() != '"') {
            std::string quoted;
            append_json_string(key, quoted);
            key = std::move(quoted);
          }
          out += key;
        }
        out += ':';
        append_json(kv.val, out);
      }
      out += '}';
      break;
  }
}

int type_enum(std::string_view type) {
  static constexpr std::string_view kTypes[] = {"pay",  "keyreg", "acfg", "axfer",
                                                "afrz", "appl",   "stpf", "hb"};
  for (size_t i = 0; i < std::size(kTypes); ++i)
    if (kTypes[i] == type) return static_cast<int>(i) + 1;
  return 0;
}

}  // namespace conduit::plugins::pg
