#include "test_support.hpp"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <msgpack.hpp>
#include <sstream>

#include "core/block_msgpack.hpp"
#include "core/checkpoint.hpp"
#include "plugins/generator/generator.hpp"
#include "plugins/noop/noop.hpp"

namespace conduit::test {

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "conduit-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path fixtures_dir() {
  std::vector<std::filesystem::path> candidates;
  if (const char* env = std::getenv("CONDUIT_FIXTURES")) candidates.emplace_back(env);
  candidates.emplace_back("../shared/fixtures/conduit-blocks");
  for (const auto& c : candidates)
    if (std::filesystem::exists(c / "1_block.msgp.gz")) return std::filesystem::canonical(c);
  return {};
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::optional<uint64_t> checkpoint_round(const std::filesystem::path& data_dir) {
  auto m = Checkpoint(data_dir).load();
  if (!m) return std::nullopt;
  return m->next_round;
}

bool wait_for_checkpoint(const std::filesystem::path& data_dir, uint64_t round,
                         std::chrono::seconds deadline) {
  int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) return false;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  // metadata.json is replaced by a rename into the directory.
  if (::inotify_add_watch(fd, data_dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) return false;
  auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    auto now_round = checkpoint_round(data_dir);
    if (now_round && *now_round >= round) return true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char events[4096];
    while (::read(fd, events, sizeof events) > 0) {
    }
  }
}

// ---------------------------------------------------------------------------

namespace {
World* g_world = nullptr;
}

World::World() {
  g_world = this;
}
World::~World() {
  g_world = nullptr;
}
World* World::current() {
  return g_world;
}

void World::record(const Call& call, const std::string& what) {
  std::lock_guard lock(mutex_);
  events_.push_back({call, what});
}

std::vector<Event> World::events() const {
  std::lock_guard lock(mutex_);
  return events_;
}

int World::next_generation() {
  std::lock_guard lock(mutex_);
  return ++generation_;
}

int World::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

void World::block_until_cancelled(std::stop_token stop) {
  std::mutex mutex;
  std::condition_variable_any cv;
  std::unique_lock lock(mutex);
  // A deadline, so a stop that never comes fails the test instead of hanging it.
  // Judge by the token, not wait_for's result: libstdc++ 12 returns false when
  // the stop arrives between its predicate check and its own stop check.
  cv.wait_for(lock, stop, kWaitLimit, [&] { return stop.stop_requested(); });
  if (!stop.stop_requested())
    ADD_FAILURE() << "blocked " << kWaitLimit.count() << "s waiting for a cancellation";
  throw Cancelled();
}

void World::signal(const std::string& name) {
  std::lock_guard lock(mutex_);
  signals_.push_back(name);
  changed_.notify_all();
}

void World::wait(const std::string& name) {
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, kWaitLimit, [&] {
        return std::find(signals_.begin(), signals_.end(), name) != signals_.end();
      }))
    ADD_FAILURE() << "waited " << kWaitLimit.count() << "s for '" << name << "'";
}

bool World::wait_for(const std::string& name, std::stop_token stop) {
  std::unique_lock lock(mutex_);
  bool done = changed_.wait_for(lock, stop, kWaitLimit, [&] {
    return std::find(signals_.begin(), signals_.end(), name) != signals_.end();
  });
  if (!done && !stop.stop_requested())
    ADD_FAILURE() << "waited " << kWaitLimit.count() << "s for '" << name << "'";
  return done;
}

bool World::signalled(const std::string& name) const {
  std::lock_guard lock(mutex_);
  return std::find(signals_.begin(), signals_.end(), name) != signals_.end();
}

namespace {

// Common plumbing: every call goes through the world's hook.
class Scripted {
 protected:
  explicit Scripted(std::string name) : name_(std::move(name)) {}
  Call enter(const std::string& step, uint64_t round, std::stop_token stop) {
    Call call{name_, step, round, generation_};
    World* world = World::current();
    world->record(call, closed_ ? "after-close" : "enter");
    if (world->hook) world->hook(call, stop);
    return call;
  }
  void closed() {
    Call call{name_, "close", 0, generation_};
    World* world = World::current();
    if (world->close_hook) world->close_hook(call);
    world->record(call, closed_ ? "after-close" : "closed");
    closed_ = true;
  }
  uint64_t requested(std::stop_token stop) {
    World* world = World::current();
    if (!world->round_request) return 0;
    Call call{name_, "round_request", 0, generation_};
    world->record(call, "enter");
    if (world->hook) world->hook(call, stop);
    return world->round_request(name_);
  }
  std::string name_;
  int generation_ = 0;
  std::atomic<bool> closed_{false};
};

class TestImporter final : public Importer, Scripted {
 public:
  TestImporter() : Scripted("importer") { generation_ = World::current()->next_generation(); }
  void configure(PluginConfig& config) override { (void)config.get_string("label", ""); }
  uint64_t requested_round(const std::filesystem::path&, std::stop_token stop) override {
    return requested(stop);
  }
  Genesis init(const InitContext& ctx, std::stop_token stop) override {
    enter("init", ctx.next_round, stop);
    return World::current()->genesis;
  }
  BlockData get_block(uint64_t round, std::stop_token stop) override {
    auto call = enter("get", round, stop);
    World::current()->record(call, "deliver");
    return BlockData::empty(round);
  }
  void close() override { closed(); }
};

class TestProcessor final : public Processor, Scripted {
 public:
  TestProcessor() : Scripted("processor") {}
  void configure(PluginConfig& config) override {
    name_ = "processor" + std::to_string(config.get_uint("index", 0));
    generation_ = World::current()->generation();
  }
  uint64_t requested_round(const std::filesystem::path&, std::stop_token stop) override {
    return requested(stop);
  }
  void init(const InitContext& ctx, std::stop_token stop) override {
    enter("init", ctx.next_round, stop);
  }
  void process(BlockData& block, std::stop_token stop) override {
    enter("process", block.round(), stop);
  }
  void close() override { closed(); }
};

class TestExporter final : public Exporter, Scripted {
 public:
  TestExporter() : Scripted("exporter") { generation_ = World::current()->generation(); }
  void configure(PluginConfig&) override {}
  // Prepares nothing, but has the pipeline run its prepare helpers, so that
  // every pipeline test runs with them.
  bool prepares() const override { return true; }
  uint64_t requested_round(const std::filesystem::path&, std::stop_token stop) override {
    return requested(stop);
  }
  void init(const InitContext& ctx, std::stop_token stop) override {
    enter("init", ctx.next_round, stop);
  }
  void receive(const BlockData& block, std::stop_token stop) override {
    auto call = enter("receive", block.round(), stop);
    World::current()->record(call, "commit");
  }
  void close() override { closed(); }
};

}  // namespace

void pack_round_one_block_head(msgpack::packer<msgpack::sbuffer>& p, uint32_t payset_entries) {
  p.pack_map(2);
  p.pack("block");
  p.pack_map(1);
  p.pack("rnd");
  p.pack(1);
  p.pack("payset");
  p.pack_array(payset_entries);
}

std::string msgpack_block_of_zeros(uint64_t round, uint32_t values) {
  msgpack::sbuffer buffer;
  msgpack::packer packer(buffer);
  packer.pack_map(1);
  packer.pack("block");
  packer.pack_map(2);
  packer.pack("rnd");
  packer.pack(round);
  packer.pack("x");
  packer.pack_array(values);
  std::string out(buffer.data(), buffer.size());
  out.append(values, '\0');  // positive fixint 0
  return out;
}

std::string json_block_of_zeros(uint64_t round, uint32_t values) {
  std::string out = "{\"block\":{\"rnd\":" + std::to_string(round) + ",\"x\":[";
  out.reserve(out.size() + 2 * size_t{values} + 3);
  for (uint32_t i = 0; i < values; ++i) out += i ? ",0" : "0";
  return out + "]}}";
}

Registry test_registry() {
  Registry registry;
  plugins::register_noop(registry);
  plugins::register_generator(registry);
  registry.add_importer({"test_importer", "scripted test importer", "", false},
                        [] { return std::make_unique<TestImporter>(); });
  registry.add_processor({"test_processor", "scripted test processor", "", false},
                         [] { return std::make_unique<TestProcessor>(); });
  registry.add_exporter({"test_exporter", "scripted test exporter", "", false},
                        [] { return std::make_unique<TestExporter>(); });
  return registry;
}

std::string test_config(int processors, const std::string& extra_top) {
  std::string text = "retry-count = 3\n";
  if (extra_top.find("retry-delay") == std::string::npos) text += "retry-delay = \"1ms\"\n";
  text += extra_top + "\n[importer]\nname = \"test_importer\"\n";
  for (int i = 0; i < processors; ++i)
    text += "[[processors]]\nname = \"test_processor\"\n[processors.config]\nindex = " +
            std::to_string(i) + "\n";
  text += "[exporter]\nname = \"test_exporter\"\n";
  return text;
}

}  // namespace conduit::test

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <csignal>

extern char** environ;

namespace conduit::test {

Subprocess::Subprocess(std::vector<std::string> argv, std::vector<std::string> extra_env) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  for (auto& e : extra_env) env.push_back(e);
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  // The child starts with no signals blocked, whatever the test thread has.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  int r = posix_spawn(&pid_, cargv[0], &actions, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  out_fd_ = fds[0];
  if (r != 0) {
    ::close(out_fd_);
    throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(r));
  }
}

Subprocess::~Subprocess() {
  if (!status_) {
    ::kill(pid_, SIGKILL);
    wait();
  }
  if (out_fd_ >= 0) ::close(out_fd_);
}

bool Subprocess::read_more(std::chrono::steady_clock::time_point until) {
  for (;;) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd readable{out_fd_, POLLIN, 0};
    int ready = ::poll(&readable, 1, static_cast<int>(std::min<int64_t>(left.count(), 60000)));
    if (ready < 0 && errno != EINTR) return false;
    if (ready <= 0) continue;  // EINTR, or a slice of the wait without output
    char buffer[4096];
    ssize_t n;
    do {
      n = ::read(out_fd_, buffer, sizeof buffer);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    output_.append(buffer, static_cast<size_t>(n));
    return true;
  }
}

bool Subprocess::wait_for_line(const std::string& needle, std::chrono::seconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    auto pos = output_.find(needle, scanned_);
    if (pos != std::string::npos) {
      auto end = output_.find('\n', pos);
      scanned_ = end == std::string::npos ? output_.size() : end + 1;
      return true;
    }
    if (!read_more(until)) {
      if (std::chrono::steady_clock::now() >= until)
        output_ += "\n[test support: no line containing \"" + needle + "\" within " +
                   std::to_string(deadline.count()) + " s]\n";
      return false;
    }
  }
}

int Subprocess::wait(std::chrono::seconds deadline) {
  if (status_) return *status_;
  auto until = std::chrono::steady_clock::now() + deadline;
  while (read_more(until)) {
  }
  int status = 0;
  // EOF came (or the deadline passed): the child has exited, or is about to, or hangs. Its
  // pidfd becomes readable when it exits (the child is not reaped yet, so the PID is ours).
  bool exited = false;
  if (int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)); pidfd >= 0) {
    for (;;) {
      auto left =
          std::chrono::ceil<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      pollfd gone{pidfd, POLLIN, 0};
      int ready = ::poll(&gone, 1, static_cast<int>(std::clamp<int64_t>(left.count(), 0, 60000)));
      if (ready > 0) exited = true;
      if (ready > 0 || (ready == 0 && left.count() <= 0) || (ready < 0 && errno != EINTR)) break;
    }
    ::close(pidfd);
  } else {
    exited = true;  // no pidfd (old kernel): wait as before
  }
  if (!exited) {
    output_ += "\n[test support: still running after " + std::to_string(deadline.count()) +
               " s; killed]\n";
    ::kill(pid_, SIGKILL);
  }
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return *status_;
}

void Subprocess::signal(int sig) {
  ::kill(pid_, sig);
}

std::pair<int, std::string> run_command(std::vector<std::string> argv,
                                        std::vector<std::string> extra_env) {
  Subprocess p(std::move(argv), std::move(extra_env));
  int status = p.wait();
  return {status, p.output()};
}

std::string conduit_bin() {
  const char* bin = std::getenv("CONDUIT_BIN");
  return bin ? bin : "conduit";
}

}  // namespace conduit::test
