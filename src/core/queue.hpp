// A bounded FIFO between two pipeline stages (Go Conduit uses channels).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>

namespace conduit {

template <class T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : capacity_(capacity ? capacity : 1) {}
  // Also bounded by the total weight of the items held (e.g. bytes): a push
  // waits while the queue is not empty and the item would pass `max_weight`.
  BoundedQueue(std::size_t capacity, std::size_t max_weight,
               std::function<std::size_t(const T&)> weight)
      : capacity_(capacity ? capacity : 1),
        max_weight_(max_weight),
        weight_of_(std::move(weight)) {}

  // Blocks while full. Returns false (item dropped) when `stop` fires first or
  // the queue was closed.
  bool push(T&& item, std::stop_token stop) {
    std::size_t weight = weight_of_ ? weight_of_(item) : 0;
    std::unique_lock lock(mutex_);
    auto admitted = [&] {
      return closed_ ||
             (items_.size() < capacity_ && (items_.empty() || weight_ + weight <= max_weight_));
    };
    if (!admitted() && on_full_) {
      // Told without the lock, so the callback may look at the queue.
      std::size_t items = items_.size(), held = weight_;
      lock.unlock();
      on_full_(items, held, weight);
      lock.lock();
    }
    if (!changed_.wait(lock, stop, admitted)) return false;
    if (closed_) return false;
    weight_ += weight;
    items_.push_back(std::move(item));
    changed_.notify_all();
    return true;
  }

  // Blocks while empty. Returns nullopt once closed and drained, or when `stop` fires.
  std::optional<T> pop(std::stop_token stop) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait(lock, stop, [&] { return closed_ || !items_.empty(); })) return std::nullopt;
    return take_locked();
  }

  // Does not block: the next item if one is queued now.
  std::optional<T> try_pop() {
    std::lock_guard lock(mutex_);
    return take_locked();
  }

  // No more pushes; pops drain what is left.
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    changed_.notify_all();
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return items_.size();
  }

  // Observability seam: called (from the pushing thread, without the lock)
  // each time a push finds the queue full and is about to wait, with the
  // items and weight held and the weight of the item waiting. Set before use.
  void on_full(std::function<void(std::size_t items, std::size_t weight, std::size_t waiting)> f) {
    on_full_ = std::move(f);
  }

 private:
  std::optional<T> take_locked() {
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    if (weight_of_) weight_ -= weight_of_(item);
    changed_.notify_all();
    return item;
  }

  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  std::deque<T> items_;
  std::size_t capacity_;
  std::size_t max_weight_ = SIZE_MAX;
  std::function<std::size_t(const T&)> weight_of_;
  std::size_t weight_ = 0;
  bool closed_ = false;
  std::function<void(std::size_t, std::size_t, std::size_t)> on_full_;
};

}  // namespace conduit
