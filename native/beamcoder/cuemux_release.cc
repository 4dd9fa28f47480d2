/*
  cuemux additions to beamcoder 0.7.1 (GPL-3.0-or-later, as beamcoder): JavaScript Buffers that FFmpeg releases off
  their JavaScript thread. Copied into node_modules/beamcoder/src and compiled by scripts/patch-beamcoder.js, which
  makes packet.cc's packetBufferFree and frame.cc's frameBufferFree call cuemuxDeleteRef().

  The defect: setting `packet.data` or `frame.data` from JavaScript wraps each Buffer in an AVBufferRef whose free
  callback deletes a napi_ref to the Buffer. FFmpeg calls that callback on whichever thread drops the last reference:
  a libuv thread-pool thread when beamcoder's async work (mux, decode, encode) does, or one of FFmpeg's own frame
  threads. Node-API may only be called on the environment's JavaScript thread: off it, napi_delete_reference unlinks
  the reference from the environment's list and resets a V8 handle while the JavaScript thread uses both. Measured
  with gdb on packetBufferFree: 10 releases on pool threads while a server previewed a 1,439-packet file through
  av_interleaved_write_frame; 274 of 274 (every packet) in test/native-release.test.ts, which collects each packet
  object before the muxer's interleaving queue lets go. A server crashed once in `malloc_consolidate(): unaligned
  fastbin chunk detected` and once with SIGSEGV in node_napi_env__::DeleteMe at exit, walking that list.

  The fix: every environment the addon is initialised in (the main thread, each worker_thread that loads it) is
  registered with its JavaScript thread and a thread-safe function. cuemuxDeleteRef() deletes on that thread at once;
  from any other thread it queues the reference to the thread-safe function, whose call_js deletes it on the
  JavaScript thread. The thread-safe function is unreferenced (it never keeps a process or worker alive) and released
  by the environment's cleanup hook, which unregisters it first: a reference released after that (or still queued when
  the queue is torn down, call_js with no env) is left undeleted, since the environment is going away (it frees or
  leaks the rest of its references itself) and touching it would race that teardown.

  cuemuxReleaseStats() -> { deferred, dropped }: references deleted through the queue, and references left undeleted,
  since the addon was loaded, over every environment of the process.
*/
#include <node_api.h>
#include <pthread.h>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>

namespace {

struct EnvEntry {
  pthread_t thread;               // the environment's JavaScript thread (the one Init ran on)
  napi_threadsafe_function tsfn;  // queues references to that thread
};

std::mutex registryLock;
// Never destroyed: FFmpeg may release a buffer during static destruction at exit (a pool or frame thread).
std::map<napi_env, EnvEntry>* const registry = new std::map<napi_env, EnvEntry>();
std::atomic<uint64_t> deferredCount(0);
std::atomic<uint64_t> droppedCount(0);

/** On the JavaScript thread: delete a reference queued from another thread; env is null when the queue is torn down. */
void deleteQueued(napi_env env, napi_value /*jsCallback*/, void* /*context*/, void* data) {
  if (env == nullptr) {
    droppedCount++;
    return;
  }
  if (napi_delete_reference(env, (napi_ref) data) != napi_ok) {
    fprintf(stderr, "cuemux: failed to delete a buffer reference released off its JavaScript thread.\n");
  }
}

/** Environment cleanup hook: from now on this environment's references are not touched from here. */
void unregisterEnv(void* arg) {
  napi_env env = (napi_env) arg;
  std::lock_guard<std::mutex> lock(registryLock);
  auto it = registry->find(env);
  if (it == registry->end()) return;
  napi_threadsafe_function tsfn = it->second.tsfn;
  registry->erase(it);
  // Under the lock, so no other thread is between finding the entry and queuing to it.
  napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
}

napi_value releaseStats(napi_env env, napi_callback_info /*info*/) {
  napi_value result, value;
  if (napi_create_object(env, &result) != napi_ok) return nullptr;
  if (napi_create_double(env, (double) deferredCount.load(), &value) != napi_ok) return nullptr;
  if (napi_set_named_property(env, result, "deferred", value) != napi_ok) return nullptr;
  if (napi_create_double(env, (double) droppedCount.load(), &value) != napi_ok) return nullptr;
  if (napi_set_named_property(env, result, "dropped", value) != napi_ok) return nullptr;
  return result;
}

bool fail(napi_env env, const char* message) {
  napi_throw_error(env, nullptr, message);
  return false;
}

}  // namespace

/**
 * Delete `ref` (a reference of environment `env`) now on env's JavaScript thread, or queue it to that thread from any
 * other. Safe from any thread, at any time; FFmpeg's AVBuffer free callbacks call it.
 */
void cuemuxDeleteRef(napi_env env, napi_ref ref) {
  {
    std::lock_guard<std::mutex> lock(registryLock);
    auto it = registry->find(env);
    if (it == registry->end()) {
      droppedCount++;
      return;
    }
    if (!pthread_equal(it->second.thread, pthread_self())) {
      if (napi_call_threadsafe_function(it->second.tsfn, ref, napi_tsfn_nonblocking) == napi_ok) {
        deferredCount++;
      } else {
        droppedCount++;  // napi_closing: the environment is being torn down
      }
      return;
    }
  }
  // On the environment's own thread, which is also the one its cleanup hook runs on: still registered.
  if (napi_delete_reference(env, ref) != napi_ok) {
    fprintf(stderr, "cuemux: failed to delete a buffer reference associated with an AVBufferRef.\n");
  }
}

/**
 * Register `env` (its JavaScript thread: the calling one) and export cuemuxReleaseStats. Called from beamcoder's Init,
 * once per environment; false with an exception pending when the environment cannot be registered.
 */
bool cuemuxReleaseInit(napi_env env, napi_value exports) {
  napi_value fn, name;
  if (napi_create_function(env, "cuemuxReleaseStats", NAPI_AUTO_LENGTH, releaseStats, nullptr, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "cuemuxReleaseStats", fn) != napi_ok) {
    return fail(env, "cuemux: cannot export cuemuxReleaseStats");
  }
  {
    std::lock_guard<std::mutex> lock(registryLock);
    if (registry->count(env) != 0) return true;  // loaded again in the same environment
  }
  napi_threadsafe_function tsfn;
  if (napi_create_string_utf8(env, "cuemuxDeleteRef", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr, deleteQueued, &tsfn) != napi_ok) {
    return fail(env, "cuemux: cannot create the thread-safe function that deletes buffer references");
  }
  if (napi_unref_threadsafe_function(env, tsfn) != napi_ok) {
    napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
    return fail(env, "cuemux: cannot unreference the thread-safe function that deletes buffer references");
  }
  {
    std::lock_guard<std::mutex> lock(registryLock);
    (*registry)[env] = EnvEntry{pthread_self(), tsfn};
  }
  // Added after the thread-safe function exists: Node runs cleanup hooks last-added first, so this one runs before
  // the thread-safe function's own (which closes it) and before the environment's final teardown (which runs the
  // finalizers of objects still alive, av_packet_free and all).
  if (napi_add_env_cleanup_hook(env, unregisterEnv, env) != napi_ok) {
    unregisterEnv(env);
    return fail(env, "cuemux: cannot add the environment cleanup hook for buffer references");
  }
  return true;
}
