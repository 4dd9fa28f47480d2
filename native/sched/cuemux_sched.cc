// cuemux's scheduling call (N-API): the calling thread to SCHED_FIFO or back to SCHED_OTHER, in one system call.
//
// Node has no call for sched_setscheduler; util-linux's `chrt` (a process per call, milliseconds) raises the
// presenting thread once at start (src/players/thread-priority.ts). The real-time guard (src/players/rt-guard.ts)
// moves that thread between the two while it runs, which must cost a system call, not a process.
//
// Why not a watchdog thread: a first version polled the presenting thread's CPU time from a SCHED_FIFO thread of its
// own; each poll is a wake-up, and wake-ups cost on this VM: with ten players on two cores (bench:multi, 46 s) checks
// every 5 ms took 46-50 CPU ticks per guard and the machine 14 % more CPU, every 25 ms still 10-14 ticks; in full runs
// the players had a third more audio xruns than without it, while it never had to act.
#include <node_api.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "napi-helpers.h"

#ifndef SCHED_RESET_ON_FORK
#define SCHED_RESET_ON_FORK 0x40000000
#endif

namespace {

// setScheduling(realtime: boolean, priority: number): "" when done, else why not (strerror). The calling thread only;
// SCHED_RESET_ON_FORK either way, so threads it creates start at normal scheduling.
napi_value SetScheduling(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  bool realtime = false;
  double priority = 0;
  if (argc < 2 || napi_get_value_bool(env, argv[0], &realtime) != napi_ok) {
    napi_throw_type_error(env, nullptr, "setScheduling(realtime, priority): realtime must be a boolean");
    return nullptr;
  }
  if (napi_get_value_double(env, argv[1], &priority) != napi_ok || priority != static_cast<int>(priority)
      || (realtime && (priority < 1 || priority > 99))) {
    napi_throw_range_error(env, nullptr, "setScheduling(realtime, priority): priority must be an integer, 1..99 when realtime");
    return nullptr;
  }
  sched_param sp{};
  sp.sched_priority = realtime ? static_cast<int>(priority) : 0;
  // The system call itself: the calling thread's (tid 0), and musl's sched_setscheduler() is ENOSYS by design.
  const long rc = syscall(SYS_sched_setscheduler, 0, (realtime ? SCHED_FIFO : SCHED_OTHER) | SCHED_RESET_ON_FORK, &sp);
  napi_value out;
  const std::string why = rc == 0 ? "" : std::string(strerror(errno));
  CHECK(napi_create_string_utf8(env, why.c_str(), why.size(), &out));
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(napi_create_function(env, "setScheduling", NAPI_AUTO_LENGTH, SetScheduling, nullptr, &fn));
  CHECK(napi_set_named_property(env, exports, "setScheduling", fn));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
