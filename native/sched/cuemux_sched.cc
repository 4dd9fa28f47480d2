// cuemux's real-time guard (N-API): a watchdog thread for a player's presenting thread, which runs at SCHED_FIFO.
//
// Why: a JS thread at SCHED_FIFO can wait on work that only normal-priority threads do. Measured with perf in
// bench:multi (2 vCPUs, session 13): after a full GC, V8's cppgc sweeper on two players' presenting threads reposted
// its incremental sweep task in a loop (IncrementalSweepTask::Run -> PerformSweepOnMutatorThread ->
// ScheduleIncrementalSweeping) waiting for its concurrent sweeper, a job on Node's platform workers at normal
// priority, which two real-time threads on two cores left no CPU: one second of nothing else on the machine (no
// decoding, no server), until the kernel's real-time throttling (95 % of each second) let the workers in.
//
// What it does: what rtkit's canary does for a desktop, for one thread and at a 100 ms horizon instead of the kernel's
// one second. Every 25 ms (CLOCK_MONOTONIC, absolute sleeps) the guard reads the presenting thread's CPU time
// (pthread_getcpuclockid). When the thread ran at least `busyPercent` of the last `windowMs`, it is put back to
// SCHED_OTHER (its nice value applies), so the threads it waits on run; once it wanted a CPU (/proc schedstat: time on
// one and time waiting runnable) less than half of a check's 25 ms, it sleeps between ticks again and gets its
// SCHED_FIFO priority back. Why so coarse: each check is a wake-up, and a wake-up costs on this VM. Measured in
// bench:multi (ten players on two cores, 46 s): checks every 5 ms (through /proc) took 46-50 CPU ticks per guard, the
// machine 14 % more CPU than without guards; every 10 ms (the CPU clock), 20-27 ticks per guard. A presenting thread
// uses a few per cent of a core when healthy (it sleeps until each tick), so only a loop or a long pause crosses the
// line.
//
// The guard thread itself runs at SCHED_FIFO one above the presenting thread (when allowed): it must run while that
// thread hogs a core.
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fcntl.h>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "napi-helpers.h"

#ifndef SCHED_RESET_ON_FORK
#define SCHED_RESET_ON_FORK 0x40000000
#endif

namespace {

using cuemux::monoNs;

/**
 * The thread's /proc schedstat: ns it ran on a CPU, and ns it waited runnable for one. False when unreadable (the
 * thread is gone).
 */
bool schedstat(int fd, int64_t* runNs, int64_t* waitNs) {
  char buf[96];
  const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return false;
  buf[n] = '\0';
  char* end = nullptr;
  *runNs = strtoll(buf, &end, 10);
  if (end == buf) return false;
  *waitNs = strtoll(end, nullptr, 10);
  return true;
}

struct Guard {
  pid_t tid = 0;
  clockid_t cpuClock{};  // the thread's CPU-time clock: read at every check (a vDSO-free syscall, ~1 µs)
  int statFd = -1;       // /proc/self/task/TID/schedstat: read only while the thread is put back
  int priority = 0;
  int64_t windowNs = 100000000;
  double busy = 0.9;
  int64_t checkNs = 25000000;
  std::thread thread;
  std::atomic<bool> stop{false};
  bool closed = false;
  // Written by the guard thread, read by JS.
  std::atomic<int> guardPriority{-1};
  std::atomic<uint32_t> demotions{0};
  std::atomic<int64_t> demotedNs{0};
  std::atomic<int64_t> longestDemotedNs{0};
  std::atomic<int64_t> demotedSinceNs{0};  // 0 while not demoted
  std::atomic<int> lastErrno{0};

  bool setPolicy(bool realtime) {
    sched_param sp{};
    sp.sched_priority = realtime ? priority : 0;
    if (syscall(SYS_sched_setscheduler, tid, (realtime ? SCHED_FIFO : SCHED_OTHER) | SCHED_RESET_ON_FORK, &sp) != 0) {
      lastErrno.store(errno);
      return false;
    }
    return true;
  }

  void run() {
    // Named, so that top, ps -L and the tests tell it from the presenting thread's other threads.
    pthread_setname_np(pthread_self(), "cuemux-rtguard");
    sched_param sp{};
    sp.sched_priority = priority < 99 ? priority + 1 : 99;
    guardPriority.store(pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0 ? sp.sched_priority : 0);
    const size_t slots = size_t(windowNs / checkNs) + 1;
    // Per check: the instant and the CPU time the thread used; while it is put back, also that plus its time waiting
    // runnable (its demand: a thread at normal priority on a full machine waits as much as it runs).
    std::vector<int64_t> wall(slots), cpu(slots);
    int64_t lastDemand = -1;
    int64_t lastDemandAt = 0;
    size_t n = 0;  // samples taken
    timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!stop.load(std::memory_order_relaxed)) {
      next.tv_nsec += checkNs;
      while (next.tv_nsec >= 1000000000L) {
        next.tv_nsec -= 1000000000L;
        next.tv_sec++;
      }
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
      const int64_t now = monoNs();
      timespec c;
      if (clock_gettime(cpuClock, &c) != 0) break;  // the thread is gone
      const int64_t used = int64_t(c.tv_sec) * 1000000000LL + c.tv_nsec;
      const size_t i = n % slots;
      wall[i] = now;
      cpu[i] = used;
      n++;
      const int64_t since = demotedSinceNs.load();
      if (since == 0) {
        if (n < slots) continue;
        const size_t oldest = n % slots;  // the slot written `slots - 1` samples ago
        const int64_t dw = now - wall[oldest];
        if (dw > 0 && double(used - cpu[oldest]) >= busy * double(dw) && setPolicy(false)) {
          demotedSinceNs.store(now);
          demotions.fetch_add(1);
          lastDemand = -1;
        }
      } else {
        // Back once it wanted a CPU (ran or waited for one) less than half of a check's 25 ms: it sleeps between ticks
        // again. Its share of a CPU alone would say so too early on a busy machine.
        int64_t ran = 0, waited = 0;
        if (!schedstat(statFd, &ran, &waited)) break;
        const int64_t demand = ran + waited;
        if (lastDemand >= 0 && now > lastDemandAt && double(demand - lastDemand) < 0.5 * double(now - lastDemandAt) && setPolicy(true)) {
          const int64_t d = now - since;
          demotedNs.fetch_add(d);
          if (d > longestDemotedNs.load()) longestDemotedNs.store(d);
          demotedSinceNs.store(0);
          n = 0;  // a fresh window: the time put back is not held against it
        }
        lastDemand = demand;
        lastDemandAt = now;
      }
    }
  }
};

void closeGuard(Guard* g) {
  if (g->closed) return;
  g->closed = true;
  g->stop.store(true);
  if (g->thread.joinable()) g->thread.join();
  if (g->statFd >= 0) close(g->statFd);
  g->statFd = -1;
  // A thread left at SCHED_OTHER by the guard gets its priority back: the guard's rule, not the loop's, ends here.
  if (g->demotedSinceNs.load() != 0) {
    g->setPolicy(true);
    g->demotedSinceNs.store(0);
  }
}

// new RtGuard({ priority, windowMs?, busyPercent? }): guard the calling thread, which runs at SCHED_FIFO `priority`.
napi_value New(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, nullptr));
  napi_value v;
  auto* g = new Guard();
  int32_t prio = 0;
  if (argc < 1 || !cuemux::getProp(env, argv[0], "priority", &v) || napi_get_value_int32(env, v, &prio) != napi_ok || prio < 1 || prio > 99) {
    delete g;
    napi_throw_range_error(env, nullptr, "RtGuard: priority must be a SCHED_FIFO priority, 1..99");
    return nullptr;
  }
  g->priority = prio;
  double d = 0;
  if (cuemux::getProp(env, argv[0], "windowMs", &v) && napi_get_value_double(env, v, &d) == napi_ok) {
    if (!(d >= 50 && d <= 1000)) {
      delete g;
      napi_throw_range_error(env, nullptr, "RtGuard: windowMs must be 50..1000 (two checks at least)");
      return nullptr;
    }
    g->windowNs = int64_t(d * 1e6);
  }
  if (cuemux::getProp(env, argv[0], "busyPercent", &v) && napi_get_value_double(env, v, &d) == napi_ok) {
    if (!(d >= 50 && d <= 100)) {
      delete g;
      napi_throw_range_error(env, nullptr, "RtGuard: busyPercent must be 50..100");
      return nullptr;
    }
    g->busy = d / 100;
  }
  g->tid = pid_t(syscall(SYS_gettid));
  if (pthread_getcpuclockid(pthread_self(), &g->cpuClock) != 0) {
    delete g;
    napi_throw_error(env, nullptr, "RtGuard: no CPU-time clock for this thread");
    return nullptr;
  }
  const std::string stat = "/proc/self/task/" + std::to_string(g->tid) + "/schedstat";
  g->statFd = open(stat.c_str(), O_RDONLY | O_CLOEXEC);
  if (g->statFd < 0) {
    const int e = errno;
    delete g;
    napi_throw_error(env, nullptr, ("RtGuard: cannot read " + stat + ": " + strerror(e)).c_str());
    return nullptr;
  }
  g->thread = std::thread([g] { g->run(); });
  napi_status st = napi_wrap(env, self, g, cuemux::finalizeWrapped<Guard, closeGuard>, nullptr, nullptr);
  if (st != napi_ok) {
    closeGuard(g);
    delete g;
    CHECK(st);
  }
  return self;
}

// stats(): { tid, priority, guardPriority, demotions, demotedMs, longestDemotedMs, demotedNow, error }
napi_value Stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Guard* g = cuemux::thisObject<Guard>(env, info, &argc, nullptr, "RtGuard");
  if (g == nullptr) return nullptr;
  napi_value o;
  CHECK(napi_create_object(env, &o));
  const int64_t since = g->demotedSinceNs.load();
  const int64_t now = monoNs();
  CHECK(cuemux::setNumber(env, o, "tid", g->tid));
  CHECK(cuemux::setNumber(env, o, "priority", g->priority));
  CHECK(cuemux::setNumber(env, o, "guardPriority", g->guardPriority.load()));
  CHECK(cuemux::setNumber(env, o, "demotions", g->demotions.load()));
  CHECK(cuemux::setNumber(env, o, "demotedMs", double(g->demotedNs.load() + (since != 0 ? now - since : 0)) / 1e6));
  CHECK(cuemux::setNumber(env, o, "longestDemotedMs", double(std::max(g->longestDemotedNs.load(), since != 0 ? now - since : 0)) / 1e6));
  CHECK(cuemux::setBool(env, o, "demotedNow", since != 0));
  const int e = g->lastErrno.load();
  CHECK(cuemux::setString(env, o, "error", e == 0 ? "" : std::string(strerror(e))));
  return o;
}

napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Guard* g = cuemux::thisObject<Guard>(env, info, &argc, nullptr, "RtGuard");
  if (g == nullptr) return nullptr;
  closeGuard(g);
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  CHECK(cuemux::defineClass(env, exports, "RtGuard", New, {{"stats", Stats}, {"close", Close}}));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
