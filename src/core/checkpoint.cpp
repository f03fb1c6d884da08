#include "core/checkpoint.hpp"

#include <nlohmann/json.hpp>
#include <system_error>

#include "core/fs.hpp"

namespace conduit {

Checkpoint::Checkpoint(std::filesystem::path data_dir, bool durable)
    : path_(std::move(data_dir) / "metadata.json"), durable_(durable) {}

std::optional<Metadata> Checkpoint::load() const {
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) return std::nullopt;
  try {
    auto json = nlohmann::json::parse(read_file(path_));
    Metadata m;
    m.genesis_hash = json.value("genesis-hash", "");
    m.network = json.value("network", "");
    m.next_round = json.at("next-round").get<uint64_t>();
    return m;
  } catch (const std::exception& e) {
    throw CheckpointError(path_.string() + ": unreadable checkpoint: " + e.what());
  }
}

void Checkpoint::store(const Metadata& m) {
  nlohmann::ordered_json json;
  json["genesis-hash"] = m.genesis_hash;
  json["network"] = m.network;
  json["next-round"] = m.next_round;
  try {
    replace_file_atomically(path_, json.dump(2) + "\n", durable_);
  } catch (const std::exception& e) {
    throw CheckpointError(path_.string() + ": " + e.what());
  }
}

}  // namespace conduit
