// A bounded FIFO between two pipeline stages (Go Conduit uses channels).
// Helper threads may work on queued items in place (work_on_next), so that
// the consumer finds them done: the exporter's queue uses it to encode and
// compress rounds on every core while the exporter writes earlier ones.
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
    items_.push_back({std::move(item), weight});
    changed_.notify_all();
    work_.notify_one();
    return true;
  }

  // Blocks while empty (or while a helper works on the next item). Returns
  // nullopt once closed and drained, or when `stop` fires.
  std::optional<T> pop(std::stop_token stop) {
    std::unique_lock lock(mutex_);
    // A helper does not take the item the consumer is waiting for: that would
    // only make the consumer wait for the helper.
    ++consumers_waiting_;
    bool ready =
        changed_.wait(lock, stop, [&] { return front_ready() || (closed_ && items_.empty()); });
    --consumers_waiting_;
    if (!ready) return std::nullopt;
    return take_locked();
  }

  // The next item if one is queued now, without waiting for the producer; it
  // waits only for a helper that is working on that item (or for `stop`).
  std::optional<T> try_pop(std::stop_token stop = {}) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait(lock, stop, [&] { return items_.empty() || !items_.front().busy; }))
      return std::nullopt;
    return take_locked();
  }

  // Runs `work(item)` on the oldest queued item no helper has taken yet,
  // outside the lock (a deque keeps references to its items valid while others
  // are pushed and popped, and the consumer waits for a busy item). Waits for
  // one; false once the queue is closed with none left, or on `stop`. The
  // item's weight is measured again afterwards (the work may add to it). An
  // exception from `work` leaves the item to the consumer as it is.
  template <class Work>
  bool work_on_next(std::stop_token stop, Work&& work) {
    std::unique_lock lock(mutex_);
    Entry* entry = nullptr;
    auto found = [&] {
      for (auto& e : items_)
        if (!e.taken && !(&e == &items_.front() && consumers_waiting_ > 0)) {
          entry = &e;
          return true;
        }
      return closed_;
    };
    if (!work_.wait(lock, stop, found) || !entry) return false;
    entry->taken = entry->busy = true;
    lock.unlock();
    try {
      work(entry->item);
    } catch (...) {
    }
    std::size_t weight = weight_of_ ? weight_of_(entry->item) : 0;
    lock.lock();
    weight_ = weight_ - entry->weight + weight;
    entry->weight = weight;
    entry->busy = false;
    changed_.notify_all();
    return true;
  }

  // No more pushes; pops drain what is left.
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    changed_.notify_all();
    work_.notify_all();
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
  struct Entry {
    T item;
    std::size_t weight = 0;
    bool taken = false;  // by a helper (work_on_next)
    bool busy = false;   // a helper is working on it now
  };

  bool front_ready() const { return !items_.empty() && !items_.front().busy; }

  std::optional<T> take_locked() {
    if (items_.empty()) return std::nullopt;
    Entry entry = std::move(items_.front());
    items_.pop_front();
    weight_ -= entry.weight;
    changed_.notify_all();
    return std::move(entry.item);
  }

  mutable std::mutex mutex_;
  std::condition_variable_any changed_;  // producers and the consumer wait here
  std::condition_variable_any work_;     // helpers wait here: an item was pushed
  int consumers_waiting_ = 0;
  std::deque<Entry> items_;
  std::size_t capacity_;
  std::size_t max_weight_ = SIZE_MAX;
  std::function<std::size_t(const T&)> weight_of_;
  std::size_t weight_ = 0;
  bool closed_ = false;
  std::function<void(std::size_t, std::size_t, std::size_t)> on_full_;
};

}  // namespace conduit
