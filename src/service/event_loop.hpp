// The daemon's one event loop (sd-event): it owns the signals, timers, the bus
// connection and the pipeline's state changes. Nothing runs in an async signal
// handler: signals arrive through signalfd as ordinary events.
#pragma once

#include <sys/signalfd.h>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "core/fs.hpp"

typedef struct sd_event sd_event;
typedef struct sd_event_source sd_event_source;

namespace conduit::service {

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  sd_event* get() const { return event_; }

  // `signal` must already be blocked in every thread (block_signals()).
  void on_signal(int signal, std::function<void(const signalfd_siginfo&)> handler);
  // Calls `fn` on the loop thread every `period` until the loop exits.
  void every(std::chrono::microseconds period, std::function<void()> fn);
  // Thread-safe: queue `fn` to run on the loop thread.
  void post(std::function<void()> fn);

  int run();
  void exit(int code);

  struct Handler;  // a signal or timer callback (public for the C trampolines)

 private:
  sd_event* event_ = nullptr;
  std::vector<sd_event_source*> sources_;
  std::vector<std::unique_ptr<Handler>> handlers_;
  UniqueFd wake_fd_;
  std::mutex mutex_;
  std::deque<std::function<void()>> posted_;
};

// Blocks the signals conduit handles (TERM, INT, USR1, HUP) in the calling
// thread; call before any thread starts so every thread inherits the mask.
void block_signals();

}  // namespace conduit::service
