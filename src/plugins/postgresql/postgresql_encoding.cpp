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
  out += '"';
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case 0:
          out += "\xEF\xBF\xBD";
          break;  // jsonb rejects \u0000
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // Copy a well-formed UTF-8 sequence whole; anything else becomes U+FFFD.
    size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    bool ok = len > 0 && i + len <= text.size();
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    if (ok && len == 3) {
      auto c1 = static_cast<unsigned char>(text[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // overlong, surrogates
    }
    if (ok && len == 4) {
      auto c1 = static_cast<unsigned char>(text[i + 1]);
      ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  out += '"';
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
