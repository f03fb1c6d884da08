#include "plugins/external/session.hpp"

#include "conduit_config.h"
#include "core/block_json.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

namespace conduit::plugins::external {

using namespace std::chrono_literals;

std::string_view to_string(BlockEncoding encoding) {
  return encoding == BlockEncoding::json ? "json" : "msgpack";
}

std::string encode_block(const BlockData& block, BlockEncoding encoding) {
  return encoding == BlockEncoding::msgpack ? block.encode_msgpack() : encode_block_json(block);
}

BlockData decode_block(std::string_view bytes, BlockEncoding encoding) {
  return encoding == BlockEncoding::msgpack ? BlockData::decode_msgpack(bytes)
                                            : decode_block_json(bytes);
}

Logger& fallback_logger() {
  static Logger logger(std::make_unique<StreamSink>(stderr));
  return logger;
}

std::string Frame::type() const {
  auto it = header.find("type");
  return it != header.end() && it->is_string() ? it->get<std::string>() : std::string();
}

namespace {

int poll_timeout(Deadline deadline) {
  if (!deadline) return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long>(left, 3'600'000));
}

UniqueFd make_eventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) throw SpawnError(std::string("eventfd: ") + std::strerror(errno));
  return fd;
}

void signal_eventfd(int fd) {
  uint64_t one = 1;
  (void)!::write(fd, &one, sizeof one);
}

void drain_eventfd(int fd) {
  uint64_t value;
  (void)!::read(fd, &value, sizeof value);
}

// A deadline passed while waiting for the child (fill); the caller says which.
struct TimedOut {};

std::string format_duration_ms(std::chrono::nanoseconds d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

}  // namespace

// Reads the child's stderr on a thread of its own, so that a child writing
// much to it never blocks on a full pipe while conduit waits for its reply.
// Each line is logged with the plugin's name; an sd-daemon(3) priority prefix
// "<N>" sets the level; a flood is cut to kMaxStderrLinesPerSecond.
class StderrForwarder {
 public:
  explicit StderrForwarder(std::string name) : name_(std::move(name)) {}
  void set_logger(Logger* logger) { logger_.store(logger); }

  void run(int fd, int wake, std::stop_token stop) {
    std::string line;
    char buffer[8192];
    for (;;) {
      pollfd fds[2] = {{fd, POLLIN, 0}, {wake, POLLIN, 0}};
      ::poll(fds, 2, -1);
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (stop.stop_requested()) break;
        continue;
      }
      if (n <= 0) break;
      for (ssize_t i = 0; i < n; ++i) {
        if (buffer[i] == '\n' || line.size() >= kMaxStderrLine) {
          emit(line);
          line.clear();
          if (buffer[i] == '\n') continue;
        }
        line += buffer[i];
      }
    }
    if (!line.empty()) emit(line);
    flush_suppressed();
  }

 private:
  void emit(std::string_view text) {
    auto now = Clock::now();
    if (now - window_start_ >= 1s) {
      flush_suppressed();
      window_start_ = now;
      lines_in_window_ = 0;
    }
    if (++lines_in_window_ > kMaxStderrLinesPerSecond) {
      ++suppressed_;
      return;
    }
    LogLevel level = LogLevel::info;
    if (text.size() >= 3 && text[0] == '<' && text[1] >= '0' && text[1] <= '7' && text[2] == '>') {
      int priority = text[1] - '0';
      level = priority <= 3   ? LogLevel::error
              : priority == 4 ? LogLevel::warn
              : priority <= 6 ? LogLevel::info
                              : LogLevel::debug;
      text.remove_prefix(3);
    }
    log(level, std::string(text));
  }
  void flush_suppressed() {
    if (suppressed_ == 0) return;
    log(LogLevel::warn, std::to_string(suppressed_) + " more lines of standard error suppressed");
    suppressed_ = 0;
  }
  void log(LogLevel level, const std::string& text) {
    LogFields fields;
    fields.plugin = name_;
    if (Logger* logger = logger_.load()) {
      logger->log(level, name_ + ": " + text, fields);
      return;
    }
    fallback_logger().log(level, name_ + ": " + text, fields);
  }

  std::string name_;
  std::atomic<Logger*> logger_{nullptr};
  Clock::time_point window_start_{};
  int lines_in_window_ = 0;
  uint64_t suppressed_ = 0;
};

Session::Session(SessionOptions options)
    : options_(std::move(options)), child_(Child::spawn(options_.spawn)), wake_(make_eventfd()) {
  stderr_ = std::make_shared<StderrForwarder>(options_.name);
  auto stderr_wake = std::make_shared<UniqueFd>(make_eventfd());
  stderr_thread_ = std::jthread(
      [forwarder = stderr_, fd = child_.take_stderr(), stderr_wake](std::stop_token stop) {
        std::stop_callback wake(stop, [&] { signal_eventfd(stderr_wake->get()); });
        forwarder->run(fd.get(), stderr_wake->get(), stop);
      });
}

Session::~Session() {
  if (child_.running()) {
    child_.close_stdin();
    child_.signal(SIGKILL);
    child_.wait_exit(Clock::now() + 60s);
  }
}

void Session::set_logger(Logger* logger) {
  stderr_->set_logger(logger);
}

Session::Wait Session::wait_for(int fd, short events, Deadline deadline, bool wakeable) {
  for (;;) {
    pollfd fds[2] = {{fd, events, 0}, {wake_.get(), POLLIN, 0}};
    int n = ::poll(fds, wakeable ? 2 : 1, poll_timeout(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) broken(std::string("poll: ") + std::strerror(errno));
    if (wakeable && (fds[1].revents & POLLIN)) {
      drain_eventfd(wake_.get());
      return Wait::woken;
    }
    if (fds[0].revents) return Wait::ready;
    if (deadline && Clock::now() >= *deadline) return Wait::timed_out;
  }
}

void Session::send(const nlohmann::json& header, std::string_view payload, bool with_payload,
                   Deadline deadline, bool wakeable) {
  std::string line = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  size_t total = line.size() + (with_payload ? payload.size() : 0);
  size_t written = 0;
  while (written < total) {
    iovec parts[2];
    int count = 0;
    if (written < line.size()) parts[count++] = {line.data() + written, line.size() - written};
    size_t payload_done = written > line.size() ? written - line.size() : 0;
    if (with_payload && payload_done < payload.size())
      parts[count++] = {const_cast<char*>(payload.data()) + payload_done,
                        payload.size() - payload_done};
    ssize_t n = ::writev(child_.stdin_fd(), parts, count);
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) broken(what_happened());
    switch (wait_for(child_.stdin_fd(), POLLOUT, deadline, wakeable)) {
      case Wait::ready:
        break;
      case Wait::woken:
        if (written > 0) {  // half a frame sent: the stream cannot go on
          terminate();
          usable_ = false;
        }
        throw Cancelled();
      case Wait::timed_out:
        broken("did not read its input in time");
    }
  }
}

// Reads more of stdout into the buffer. False when woken by a stop.
bool Session::fill(Deadline deadline, bool wakeable, bool* woken) {
  for (;;) {
    char chunk[65536];
    ssize_t n = ::read(child_.stdout_fd(), chunk, sizeof chunk);
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (n == 0) broken(what_happened());
    if (errno == EINTR) continue;
    if (errno != EAGAIN) broken(std::string("read: ") + std::strerror(errno));
    switch (wait_for(child_.stdout_fd(), POLLIN, deadline, wakeable)) {
      case Wait::ready:
        break;
      case Wait::woken:
        *woken = true;
        return false;
      case Wait::timed_out:
        throw TimedOut{};
    }
  }
}

Frame Session::receive(Deadline deadline, bool wakeable, bool* woken) {
  size_t newline;
  while ((newline = buffer_.find('\n', consumed_)) == std::string::npos) {
    if (buffer_.size() - consumed_ > kMaxHeaderBytes)
      broken("wrote a header line longer than " + std::to_string(kMaxHeaderBytes) + " bytes");
    if (!fill(deadline, wakeable, woken)) return {};
  }
  if (newline - consumed_ >= kMaxHeaderBytes)
    broken("wrote a header line longer than " + std::to_string(kMaxHeaderBytes) + " bytes");
  Frame frame;
  std::string_view text(buffer_.data() + consumed_, newline - consumed_);
  frame.header = nlohmann::json::parse(text, nullptr, false);
  if (frame.header.is_discarded() || !frame.header.is_object() || frame.type().empty()) {
    std::string shown(text.substr(0, 120));
    broken("wrote a line that is not a frame header: \"" + shown + "\"");
  }
  uint64_t size = 0;
  if (auto it = frame.header.find("size"); it != frame.header.end()) {
    if (!it->is_number_unsigned()) broken("wrote a frame whose size is not a non-negative integer");
    size = it->get<uint64_t>();
    if (size > options_.max_payload)
      broken("wrote a frame of " + std::to_string(size) + " bytes; max-block-bytes is " +
             std::to_string(options_.max_payload));
  }
  size_t start = newline + 1;
  while (buffer_.size() - start < size) {
    buffer_.reserve(start + size);
    if (!fill(deadline, wakeable, woken)) return {};
  }
  frame.payload.assign(buffer_, start, size);
  consumed_ = start + size;
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  } else if (consumed_ > (size_t{1} << 20)) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  return frame;
}

Hello Session::hello() {
  nlohmann::json request = {
      {"type", "hello"}, {"protocol", kProtocolVersion}, {"conduit", CONDUIT_VERSION}};
  Frame reply;
  try {
    reply = call(request, {}, false, {.timeout = kHelloTimeout, .expect = {"hello"}});
  } catch (const PluginError& e) {
    throw ProtocolError(std::string("answered hello with an error: ") + e.what());
  }
  const auto& h = reply.header;
  Hello out;
  auto protocol = h.find("protocol");
  if (protocol == h.end() || !protocol->is_number_integer())
    broken("answered hello without a protocol version");
  out.protocol = protocol->get<int>();
  if (out.protocol < 1 || out.protocol > kProtocolVersion)
    broken("speaks protocol version " + std::to_string(out.protocol) + "; conduit speaks 1 to " +
           std::to_string(kProtocolVersion));
  std::string kind = h.value("kind", "");
  if (kind == "importer")
    out.kind = PluginKind::importer;
  else if (kind == "processor")
    out.kind = PluginKind::processor;
  else if (kind == "exporter")
    out.kind = PluginKind::exporter;
  else
    broken("answered hello with kind \"" + kind + "\" (importer, processor or exporter)");
  auto text = [&](const char* key) {
    auto it = h.find(key);
    return it != h.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  out.description = text("description");
  out.sample_config = text("sample-config");
  std::string encoding = h.contains("encoding") ? text("encoding") : "json";
  if (encoding == "msgpack")
    out.encoding = BlockEncoding::msgpack;
  else if (encoding != "json")
    broken("asked for block encoding \"" + encoding + "\" (json or msgpack)");
  if (auto caps = h.find("capabilities"); caps != h.end() && caps->is_array())
    for (const auto& cap : *caps) {
      if (!cap.is_string()) continue;
      out.round_request |= cap == "round-request";
      out.units |= cap == "units";
      out.cancel |= cap == "cancel";
    }
  return out;
}

Frame Session::call(const nlohmann::json& request, std::string_view payload, bool with_payload,
                    const Call& how) {
  if (!usable_) throw ProtocolError(options_.name + ": the process is no longer usable");
  Deadline deadline;
  if (how.timeout.count() > 0) deadline = Clock::now() + how.timeout;
  drain_eventfd(wake_.get());
  std::optional<std::stop_callback<std::function<void()>>> on_stop;
  if (how.stop.stop_possible())
    on_stop.emplace(how.stop, std::function<void()>([fd = wake_.get()] { signal_eventfd(fd); }));
  if (how.stop.stop_requested()) throw Cancelled();
  std::string type = request.value("type", "");
  try {
    send(request, payload, with_payload, deadline, how.stop.stop_possible());
    bool woken = false;
    Frame reply = receive(deadline, how.stop.stop_possible(), &woken);
    if (woken) return await_after_cancel(request, how);
    return check_reply(std::move(reply), type, how);
  } catch (const TimedOut&) {
    broken("did not answer " + type + " within " + format_duration_ms(how.timeout));
  }
}

// A stop fired while a request was in flight: ask the plugin to cancel it, give
// it kCancelGrace to answer, else terminate it.
Frame Session::await_after_cancel(const nlohmann::json& request, const Call& how) {
  std::string type = request.value("type", "");
  try {
    send({{"type", "cancel"}}, {}, false, Clock::now() + kCancelGrace, false);
    bool woken = false;
    Frame reply = receive(Clock::now() + kCancelGrace, false, &woken);
    std::string answer = reply.type();
    if (answer == "cancelled" || answer == "error") throw Cancelled();
    return check_reply(std::move(reply), type, how);
  } catch (const TimedOut&) {
  } catch (const ProtocolError&) {
  }
  terminate();
  throw Cancelled();
}

Frame Session::check_reply(Frame frame, const std::string& request_type, const Call& how) {
  std::string type = frame.type();
  for (auto expected : how.expect)
    if (type == expected) return frame;
  if (type == "error") {
    std::string message = frame.header.value("message", std::string("(no message)"));
    bool retryable = true;
    if (auto it = frame.header.find("retryable"); it != frame.header.end() && it->is_boolean())
      retryable = it->get<bool>();
    throw PluginError(message, retryable);
  }
  std::string expected;
  for (auto e : how.expect) expected += (expected.empty() ? "" : " or ") + std::string(e);
  broken("answered " + request_type + " with \"" + type + "\" (expected " + expected + ")");
}

std::string Session::what_happened() {
  usable_ = false;
  if (auto status = child_.wait_exit(Clock::now() + 200ms)) return status->describe();
  return "closed its standard output";
}

void Session::broken(const std::string& why) {
  usable_ = false;
  child_.close_stdin();
  child_.signal(SIGKILL);
  child_.wait_exit(Clock::now() + 60s);
  throw ProtocolError(why);
}

void Session::notify(const nlohmann::json& header) {
  send(header, {}, false, Clock::now() + kCancelGrace, false);
}

std::optional<ExitStatus> Session::end_input(Deadline deadline) {
  usable_ = false;
  child_.close_stdin();
  return child_.wait_exit(deadline);
}

void Session::terminate() {
  usable_ = false;
  child_.close_stdin();
  child_.terminate(kTermGrace);
}

std::string Session::close() {
  std::string note;
  if (usable_) {
    try {
      call({{"type", "close"}}, {}, false, {.timeout = kCloseTimeout, .expect = {"ok"}});
    } catch (const std::exception& e) {
      note = std::string("close: ") + e.what();
    }
  }
  child_.close_stdin();
  auto status = child_.wait_exit(Clock::now() + kExitAfterClose);
  if (!status) {
    status = child_.terminate(kTermGrace);
    if (note.empty()) note = "did not exit after close; " + status->describe();
  } else if (!status->clean() && note.empty() && usable_) {
    note = "after close: " + status->describe();
  }
  usable_ = false;
  return note;
}

}  // namespace conduit::plugins::external
