// One running plugin process and the protocol spoken with it
// (conduit-plugin(7)): frames over its stdin/stdout, bounded and with
// deadlines; its stderr lines logged; a request in flight cancelled by a stop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/log.hpp"
#include "core/plugin.hpp"
#include "plugins/external/child.hpp"

namespace conduit::plugins::external {

constexpr int kProtocolVersion = 1;
constexpr size_t kMaxHeaderBytes = size_t{1} << 20;
constexpr uint64_t kDefaultMaxBlockBytes = uint64_t{256} << 20;
constexpr std::chrono::seconds kHelloTimeout{10};
constexpr std::chrono::seconds kCloseTimeout{10};
constexpr std::chrono::seconds kExitAfterClose{1};
constexpr std::chrono::milliseconds kCancelGrace{20};
constexpr std::chrono::milliseconds kTermGrace{20};
constexpr size_t kMaxStderrLine = 4096;
constexpr int kMaxStderrLinesPerSecond = 200;

// The child broke the protocol, died, or did not answer in time: the process
// is unusable (a retry starts a new one).
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Frame {
  nlohmann::json header;
  std::string payload;
  std::string type() const;
};

enum class BlockEncoding { json, msgpack };

// The plugin's answer to hello.
struct Hello {
  int protocol = 0;
  PluginKind kind = PluginKind::exporter;
  std::string description;
  std::string sample_config;
  BlockEncoding encoding = BlockEncoding::json;
  bool round_request = false;
  bool units = false;
  bool cancel = false;
};

struct SessionOptions {
  SpawnSpec spawn;
  std::string name;  // the plugin's name, for messages and log lines
  uint64_t max_payload = kDefaultMaxBlockBytes;
};

// Where the child's stderr lines go; the logger can be set once the pipeline
// hands one over (init), until then lines go to the fallback (stderr).
class StderrForwarder;

class Session {
 public:
  // Starts the process. Throws SpawnError.
  explicit Session(SessionOptions options);
  ~Session();  // kills a child that is still running
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Sends hello and checks the reply. Throws ProtocolError.
  Hello hello();

  struct Call {
    std::chrono::nanoseconds timeout{0};   // 0: none
    std::stop_token stop;                  // fires: cancel, then signals
    std::vector<std::string_view> expect;  // reply types that answer the request
  };
  // Sends `request` (with `payload` when non-empty or `with_payload`) and returns
  // the reply. An error reply throws PluginError; a stop throws Cancelled (the
  // process is then terminated unless it answered); a dead, silent or
  // misbehaving process throws ProtocolError.
  Frame call(const nlohmann::json& request, std::string_view payload, bool with_payload,
             const Call& how);

  // Sends close, waits for the reply and the exit, then signals. Never throws;
  // returns a note when the process did not end cleanly.
  std::string close();
  // For conformance checks: sends a frame no reply is read for (a cancel while
  // idle), and closes stdin to see the process exit by `deadline`.
  void notify(const nlohmann::json& header);
  std::optional<ExitStatus> end_input(Deadline deadline);
  // Terminates the process at once (SIGTERM, then SIGKILL).
  void terminate();
  bool usable() const { return usable_; }
  void set_logger(Logger* logger);
  const std::string& name() const { return options_.name; }

 private:
  enum class Wait { ready, woken, timed_out };
  Wait wait_for(int fd, short events, Deadline deadline, bool wakeable);
  void send(const nlohmann::json& header, std::string_view payload, bool with_payload,
            Deadline deadline, bool wakeable);
  Frame receive(Deadline deadline, bool wakeable, bool* woken);
  bool fill(Deadline deadline, bool wakeable, bool* woken);
  Frame await_after_cancel(const nlohmann::json& request, const Call& how);
  [[noreturn]] void broken(const std::string& why);
  std::string what_happened();
  Frame check_reply(Frame frame, const std::string& request_type, const Call& how);

  SessionOptions options_;
  Child child_;
  UniqueFd wake_;  // eventfd written by a stop callback
  std::shared_ptr<StderrForwarder> stderr_;
  std::jthread stderr_thread_;
  std::string buffer_;  // bytes read from stdout, not yet consumed
  size_t consumed_ = 0;
  bool usable_ = true;
};

std::string_view to_string(BlockEncoding encoding);
// A block as a block file holds it in `encoding` (conduit-plugin(7), BLOCKS),
// and back (throws BlockDecodeError).
std::string encode_block(const BlockData& block, BlockEncoding encoding);
BlockData decode_block(std::string_view bytes, BlockEncoding encoding);
// Where a plugin's messages go before the pipeline hands over its logger
// (init): standard error, which the journal reads under systemd.
Logger& fallback_logger();

}  // namespace conduit::plugins::external
