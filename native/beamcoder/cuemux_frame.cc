/*
  cuemux additions to beamcoder 0.7.1 (GPL-3.0-or-later, as beamcoder): a decoded picture copied out of its frame,
  and the frame's buffers given back to FFmpeg at once. Copied into node_modules/beamcoder/src and compiled by
  scripts/patch-beamcoder.js; exported on the module as cuemuxCopyPicture and cuemuxReleaseFrame.

  cuemuxCopyPicture(frame, dest: Uint8Array) -> bytes written: the picture in rawvideo's packed layout
  (av_image_copy_to_buffer, align 1: what `ffmpeg -c:v rawvideo` and framemd5 see), without creating a JavaScript
  Buffer per plane.
  cuemuxReleaseFrame(frame): av_frame_unref now, and the frame's external memory reported to V8 taken back now; the
  frame object stays valid and empty (its finalizer frees nothing more).

  Why: each decoded picture made V8 count its buffers as external memory twice (the frame's AVBuffers at creation,
  and again each plane's Buffer from frame.data), released only when a garbage collection ran the finalizers. V8
  starts a mark-compact every 64 MB of external memory: a player's decode worker ran one every 60-200 ms, pausing
  its thread 3-22 ms each (--trace-gc, bench:go --quick), and a GO's CueStarted waited behind them.
*/
#include "frame.h"
extern "C" {
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libavutil/macros.h>
}

static napi_value throwError(napi_env env, const char* message) {
  napi_throw_error(env, nullptr, message);
  return nullptr;
}

/** The frameData behind a beamcoder frame object (its `_frame` external), or null. */
static frameData* frameOf(napi_env env, napi_value jsFrame) {
  napi_value ext;
  napi_valuetype type;
  void* data = nullptr;
  if (napi_get_named_property(env, jsFrame, "_frame", &ext) != napi_ok) return nullptr;
  if (napi_typeof(env, ext, &type) != napi_ok || type != napi_external) return nullptr;
  if (napi_get_value_external(env, ext, &data) != napi_ok) return nullptr;
  return (frameData*) data;
}

/** The call's `n` arguments into `args`, the first a beamcoder frame: its frameData, or null with an error thrown. */
static frameData* frameCall(napi_env env, napi_callback_info info, size_t n, napi_value* args, const char* usage) {
  size_t argc = n;
  frameData* f = nullptr;
  if (napi_get_cb_info(env, info, &argc, args, nullptr, nullptr) == napi_ok && argc >= n) f = frameOf(env, args[0]);
  if (f == nullptr || f->frame == nullptr) throwError(env, usage);
  return f == nullptr || f->frame == nullptr ? nullptr : f;
}

napi_value cuemuxCopyPicture(napi_env env, napi_callback_info info) {
  napi_value args[2];
  frameData* f = frameCall(env, info, 2, args, "cuemuxCopyPicture(frame, dest) takes a beamcoder frame and a Uint8Array");
  if (f == nullptr) return nullptr;
  AVFrame* fr = f->frame;
  if (fr->data[0] == nullptr) return throwError(env, "cuemuxCopyPicture: the frame holds no picture (released?)");
  bool typed = false;
  if (napi_is_typedarray(env, args[1], &typed) != napi_ok || !typed) return throwError(env, "cuemuxCopyPicture: dest must be a Uint8Array");
  napi_typedarray_type type;
  size_t length = 0;
  void* dst = nullptr;
  napi_value arrayBuffer;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, args[1], &type, &length, &dst, &arrayBuffer, &offset) != napi_ok || type != napi_uint8_array) {
    return throwError(env, "cuemuxCopyPicture: dest must be a Uint8Array");
  }
  const AVPixelFormat format = (AVPixelFormat) fr->format;
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  if (desc == nullptr || (desc->flags & AV_PIX_FMT_FLAG_HWACCEL)) return throwError(env, "cuemuxCopyPicture: not a picture format in memory");
  // Every plane there with rows as long as the layout needs, and a palette's 1024 bytes: checked, not read past.
  int planes = 0;
  for (int c = 0; c < desc->nb_components; c++) planes = FFMAX(planes, desc->comp[c].plane + 1);
  for (int p = 0; p < planes; p++) {
    const int rowBytes = av_image_get_linesize(format, fr->width, p);
    if (fr->data[p] == nullptr || rowBytes < 0 || fr->linesize[p] < rowBytes) return throwError(env, "cuemuxCopyPicture: a plane of the frame is missing or shorter than its layout");
  }
  if ((desc->flags & AV_PIX_FMT_FLAG_PAL) && (fr->data[1] == nullptr || (fr->buf[1] != nullptr && fr->buf[1]->size < 1024))) {
    return throwError(env, "cuemuxCopyPicture: the frame has no palette");
  }
  const int size = av_image_get_buffer_size(format, fr->width, fr->height, 1);
  if (size < 0) return throwError(env, "cuemuxCopyPicture: FFmpeg cannot lay out this picture format");
  if ((size_t) size > length) return throwError(env, "cuemuxCopyPicture: dest is smaller than the picture");
  const int n = av_image_copy_to_buffer((uint8_t*) dst, size, (const uint8_t* const*) fr->data, fr->linesize, format, fr->width, fr->height, 1);
  if (n < 0) return throwError(env, "cuemuxCopyPicture: av_image_copy_to_buffer failed");
  napi_value result;
  napi_create_int64(env, n, &result);
  return result;
}

napi_value cuemuxReleaseFrame(napi_env env, napi_callback_info info) {
  napi_value args[1];
  frameData* f = frameCall(env, info, 1, args, "cuemuxReleaseFrame(frame) takes a beamcoder frame");
  if (f == nullptr) return nullptr;
  if (f->extSize != 0) {
    int64_t external;
    napi_adjust_external_memory(env, -(int64_t) f->extSize, &external);
    f->extSize = 0;
  }
  // Buffers already handed to JavaScript (frame.data) hold their own references: they stay valid.
  av_frame_unref(f->frame);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

void cuemuxFrameInit(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "cuemuxCopyPicture", NAPI_AUTO_LENGTH, cuemuxCopyPicture, nullptr, &fn) == napi_ok) {
    napi_set_named_property(env, exports, "cuemuxCopyPicture", fn);
  }
  if (napi_create_function(env, "cuemuxReleaseFrame", NAPI_AUTO_LENGTH, cuemuxReleaseFrame, nullptr, &fn) == napi_ok) {
    napi_set_named_property(env, exports, "cuemuxReleaseFrame", fn);
  }
}
