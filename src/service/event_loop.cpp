#include "service/event_loop.hpp"

#include <sys/eventfd.h>
#include <systemd/sd-event.h>
#include <csignal>
#include <stdexcept>

namespace conduit::service {

struct EventLoop::Handler {
  std::function<void(const signalfd_siginfo&)> on_signal;
  std::function<void()> on_timer;
  std::chrono::microseconds period{0};
};

namespace {

void check(int r, const char* what) {
  if (r < 0) throw std::system_error(-r, std::generic_category(), what);
}

int signal_trampoline(sd_event_source*, const signalfd_siginfo* info, void* userdata) {
  static_cast<EventLoop::Handler*>(userdata)->on_signal(*info);
  return 0;
}

}  // namespace

EventLoop::EventLoop() {
  check(sd_event_new(&event_), "sd_event_new");
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_) throw_errno("eventfd");
  sd_event_source* source = nullptr;
  check(sd_event_add_io(
            event_, &source, wake_fd_.get(), EPOLLIN,
            [](sd_event_source*, int fd, uint32_t, void* userdata) -> int {
              uint64_t count;
              (void)!::read(fd, &count, sizeof count);
              auto* self = static_cast<EventLoop*>(userdata);
              std::deque<std::function<void()>> work;
              {
                std::lock_guard lock(self->mutex_);
                work.swap(self->posted_);
              }
              for (auto& fn : work) fn();
              return 0;
            },
            this),
        "sd_event_add_io");
  sources_.push_back(source);
}

EventLoop::~EventLoop() {
  for (auto* source : sources_) sd_event_source_disable_unref(source);
  sd_event_unref(event_);
}

void EventLoop::on_signal(int signal, std::function<void(const signalfd_siginfo&)> handler) {
  auto h = std::make_unique<Handler>();
  h->on_signal = std::move(handler);
  sd_event_source* source = nullptr;
  check(sd_event_add_signal(event_, &source, signal, signal_trampoline, h.get()),
        "sd_event_add_signal");
  sources_.push_back(source);
  handlers_.push_back(std::move(h));
}

void EventLoop::every(std::chrono::microseconds period, std::function<void()> fn) {
  auto h = std::make_unique<Handler>();
  h->on_timer = std::move(fn);
  h->period = period;
  uint64_t now = 0;
  sd_event_now(event_, CLOCK_MONOTONIC, &now);
  sd_event_source* source = nullptr;
  check(sd_event_add_time(
            event_, &source, CLOCK_MONOTONIC, now + static_cast<uint64_t>(period.count()), 0,
            [](sd_event_source* s, uint64_t usec, void* userdata) -> int {
              auto* handler = static_cast<Handler*>(userdata);
              handler->on_timer();
              sd_event_source_set_time(s, usec + static_cast<uint64_t>(handler->period.count()));
              sd_event_source_set_enabled(s, SD_EVENT_ON);
              return 0;
            },
            h.get()),
        "sd_event_add_time");
  sd_event_source_set_enabled(source, SD_EVENT_ON);
  sources_.push_back(source);
  handlers_.push_back(std::move(h));
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof one);
}

int EventLoop::run() {
  return sd_event_loop(event_);
}

void EventLoop::exit(int code) {
  sd_event_exit(event_, code);
}

void block_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGHUP}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace conduit::service
