#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>

namespace tarn {
namespace {

TEST(ThreadPoolTest, RunsEverythingBeforeShutdown) {
  std::atomic<int> n{0};
  {
    ThreadPool pool(3);
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(pool.Submit([&] { ++n; }));
  }
  EXPECT_EQ(n.load(), 1000);
}

TEST(ThreadPoolTest, RefusesAfterShutdown) {
  ThreadPool pool(1);
  pool.Shutdown();
  EXPECT_FALSE(pool.Submit([] {}));
}

}  // namespace
}  // namespace tarn
