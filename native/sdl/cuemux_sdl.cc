// cuemux's SDL2 window (N-API, C++17): play-video --window.
//
// One class, SdlWindow. Its constructor starts a render thread that owns everything SDL: it initialises SDL's video
// subsystem, creates the window and a renderer (accelerated with SDL_RENDERER_PRESENTVSYNC when asked, else SDL's
// software renderer), then loops: pump the window's events (close, SDL_QUIT), take the mailbox's item, upload its
// picture into a streaming texture of the decoded format (IYUV for yuv420p with SDL_UpdateYUVTexture, NV12/NV21 with
// SDL_UpdateNVTexture, packed RGB as is), clear, copy the texture letterboxed into the output and SDL_RenderPresent.
// The constructor waits for the thread's set-up and throws its error (no display, no renderer).
//
// The JS thread hands each tick to the render thread through a one-slot mailbox (present()): it never waits for a
// vsync or an upload. An item not taken yet is replaced by the next tick's (counted). The planes are not copied:
// the render thread reads the JS buffers in place, and JS keeps each picture (retained) until released() says the
// render thread is done with it (every picture of a sequence number at most released() is no longer read).
// Every presentation leaves a record (the tick's CLOCK_MONOTONIC instant, when the item was taken, when the upload
// and the copy were done, when SDL_RenderPresent returned) that JS drains at its next tick.
#include <SDL.h>

#include "napi-helpers.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace {

using cuemux::getProp;
using cuemux::monoNs;
using cuemux::setBool;
using cuemux::setNumber;
using cuemux::setString;
using cuemux::toString;

// What the texture holds and how pictures of a format are uploaded.
enum class Upload { None, Yuv, Nv, Packed };

struct Format {
  const char* name;
  Uint32 sdl;
  Upload upload;
  int planes;
  bool fullRange;
};

const Format kFormats[] = {
  {"yuv420p", SDL_PIXELFORMAT_IYUV, Upload::Yuv, 3, false},
  {"yuvj420p", SDL_PIXELFORMAT_IYUV, Upload::Yuv, 3, true},
  {"nv12", SDL_PIXELFORMAT_NV12, Upload::Nv, 2, false},
  {"nv21", SDL_PIXELFORMAT_NV21, Upload::Nv, 2, false},
  {"rgb24", SDL_PIXELFORMAT_RGB24, Upload::Packed, 1, true},
  {"bgr24", SDL_PIXELFORMAT_BGR24, Upload::Packed, 1, true},
  {"rgba", SDL_PIXELFORMAT_RGBA32, Upload::Packed, 1, true},
  {"bgra", SDL_PIXELFORMAT_BGRA32, Upload::Packed, 1, true},
  // rgb0/bgr0: bytes R,G,B,x / B,G,R,x in memory = these 32-bit formats on a little-endian machine.
  {"rgb0", SDL_PIXELFORMAT_XBGR8888, Upload::Packed, 1, true},
  {"bgr0", SDL_PIXELFORMAT_XRGB8888, Upload::Packed, 1, true},
};

const Format* findFormat(const std::string& name) {
  for (const Format& f : kFormats) if (name == f.name) return &f;
  return nullptr;
}

// Bytes per pixel of a packed format.
int packedBytes(Uint32 sdl) { return SDL_BYTESPERPIXEL(sdl); }

enum Kind : int32_t { kBlack = 0, kPicture = 1, kSame = 2 };

struct Item {
  int32_t kind = kBlack;
  int64_t tickNs = 0;
  double seq = 0;  // of the picture (kPicture); 0 otherwise
  const Format* format = nullptr;
  int width = 0, height = 0;
  double sar = 1;  // sample aspect ratio
  const uint8_t* planes[3] = {nullptr, nullptr, nullptr};
  size_t sizes[3] = {0, 0, 0};
  int replaced = 0;  // ticks this item replaced in the mailbox
};

// One presentation, as JS drains it.
constexpr int kRecordFields = 8;
struct Record {
  double tickNs, takenNs, uploadedNs, copiedNs, presentedNs, seq, kind, replaced;
};

struct Window {
  // Set-up (constructor ↔ thread).
  std::string title = "cuemux";
  int x = 0, y = 0, w = 960, h = 540;
  bool fullscreen = false, borderless = false, vsync = true;
  SDL_ScaleMode scale = SDL_ScaleModeLinear;
  std::string driver;  // SDL render driver hint, empty = SDL's choice
  std::string videoDrivers = "x11,wayland,kmsdrm";  // tried in order: never SDL's offscreen or dummy drivers
  std::mutex m;
  std::condition_variable cv;
  bool ready = false;
  std::string error;
  // Reported after set-up.
  std::string rendererName, videoDriver;
  bool vsyncGranted = false, accelerated = false;
  int outW = 0, outH = 0, refreshHz = 0;

  // Mailbox.
  bool hasItem = false;
  Item item;
  bool stop = false;
  std::deque<Record> records;  // under m
  uint64_t droppedRecords = 0;

  std::atomic<double> released{0};
  std::atomic<bool> userClosed{false};
  std::atomic<uint64_t> presented{0}, replaced{0}, uploads{0}, uploadErrors{0};
  std::string lastError;  // under m: the last SDL error of the loop

  std::thread thread;
  bool joined = false;
};

void setError(Window* win, const std::string& what) {
  std::lock_guard<std::mutex> lock(win->m);
  win->lastError = what + ": " + SDL_GetError();
}

// The rectangle of the output a w×h picture (sample aspect `sar`) fills, keeping its aspect (black bars).
SDL_Rect letterbox(int outW, int outH, int w, int h, double sar) {
  const double aspect = (double(w) * (sar > 0 ? sar : 1)) / double(h);
  int dw = outW, dh = int(outW / aspect + 0.5);
  if (dh > outH) {
    dh = outH;
    dw = int(outH * aspect + 0.5);
  }
  return SDL_Rect{(outW - dw) / 2, (outH - dh) / 2, dw, dh};
}

void renderLoop(Window* win) {
  SDL_SetHint(SDL_HINT_NO_SIGNAL_HANDLERS, "1");  // SIGINT/SIGTERM are Node's: the player stops on them
  SDL_SetHint(SDL_HINT_VIDEO_ALLOW_SCREENSAVER, "0");
  if (!win->driver.empty()) SDL_SetHint(SDL_HINT_RENDER_DRIVER, win->driver.c_str());
  // A show's window is on a display: without one SDL would fall back to its offscreen driver and "show" nothing.
  SDL_SetHint(SDL_HINT_VIDEODRIVER, win->videoDrivers.c_str());
  SDL_Window* window = nullptr;
  SDL_Renderer* renderer = nullptr;
  auto fail = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(win->m);
    win->error = what + ": " + SDL_GetError();
    win->ready = true;
    win->cv.notify_all();
  };
  if (SDL_InitSubSystem(SDL_INIT_VIDEO) != 0) return fail("SDL_Init(SDL_INIT_VIDEO)");
  Uint32 flags = SDL_WINDOW_SHOWN;
  if (win->fullscreen) flags |= SDL_WINDOW_FULLSCREEN_DESKTOP;
  else if (win->borderless) flags |= SDL_WINDOW_BORDERLESS;
  window = SDL_CreateWindow(win->title.c_str(), win->x, win->y, win->w, win->h, flags);
  if (window == nullptr) {
    fail("SDL_CreateWindow");
    SDL_QuitSubSystem(SDL_INIT_VIDEO);
    return;
  }
  renderer = SDL_CreateRenderer(window, -1, SDL_RENDERER_ACCELERATED | (win->vsync ? SDL_RENDERER_PRESENTVSYNC : 0));
  if (renderer == nullptr) renderer = SDL_CreateRenderer(window, -1, SDL_RENDERER_SOFTWARE);
  if (renderer == nullptr) {
    fail("SDL_CreateRenderer");
    SDL_DestroyWindow(window);
    SDL_QuitSubSystem(SDL_INIT_VIDEO);
    return;
  }
  {
    SDL_RendererInfo ri;
    SDL_GetRendererInfo(renderer, &ri);
    SDL_DisplayMode mode;
    const int display = SDL_GetWindowDisplayIndex(window);
    std::lock_guard<std::mutex> lock(win->m);
    win->rendererName = ri.name != nullptr ? ri.name : "?";
    win->videoDriver = SDL_GetCurrentVideoDriver() != nullptr ? SDL_GetCurrentVideoDriver() : "?";
    win->vsyncGranted = (ri.flags & SDL_RENDERER_PRESENTVSYNC) != 0;
    win->accelerated = (ri.flags & SDL_RENDERER_ACCELERATED) != 0;
    SDL_GetRendererOutputSize(renderer, &win->outW, &win->outH);
    win->refreshHz = display >= 0 && SDL_GetCurrentDisplayMode(display, &mode) == 0 ? mode.refresh_rate : 0;
    win->ready = true;
  }
  win->cv.notify_all();

  SDL_Texture* texture = nullptr;
  const Format* texFormat = nullptr;
  int texW = 0, texH = 0;
  double texSar = 1;
  bool showing = false;  // the texture holds the picture on screen (else: black)
  for (;;) {
    SDL_Event e;
    while (SDL_PollEvent(&e)) {
      if (e.type == SDL_QUIT || (e.type == SDL_WINDOWEVENT && e.window.event == SDL_WINDOWEVENT_CLOSE)) win->userClosed.store(true);
    }
    Item it;
    {
      std::unique_lock<std::mutex> lock(win->m);
      // Wake for an item, a stop, or every 10 ms to pump the window's events.
      win->cv.wait_for(lock, std::chrono::milliseconds(10), [&] { return win->hasItem || win->stop; });
      if (win->stop) break;
      if (!win->hasItem) continue;
      it = win->item;
      win->hasItem = false;
    }
    Record r{};
    r.tickNs = double(it.tickNs);
    r.takenNs = double(monoNs());
    r.kind = it.kind;
    r.seq = it.seq;
    r.replaced = it.replaced;
    if (it.kind == kPicture) {
      const Format* f = it.format;
      // BT.601 up to 576 lines, BT.709 above (SDL's automatic mode), full range for the JPEG formats. Set before
      // the texture is made: a renderer's YUV shader is chosen then.
      SDL_SetYUVConversionMode(f->fullRange && f->upload != Upload::Packed ? SDL_YUV_CONVERSION_JPEG : SDL_YUV_CONVERSION_AUTOMATIC);
      if (texture == nullptr || f != texFormat || it.width != texW || it.height != texH) {
        if (texture != nullptr) SDL_DestroyTexture(texture);
        texture = SDL_CreateTexture(renderer, f->sdl, SDL_TEXTUREACCESS_STREAMING, it.width, it.height);
        if (texture == nullptr) setError(win, "SDL_CreateTexture");
        else SDL_SetTextureScaleMode(texture, win->scale);
        texFormat = f;
        texW = it.width;
        texH = it.height;
      }
      texSar = it.sar;
      int rc = -1;
      if (texture != nullptr) {
        const int cw = (it.width + 1) / 2;
        switch (f->upload) {
          case Upload::Yuv:
            rc = SDL_UpdateYUVTexture(texture, nullptr, it.planes[0], it.width, it.planes[1], cw, it.planes[2], cw);
            break;
          case Upload::Nv:
            rc = SDL_UpdateNVTexture(texture, nullptr, it.planes[0], it.width, it.planes[1], 2 * cw);
            break;
          case Upload::Packed:
            rc = SDL_UpdateTexture(texture, nullptr, it.planes[0], it.width * packedBytes(f->sdl));
            break;
          case Upload::None:
            break;
        }
        if (rc != 0) {
          win->uploadErrors.fetch_add(1);
          setError(win, "SDL_UpdateTexture");
        }
      }
      showing = rc == 0;
      win->uploads.fetch_add(1);
      // The planes are not read any more: this picture and every earlier one may go back to their pool.
      win->released.store(it.seq);
    } else if (it.kind == kBlack) {
      showing = false;
    }
    r.uploadedNs = double(monoNs());
    int ow = 0, oh = 0;
    SDL_GetRendererOutputSize(renderer, &ow, &oh);  // follows a resized window
    SDL_SetRenderDrawColor(renderer, 0, 0, 0, 255);
    SDL_RenderClear(renderer);
    if (showing && texture != nullptr) {
      const SDL_Rect dst = letterbox(ow, oh, texW, texH, texSar);
      if (SDL_RenderCopy(renderer, texture, nullptr, &dst) != 0) setError(win, "SDL_RenderCopy");
    }
    r.copiedNs = double(monoNs());
    SDL_RenderPresent(renderer);
    r.presentedNs = double(monoNs());
    win->presented.fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(win->m);
      win->outW = ow;
      win->outH = oh;
      if (win->records.size() >= 4096) {
        win->records.pop_front();
        win->droppedRecords++;
      }
      win->records.push_back(r);
    }
  }
  if (texture != nullptr) SDL_DestroyTexture(texture);
  SDL_DestroyRenderer(renderer);
  SDL_DestroyWindow(window);
  SDL_QuitSubSystem(SDL_INIT_VIDEO);
}

void stopWindow(Window* win) {
  if (win->joined) return;
  {
    std::lock_guard<std::mutex> lock(win->m);
    win->stop = true;
    win->hasItem = false;
  }
  win->cv.notify_all();
  if (win->thread.joinable()) win->thread.join();
  win->joined = true;
  // Nothing is read any more.
  win->released.store(1e300);
}

Window* unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv, bool open = true) {
  Window* win = cuemux::thisObject<Window>(env, info, argc, argv, "SdlWindow");
  if (win != nullptr && open && win->joined) {
    napi_throw_error(env, "ERR_CLOSED", "the window is closed");
    return nullptr;
  }
  return win;
}

// new SdlWindow({ title, x, y, width, height, fullscreen, borderless, vsync, scale: 'nearest'|'linear'|'best', driver,
//                 videoDrivers })
napi_value New(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, nullptr));
  if (argc < 1) {
    napi_throw_type_error(env, nullptr, "SdlWindow(options) needs options");
    return nullptr;
  }
  Window* win = new Window();
  napi_value v;
  int32_t n;
  bool b;
  if (getProp(env, argv[0], "title", &v)) win->title = toString(env, v);
  if (getProp(env, argv[0], "x", &v) && napi_get_value_int32(env, v, &n) == napi_ok) win->x = n;
  if (getProp(env, argv[0], "y", &v) && napi_get_value_int32(env, v, &n) == napi_ok) win->y = n;
  if (getProp(env, argv[0], "width", &v) && napi_get_value_int32(env, v, &n) == napi_ok) win->w = n;
  if (getProp(env, argv[0], "height", &v) && napi_get_value_int32(env, v, &n) == napi_ok) win->h = n;
  if (getProp(env, argv[0], "fullscreen", &v) && napi_get_value_bool(env, v, &b) == napi_ok) win->fullscreen = b;
  if (getProp(env, argv[0], "borderless", &v) && napi_get_value_bool(env, v, &b) == napi_ok) win->borderless = b;
  if (getProp(env, argv[0], "vsync", &v) && napi_get_value_bool(env, v, &b) == napi_ok) win->vsync = b;
  if (getProp(env, argv[0], "driver", &v)) win->driver = toString(env, v);
  if (getProp(env, argv[0], "videoDrivers", &v)) win->videoDrivers = toString(env, v);
  if (getProp(env, argv[0], "scale", &v)) {
    const std::string s = toString(env, v);
    win->scale = s == "nearest" ? SDL_ScaleModeNearest : s == "best" ? SDL_ScaleModeBest : SDL_ScaleModeLinear;
  }
  if (win->w <= 0 || win->h <= 0) {
    delete win;
    napi_throw_range_error(env, nullptr, "the window's width and height must be positive");
    return nullptr;
  }
  win->thread = std::thread(renderLoop, win);
  std::string error;
  {
    std::unique_lock<std::mutex> lock(win->m);
    win->cv.wait(lock, [&] { return win->ready; });
    error = win->error;
  }
  if (!error.empty()) {
    win->thread.join();
    delete win;
    napi_throw_error(env, "ERR_SDL", error.c_str());
    return nullptr;
  }
  if (napi_wrap(env, self, win, cuemux::finalizeWrapped<Window, stopWindow>, nullptr, nullptr) != napi_ok) {
    stopWindow(win);
    delete win;
    napi_throw_error(env, nullptr, "napi_wrap failed");
    return nullptr;
  }
  return self;
}

// info(): { renderer, videoDriver, vsync, accelerated, width, height, refreshHz }
napi_value Info(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Window* win = unwrap(env, info, &argc, nullptr, false);
  if (win == nullptr) return nullptr;
  napi_value o;
  CHECK(napi_create_object(env, &o));
  std::lock_guard<std::mutex> lock(win->m);
  CHECK(setString(env, o, "renderer", win->rendererName));
  CHECK(setString(env, o, "videoDriver", win->videoDriver));
  CHECK(setBool(env, o, "vsync", win->vsyncGranted));
  CHECK(setBool(env, o, "accelerated", win->accelerated));
  CHECK(setNumber(env, o, "width", win->outW));
  CHECK(setNumber(env, o, "height", win->outH));
  CHECK(setNumber(env, o, "refreshHz", win->refreshHz));
  return o;
}

// present(tickNs: bigint, kind: 0 black | 1 picture | 2 same, seq, format, width, height, sar, planes: Uint8Array[])
// Never blocks on the render thread: the mailbox's lock is only held to swap the item.
napi_value Present(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  Window* win = unwrap(env, info, &argc, argv);
  if (win == nullptr) return nullptr;
  if (argc < 2) {
    napi_throw_type_error(env, nullptr, "present(tickNs, kind, ...)");
    return nullptr;
  }
  Item it;
  bool lossless = false;
  CHECK(napi_get_value_bigint_int64(env, argv[0], &it.tickNs, &lossless));
  CHECK(napi_get_value_int32(env, argv[1], &it.kind));
  if (it.kind == kPicture) {
    if (argc < 8) {
      napi_throw_type_error(env, nullptr, "present(tickNs, 1, seq, format, width, height, sar, planes)");
      return nullptr;
    }
    CHECK(napi_get_value_double(env, argv[2], &it.seq));
    it.format = findFormat(toString(env, argv[3]));
    if (it.format == nullptr) {
      napi_throw_error(env, "ERR_FORMAT", "pixel format not supported by the window");
      return nullptr;
    }
    CHECK(napi_get_value_int32(env, argv[4], &it.width));
    CHECK(napi_get_value_int32(env, argv[5], &it.height));
    CHECK(napi_get_value_double(env, argv[6], &it.sar));
    uint32_t np = 0;
    CHECK(napi_get_array_length(env, argv[7], &np));
    if (int(np) < it.format->planes) {
      napi_throw_error(env, "ERR_FORMAT", "too few planes for the pixel format");
      return nullptr;
    }
    const int cw = (it.width + 1) / 2, ch = (it.height + 1) / 2;
    for (int k = 0; k < it.format->planes; k++) {
      napi_value pv;
      CHECK(napi_get_element(env, argv[7], k, &pv));
      napi_typedarray_type t;
      size_t length = 0, offset = 0;
      void* data = nullptr;
      napi_value ab;
      CHECK(napi_get_typedarray_info(env, pv, &t, &length, &data, &ab, &offset));
      size_t need = 0;
      switch (it.format->upload) {
        case Upload::Yuv: need = k == 0 ? size_t(it.width) * it.height : size_t(cw) * ch; break;
        case Upload::Nv: need = k == 0 ? size_t(it.width) * it.height : size_t(2 * cw) * ch; break;
        case Upload::Packed: need = size_t(it.width) * it.height * packedBytes(it.format->sdl); break;
        case Upload::None: break;
      }
      if (t != napi_uint8_array || length < need) {
        napi_throw_error(env, "ERR_FORMAT", "a plane is smaller than the picture needs");
        return nullptr;
      }
      it.planes[k] = static_cast<const uint8_t*>(data);
      it.sizes[k] = length;
    }
  }
  {
    std::lock_guard<std::mutex> lock(win->m);
    if (win->hasItem) {
      // Not taken yet: the newer tick replaces it. A picture not uploaded yet stays in the slot when the new tick
      // shows the same picture (its texture content is not there yet).
      it.replaced = win->item.replaced + 1;
      if (it.kind == kSame && win->item.kind == kPicture) {
        const int64_t tick = it.tickNs;
        const int replaced = it.replaced;
        it = win->item;
        it.tickNs = tick;
        it.replaced = replaced;
      }
      win->replaced.fetch_add(1);
    }
    win->item = it;
    win->hasItem = true;
  }
  win->cv.notify_one();
  return nullptr;
}

// released(): the largest picture sequence number the render thread no longer reads (all smaller ones neither).
napi_value Released(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Window* win = unwrap(env, info, &argc, nullptr, false);
  if (win == nullptr) return nullptr;
  napi_value v;
  CHECK(napi_create_double(env, win->released.load(), &v));
  return v;
}

// drain(): the presentations since the last call, 8 numbers each (see Record).
napi_value Drain(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Window* win = unwrap(env, info, &argc, nullptr, false);
  if (win == nullptr) return nullptr;
  std::deque<Record> got;
  {
    std::lock_guard<std::mutex> lock(win->m);
    got.swap(win->records);
  }
  return cuemux::float64Records(env, got.size(), kRecordFields, [&](size_t i, double* row) {
    const Record& r = got[i];
    const double f[kRecordFields] = {r.tickNs, r.takenNs, r.uploadedNs, r.copiedNs, r.presentedNs, r.seq, r.kind, r.replaced};
    std::memcpy(row, f, sizeof f);
  });
}

// stats(): { presented, replaced, uploads, uploadErrors, droppedRecords, userClosed, lastError }
napi_value Stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Window* win = unwrap(env, info, &argc, nullptr, false);
  if (win == nullptr) return nullptr;
  napi_value o;
  CHECK(napi_create_object(env, &o));
  CHECK(setNumber(env, o, "presented", double(win->presented.load())));
  CHECK(setNumber(env, o, "replaced", double(win->replaced.load())));
  CHECK(setNumber(env, o, "uploads", double(win->uploads.load())));
  CHECK(setNumber(env, o, "uploadErrors", double(win->uploadErrors.load())));
  CHECK(setBool(env, o, "userClosed", win->userClosed.load()));
  std::lock_guard<std::mutex> lock(win->m);
  CHECK(setNumber(env, o, "droppedRecords", double(win->droppedRecords)));
  CHECK(setString(env, o, "lastError", win->lastError));
  return o;
}

// closed(): the window was closed by its user (window manager close, SDL_QUIT).
napi_value Closed(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Window* win = unwrap(env, info, &argc, nullptr, false);
  if (win == nullptr) return nullptr;
  napi_value b;
  CHECK(napi_get_boolean(env, win->userClosed.load(), &b));
  return b;
}

// close(): stop the render thread (it finishes the presentation under way) and destroy the window. Idempotent.
napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Window* win = unwrap(env, info, &argc, nullptr, false);
  if (win == nullptr) return nullptr;
  stopWindow(win);
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  CHECK(cuemux::defineClass(env, exports, "SdlWindow", New,
      {{"info", Info}, {"present", Present}, {"released", Released}, {"drain", Drain}, {"stats", Stats}, {"closed", Closed}, {"close", Close}}));
  napi_value formats;
  CHECK(napi_create_array(env, &formats));
  uint32_t i = 0;
  for (const Format& f : kFormats) {
    napi_value s;
    CHECK(napi_create_string_utf8(env, f.name, NAPI_AUTO_LENGTH, &s));
    CHECK(napi_set_element(env, formats, i++, s));
  }
  CHECK(napi_set_named_property(env, exports, "formats", formats));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
