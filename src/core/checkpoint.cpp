#include "core/checkpoint.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <system_error>

#include "core/fs.hpp"

namespace conduit {
namespace {

// metadata.json is a few hundred bytes; anything near this is not a checkpoint.
constexpr size_t kMaxMetadataBytes = 1 << 20;
constexpr size_t kMaxMetadataNesting = 64;

const char* const kKnownKeys[] = {"genesis-hash", "network", "next-round"};

}  // namespace

Checkpoint::Checkpoint(std::filesystem::path data_dir, bool durable)
    : path_(std::move(data_dir) / "metadata.json"), durable_(durable) {}

std::optional<Metadata> Checkpoint::load() const {
  ignored_empty_file_ = false;
  auto fail = [&](const std::string& why) {
    return CheckpointError(path_.string() + ": unreadable checkpoint: " + why);
  };
  // Only "no such file" is a first run: EACCES, EIO, ELOOP... are errors, or a
  // pipeline would start again from round 0 over data it already exported.
  // A FIFO or a device is refused without blocking on it.
  RegularFile file = open_regular_file(path_);
  if (!file) {
    if (file.open_errno == ENOENT) return std::nullopt;
    throw fail(file.error);
  }
  std::string text;
  if (int error = read_at_most(file.fd.get(), kMaxMetadataBytes, text))
    throw fail(std::strerror(error));
  if (text.size() > kMaxMetadataBytes) throw fail("larger than 1 MiB");
  // Go Conduit treats a 0-byte file (a crash of some other tool) as absent.
  if (text.empty()) {
    ignored_empty_file_ = true;
    return std::nullopt;
  }

  return parse_metadata(text, path_.string(), &extra_);
}

Metadata parse_metadata(std::string_view text, const std::string& where,
                        nlohmann::ordered_json* unknown_keys) {
  auto fail = [&](const std::string& why) {
    return CheckpointError(where + ": unreadable checkpoint: " + why);
  };
  // Unknown keys are kept and written back, and writing JSON recurses: bound
  // the nesting before parsing (a checkpoint has none to speak of).
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxMetadataNesting) throw fail("nested more than 64 levels deep");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  nlohmann::ordered_json json;
  try {
    json = nlohmann::ordered_json::parse(text);
  } catch (const std::exception& e) {
    throw fail(e.what());
  }
  if (!json.is_object()) throw fail("not a JSON object");
  Metadata m;
  auto text_field = [&](const char* key) -> std::string {
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) return "";
    if (!it->is_string()) throw fail(std::string(key) + " is not a string");
    return it->get<std::string>();
  };
  m.genesis_hash = text_field("genesis-hash");
  m.network = text_field("network");
  auto round = json.find("next-round");
  if (round == json.end()) throw fail("no next-round");
  // Only a JSON integer in [0, 2^64-1] is a round: nlohmann reads such a number
  // as unsigned; a fraction, an exponent, a negative or a larger number is not
  // one, and converting it would silently name another round.
  if (!round->is_number_unsigned())
    throw fail("next-round must be an integer in [0, 18446744073709551615], not " + round->dump());
  m.next_round = round->get<uint64_t>();
  // Keys conduit does not know (Go's telemetry-id, ...) are written back as they were.
  if (unknown_keys) {
    *unknown_keys = nlohmann::ordered_json::object();
    for (auto& [key, value] : json.items())
      if (std::find(std::begin(kKnownKeys), std::end(kKnownKeys), key) == std::end(kKnownKeys))
        (*unknown_keys)[key] = value;
  }
  return m;
}

void Checkpoint::store(const Metadata& m) {
  // Compact, one line and a newline, in Go's field order: what Go Conduit's
  // json.Encoder writes.
  nlohmann::ordered_json json;
  json["genesis-hash"] = m.genesis_hash;
  json["network"] = m.network;
  json["next-round"] = m.next_round;
  if (extra_.is_object())
    for (auto& [key, value] : extra_.items()) json[key] = value;
  try {
    replace_file_atomically(path_, json.dump() + "\n", durable_);
  } catch (const std::exception& e) {
    throw CheckpointError(path_.string() + ": " + e.what());
  }
}

}  // namespace conduit
