// cuemux's ALSA playback device (N-API, C++17, libasound): play-audio --device alsa:NAME.
//
// Why an addon of our own: the npm bindings that play to ALSA (checked 2026-12: speaker 0.5.5 — mpg123's out123,
// naudiodon 2.3.6 — PortAudio, audify 1.10 — RtAudio with prebuilt binaries downloaded at install) take a stream of
// PCM and none reports ALSA's delay and status timestamp per write, which is what scheduling each sample to leave
// the device at its clock time needs; audify also downloads at install, which cuemux does not allow.
//
// One class, AlsaPcm. Its constructor opens PCM NAME for playback (non-blocking, interleaved read/write access),
// sets float32 samples when the device takes them (else S32, else S16, converted here), the channels asked, the rate
// asked without ALSA's resampler (the device's nearest: the player converts), a period near the one asked and a
// buffer of `periods` periods, and monotonic status timestamps. start() runs a device thread (SCHED_FIFO when it may):
// it fills the device's buffer, then loops: wait for a period of room (snd_pcm_wait), read snd_pcm_status (its
// timestamp T, on CLOCK_MONOTONIC, and its delay D: frames between the next frame written and the one leaving the
// device now), take the next period from the frame-indexed ring (native/common/frame-ring.h: silence where JS wrote
// nothing) and write it. Device frame f = the f-th frame written to ALSA since start, so at T device frame W−D (W:
// frames written) leaves the device: that pair is the device clock. Each write leaves a record for JS (the period's
// first frame, T, D, underrun frames) and wakes the JS thread (uv_async_send). An xrun (EPIPE) is counted and
// recovered with snd_pcm_recover: the device's timeline then moves (JS sees the jump in the records).
#include <alsa/asoundlib.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "frame-ring.h"
#include "napi-helpers.h"

namespace {

using cuemux::getProp;
using cuemux::monoNs;
using cuemux::setBool;
using cuemux::setNumber;
using cuemux::setString;
using cuemux::toString;

constexpr uint32_t kQueue = 1024;  // records; JS drains them at every wake-up
constexpr int kFields = 6;

struct Record {
  int64_t frame;     // first device frame of the period written
  uint32_t frames;   // frames written
  int64_t statusNs;  // snd_pcm_status timestamp (CLOCK_MONOTONIC), ns, read just before the write
  int64_t delay;     // snd_pcm_status delay at that instant, frames
  uint32_t underrun; // frames of the period played as silence because JS had not written them
  uint32_t xrun;     // 1 when the device had run dry before this write (recovered)
};

struct Pcm {
  snd_pcm_t* pcm = nullptr;
  std::string name;
  snd_pcm_format_t format = SND_PCM_FORMAT_FLOAT_LE;
  unsigned channels = 0, rate = 0;
  snd_pcm_uframes_t period = 0, buffer = 0;
  int rtPriority = 0;
  cuemux::JsWaker waker;  // calls onCycle on the JS thread
  cuemux::FrameRing ring;
  std::thread thread;
  std::atomic<bool> stop{false};
  bool started = false;
  bool closed = false;

  // Device-thread state and what it tells JS.
  int64_t written = 0;  // device frames written to ALSA (W)
  std::atomic<int> rtGranted{-1};   // -1 before start, else the SCHED_FIFO priority the thread got (0: none)
  std::atomic<int> lastError{0};    // the last unrecoverable ALSA error (negative errno), 0 when none
  Record records[kQueue];
  std::atomic<uint64_t> head{0}, tail{0}, dropped{0};
  std::atomic<uint64_t> periods{0}, underrunFrames{0}, underrunPeriods{0}, xruns{0};
  std::atomic<bool> failed{false};
  std::atomic<bool> stalled{false};  // the device took no frames for a second (its server stopped?)
};

// The period's frames in the device's format (interleaved).
void convert(const Pcm* p, const float* src, std::vector<uint8_t>& out, size_t samples) {
  if (p->format == SND_PCM_FORMAT_FLOAT_LE) {
    std::memcpy(out.data(), src, samples * sizeof(float));
  } else if (p->format == SND_PCM_FORMAT_S32_LE) {
    int32_t* d = reinterpret_cast<int32_t*>(out.data());
    for (size_t i = 0; i < samples; i++) d[i] = int32_t(std::lrint(std::fmax(-1.0, std::fmin(2147483647.0 / 2147483648.0, double(src[i]))) * 2147483648.0));
  } else {
    int16_t* d = reinterpret_cast<int16_t*>(out.data());
    for (size_t i = 0; i < samples; i++) d[i] = int16_t(std::lrint(std::fmax(-1.0f, std::fmin(32767.0f / 32768.0f, src[i])) * 32768.0f));
  }
}

// Write a whole period (retrying short writes); a negative ALSA error when the device failed.
int writePeriod(Pcm* p, const uint8_t* data, snd_pcm_uframes_t frames) {
  const size_t frameBytes = size_t(snd_pcm_format_physical_width(p->format) / 8) * p->channels;
  while (frames > 0) {
    const snd_pcm_sframes_t r = snd_pcm_writei(p->pcm, data, frames);
    if (r == -EAGAIN) {
      // Non-blocking: full after all (a device that slowed down). Wait for room, but never past close().
      if (p->stop.load(std::memory_order_relaxed)) return 0;
      snd_pcm_wait(p->pcm, 100);
      continue;
    }
    if (r < 0) return int(r);
    data += size_t(r) * frameBytes;
    frames -= snd_pcm_uframes_t(r);
  }
  return 0;
}

void push(Pcm* p, const Record& r) {
  const uint64_t h = p->head.load(std::memory_order_relaxed);
  if (h - p->tail.load(std::memory_order_acquire) < kQueue) {
    p->records[h % kQueue] = r;
    p->head.store(h + 1, std::memory_order_release);
  } else {
    p->dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

void run(Pcm* p) {
  if (p->rtPriority > 0) {
    sched_param sp{};
    sp.sched_priority = p->rtPriority;
    p->rtGranted.store(pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0 ? p->rtPriority : 0);
  } else {
    p->rtGranted.store(0);
  }
  const size_t ch = p->channels;
  const snd_pcm_uframes_t P = p->period;
  std::vector<float> frames(P * ch);
  std::vector<uint8_t> out(P * ch * size_t(snd_pcm_format_physical_width(p->format) / 8));
  snd_pcm_status_t* status;
  snd_pcm_status_alloca(&status);
  bool xrun = false;
  int timeouts = 0;
  while (!p->stop.load(std::memory_order_relaxed)) {
    // Room for a period? (The buffer is filled first: the device starts once full, start_threshold = buffer.)
    snd_pcm_sframes_t avail = snd_pcm_avail_update(p->pcm);
    if (avail >= 0 && snd_pcm_uframes_t(avail) < P) {
      const int w = snd_pcm_wait(p->pcm, 200);
      if (w == 0) {
        // A timeout: look at the stop flag, then wait again; after a second the device is said to be stalled.
        if (++timeouts == 5) {
          p->stalled.store(true);
          p->waker.notify();
        }
        continue;
      }
      timeouts = 0;
      if (p->stalled.exchange(false)) p->waker.notify();
      if (w > 0) avail = snd_pcm_avail_update(p->pcm);
      else avail = w;
    }
    if (avail < 0) {
      // EPIPE: the device ran dry (an xrun); ESTRPIPE: suspended. Recover and go on: the timeline moves.
      if (snd_pcm_recover(p->pcm, int(avail), 1) < 0) {
        p->lastError.store(int(avail));
        p->failed.store(true);
        p->waker.notify();
        return;
      }
      p->xruns.fetch_add(1, std::memory_order_relaxed);
      xrun = true;
      continue;
    }
    int64_t statusNs = 0, delay = 0;
    if (snd_pcm_status(p->pcm, status) == 0) {
      snd_htimestamp_t ts;
      snd_pcm_status_get_htstamp(status, &ts);
      statusNs = int64_t(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
      delay = snd_pcm_status_get_delay(status);
      // A plugin that ignores the asked timestamp type (ioplugs default to gettimeofday) gets the reading's instant.
      const int64_t now = monoNs();
      if (statusNs <= 0 || std::llabs(statusNs - now) > 100000000LL) statusNs = now;
      // Not running yet (filling the buffer): no timestamp; nothing leaves before the start.
      if (snd_pcm_status_get_state(status) != SND_PCM_STATE_RUNNING) statusNs = 0;
    }
    const int64_t F = p->written;
    const uint32_t under = p->ring.read(F, uint32_t(P), [&](uint32_t i, const float* s) {
      if (s != nullptr) std::memcpy(&frames[i * ch], s, ch * sizeof(float));
      else std::memset(&frames[i * ch], 0, ch * sizeof(float));
    });
    convert(p, frames.data(), out, P * ch);
    const int r = writePeriod(p, out.data(), P);
    if (r < 0) {
      if (snd_pcm_recover(p->pcm, r, 1) < 0) {
        p->lastError.store(r);
        p->failed.store(true);
        p->waker.notify();
        return;
      }
      p->xruns.fetch_add(1, std::memory_order_relaxed);
      xrun = true;
      // The period was not played: its frames are gone (an underrun of the device, not of JS).
    }
    p->written += int64_t(P);
    p->periods.fetch_add(1, std::memory_order_relaxed);
    if (under > 0) {
      p->underrunFrames.fetch_add(under, std::memory_order_relaxed);
      p->underrunPeriods.fetch_add(1, std::memory_order_relaxed);
    }
    push(p, Record{F, uint32_t(P), statusNs, delay, under, xrun ? 1u : 0u});
    xrun = false;
    p->waker.notify();
  }
}

void stopThread(Pcm* p) {
  if (p->thread.joinable()) {
    p->stop.store(true);
    p->thread.join();
  }
}

void closePcm(Pcm* p) {
  if (p->closed) return;
  p->closed = true;
  stopThread(p);
  if (p->pcm != nullptr) {
    snd_pcm_drop(p->pcm);
    snd_pcm_close(p->pcm);
    p->pcm = nullptr;
  }
  p->waker.close();
}

Pcm* unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  return cuemux::openObject<Pcm>(env, info, argc, argv, "AlsaPcm", "the ALSA device is closed");
}

// Set the hardware and software parameters; "" on success, else what failed.
std::string configure(Pcm* p, unsigned wantRate, snd_pcm_uframes_t wantPeriod, unsigned periods) {
  snd_pcm_hw_params_t* hw;
  snd_pcm_hw_params_alloca(&hw);
  int e;
  auto fail = [&](const char* what) { return std::string(what) + ": " + snd_strerror(e); };
  if ((e = snd_pcm_hw_params_any(p->pcm, hw)) < 0) return fail("no hardware configuration");
  // ALSA's own resampler off: the player converts to the device's rate (one conversion, FFmpeg's).
  snd_pcm_hw_params_set_rate_resample(p->pcm, hw, 0);
  if ((e = snd_pcm_hw_params_set_access(p->pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED)) < 0) return fail("interleaved access refused");
  const snd_pcm_format_t formats[] = {SND_PCM_FORMAT_FLOAT_LE, SND_PCM_FORMAT_S32_LE, SND_PCM_FORMAT_S16_LE};
  e = -EINVAL;
  for (snd_pcm_format_t f : formats) {
    if (snd_pcm_hw_params_test_format(p->pcm, hw, f) == 0) {
      e = snd_pcm_hw_params_set_format(p->pcm, hw, f);
      p->format = f;
      break;
    }
  }
  if (e < 0) return fail("none of float32, S32 or S16 samples is accepted");
  if ((e = snd_pcm_hw_params_set_channels(p->pcm, hw, p->channels)) < 0) {
    unsigned lo = 0, hi = 0;
    snd_pcm_hw_params_get_channels_min(hw, &lo);
    snd_pcm_hw_params_get_channels_max(hw, &hi);
    return fail(("it does not take " + std::to_string(p->channels) + " channels (it takes " + std::to_string(lo) + " to " + std::to_string(hi) + ")").c_str());
  }
  unsigned rate = wantRate;
  if ((e = snd_pcm_hw_params_set_rate_near(p->pcm, hw, &rate, nullptr)) < 0) return fail("no sample rate");
  snd_pcm_uframes_t period = wantPeriod;
  int dir = 0;
  if ((e = snd_pcm_hw_params_set_period_size_near(p->pcm, hw, &period, &dir)) < 0) return fail("no period size");
  unsigned n = periods;
  if ((e = snd_pcm_hw_params_set_periods_near(p->pcm, hw, &n, nullptr)) < 0) return fail("no period count");
  if ((e = snd_pcm_hw_params(p->pcm, hw)) < 0) return fail("the hardware parameters were refused");
  snd_pcm_hw_params_get_rate(hw, &p->rate, nullptr);
  snd_pcm_hw_params_get_period_size(hw, &p->period, nullptr);
  snd_pcm_hw_params_get_buffer_size(hw, &p->buffer);

  snd_pcm_sw_params_t* sw;
  snd_pcm_sw_params_alloca(&sw);
  if ((e = snd_pcm_sw_params_current(p->pcm, sw)) < 0) return fail("no software configuration");
  // Start once the buffer is full (the thread fills it first), wake at a period of room, timestamp every status.
  snd_pcm_sw_params_set_start_threshold(p->pcm, sw, p->buffer);
  snd_pcm_sw_params_set_avail_min(p->pcm, sw, p->period);
  snd_pcm_sw_params_set_tstamp_mode(p->pcm, sw, SND_PCM_TSTAMP_ENABLE);
  snd_pcm_sw_params_set_tstamp_type(p->pcm, sw, SND_PCM_TSTAMP_TYPE_MONOTONIC);
  if ((e = snd_pcm_sw_params(p->pcm, sw)) < 0) return fail("the software parameters were refused");
  if ((e = snd_pcm_prepare(p->pcm)) < 0) return fail("cannot prepare");
  return "";
}

// new AlsaPcm({ device, channels, rate?, periodFrames?, periods?, ringFrames?, rtPriority?, onCycle? })
napi_value New(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, nullptr));
  if (argc < 1) {
    napi_throw_type_error(env, nullptr, "AlsaPcm(options) needs options");
    return nullptr;
  }
  napi_value v;
  std::string device = "default";
  uint32_t channels = 2, rate = 48000, period = 256, periods = 3, rt = 0;
  int64_t ringFrames = 1 << 17;
  if (getProp(env, argv[0], "device", &v)) device = toString(env, v);
  if (getProp(env, argv[0], "channels", &v)) CHECK(napi_get_value_uint32(env, v, &channels));
  if (getProp(env, argv[0], "rate", &v)) CHECK(napi_get_value_uint32(env, v, &rate));
  if (getProp(env, argv[0], "periodFrames", &v)) CHECK(napi_get_value_uint32(env, v, &period));
  if (getProp(env, argv[0], "periods", &v)) CHECK(napi_get_value_uint32(env, v, &periods));
  if (getProp(env, argv[0], "ringFrames", &v)) CHECK(napi_get_value_int64(env, v, &ringFrames));
  if (getProp(env, argv[0], "rtPriority", &v)) CHECK(napi_get_value_uint32(env, v, &rt));
  if (channels < 1 || channels > 64 || period < 16 || periods < 2 || rt > 99) {
    napi_throw_range_error(env, nullptr, "AlsaPcm: 1 to 64 channels, a period of at least 16 frames, at least 2 periods, rtPriority 0 to 99");
    return nullptr;
  }
  Pcm* p = new Pcm();
  p->name = device;
  p->channels = channels;
  p->rtPriority = int(rt);
  // Non-blocking: the device thread never sleeps in a write it cannot leave at close() (a JACK server that went
  // away leaves the jack plugin's writes blocked for good); it waits in snd_pcm_wait with a timeout instead.
  int e = snd_pcm_open(&p->pcm, device.c_str(), SND_PCM_STREAM_PLAYBACK, SND_PCM_NONBLOCK);
  if (e < 0) {
    p->pcm = nullptr;
    delete p;
    napi_throw_error(env, "ERR_ALSA_OPEN", ("cannot open ALSA PCM \"" + device + "\" for playback: " + snd_strerror(e)).c_str());
    return nullptr;
  }
  const std::string problem = configure(p, rate, period, periods);
  if (!problem.empty()) {
    closePcm(p);
    delete p;
    napi_throw_error(env, "ERR_ALSA_CONFIG", ("ALSA PCM \"" + device + "\": " + problem).c_str());
    return nullptr;
  }
  p->ring.init(ringFrames, channels);
  if (getProp(env, argv[0], "onCycle", &v)) CHECK(p->waker.init(env, v, "cuemux:alsa-period"));
  CHECK(napi_wrap(env, self, p, cuemux::finalizeWrapped<Pcm, closePcm>, nullptr, nullptr));
  return self;
}

// start(): run the device thread (once).
napi_value Start(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Pcm* p = unwrap(env, info, &argc, nullptr);
  if (p == nullptr) return nullptr;
  if (!p->started) {
    p->started = true;
    p->thread = std::thread(run, p);
  }
  return nullptr;
}

napi_value Info(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Pcm* p = unwrap(env, info, &argc, nullptr);
  if (p == nullptr) return nullptr;
  napi_value o;
  CHECK(napi_create_object(env, &o));
  CHECK(setString(env, o, "name", p->name));
  snd_pcm_info_t* pi;
  snd_pcm_info_alloca(&pi);
  CHECK(setString(env, o, "pcm", snd_pcm_info(p->pcm, pi) == 0 ? snd_pcm_info_get_name(pi) : ""));
  CHECK(setString(env, o, "type", snd_pcm_type_name(snd_pcm_type(p->pcm))));
  CHECK(setString(env, o, "format", snd_pcm_format_name(p->format)));
  CHECK(setNumber(env, o, "sampleRate", p->rate));
  CHECK(setNumber(env, o, "channels", p->channels));
  CHECK(setNumber(env, o, "periodFrames", double(p->period)));
  CHECK(setNumber(env, o, "bufferFrames", double(p->buffer)));
  CHECK(setNumber(env, o, "ringFrames", double(p->ring.frames())));
  CHECK(setNumber(env, o, "rtPriority", p->rtGranted.load()));
  return o;
}

// write(frame, samples: Float32Array interleaved): frames accepted (fewer when the ring is full).
napi_value Write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Pcm* p = unwrap(env, info, &argc, argv);
  if (p == nullptr) return nullptr;
  return cuemux::writeFromJs(env, p->ring, argv[0], argv[1]);
}

// drain(): Float64Array of the records since the last call, 6 numbers each: frame, frames, statusNs, delay,
// underrunFrames, xrun.
napi_value Drain(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Pcm* p = unwrap(env, info, &argc, nullptr);
  if (p == nullptr) return nullptr;
  const uint64_t t = p->tail.load(std::memory_order_relaxed);
  const uint64_t h = p->head.load(std::memory_order_acquire);
  napi_value arr = cuemux::float64Records(env, size_t(h - t), kFields, [&](size_t i, double* row) {
    const Record& y = p->records[(t + i) % kQueue];
    const double fields[kFields] = {double(y.frame), double(y.frames), double(y.statusNs), double(y.delay), double(y.underrun), double(y.xrun)};
    std::memcpy(row, fields, sizeof fields);
  });
  if (arr == nullptr) return nullptr;  // a pending JS error
  p->tail.store(h, std::memory_order_release);
  return arr;
}

napi_value Stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Pcm* p = unwrap(env, info, &argc, nullptr);
  if (p == nullptr) return nullptr;
  napi_value o;
  CHECK(napi_create_object(env, &o));
  CHECK(setNumber(env, o, "periods", double(p->periods.load())));
  CHECK(setNumber(env, o, "underrunFrames", double(p->underrunFrames.load())));
  CHECK(setNumber(env, o, "underrunPeriods", double(p->underrunPeriods.load())));
  CHECK(setNumber(env, o, "xruns", double(p->xruns.load())));
  CHECK(setNumber(env, o, "droppedRecords", double(p->dropped.load())));
  CHECK(setNumber(env, o, "readFrame", double(p->ring.readPos())));
  CHECK(setNumber(env, o, "writeEnd", double(p->ring.writeEnd())));
  CHECK(setBool(env, o, "failed", p->failed.load()));
  CHECK(setBool(env, o, "stalled", p->stalled.load()));
  const int e = p->lastError.load();
  CHECK(setString(env, o, "error", e == 0 ? "" : snd_strerror(e)));
  return o;
}

napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Pcm* p = cuemux::thisObject<Pcm>(env, info, &argc, nullptr, "AlsaPcm");
  if (p != nullptr) closePcm(p);
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  CHECK(cuemux::defineClass(env, exports, "AlsaPcm", New,
      {{"start", Start}, {"info", Info}, {"write", Write}, {"drain", Drain}, {"stats", Stats}, {"close", Close}}));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
