// A plugin's child process (conduit-plugin(7), THE PROCESS): started without a
// shell, its stdin, stdout and stderr pipes held by the parent, supervised
// through a pidfd, and killed if conduit dies.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/fs.hpp"

namespace conduit::plugins::external {

using Clock = std::chrono::steady_clock;
using Deadline = std::optional<Clock::time_point>;

class SpawnError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SpawnSpec {
  std::filesystem::path path;
  std::vector<std::string> args;  // after argv[0] (the path)
  std::vector<std::pair<std::string, std::string>> env;
  std::filesystem::path working_dir;  // empty: the parent's
};

// How a child ended: "exited with status 3", "killed by signal 9 (Killed)".
struct ExitStatus {
  int code = 0;    // exit status, when !signal
  int signal = 0;  // the terminating signal, or 0
  bool clean() const { return signal == 0 && code == 0; }
  std::string describe() const;
};

class Child {
 public:
  // Throws SpawnError naming the path and the reason (not executable, not an
  // executable format, ...).
  static Child spawn(const SpawnSpec& spec);

  Child() = default;
  ~Child();  // a child still running is killed (SIGKILL) and reaped
  Child(Child&&) noexcept;
  Child& operator=(Child&&) noexcept;

  pid_t pid() const { return pid_; }
  int stdin_fd() const { return stdin_.get(); }
  int stdout_fd() const { return stdout_.get(); }
  // The read end of the child's stderr; the caller takes it (a reader thread).
  UniqueFd take_stderr() { return std::move(stderr_); }
  void close_stdin() { stdin_.reset(); }

  // Sends `signal` through the pidfd (no effect once the child has exited).
  void signal(int signal);
  // Reaps the child if it has exited by `deadline` (nullopt: do not wait).
  std::optional<ExitStatus> wait_exit(Deadline deadline);
  // Waits `term_grace` after SIGTERM, then SIGKILLs; returns how it ended.
  ExitStatus terminate(std::chrono::milliseconds term_grace);
  bool running() const { return pid_ > 0 && !status_; }
  const std::optional<ExitStatus>& status() const { return status_; }

 private:
  void kill_and_reap() noexcept;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd stdin_;
  UniqueFd stdout_;
  UniqueFd stderr_;
  std::optional<ExitStatus> status_;
};

}  // namespace conduit::plugins::external
