#include "cli/plugin_check.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stop_token>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/algorand.hpp"
#include "core/block_json.hpp"
#include "core/config.hpp"
#include "core/fs.hpp"
#include "core/registry.hpp"
#include "plugins/builtin.hpp"
#include "plugins/external/session.hpp"
#include "plugins/files/block_files.hpp"

namespace conduit::cli {
namespace {

namespace fs = std::filesystem;
namespace ext = plugins::external;
using json = nlohmann::json;
using ext::Clock;
using namespace std::chrono_literals;

constexpr uint64_t kGeneratedRounds = 3;

class Report {
 public:
  void pass(const std::string& name, const std::string& detail) {
    line("PASS", name, detail);
    ++passed_;
  }
  void fail(const std::string& name, const std::string& detail) {
    line("FAIL", name, detail);
    ++failed_;
  }
  void warn(const std::string& name, const std::string& detail) {
    line("WARN", name, detail);
    ++warned_;
  }
  int finish() const {
    std::printf("%d checks passed, %d failed, %d warnings\n", passed_, failed_, warned_);
    return failed_ ? 1 : 0;
  }

 private:
  static void line(const char* tag, const std::string& name, const std::string& detail) {
    std::printf("%s %s: %s\n", tag, name.c_str(), detail.c_str());
    std::fflush(stdout);
  }
  int passed_ = 0, failed_ = 0, warned_ = 0;
};

struct Context {
  PluginCheckOptions options;
  fs::path dir;  // the child's working and data directory
  ext::Hello hello;
  json config;
  std::string genesis;
  std::vector<BlockData> blocks;
  Report report;
};

std::unique_ptr<ext::Session> start(const Context& ctx) {
  return std::make_unique<ext::Session>(
      ext::SessionOptions{.spawn = {.path = ctx.options.plugin, .working_dir = ctx.dir},
                          .name = ctx.options.plugin.filename().string()});
}

ext::Frame call(ext::Session& s, const json& request, std::string_view payload = {},
                std::vector<std::string_view> expect = {"ok"}, std::stop_token stop = {}) {
  return s.call(request, payload, !payload.empty() || request.contains("size"),
                {.timeout = 10s, .stop = stop, .expect = std::move(expect)});
}

void configure(ext::Session& s, const Context& ctx, const json& config) {
  call(s, {{"type", "configure"},
           {"name", ctx.options.plugin.filename().string()},
           {"kind", to_string(ctx.hello.kind)},
           {"config", config}});
}

bool check_hello(Context& ctx) {
  try {
    auto s = start(ctx);
    auto t0 = Clock::now();
    ctx.hello = s->hello();
    std::string detail = std::string(to_string(ctx.hello.kind)) + ", " +
                         std::string(ext::to_string(ctx.hello.encoding)) + ", in " +
                         std::to_string((Clock::now() - t0) / 1ms) + " ms";
    try {
      json sample = json::parse(toml_table_to_json(ctx.hello.sample_config, "sample-config"));
      if (ctx.options.config.empty()) ctx.config = sample;
      ctx.report.pass("hello", detail);
    } catch (const ConfigError& e) {
      ctx.report.fail("hello", std::string("sample-config is not TOML: ") + e.what());
      if (ctx.options.config.empty()) ctx.config = json::object();
    }
    std::string note = s->close();
    note.empty() ? ctx.report.pass("close-after-hello", "ok, exit status 0")
                 : ctx.report.fail("close-after-hello", note);
    return true;
  } catch (const std::exception& e) {
    ctx.report.fail("hello", e.what());
    return false;
  }
}

void check_eof(Context& ctx) {
  try {
    auto s = start(ctx);
    s->hello();
    auto status = s->end_input(Clock::now() + 1s);
    status ? ctx.report.pass("eof-after-hello", "exited: " + status->describe())
           : ctx.report.fail("eof-after-hello", "still running 1 s after stdin closed");
  } catch (const std::exception& e) {
    ctx.report.fail("eof-after-hello", e.what());
  }
}

void check_unknown_key(Context& ctx) {
  try {
    auto s = start(ctx);
    s->hello();
    json config = ctx.config;
    config["plugin-check-unknown-key"] = true;
    configure(*s, ctx, config);
    ctx.report.warn("configure-unknown-key", "accepted plugin-check-unknown-key");
    s->close();
  } catch (const PluginError& e) {
    std::string message = e.what();
    message.empty() || message == "(no message)"
        ? ctx.report.fail("configure-unknown-key", "error reply without a message")
        : ctx.report.pass("configure-unknown-key", "refused: " + message);
  } catch (const std::exception& e) {
    ctx.report.fail("configure-unknown-key", e.what());
  }
}

std::optional<uint64_t> round_request(ext::Session& s, Context& ctx, const std::string& name) {
  ext::Frame reply =
      call(s, {{"type", "round-request"}, {"data-dir", ctx.dir.string()}}, {}, {"round"});
  auto it = reply.header.find("round");
  if (it != reply.header.end() && it->is_null()) {
    ctx.report.pass(name, "null (from the start)");
    return 0;
  }
  if (it == reply.header.end() || !it->is_number_unsigned()) {
    ctx.report.fail(name, "round is not a non-negative integer or null");
    return std::nullopt;
  }
  ctx.report.pass(name, "round " + std::to_string(it->get<uint64_t>()));
  return it->get<uint64_t>();
}

void send_init(ext::Session& s, Context& ctx) {
  json request = {{"type", "init"}, {"data-dir", ctx.dir.string()}, {"next-round", 0}};
  if (ctx.hello.kind == PluginKind::importer) {
    ext::Frame reply = call(s, request, {}, {"genesis"});
    algorand::parse_genesis(reply.payload);
    ctx.report.pass("init", "genesis parses");
    return;
  }
  request["size"] = ctx.genesis.size();
  call(s, request, ctx.genesis);
  ctx.report.pass("init", "ok");
}

json round_request_for(const Context& ctx, const BlockData& block, const std::string& bytes) {
  const char* type = ctx.hello.kind == PluginKind::processor  ? "process"
                     : ctx.hello.kind == PluginKind::importer ? "get-block"
                     : ctx.hello.units                        ? "stage"
                                                              : "receive";
  if (ctx.hello.kind == PluginKind::importer) return {{"type", type}, {"round", block.round()}};
  return {{"type", type}, {"round", block.round()}, {"size", bytes.size()}};
}

BlockData generated_block(uint64_t round);

// Sends one round; the reply checked for its kind: a failure as its detail.
std::optional<std::string> send_round(ext::Session& s, const Context& ctx, const BlockData& block,
                                      std::stop_token stop = {}) {
  std::string bytes = ext::encode_block(block, ctx.hello.encoding);
  bool importer = ctx.hello.kind == PluginKind::importer;
  ext::Frame reply =
      call(s, round_request_for(ctx, block, bytes), importer ? "" : bytes, {"ok", "block"}, stop);
  if (reply.type() == "block") {
    BlockData got = ext::decode_block(reply.payload, ctx.hello.encoding);
    if (got.round() != block.round())
      return "answered with a block of round " + std::to_string(got.round());
  } else if (importer) {
    return "answered get-block with ok, not a block";
  }
  if (ctx.hello.units && ctx.hello.kind == PluginKind::exporter)
    call(s, {{"type", "commit"}, {"first", block.round()}, {"last", block.round()}});
  return std::nullopt;
}

bool check_round(ext::Session& s, Context& ctx, const BlockData& block) {
  std::string name = "round-" + std::to_string(block.round());
  try {
    auto failure = send_round(s, ctx, block);
    failure ? ctx.report.fail(name, *failure) : ctx.report.pass(name, "answered");
    return !failure;
  } catch (const PluginError& e) {
    std::string message = e.what();
    ctx.report.fail(name, "error reply: " + (message.empty() ? "(no message)" : message));
    return false;
  } catch (const ext::ProtocolError& e) {
    ctx.report.fail(name, e.what());
    return false;
  }
}

// A request cancelled right after it is sent: the reply (cancelled or the
// normal one) must come within the grace. True when the round was acknowledged.
bool check_cancel_in_flight(ext::Session& s, Context& ctx, const BlockData& block) {
  std::stop_source source;
  auto t0 = Clock::now();
  std::jthread canceller([&] {
    std::this_thread::sleep_for(200us);
    source.request_stop();
  });
  try {
    auto failure = send_round(s, ctx, block, source.get_token());
    failure ? ctx.report.fail("cancel-in-flight", *failure)
            : ctx.report.pass("cancel-in-flight", "answered before the cancel took effect");
    return !failure;
  } catch (const Cancelled&) {
    auto ms = std::to_string((Clock::now() - t0) / 1ms) + " ms";
    s.usable() ? ctx.report.pass("cancel-in-flight", "cancelled, answered in " + ms)
               : ctx.report.warn("cancel-in-flight", "no answer within 20 ms of cancel; killed");
  }
  return false;
}

BlockData generated_block(uint64_t round) {
  static std::unique_ptr<Importer> generator = [] {
    auto importer = builtin_registry().make_importer("generator");
    PluginConfig config;
    importer->configure(config);
    importer->init({.data_dir = fs::temp_directory_path()}, {});
    return importer;
  }();
  return generator->get_block(round, {});
}

void load_blocks(Context& ctx) {
  for (uint64_t r = 0; r < kGeneratedRounds; ++r) ctx.blocks.push_back(generated_block(r));
  if (ctx.options.fixtures.empty()) return;
  auto pattern = plugins::FilenamePattern::parse("%[1]d_block.msgp.gz");
  for (uint64_t r = kGeneratedRounds;; ++r) {
    fs::path file = ctx.options.fixtures / pattern.format(r);
    if (!fs::exists(file)) break;
    ctx.blocks.push_back(plugins::decode_block_file(read_file(file), pattern));
  }
}

// The rounds, with a cancel while idle before the second (it must be
// ignored) and one in flight after the last. Returns the last round acknowledged.
std::optional<uint64_t> check_rounds(ext::Session& s, Context& ctx) {
  std::optional<uint64_t> last;
  for (size_t i = 0; i < ctx.blocks.size() && s.usable(); ++i) {
    if (i == 1) s.notify({{"type", "cancel"}});
    if (!check_round(s, ctx, ctx.blocks[i])) break;
    if (i == 1) ctx.report.pass("cancel-idle", "ignored; the next request was answered");
    last = ctx.blocks[i].round();
  }
  if (!last || !s.usable()) return last;
  if (check_cancel_in_flight(s, ctx, generated_block(*last + 1))) last = *last + 1;
  return last;
}

// The lifecycle on one process: configure, round-request, init, the rounds,
// cancel, close. Returns the last round the plugin acknowledged.
std::optional<uint64_t> check_lifecycle(Context& ctx) {
  auto s = start(ctx);
  std::optional<uint64_t> last;
  std::string step = "configure";  // the check a failure is reported under
  try {
    s->hello();
    configure(*s, ctx, ctx.config);
    ctx.report.pass("configure", "ok");
    step = "round-request";
    if (ctx.hello.round_request) round_request(*s, ctx, step);
    step = "init";
    send_init(*s, ctx);
    step = "rounds";
    last = check_rounds(*s, ctx);
    if (!s->usable()) return last;
    step = "close";
    std::string note = s->close();
    note.empty() ? ctx.report.pass("close", "ok, exit status 0") : ctx.report.fail("close", note);
  } catch (const std::exception& e) {
    ctx.report.fail(step, e.what());
  }
  return last;
}

void check_restart(Context& ctx, uint64_t last) {
  try {
    auto s = start(ctx);
    s->hello();
    configure(*s, ctx, ctx.config);
    auto round = round_request(*s, ctx, "round-request-after-restart");
    if (round && *round != last + 1)
      ctx.report.fail("exactly-once", "asks for round " + std::to_string(*round) + ", expected " +
                                          std::to_string(last + 1));
    s->close();
  } catch (const std::exception& e) {
    ctx.report.fail("round-request-after-restart", e.what());
  }
}

bool prepare(Context& ctx) {
  try {
    if (::access(ctx.options.plugin.c_str(), X_OK) != 0 || fs::is_directory(ctx.options.plugin))
      throw std::runtime_error(ctx.options.plugin.string() + ": not an executable file");
    if (!ctx.options.config.empty())
      ctx.config = json::parse(toml_table_to_json(read_file(ctx.options.config, kMaxConfigBytes),
                                                  ctx.options.config.string()));
    ctx.genesis = ctx.options.fixtures.empty()
                      ? json{{"network", "plugin-check"}, {"id", "v1"}}.dump()
                      : read_file(ctx.options.fixtures / "genesis.json");
    load_blocks(ctx);
    std::string templ = (fs::temp_directory_path() / "conduit-plugin-check-XXXXXX").string();
    if (!::mkdtemp(templ.data())) throw std::runtime_error("cannot create a temporary directory");
    ctx.dir = templ;
    return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conduit plugin-check: %s\n", e.what());
    return false;
  }
}

}  // namespace

int cmd_plugin_check(const PluginCheckOptions& options) {
  Context ctx{.options = options};
  if (!prepare(ctx)) return 2;
  if (check_hello(ctx)) {
    check_eof(ctx);
    check_unknown_key(ctx);
    auto last = check_lifecycle(ctx);
    if (last && ctx.hello.round_request && ctx.hello.kind == PluginKind::exporter)
      check_restart(ctx, *last);
  }
  if (options.keep)
    std::printf("kept %s\n", ctx.dir.c_str());
  else
    fs::remove_all(ctx.dir);
  return ctx.report.finish();
}

}  // namespace conduit::cli
