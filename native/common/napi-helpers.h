// N-API helpers shared by cuemux's addons (native/jack, native/sdl, native/alsa): the error-checking macro, option and
// result properties, CLOCK_MONOTONIC, and a waker that calls a JS function on the loop from a real-time thread.
// Header-only (each addon is one translation unit); everything is `inline` in namespace cuemux.
#pragma once

#include <node_api.h>
#include <uv.h>

#include <cstdint>
#include <ctime>
#include <initializer_list>
#include <string>
#include <vector>

// Return nullptr from an N-API callback when `call` fails, with a pending JS exception saying why (N-API's own
// message unless the call left one pending).
#define CHECK(call)                                                      \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      const napi_extended_error_info* info_ = nullptr;                   \
      napi_get_last_error_info(env, &info_);                             \
      bool pending_ = false;                                             \
      napi_is_exception_pending(env, &pending_);                         \
      if (!pending_)                                                     \
        napi_throw_error(env, nullptr, info_ && info_->error_message ? info_->error_message : "N-API call failed"); \
      return nullptr;                                                    \
    }                                                                    \
  } while (0)

namespace cuemux {

/** CLOCK_MONOTONIC now, ns (the clock process.hrtime.bigint() reads). */
inline int64_t monoNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t(t.tv_sec) * 1000000000LL + t.tv_nsec;
}

/** obj[name] when present and neither undefined nor null. */
inline bool getProp(napi_env env, napi_value obj, const char* name, napi_value* out) {
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return false;
  if (napi_get_named_property(env, obj, name, out) != napi_ok) return false;
  napi_valuetype t;
  napi_typeof(env, *out, &t);
  return t != napi_undefined && t != napi_null;
}

/** A JS string as UTF-8 ("" when it is not a string). */
inline std::string toString(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return "";
  std::string s(len, '\0');
  napi_get_value_string_utf8(env, v, &s[0], len + 1, &len);
  return s;
}

inline napi_status setNumber(napi_env env, napi_value o, const char* name, double x) {
  napi_value v;
  napi_status st = napi_create_double(env, x, &v);
  return st != napi_ok ? st : napi_set_named_property(env, o, name, v);
}

inline napi_status setString(napi_env env, napi_value o, const char* name, const std::string& s) {
  napi_value v;
  napi_status st = napi_create_string_utf8(env, s.c_str(), s.size(), &v);
  return st != napi_ok ? st : napi_set_named_property(env, o, name, v);
}

inline napi_status setBool(napi_env env, napi_value o, const char* name, bool b) {
  napi_value v;
  napi_status st = napi_get_boolean(env, b, &v);
  return st != napi_ok ? st : napi_set_named_property(env, o, name, v);
}

/** A method of a class: its JS name and its callback. */
struct Method {
  const char* name;
  napi_callback fn;
};

/** Define class `name` (constructor `ctor`, `methods` on its prototype) as exports[name]. */
inline napi_status defineClass(napi_env env, napi_value exports, const char* name, napi_callback ctor, std::initializer_list<Method> methods) {
  std::vector<napi_property_descriptor> props;
  for (const Method& m : methods) props.push_back({m.name, nullptr, m.fn, nullptr, nullptr, nullptr, napi_default, nullptr});
  napi_value cls;
  napi_status st = napi_define_class(env, name, NAPI_AUTO_LENGTH, ctor, nullptr, props.size(), props.data(), &cls);
  return st != napi_ok ? st : napi_set_named_property(env, exports, name, cls);
}

/**
 * The native object `this` wraps, and the call's arguments (at most *argc, into argv); nullptr with a pending JS
 * error ("not a CLASS_NAME") when `this` wraps none.
 */
template <class T>
T* thisObject(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv, const char* className) {
  napi_value self;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, argc, argv, &self, nullptr) != napi_ok || napi_unwrap(env, self, &data) != napi_ok) {
    napi_throw_error(env, nullptr, (std::string("not a ") + className).c_str());
    return nullptr;
  }
  return static_cast<T*>(data);
}

/** As thisObject, but also nullptr with an ERR_CLOSED error (`closedMessage`) once the object's `closed` is set. */
template <class T>
T* openObject(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv, const char* className, const char* closedMessage) {
  T* obj = thisObject<T>(env, info, argc, argv, className);
  if (obj != nullptr && obj->closed) {
    napi_throw_error(env, "ERR_CLOSED", closedMessage);
    return nullptr;
  }
  return obj;
}

/** napi_wrap's finalizer for a T: close(obj), then delete it (the JS object was collected). */
template <class T, void (*Close)(T*)>
void finalizeWrapped(napi_env, void* data, void*) {
  T* obj = static_cast<T*>(data);
  Close(obj);
  delete obj;
}

/** A Float64Array of `count` records of `fields` numbers, row i filled by fill(i, row); nullptr (a pending JS error) when N-API fails. */
template <class Fill>
napi_value float64Records(napi_env env, size_t count, size_t fields, Fill fill) {
  napi_value ab, arr;
  void* raw;
  CHECK(napi_create_arraybuffer(env, count * fields * sizeof(double), &raw, &ab));
  double* out = static_cast<double*>(raw);
  for (size_t i = 0; i < count; i++) fill(i, out + i * fields);
  CHECK(napi_create_typedarray(env, napi_float64_array, count * fields, ab, 0, &arr));
  return arr;
}

/** The smallest power of two >= n (ring sizes: an index is masked, never divided). */
inline int64_t pow2AtLeast(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

/**
 * Calls a JS function on the loop's thread after a device thread's notify() (uv_async_send: async-signal safe, no
 * lock, no allocation; several notifies before the loop runs make one call). The handle is unref'd: a device does
 * not keep the process alive. An exception thrown by the function is Node's uncaught exception.
 */
struct JsWaker {
  napi_env env = nullptr;
  napi_ref callback = nullptr;
  napi_async_context asyncContext = nullptr;
  uv_async_t* async = nullptr;
  bool open = false;

  /** Set up the call of `fn` (a JS function); `resource` names it for async hooks. */
  napi_status init(napi_env e, napi_value fn, const char* resource) {
    env = e;
    napi_status st = napi_create_reference(env, fn, 1, &callback);
    if (st != napi_ok) return st;
    napi_value name;
    if ((st = napi_create_string_utf8(env, resource, NAPI_AUTO_LENGTH, &name)) != napi_ok) return st;
    if ((st = napi_async_init(env, nullptr, name, &asyncContext)) != napi_ok) return st;
    uv_loop_t* loop = nullptr;
    if ((st = napi_get_uv_event_loop(env, &loop)) != napi_ok) return st;
    async = new uv_async_t();
    async->data = this;
    uv_async_init(loop, async, [](uv_async_t* h) { static_cast<JsWaker*>(h->data)->call(); });
    uv_unref(reinterpret_cast<uv_handle_t*>(async));
    open = true;
    return napi_ok;
  }

  /** From any thread. */
  void notify() {
    if (async != nullptr) uv_async_send(async);
  }

  /** On the JS thread: no call after this. Idempotent. */
  void close() {
    open = false;
    if (async != nullptr) {
      uv_close(reinterpret_cast<uv_handle_t*>(async), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
      async = nullptr;
    }
    if (callback != nullptr) {
      napi_delete_reference(env, callback);
      callback = nullptr;
    }
    if (asyncContext != nullptr) {
      napi_async_destroy(env, asyncContext);
      asyncContext = nullptr;
    }
  }

 private:
  void call() {
    if (!open || callback == nullptr) return;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value fn, recv, result;
    if (napi_get_reference_value(env, callback, &fn) == napi_ok && fn != nullptr && napi_get_global(env, &recv) == napi_ok) {
      if (napi_make_callback(env, asyncContext, recv, fn, 0, nullptr, &result) != napi_ok) {
        bool pending = false;
        napi_is_exception_pending(env, &pending);
        if (pending) {
          napi_value e;
          napi_get_and_clear_last_exception(env, &e);
          napi_fatal_exception(env, e);
        }
      }
    }
    napi_close_handle_scope(env, scope);
  }
};

}  // namespace cuemux
