#include "plugins/external/external.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>
#include <type_traits>

#include "conduit_config.h"
#include "core/algorand.hpp"
#include "core/block_json.hpp"
#include "core/stop.hpp"

namespace conduit::plugins::external {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::vector<fs::path> search_dirs(const fs::path& data_dir, const std::vector<fs::path>& extra) {
  std::vector<fs::path> dirs;
  if (!data_dir.empty()) dirs.push_back(data_dir / "plugins");
  dirs.emplace_back(CONDUIT_PLUGIN_DIR);
  for (const auto& dir : extra) dirs.push_back(dir.is_relative() ? data_dir / dir : dir);
  return dirs;
}

std::optional<fs::path> locate(const std::string& name, const std::vector<fs::path>& dirs) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos)
    throw ConfigError("'" + name + "' is not a plugin name (a file name without '/')");
  for (const auto& dir : dirs) {
    fs::path path = dir / name;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      throw ConfigError(path.string() + ": " + std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) throw ConfigError(path.string() + ": is a directory, not a plugin");
    if (!S_ISREG(st.st_mode)) throw ConfigError(path.string() + ": not a regular file");
    if (::access(path.c_str(), X_OK) != 0)
      throw ConfigError(path.string() + ": not executable (" + std::strerror(errno) + ")");
    return path;
  }
  return std::nullopt;
}

PluginInfo query(const fs::path& path) {
  PluginInfo info{path.filename().string(), path, {}};
  try {
    Session session({.spawn = {.path = path}, .name = info.name});
    info.hello = session.hello();
    session.close();
  } catch (const std::exception& e) {
    throw ConfigError(path.string() + ": " + e.what());
  }
  return info;
}

Discovery discover(const std::vector<fs::path>& dirs) {
  Discovery found;
  std::set<std::string> seen;
  for (const auto& dir : dirs) {
    std::error_code ec;
    std::vector<fs::path> entries;
    for (const auto& entry : fs::directory_iterator(dir, ec)) entries.push_back(entry.path());
    std::sort(entries.begin(), entries.end());
    for (const auto& path : entries) {
      std::string name = path.filename().string();
      if (name.starts_with('.') || seen.count(name)) continue;
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
          ::access(path.c_str(), X_OK) != 0)
        continue;
      seen.insert(name);
      try {
        found.plugins.push_back(query(path));
      } catch (const ConfigError& e) {
        found.broken.push_back(e.what());
      }
    }
  }
  return found;
}

namespace {

using namespace std::chrono_literals;

std::string with_article(PluginKind kind) {
  return (kind == PluginKind::processor ? "a " : "an ") + std::string(to_string(kind));
}

// The protocol as the pipeline drives it: one Session at a time, started
// afresh (through hello, configure, round-request and init) after a failure.
class Host {
 public:
  explicit Host(HostSettings settings) : settings_(std::move(settings)) {
    label_ = std::string(to_string(settings_.kind)) + ":" + settings_.name;
  }

  void configure(PluginConfig& config) {
    config_json_ = json::parse(config.to_json_text());
    try {
      start(true);
    } catch (const PluginError& e) {
      config.fail("", settings_.name + " refused its configuration: " + e.what());
    } catch (const std::exception& e) {
      throw ConfigError(settings_.path.string() + ": " + e.what());
    }
  }

  const Hello& hello() const { return hello_; }

  uint64_t requested_round(const fs::path& data_dir, std::stop_token stop) {
    request_dir_ = data_dir;
    if (!hello_.round_request) return 0;
    return with_restarts(stop, [&] {
      ensure_session();
      return ask_round(stop);
    });
  }

  // init for processors and exporters; the importer's returns its genesis.
  std::optional<Genesis> init(const InitContext& ctx, std::stop_token stop) {
    init_ = ctx;
    if (ctx.genesis) genesis_json_ = genesis_document(*ctx.genesis);
    logger_ = ctx.logger;
    return with_restarts(stop, [&] {
      ensure_session();
      if (logger_) session_->set_logger(logger_);
      if (!initialised_) return send_init(ctx.next_round, stop);
      return std::optional<Genesis>();
    });
  }

  // A round call: starts a new process first if the last one failed. For an
  // exporter that keeps its own position, a round it already has is skipped.
  template <class F>
  std::invoke_result_t<F&, bool> round_call(uint64_t round, std::stop_token stop, F&& body) {
    return guarded([&] {
      if (!session_ || !session_->usable()) {
        if (restart(round, stop)) return body(true);
      }
      return body(false);
    });
  }

  // Every request goes through here: a block larger than max-block-bytes is
  // refused before it is sent (the plugin would take it as a protocol error).
  Frame call(json request, std::string_view payload, bool with_payload, std::stop_token stop,
             std::vector<std::string_view> expect, bool watched = true) {
    if (with_payload && payload.size() > settings_.max_payload)
      throw PluginError(label_ + ": " + request.value("type", std::string()) + " of round " +
                            std::to_string(request.value("round", uint64_t{0})) + " is " +
                            std::to_string(payload.size()) + " bytes; max-block-bytes is " +
                            std::to_string(settings_.max_payload),
                        false);
    return session_->call(request, payload, with_payload,
                          {.timeout = watched ? settings_.call_timeout : 0ns,
                           .stop = stop,
                           .expect = std::move(expect)});
  }

  void close() {
    if (!session_) return;
    std::string note = session_->close();
    if (!note.empty()) log_warning(label_ + ": " + note);
    session_.reset();
  }

  // Aborting a unit never throws: a process that fails here is replaced later.
  void abort_quietly() noexcept {
    try {
      if (session_ && session_->usable()) call({{"type", "abort"}}, {}, false, {}, {"ok"});
    } catch (const std::exception& e) {
      if (session_ && !session_->usable()) session_.reset();
      log_warning(label_ + ": abort: " + e.what());
    }
  }

  BlockEncoding encoding() const { return hello_.encoding; }
  const std::string& label() const { return label_; }

 private:
  // A new process through configure. Its hello must match the first one's
  // (read by other threads once configured).
  void start(bool first = false) {
    session_.emplace(SessionOptions{.spawn = {.path = settings_.path,
                                              .args = settings_.args,
                                              .env = settings_.env,
                                              .working_dir = settings_.working_dir},
                                    .name = label_,
                                    .max_payload = settings_.max_payload});
    if (logger_) session_->set_logger(logger_);
    Hello hello = session_->hello();
    if (hello.kind != settings_.kind)
      throw ProtocolError("is " + with_article(hello.kind) + ", not " +
                          with_article(settings_.kind));
    if (first)
      hello_ = hello;
    else if (hello.encoding != hello_.encoding || hello.units != hello_.units ||
             hello.round_request != hello_.round_request)
      throw ProtocolError("answered hello differently from its first process");
    initialised_ = false;
    session_->call({{"type", "configure"},
                    {"name", settings_.name},
                    {"kind", to_string(settings_.kind)},
                    {"config", config_json_},
                    {"max-block-bytes", settings_.max_payload}},
                   {}, false, {.timeout = kHelloTimeout, .expect = {"ok"}});
  }

  void ensure_session() {
    if (!session_ || !session_->usable()) start();
  }

  uint64_t ask_round(std::stop_token stop) {
    Frame reply = call({{"type", "round-request"}, {"data-dir", request_dir_.string()}}, {}, false,
                       stop, {"round"});
    auto it = reply.header.find("round");
    if (it == reply.header.end() || it->is_null()) return 0;
    if (!it->is_number_unsigned())
      throw ProtocolError("answered round-request with a round that is not a non-negative integer");
    return it->get<uint64_t>();
  }

  std::optional<Genesis> send_init(uint64_t next_round, std::stop_token stop) {
    json request = {
        {"type", "init"}, {"data-dir", init_->data_dir.string()}, {"next-round", next_round}};
    bool importer = settings_.kind == PluginKind::importer;
    if (!importer) request["size"] = genesis_json_.size();
    Frame reply =
        call(request, genesis_json_, !importer, stop, {importer ? "genesis" : "ok"}, false);
    initialised_ = true;
    if (!importer) return std::nullopt;
    try {
      return algorand::parse_genesis(reply.payload);
    } catch (const std::exception& e) {
      throw ProtocolError(std::string("answered init with a genesis that is not valid: ") +
                          e.what());
    }
  }

  // A fresh process for a retry of `round`. True when the plugin already holds
  // the round (its round request is past it): the call is then skipped.
  bool restart(uint64_t round, std::stop_token stop) {
    if (session_) session_.reset();
    start();
    uint64_t requested = 0;
    if (hello_.round_request && !request_dir_.empty()) requested = ask_round(stop);
    if (init_) send_init(round, stop);
    if (settings_.kind == PluginKind::exporter && requested > round) {
      log_info(label_ + " already holds round " + std::to_string(round) + " (it asks for round " +
               std::to_string(requested) + "); not sent again");
      return true;
    }
    return false;
  }

  // Turns what went wrong with the process into a retryable PluginError.
  template <class F>
  std::invoke_result_t<F&> guarded(F&& body) {
    try {
      return body();
    } catch (const ProtocolError& e) {
      session_.reset();  // a process that broke the protocol is not trusted again
      throw PluginError(label_ + ": " + e.what(), true);
    } catch (const SpawnError& e) {
      session_.reset();
      throw PluginError(e.what(), true);
    } catch (const Cancelled&) {
      if (session_ && !session_->usable()) session_.reset();
      throw;
    }
  }

  // guarded(body), retried as the pipeline retries round calls.
  template <class F>
  std::invoke_result_t<F&> with_restarts(std::stop_token stop, F&& body) {
    for (uint64_t failures = 1;; ++failures) {
      try {
        return guarded(body);
      } catch (const PluginError& e) {
        if (!e.retryable() || (settings_.retry_count != 0 && failures > settings_.retry_count))
          throw;
        log_warning(std::string(e.what()) + "; retry " + std::to_string(failures));
        if (!interruptible_sleep(settings_.retry_delay, stop)) throw Cancelled();
      }
    }
  }

  static std::string genesis_document(const Genesis& genesis) {
    if (!genesis.json.empty()) return genesis.json;
    return json{{"network", genesis.network}, {"id", genesis.id}}.dump();
  }

  Logger& logger() { return logger_ ? *logger_ : fallback_logger(); }
  void log_warning(const std::string& text) { logger().warn(text, {.plugin = label_}); }
  void log_info(const std::string& text) { logger().info(text, {.plugin = label_}); }

  HostSettings settings_;
  std::string label_;
  json config_json_;
  Hello hello_;
  std::optional<Session> session_;
  std::optional<InitContext> init_;
  std::string genesis_json_;
  fs::path request_dir_;
  Logger* logger_ = nullptr;
  bool initialised_ = false;
};

// The BlockData::encoded tag of a block file's bytes in `encoding`.
const char* tag_of(BlockEncoding encoding) {
  return encoding == BlockEncoding::msgpack ? "msgp" : "json";
}

// The block's bytes in `encoding`: the ones it carries (read from a file, or
// prepared) without a copy, else encoded into `storage`.
std::string_view bytes_for(const BlockData& block, BlockEncoding encoding, std::string& storage) {
  if (const std::string* bytes = block.encoded(tag_of(encoding))) return *bytes;
  storage = encode_block(block, encoding);
  return storage;
}

json block_request(const char* type, uint64_t round, size_t size) {
  return {{"type", type}, {"round", round}, {"size", size}};
}

// The block a reply carries: decoded, and of the round asked for.
BlockData reply_block(const Frame& reply, uint64_t round, BlockEncoding encoding) {
  BlockData block;
  try {
    block = decode_block(reply.payload, encoding);
  } catch (const std::exception& e) {
    throw ProtocolError("answered with a block that does not decode as " +
                        std::string(to_string(encoding)) + ": " + e.what());
  }
  if (block.round() != round)
    throw ProtocolError("answered round " + std::to_string(round) + " with a block of round " +
                        std::to_string(block.round()));
  return block;
}

// What the three kinds share: configuration, the round request and close are
// the Host's own.
template <class Interface>
class Hosted : public Interface {
 public:
  explicit Hosted(HostSettings settings) : host_(std::move(settings)) {}
  void configure(PluginConfig& config) override { host_.configure(config); }
  uint64_t requested_round(const fs::path& dir, std::stop_token stop) override {
    return host_.requested_round(dir, stop);
  }
  void close() override { host_.close(); }

 protected:
  Host host_;
};

class ExternalImporter final : public Hosted<Importer> {
 public:
  using Hosted::Hosted;
  Genesis init(const InitContext& ctx, std::stop_token stop) override {
    auto genesis = host_.init(ctx, stop);
    if (!genesis) throw PluginError(host_.label() + ": init gave no genesis", true);
    return *genesis;
  }
  BlockData get_block(uint64_t round, std::stop_token stop) override {
    return host_.round_call(round, stop, [&](bool) {
      Frame reply =
          host_.call({{"type", "get-block"}, {"round", round}}, {}, false, stop, {"block"}, false);
      return reply_block(reply, round, host_.encoding());
    });
  }
};

class ExternalProcessor final : public Hosted<Processor> {
 public:
  using Hosted::Hosted;
  void init(const InitContext& ctx, std::stop_token stop) override { host_.init(ctx, stop); }
  void process(BlockData& block, std::stop_token stop) override {
    uint64_t round = block.round();
    host_.round_call(round, stop, [&](bool) {
      std::string storage;
      std::string_view bytes = bytes_for(block, host_.encoding(), storage);
      Frame reply = host_.call(block_request("process", round, bytes.size()), bytes, true, stop,
                               {"block", "ok"});
      // Unchanged ("ok", or the same bytes): the block keeps its encodings.
      if (reply.type() == "ok" || reply.payload == bytes) return 0;
      block = reply_block(reply, round, host_.encoding());
      return 0;
    });
  }
};

class ExternalExporter final : public Hosted<Exporter> {
 public:
  using Hosted::Hosted;
  void init(const InitContext& ctx, std::stop_token stop) override { host_.init(ctx, stop); }
  void receive(const BlockData& block, std::stop_token stop) override {
    send_block("receive", block, stop);
  }
  bool supports_units() const override { return host_.hello().units; }
  // Without the units capability each round is committed alone (receive).
  void stage(const BlockData& block, std::stop_token stop) override {
    if (!host_.hello().units) {
      send_block("receive", block, stop);
      return;
    }
    if (send_block("stage", block, stop)) {
      if (!first_) first_ = block.round();
      last_ = block.round();
    }
  }
  void commit_unit(std::stop_token stop) override {
    if (!first_) return;  // every round of the unit was already held by the plugin
    host_.round_call(*first_, stop, [&](bool skipped) {
      if (!skipped)
        host_.call({{"type", "commit"}, {"first", *first_}, {"last", last_}}, {}, false, stop,
                   {"ok"});
      return 0;
    });
    first_.reset();
  }
  void abort_unit() noexcept override {
    first_.reset();
    if (host_.hello().units) host_.abort_quietly();
  }
  // Encodes on a prepare helper, overlapping the plugin's work.
  bool prepares() const override { return true; }
  void prepare(BlockData& block) const override {
    const char* tag = tag_of(host_.encoding());
    if (!block.encoded(tag)) block.set_encoded(tag, encode_block(block, host_.encoding()));
  }

 private:
  // False when the plugin already held the round (nothing was sent).
  bool send_block(const char* type, const BlockData& block, std::stop_token stop) {
    uint64_t round = block.round();
    return host_.round_call(round, stop, [&](bool skipped) {
      if (skipped) return false;
      std::string storage;
      std::string_view bytes = bytes_for(block, host_.encoding(), storage);
      host_.call(block_request(type, round, bytes.size()), bytes, true, stop, {"ok"});
      return true;
    });
  }

  std::optional<uint64_t> first_;
  uint64_t last_ = 0;
};

// Half the watchdog period, so that a plugin that hangs is restarted before
// systemd's watchdog ends the whole service.
std::chrono::nanoseconds call_timeout(const Config& config) {
  if (config.wedge_timeout.count() > 0) return config.wedge_timeout;
  if (const char* usec = std::getenv("WATCHDOG_USEC")) {
    char* end = nullptr;
    unsigned long long value = std::strtoull(usec, &end, 10);
    if (end && *end == '\0' && value > 0) return std::chrono::microseconds(value / 2);
  }
  return 0ns;
}

class Resolver final : public ExternalResolver {
 public:
  std::unique_ptr<Plugin> make(PluginKind kind, const PluginSpec& spec,
                               const Config& config) const override {
    auto path = locate(spec.name, search_dirs(config.data_dir, config.plugin_dirs));
    if (!path) return nullptr;
    HostSettings settings{.name = spec.name,
                          .kind = kind,
                          .path = *path,
                          .args = spec.args,
                          .env = spec.env,
                          .max_payload = spec.max_block_bytes.value_or(kDefaultMaxBlockBytes),
                          .working_dir = config.data_dir,
                          .call_timeout = call_timeout(config),
                          .retry_count = config.retry_count,
                          .retry_delay = config.retry_delay};
    return make_plugin(std::move(settings));
  }
  std::string searched(const Config& config) const override {
    std::string out;
    for (const auto& dir : search_dirs(config.data_dir, config.plugin_dirs))
      out += (out.empty() ? "" : ", ") + dir.string();
    return out;
  }
};

}  // namespace

std::unique_ptr<Plugin> make_plugin(HostSettings settings) {
  switch (settings.kind) {
    case PluginKind::importer:
      return std::make_unique<ExternalImporter>(std::move(settings));
    case PluginKind::processor:
      return std::make_unique<ExternalProcessor>(std::move(settings));
    case PluginKind::exporter:
      return std::make_unique<ExternalExporter>(std::move(settings));
  }
  return nullptr;
}

void register_external(Registry& registry) {
  registry.set_external(std::make_shared<Resolver>());
}

}  // namespace conduit::plugins::external
