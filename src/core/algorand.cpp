#include "core/algorand.hpp"

#include <openssl/evp.h>

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

namespace conduit::algorand {

Digest sha512_256(std::string_view data) {
  Digest out{};
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha512_256(), nullptr) != 1 ||
      size != out.size())
    throw std::runtime_error("SHA-512/256 failed (OpenSSL)");
  return out;
}

std::string encode_address(std::string_view bytes32) {
  if (bytes32.size() != 32) throw std::invalid_argument("an address has 32 bytes");
  auto digest = sha512_256(bytes32);
  std::string with_checksum(bytes32);
  with_checksum.append(reinterpret_cast<const char*>(digest.data()) + 28, 4);
  return encoding::base32_encode(with_checksum);
}

std::optional<std::string> decode_address(std::string_view address) {
  if (address.size() != 58) return std::nullopt;
  std::string bytes;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : address) {
    int d;
    if (c >= 'A' && c <= 'Z')
      d = c - 'A';
    else if (c >= '2' && c <= '7')
      d = c - '2' + 26;
    else
      return std::nullopt;
    buffer = (buffer << 5) | static_cast<uint32_t>(d);
    bits += 5;
    if (bits >= 8) {
      bytes += static_cast<char>((buffer >> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  if (bytes.size() != 36) return std::nullopt;
  std::string key = bytes.substr(0, 32);
  // Canonical form only: re-encoding must give the same text (rejects set trailing bits).
  if (encode_address(key) != address) return std::nullopt;
  return key;
}

namespace {
using nlohmann::json;
using Packer = msgpack::packer<msgpack::sbuffer>;

// Field of a canonical struct: codec name plus how to pack it.
void pack_bytes(Packer& p, const std::string& bytes) {
  p.pack_bin(static_cast<uint32_t>(bytes.size()));
  p.pack_bin_body(bytes.data(), static_cast<uint32_t>(bytes.size()));
}

std::string json_string(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return {};
  if (!it->is_string()) throw GenesisError(std::string("'") + key + "' must be a string");
  return it->get<std::string>();
}

uint64_t json_uint(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return 0;
  if (!it->is_number_unsigned())
    throw GenesisError(std::string("'") + key + "' must be an unsigned integer");
  return it->get<uint64_t>();
}

// [N]byte fields are base64 in Go's JSON; all-zero arrays count as empty.
std::string json_fixed_bytes(const json& doc, const char* key, size_t size) {
  std::string text = json_string(doc, key);
  if (text.empty()) return std::string(size, '\0');
  auto bytes = encoding::base64_decode(text);
  if (!bytes || bytes->size() != size)
    throw GenesisError(std::string("'") + key + "' must be base64 of " + std::to_string(size) +
                       " bytes");
  return *bytes;
}

bool all_zero(const std::string& bytes) {
  return bytes.find_first_not_of('\0') == std::string::npos;
}

// go-algorand-sdk types.Account, omitempty, fields in codec-name order.
void pack_account(Packer& p, const json& state) {
  uint64_t algo = json_uint(state, "algo");
  uint64_t onl = json_uint(state, "onl");
  std::string sel = json_fixed_bytes(state, "sel", 32);
  std::string stprf = json_fixed_bytes(state, "stprf", 64);
  std::string vote = json_fixed_bytes(state, "vote", 32);
  uint64_t vote_kd = json_uint(state, "voteKD");
  uint64_t vote_lst = json_uint(state, "voteLst");
  uint32_t n = (algo != 0) + (onl != 0) + !all_zero(sel) + !all_zero(stprf) + !all_zero(vote) +
               (vote_kd != 0) + (vote_lst != 0);
  p.pack_map(n);
  if (algo) p.pack("algo").pack(algo);
  if (onl) p.pack("onl").pack(onl);
  if (!all_zero(sel)) p.pack("sel"), pack_bytes(p, sel);
  if (!all_zero(stprf)) p.pack("stprf"), pack_bytes(p, stprf);
  if (!all_zero(vote)) p.pack("vote"), pack_bytes(p, vote);
  if (vote_kd) p.pack("voteKD").pack(vote_kd);
  if (vote_lst) p.pack("voteLst").pack(vote_lst);
}
}  // namespace

Genesis parse_genesis(std::string_view text) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const std::exception& e) {
    throw GenesisError(std::string("genesis is not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) throw GenesisError("genesis must be a JSON object");

  Genesis genesis;
  genesis.id = json_string(doc, "id");
  genesis.network = json_string(doc, "network");
  std::string proto = json_string(doc, "proto");
  std::string rwd = json_string(doc, "rwd");
  std::string fees = json_string(doc, "fees");
  std::string comment = json_string(doc, "comment");
  int64_t timestamp = 0;
  if (auto it = doc.find("timestamp"); it != doc.end() && !it->is_null()) {
    if (!it->is_number_integer()) throw GenesisError("'timestamp' must be an integer");
    timestamp = it->get<int64_t>();
  }
  bool devmode = false;
  if (auto it = doc.find("devmode"); it != doc.end() && !it->is_null()) {
    if (!it->is_boolean()) throw GenesisError("'devmode' must be a boolean");
    devmode = it->get<bool>();
  }
  const json* alloc = nullptr;
  if (auto it = doc.find("alloc"); it != doc.end() && !it->is_null()) {
    if (!it->is_array()) throw GenesisError("'alloc' must be an array");
    alloc = &*it;
  }

  // Canonical msgpack of the Genesis struct: keys sorted, empty values omitted.
  msgpack::sbuffer buffer;
  Packer p(buffer);
  bool has_alloc = alloc && !alloc->empty();
  uint32_t n = has_alloc + !comment.empty() + devmode + !fees.empty() + !genesis.id.empty() +
               !genesis.network.empty() + !proto.empty() + !rwd.empty() + (timestamp != 0);
  p.pack_map(n);
  if (has_alloc) {
    p.pack("alloc");
    p.pack_array(static_cast<uint32_t>(alloc->size()));
    for (const auto& entry : *alloc) {
      if (!entry.is_object()) throw GenesisError("'alloc' entries must be objects");
      // GenesisAllocation has no omitempty: all three fields, always.
      p.pack_map(3);
      p.pack("addr").pack(json_string(entry, "addr"));
      p.pack("comment").pack(json_string(entry, "comment"));
      p.pack("state");
      auto state = entry.find("state");
      pack_account(p, state == entry.end() || state->is_null() ? json::object() : *state);
    }
  }
  if (!comment.empty()) p.pack("comment").pack(comment);
  if (devmode) p.pack("devmode").pack(true);
  if (!fees.empty()) p.pack("fees").pack(fees);
  if (!genesis.id.empty()) p.pack("id").pack(genesis.id);
  if (!genesis.network.empty()) p.pack("network").pack(genesis.network);
  if (!proto.empty()) p.pack("proto").pack(proto);
  if (!rwd.empty()) p.pack("rwd").pack(rwd);
  if (timestamp != 0) p.pack("timestamp").pack(timestamp);

  std::string preimage = "GE";
  preimage.append(buffer.data(), buffer.size());
  auto digest = sha512_256(preimage);
  genesis.hash = encoding::base64_encode(
      std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
  genesis.json = std::string(text);
  return genesis;
}

}  // namespace conduit::algorand
