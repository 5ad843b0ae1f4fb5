// A fixed-size pool of worker threads running queued tasks in FIFO order.
// Thread-safe: Submit may be called from any thread, including from a task.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tarn {

class ThreadPool {
 public:
  // `threads` = 0 means one per hardware core.
  explicit ThreadPool(size_t threads = 0, std::string name = "pool");
  ~ThreadPool();  // Runs the tasks already queued, then joins.
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `task`; returns false (and drops it) once Shutdown() has begun.
  bool Submit(std::function<void()> task);
  // Stops accepting tasks, finishes queued ones and joins the workers. Idempotent.
  void Shutdown();
  size_t size() const { return workers_.size(); }
  size_t queued() const;

 private:
  void Run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> workers_;
  std::string name_;
};

}  // namespace tarn
