// cuemux's JACK client (N-API, C++17): a player's audio device and a recorder of what a device consumed.
//
// One class, JackClient, opens a JACK client with N output ports and/or M input ports.
//  - Output: a lock-free ring indexed by the device's absolute frame number. JS writes interleaved float32 periods
//    for the frames it chooses (write(frame, samples)); the process callback copies frame F+i of each cycle from the
//    ring when it was written, else plays silence and counts it (an underrun, once JS has started writing). So the
//    mapping "ring frame f = device frame f" holds by construction: JS decides which sample leaves at which frame.
//  - Input (the recorder): each cycle's input buffers go, interleaved, into a second ring that JS drains.
//  - Every cycle pushes a record (64-bit frame time of the cycle's start and its microsecond times from
//    jack_get_cycle_times, frames, underrun frames, where its captured frames begin) into a lock-free queue and wakes
//    the JS thread with uv_async_send (async-signal safe; no lock, no allocation on the process thread).
// JACK's microsecond clock is CLOCK_MONOTONIC on Linux (jack2: clock_gettime); info() measures the offset anyway.
#include <jack/jack.h>

#include "frame-ring.h"
#include "napi-helpers.h"

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <limits>
#include <string>
#include <vector>

namespace {

using cuemux::getProp;
using cuemux::monoNs;
using cuemux::pow2AtLeast;
using cuemux::setNumber;
using cuemux::toString;

constexpr uint32_t kCycleQueue = 1024;  // records; JS drains them at every wake-up
constexpr int kCycleFields = 9;

struct Cycle {
  int64_t frame;        // the cycle's first frame (64-bit, extended from jack_nframes_t)
  uint64_t usecs;       // JACK time of the cycle's start (filtered by its DLL), µs
  uint64_t nextUsecs;   // JACK time of the next cycle's start, µs
  float periodUsecs;    // the DLL's period estimate, µs
  uint32_t nframes;     // frames in the cycle
  uint32_t underrun;    // output frames played as silence because JS had not written them
  int64_t captureIndex; // index (in captured frames) of the cycle's first input frame, -1 when dropped/none
  int64_t monoOffsetNs; // CLOCK_MONOTONIC − JACK time at this cycle (jack2's clock is CLOCK_MONOTONIC_RAW: they drift)
  int64_t wokeNs;       // CLOCK_MONOTONIC when this client's process callback began (usecs is the DLL's estimate)
};

struct Client {
  jack_client_t* client = nullptr;
  napi_env env = nullptr;
  cuemux::JsWaker waker;  // calls onCycle on the JS thread
  std::vector<jack_port_t*> outputs;
  std::vector<jack_port_t*> inputs;
  bool active = false;
  bool closed = false;

  // Output ring (frame-indexed).
  cuemux::FrameRing ring;

  // Capture ring (sequential).
  std::vector<float> capture;
  int64_t captureFrames = 0;
  std::atomic<int64_t> capWrite{0};
  std::atomic<int64_t> capRead{0};
  std::atomic<int64_t> capDropped{0};

  // Cycle records (single producer: the process thread; single consumer: JS).
  Cycle cycles[kCycleQueue];
  std::atomic<uint64_t> cycHead{0};
  std::atomic<uint64_t> cycTail{0};
  std::atomic<uint64_t> cycDropped{0};

  // Counters.
  std::atomic<uint64_t> cycleCount{0};
  std::atomic<uint64_t> underrunFrames{0};
  std::atomic<uint64_t> underrunCycles{0};
  std::atomic<uint64_t> xruns{0};
  std::atomic<bool> shutdown{false};

  // Process-thread state.
  bool haveFrame = false;
  jack_nframes_t lastFrame32 = 0;
  int64_t frame64 = 0;
};

int onProcess(jack_nframes_t n, void* arg) {
  const int64_t woke = monoNs();
  Client* c = static_cast<Client*>(arg);
  jack_nframes_t cf = 0;
  jack_time_t cu = 0, nu = 0;
  float pu = 0;
  if (jack_get_cycle_times(c->client, &cf, &cu, &nu, &pu) != 0) {
    cf = jack_last_frame_time(c->client);
    cu = jack_get_time();
    nu = 0;
    pu = 0;
  }
  if (!c->haveFrame) {
    c->frame64 = cf;
    c->haveFrame = true;
  } else {
    c->frame64 += static_cast<jack_nframes_t>(cf - c->lastFrame32);  // wraps every 2^32 frames: extended here
  }
  c->lastFrame32 = cf;
  const int64_t F = c->frame64;
  // JACK's clock against CLOCK_MONOTONIC now (both vDSO reads); jack_get_time() truncates to the µs: +500 ns.
  const int64_t monoOffset = monoNs() - int64_t(jack_get_time()) * 1000 + 500;

  uint32_t under = 0;
  const size_t nOut = c->outputs.size();
  if (nOut > 0) {
    float* bufs[64];
    for (size_t k = 0; k < nOut; k++) bufs[k] = static_cast<float*>(jack_port_get_buffer(c->outputs[k], n));
    under = c->ring.read(F, n, [&](uint32_t i, const float* s) {
      for (size_t k = 0; k < nOut; k++) bufs[k][i] = s != nullptr ? s[k] : 0.0f;
    });
    if (under > 0) {
      c->underrunFrames.fetch_add(under, std::memory_order_relaxed);
      c->underrunCycles.fetch_add(1, std::memory_order_relaxed);
    }
  }

  int64_t capIndex = -1;
  const size_t nIn = c->inputs.size();
  if (nIn > 0) {
    const int64_t w = c->capWrite.load(std::memory_order_relaxed);
    const int64_t r = c->capRead.load(std::memory_order_acquire);
    if (c->captureFrames - (w - r) >= int64_t(n)) {
      const int64_t mask = c->captureFrames - 1;
      float* data = c->capture.data();
      for (size_t k = 0; k < nIn; k++) {
        const float* in = static_cast<const float*>(jack_port_get_buffer(c->inputs[k], n));
        for (jack_nframes_t i = 0; i < n; i++) data[((w + i) & mask) * int64_t(nIn) + k] = in[i];
      }
      capIndex = w;
      c->capWrite.store(w + n, std::memory_order_release);
    } else {
      c->capDropped.fetch_add(n, std::memory_order_relaxed);
    }
  }

  c->cycleCount.fetch_add(1, std::memory_order_relaxed);
  const uint64_t h = c->cycHead.load(std::memory_order_relaxed);
  if (h - c->cycTail.load(std::memory_order_acquire) < kCycleQueue) {
    c->cycles[h % kCycleQueue] = Cycle{F, cu, nu, pu, n, under, capIndex, monoOffset, woke};
    c->cycHead.store(h + 1, std::memory_order_release);
  } else {
    c->cycDropped.fetch_add(1, std::memory_order_relaxed);
  }
  c->waker.notify();
  return 0;
}

int onXrun(void* arg) {
  static_cast<Client*>(arg)->xruns.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

void onShutdown(jack_status_t, const char*, void* arg) {
  Client* c = static_cast<Client*>(arg);
  c->shutdown.store(true);
  c->waker.notify();
}

void closeClient(Client* c) {
  if (c->closed) return;
  c->closed = true;
  if (c->client != nullptr) {
    if (c->active) jack_deactivate(c->client);
    jack_client_close(c->client);
    c->client = nullptr;
  }
  c->waker.close();
}

Client* unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  return cuemux::openObject<Client>(env, info, argc, argv, "JackClient", "the JACK client is closed");
}

// new JackClient({ name, server?, outputs, inputs, ringFrames?, captureFrames?, onCycle })
napi_value New(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, nullptr));
  if (argc < 1) {
    napi_throw_type_error(env, nullptr, "JackClient(options) needs options");
    return nullptr;
  }
  napi_value v;
  std::string name = "cuemux", server;
  uint32_t nOut = 0, nIn = 0;
  int64_t ringFrames = 1 << 17, captureFrames = 1 << 20;
  if (getProp(env, argv[0], "name", &v)) name = toString(env, v);
  if (getProp(env, argv[0], "server", &v)) server = toString(env, v);
  if (getProp(env, argv[0], "outputs", &v)) CHECK(napi_get_value_uint32(env, v, &nOut));
  if (getProp(env, argv[0], "inputs", &v)) CHECK(napi_get_value_uint32(env, v, &nIn));
  if (getProp(env, argv[0], "ringFrames", &v)) CHECK(napi_get_value_int64(env, v, &ringFrames));
  if (getProp(env, argv[0], "captureFrames", &v)) CHECK(napi_get_value_int64(env, v, &captureFrames));
  if (nOut > 64 || nIn > 64 || nOut + nIn == 0) {
    napi_throw_range_error(env, nullptr, "a JACK client needs 1 to 64 output and/or input ports");
    return nullptr;
  }
  Client* c = new Client();
  c->env = env;
  c->captureFrames = pow2AtLeast(std::max<int64_t>(captureFrames, 1024));
  if (nOut > 0) c->ring.init(ringFrames, nOut);
  if (nIn > 0) c->capture.assign(size_t(c->captureFrames) * nIn, 0.0f);

  jack_status_t status;
  jack_options_t opts = JackNoStartServer;
  if (!server.empty()) opts = jack_options_t(opts | JackServerName);
  c->client = server.empty() ? jack_client_open(name.c_str(), opts, &status) : jack_client_open(name.c_str(), opts, &status, server.c_str());
  if (c->client == nullptr) {
    delete c;
    std::string msg = "cannot connect to a JACK server";
    if (!server.empty()) msg += " named \"" + server + "\"";
    msg += " (status 0x" + [&] { char b[16]; snprintf(b, sizeof b, "%x", unsigned(status)); return std::string(b); }() + ")";
    if (status & JackServerFailed) msg += ": no server running";
    napi_throw_error(env, "ERR_JACK_OPEN", msg.c_str());
    return nullptr;
  }
  for (uint32_t k = 0; k < nOut; k++) {
    const std::string pn = "out_" + std::to_string(k + 1);
    jack_port_t* p = jack_port_register(c->client, pn.c_str(), JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    if (p == nullptr) { closeClient(c); delete c; napi_throw_error(env, "ERR_JACK_PORT", ("cannot register JACK port " + pn).c_str()); return nullptr; }
    c->outputs.push_back(p);
  }
  for (uint32_t k = 0; k < nIn; k++) {
    const std::string pn = "in_" + std::to_string(k + 1);
    jack_port_t* p = jack_port_register(c->client, pn.c_str(), JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
    if (p == nullptr) { closeClient(c); delete c; napi_throw_error(env, "ERR_JACK_PORT", ("cannot register JACK port " + pn).c_str()); return nullptr; }
    c->inputs.push_back(p);
  }
  jack_set_process_callback(c->client, onProcess, c);
  jack_set_xrun_callback(c->client, onXrun, c);
  jack_on_info_shutdown(c->client, onShutdown, c);

  if (getProp(env, argv[0], "onCycle", &v)) CHECK(c->waker.init(env, v, "cuemux:jack-cycle"));
  CHECK(napi_wrap(env, self, c, cuemux::finalizeWrapped<Client, closeClient>, nullptr, nullptr));
  return self;
}

napi_value Activate(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Client* c = unwrap(env, info, &argc, nullptr);
  if (c == nullptr) return nullptr;
  if (!c->active) {
    if (jack_activate(c->client) != 0) {
      napi_throw_error(env, "ERR_JACK_ACTIVATE", "cannot activate the JACK client");
      return nullptr;
    }
    c->active = true;
  }
  return nullptr;
}

// connect(source, destination): true when connected (or already), else throws.
napi_value Connect(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Client* c = unwrap(env, info, &argc, argv);
  if (c == nullptr) return nullptr;
  const std::string a = toString(env, argv[0]), b = toString(env, argv[1]);
  const int r = jack_connect(c->client, a.c_str(), b.c_str());
  if (r != 0 && r != EEXIST) {
    napi_throw_error(env, "ERR_JACK_CONNECT", ("cannot connect JACK port " + a + " to " + b).c_str());
    return nullptr;
  }
  napi_value t;
  CHECK(napi_get_boolean(env, true, &t));
  return t;
}

napi_value stringArray(napi_env env, const char** names) {
  napi_value arr;
  if (napi_create_array(env, &arr) != napi_ok) return nullptr;
  for (uint32_t i = 0; names != nullptr && names[i] != nullptr; i++) {
    napi_value s;
    napi_create_string_utf8(env, names[i], NAPI_AUTO_LENGTH, &s);
    napi_set_element(env, arr, i, s);
  }
  if (names != nullptr) jack_free(names);
  return arr;
}

// ports(flags: 'physical-playback' | 'physical-capture' | 'all')
napi_value Ports(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  Client* c = unwrap(env, info, &argc, argv);
  if (c == nullptr) return nullptr;
  const std::string which = argc > 0 ? toString(env, argv[0]) : "all";
  unsigned long flags = 0;
  if (which == "physical-playback") flags = JackPortIsPhysical | JackPortIsInput;
  else if (which == "physical-capture") flags = JackPortIsPhysical | JackPortIsOutput;
  return stringArray(env, jack_get_ports(c->client, nullptr, JACK_DEFAULT_AUDIO_TYPE, flags));
}

// latency(portName?, 'playback'|'capture'): {min, max} frames; default: this client's first output, playback.
napi_value Latency(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Client* c = unwrap(env, info, &argc, argv);
  if (c == nullptr) return nullptr;
  jack_port_t* port = c->outputs.empty() ? (c->inputs.empty() ? nullptr : c->inputs[0]) : c->outputs[0];
  if (argc > 0) {
    napi_valuetype t;
    napi_typeof(env, argv[0], &t);
    if (t == napi_string) port = jack_port_by_name(c->client, toString(env, argv[0]).c_str());
  }
  const bool capture = argc > 1 && toString(env, argv[1]) == "capture";
  if (port == nullptr) {
    napi_throw_error(env, "ERR_JACK_PORT", "no such JACK port");
    return nullptr;
  }
  jack_latency_range_t r{0, 0};
  jack_port_get_latency_range(port, capture ? JackCaptureLatency : JackPlaybackLatency, &r);
  napi_value o;
  CHECK(napi_create_object(env, &o));
  setNumber(env, o, "min", r.min);
  setNumber(env, o, "max", r.max);
  return o;
}

napi_value Info(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Client* c = unwrap(env, info, &argc, nullptr);
  if (c == nullptr) return nullptr;
  napi_value o, s;
  CHECK(napi_create_object(env, &o));
  CHECK(napi_create_string_utf8(env, jack_get_client_name(c->client), NAPI_AUTO_LENGTH, &s));
  CHECK(napi_set_named_property(env, o, "name", s));
  setNumber(env, o, "sampleRate", jack_get_sample_rate(c->client));
  setNumber(env, o, "bufferSize", jack_get_buffer_size(c->client));
  setNumber(env, o, "ringFrames", double(c->ring.frames()));
  // JACK time (µs) + monoOffsetNs = CLOCK_MONOTONIC (ns): the best of 16 readings between two monotonic ones.
  int64_t best = std::numeric_limits<int64_t>::max(), offset = 0;
  for (int k = 0; k < 16; k++) {
    const int64_t a = monoNs();
    const int64_t j = int64_t(jack_get_time());
    const int64_t b = monoNs();
    if (b - a < best) {
      best = b - a;
      offset = (a + b) / 2 - j * 1000;
    }
  }
  setNumber(env, o, "monoOffsetNs", double(offset));
  setNumber(env, o, "monoOffsetUncertaintyNs", double(best / 2 + 500));
  const char* names[2] = {"outputs", "inputs"};
  for (int w = 0; w < 2; w++) {
    const auto& ports = w == 0 ? c->outputs : c->inputs;
    napi_value arr;
    CHECK(napi_create_array(env, &arr));
    for (uint32_t k = 0; k < ports.size(); k++) {
      CHECK(napi_create_string_utf8(env, jack_port_name(ports[k]), NAPI_AUTO_LENGTH, &s));
      CHECK(napi_set_element(env, arr, k, s));
    }
    CHECK(napi_set_named_property(env, o, names[w], arr));
  }
  return o;
}

// write(frame, samples: Float32Array interleaved): frames accepted (fewer when the ring is full). frame must not be
// before the end of the previous write; a later frame starts a new run (the frames between are not played).
napi_value Write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Client* c = unwrap(env, info, &argc, argv);
  if (c == nullptr) return nullptr;
  if (c->outputs.empty()) {
    napi_throw_error(env, nullptr, "this JACK client has no output ports");
    return nullptr;
  }
  return cuemux::writeFromJs(env, c->ring, argv[0], argv[1]);
}

// drain(): Float64Array of the cycle records since the last call, kCycleFields (9) numbers each:
// frame, usecs, nextUsecs, periodUsecs, nframes, underrunFrames, captureIndex, monoOffsetNs, wokeNs.
napi_value Drain(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Client* c = unwrap(env, info, &argc, nullptr);
  if (c == nullptr) return nullptr;
  const uint64_t t = c->cycTail.load(std::memory_order_relaxed);
  const uint64_t h = c->cycHead.load(std::memory_order_acquire);
  napi_value arr = cuemux::float64Records(env, size_t(h - t), kCycleFields, [&](size_t i, double* row) {
    const Cycle& y = c->cycles[(t + i) % kCycleQueue];
    const double fields[kCycleFields] = {double(y.frame), double(y.usecs), double(y.nextUsecs), double(y.periodUsecs), double(y.nframes), double(y.underrun), double(y.captureIndex), double(y.monoOffsetNs), double(y.wokeNs)};
    std::memcpy(row, fields, sizeof fields);
  });
  if (arr == nullptr) return nullptr;  // a pending JS error
  c->cycTail.store(h, std::memory_order_release);
  return arr;
}

// readCapture(): { index, samples: Float32Array } — the input frames captured since the last call (interleaved),
// the first being captured frame number `index`.
napi_value ReadCapture(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Client* c = unwrap(env, info, &argc, nullptr);
  if (c == nullptr) return nullptr;
  const size_t ch = c->inputs.size();
  const int64_t r = c->capRead.load(std::memory_order_relaxed);
  const int64_t w = ch == 0 ? r : c->capWrite.load(std::memory_order_acquire);
  const int64_t n = w - r;
  napi_value ab, arr, o;
  void* raw;
  CHECK(napi_create_arraybuffer(env, size_t(n) * ch * sizeof(float), &raw, &ab));
  float* out = static_cast<float*>(raw);
  const int64_t mask = c->captureFrames - 1;
  for (int64_t i = 0; i < n; i++) std::memcpy(out + i * int64_t(ch), c->capture.data() + ((r + i) & mask) * int64_t(ch), ch * sizeof(float));
  c->capRead.store(w, std::memory_order_release);
  CHECK(napi_create_typedarray(env, napi_float32_array, size_t(n) * ch, ab, 0, &arr));
  CHECK(napi_create_object(env, &o));
  setNumber(env, o, "index", double(r));
  CHECK(napi_set_named_property(env, o, "samples", arr));
  return o;
}

napi_value Stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Client* c = unwrap(env, info, &argc, nullptr);
  if (c == nullptr) return nullptr;
  napi_value o, b;
  CHECK(napi_create_object(env, &o));
  setNumber(env, o, "cycles", double(c->cycleCount.load()));
  setNumber(env, o, "underrunFrames", double(c->underrunFrames.load()));
  setNumber(env, o, "underrunCycles", double(c->underrunCycles.load()));
  setNumber(env, o, "xruns", double(c->xruns.load()));
  setNumber(env, o, "droppedCycleRecords", double(c->cycDropped.load()));
  setNumber(env, o, "droppedCaptureFrames", double(c->capDropped.load()));
  setNumber(env, o, "readFrame", double(c->ring.readPos()));
  setNumber(env, o, "writeEnd", double(c->ring.writeEnd()));
  CHECK(napi_get_boolean(env, c->shutdown.load(), &b));
  CHECK(napi_set_named_property(env, o, "shutdown", b));
  return o;
}

napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Client* c = cuemux::thisObject<Client>(env, info, &argc, nullptr, "JackClient");
  if (c != nullptr) closeClient(c);
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  CHECK(cuemux::defineClass(env, exports, "JackClient", New,
      {{"activate", Activate}, {"connect", Connect}, {"ports", Ports}, {"latency", Latency}, {"info", Info}, {"write", Write},
       {"drain", Drain}, {"readCapture", ReadCapture}, {"stats", Stats}, {"close", Close}}));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
