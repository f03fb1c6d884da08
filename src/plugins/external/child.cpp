#include "plugins/external/child.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <queue>
#include <thread>

namespace conduit::plugins::external {
namespace {

// Every child is forked by this one thread, which lives as long as the process:
// PR_SET_PDEATHSIG fires when the *thread* that forked a child exits, so a
// child forked by a pipeline stage's thread would be killed when that stage
// ends, before the pipeline had closed it.
class Spawner {
 public:
  static Spawner& instance() {
    static Spawner spawner;
    return spawner;
  }
  template <class F>
  auto run(F&& work) {
    std::packaged_task<decltype(work())()> task(std::forward<F>(work));
    auto result = task.get_future();
    {
      std::lock_guard lock(mutex_);
      tasks_.emplace(std::move(task));
    }
    wake_.notify_one();
    return result.get();
  }

 private:
  Spawner() : thread_([this] { loop(); }) {}
  ~Spawner() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  void loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return done_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      auto task = std::move(tasks_.front());
      tasks_.pop();
      lock.unlock();
      task();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::queue<std::packaged_task<void()>> tasks_;
  bool done_ = false;
  std::thread thread_;
};

struct Pipe {
  UniqueFd read, write;
};
Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw SpawnError(std::string("pipe: ") + std::strerror(errno));
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// What the child needs, built before fork: after fork only async-signal-safe
// calls are allowed.
struct ExecImage {
  std::vector<std::string> strings;
  std::vector<char*> argv, envp;
  explicit ExecImage(const SpawnSpec& spec) {
    strings.push_back(spec.path.string());
    for (const auto& a : spec.args) strings.push_back(a);
    size_t argc = strings.size();
    bool has_path = false;
    for (const auto& [k, v] : spec.env) {
      strings.push_back(k + "=" + v);
      has_path = has_path || k == "PATH";
    }
    if (!has_path) strings.push_back("PATH=/usr/local/bin:/usr/bin:/bin");
    for (size_t i = 0; i < strings.size(); ++i)
      (i < argc ? argv : envp).push_back(strings[i].data());
    argv.push_back(nullptr);
    envp.push_back(nullptr);
  }
};

[[noreturn]] void exec_failed(int report, int error) {
  (void)!::write(report, &error, sizeof error);
  _exit(127);
}

[[noreturn]] void exec_child(const ExecImage& image, const char* cwd, pid_t parent, int in, int out,
                             int err, int report) {
  auto fail = [report](int error) { exec_failed(report, error); };
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(errno);
  if (::getppid() != parent) _exit(127);  // the parent died before prctl
  // A process group of its own: a terminal's Ctrl-C (or `timeout`, which
  // signals its group) reaches conduit, which then closes the plugin in order.
  ::setpgid(0, 0);
  if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) fail(errno);
  // Everything else is closed, but the report pipe (close-on-exec).
  if (report > 3) ::close_range(3, static_cast<unsigned>(report) - 1, 0);
  ::close_range(static_cast<unsigned>(report) + 1, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int s = 1; s < NSIG; ++s) ::signal(s, SIG_DFL);
  if (cwd && ::chdir(cwd) != 0) fail(errno);
  ::execve(image.argv[0], image.argv.data(), image.envp.data());
  exec_failed(report, errno);
}

}  // namespace

std::string ExitStatus::describe() const {
  if (signal)
    return "killed by signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  return "exited with status " + std::to_string(code);
}

Child Child::spawn(const SpawnSpec& spec) {
  // Writes to a child that died must fail with EPIPE, not kill conduit.
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { ::signal(SIGPIPE, SIG_IGN); });

  ExecImage image(spec);
  std::string cwd = spec.working_dir.string();
  Pipe in = make_pipe(), out = make_pipe(), err = make_pipe(), report = make_pipe();
  pid_t parent = ::getpid();
  pid_t pid = Spawner::instance().run([&] {
    pid_t child = ::fork();
    if (child == 0)
      exec_child(image, cwd.empty() ? nullptr : cwd.c_str(), parent, in.read.get(), out.write.get(),
                 err.write.get(), report.write.get());
    return child;
  });
  if (pid < 0) throw SpawnError(spec.path.string() + ": fork: " + std::strerror(errno));

  Child child;
  child.pid_ = pid;
  child.pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  report.write.reset();
  int error = 0;
  ssize_t n;
  do n = ::read(report.read.get(), &error, sizeof error);
  while (n < 0 && errno == EINTR);
  if (n == sizeof error) {
    child.wait_exit(Clock::now() + std::chrono::seconds(5));
    throw SpawnError(spec.path.string() + ": cannot execute: " + std::strerror(error));
  }
  if (!child.pidfd_) throw SpawnError(spec.path.string() + ": pidfd_open: " + std::strerror(errno));
  child.stdin_ = std::move(in.write);
  child.stdout_ = std::move(out.read);
  child.stderr_ = std::move(err.read);
  for (int fd : {child.stdin_.get(), child.stdout_.get(), child.stderr_.get()})
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return child;
}

Child::~Child() {
  kill_and_reap();
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      stdin_(std::move(other.stdin_)),
      stdout_(std::move(other.stdout_)),
      stderr_(std::move(other.stderr_)),
      status_(std::move(other.status_)) {}

Child& Child::operator=(Child&& other) noexcept {
  if (this != &other) {
    kill_and_reap();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    stdin_ = std::move(other.stdin_);
    stdout_ = std::move(other.stdout_);
    stderr_ = std::move(other.stderr_);
    status_ = std::move(other.status_);
  }
  return *this;
}

void Child::signal(int signal) {
  if (running() && pidfd_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), signal, nullptr, 0);
}

std::optional<ExitStatus> Child::wait_exit(Deadline deadline) {
  if (status_ || pid_ <= 0) return status_;
  for (;;) {
    siginfo_t info{};
    int r = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG);
    if (r == 0 && info.si_pid == pid_) {
      ExitStatus status;
      if (info.si_code == CLD_EXITED)
        status.code = info.si_status;
      else
        status.signal = info.si_status;
      status_ = status;
      return status_;
    }
    if (r != 0 && errno != EINTR) {  // not our child any more: nothing to wait for
      status_ = ExitStatus{.code = -1};
      return status_;
    }
    int timeout = 0;
    if (deadline) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      if (left <= 0) return std::nullopt;
      timeout = static_cast<int>(std::min<long>(left, 60'000));
    } else {
      return std::nullopt;
    }
    pollfd p{pidfd_.get(), POLLIN, 0};
    ::poll(&p, 1, timeout);
  }
}

ExitStatus Child::terminate(std::chrono::milliseconds term_grace) {
  if (auto s = wait_exit(std::nullopt)) return *s;
  signal(SIGTERM);
  if (auto s = wait_exit(Clock::now() + term_grace)) return *s;
  signal(SIGKILL);
  return *wait_exit(Clock::now() + std::chrono::seconds(60));
}

void Child::kill_and_reap() noexcept {
  if (pid_ <= 0 || status_) return;
  signal(SIGKILL);
  wait_exit(Clock::now() + std::chrono::seconds(60));
}

}  // namespace conduit::plugins::external
