// The output ring of cuemux's audio devices (native/jack, native/alsa): indexed by the device's absolute frame number.
// JS writes interleaved float32 frames for the device frames it chooses (write); the device thread takes frame F+i of
// each period from the ring when it was written, else silence, counted as an underrun once JS has started writing
// (read). So "ring frame f = device frame f" holds by construction: JS decides which sample leaves at which frame.
// Single producer (JS), single consumer (the device thread); lock-free, no allocation after construction.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "napi-helpers.h"

namespace cuemux {

class FrameRing {
 public:
  static constexpr int64_t kNoFrame = std::numeric_limits<int64_t>::max();

  /** `frames` is rounded up to a power of two (at least 1024); `channels` interleaved floats per frame. */
  void init(int64_t frames, size_t channels) {
    frames_ = pow2AtLeast(std::max<int64_t>(frames, 1024));
    channels_ = channels;
    data_.assign(size_t(frames_) * channels, 0.0f);
  }

  int64_t frames() const { return frames_; }
  size_t channels() const { return channels_; }
  /** Frames before it have been taken by the device (played, or passed as silence). */
  int64_t readPos() const { return readPos_.load(std::memory_order_acquire); }
  /** End of the frames written so far. */
  int64_t writeEnd() const { return writeEnd_.load(std::memory_order_acquire); }

  /**
   * JS thread: queue `n` frames for device frames start.. (start must not be before the previous write's end; a later
   * start begins a new run: the frames between are silence). Returns the frames taken (fewer when the ring is full),
   * or -1 when start is before the previous write's end.
   */
  int64_t write(int64_t start, const float* src, int64_t n) {
    const int64_t we = writeEnd_.load(std::memory_order_relaxed);
    if (start < we) return -1;
    // A frame f overwrites the slot of f - frames_, which must have been taken.
    const int64_t m = std::max<int64_t>(0, std::min<int64_t>(n, readPos() + frames_ - start));
    if (m == 0) return 0;
    if (start != we) runStart_.store(start, std::memory_order_release);
    const int64_t mask = frames_ - 1;
    const int64_t ch = int64_t(channels_);
    for (int64_t i = 0; i < m; i++) std::memcpy(data_.data() + ((start + i) & mask) * ch, src + i * ch, channels_ * sizeof(float));
    if (firstFrame_.load(std::memory_order_relaxed) == kNoFrame) firstFrame_.store(start, std::memory_order_release);
    writeEnd_.store(start + m, std::memory_order_release);
    return m;
  }

  /**
   * Device thread: take device frames F..F+n-1, calling out(i, frame) with the frame's `channels` floats, or with
   * nullptr for silence. Returns the underrun frames (silence after JS's first write).
   */
  template <class Out>
  uint32_t read(int64_t F, uint32_t n, Out out) {
    // writeEnd first: a new run's start is stored before its end, so a new end always comes with its start.
    const int64_t we = writeEnd_.load(std::memory_order_acquire);
    const int64_t rs = runStart_.load(std::memory_order_acquire);
    const int64_t first = firstFrame_.load(std::memory_order_acquire);
    const int64_t mask = frames_ - 1;
    uint32_t under = 0;
    for (uint32_t i = 0; i < n; i++) {
      const int64_t f = F + i;
      if (f >= rs && f < we) {
        out(i, data_.data() + (f & mask) * int64_t(channels_));
      } else {
        out(i, static_cast<const float*>(nullptr));
        if (f >= first) under++;
      }
    }
    readPos_.store(F + n, std::memory_order_release);
    return under;
  }

 private:
  std::vector<float> data_;
  int64_t frames_ = 0;
  size_t channels_ = 0;
  std::atomic<int64_t> writeEnd_{0};           // frames < writeEnd of the current run are written
  std::atomic<int64_t> runStart_{0};           // first frame of the current run
  std::atomic<int64_t> firstFrame_{kNoFrame};  // first frame ever written (silence before it is no underrun)
  std::atomic<int64_t> readPos_{0};            // frames before it have been taken by the device
};

/**
 * The JS side of write(frame, samples: Float32Array of interleaved whole frames) on `ring`: the frames taken (fewer
 * when the ring is full), or nullptr with a pending JS error (not a frame number, not whole frames, a frame before
 * the end of the previous write).
 */
inline napi_value writeFromJs(napi_env env, FrameRing& ring, napi_value frameArg, napi_value samplesArg) {
  const size_t ch = ring.channels();
  double frameD;
  CHECK(napi_get_value_double(env, frameArg, &frameD));
  napi_typedarray_type type;
  size_t length;
  void* data;
  CHECK(napi_get_typedarray_info(env, samplesArg, &type, &length, &data, nullptr, nullptr));
  if (type != napi_float32_array || length % ch != 0 || !std::isfinite(frameD)) {
    napi_throw_type_error(env, nullptr, "write(frame, Float32Array of whole frames)");
    return nullptr;
  }
  const int64_t m = ring.write(int64_t(frameD), static_cast<const float*>(data), int64_t(length / ch));
  if (m < 0) {
    napi_throw_range_error(env, nullptr, "write(): frame before the end of the previous write");
    return nullptr;
  }
  napi_value r;
  CHECK(napi_create_double(env, double(m), &r));
  return r;
}

}  // namespace cuemux
