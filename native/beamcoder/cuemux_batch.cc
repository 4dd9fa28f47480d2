/*
  cuemux additions to beamcoder 0.7.1 (GPL-3.0-or-later, as beamcoder).
  Copied into node_modules/beamcoder/src and compiled by scripts/patch-beamcoder.js.

  readBatch(maxPackets, maxBytes, withData) reads up to maxPackets packets with
  av_read_frame in ONE thread-pool job and returns them packed:
    { count, meta: Buffer, data: Buffer | null, eof: boolean, error: string | null,
      errorCode: number, stopPos: number }
  meta holds count records of META_DOUBLES float64 values, little-endian:
    pts, dts, duration, pos, size, stream_index, flags, dataOffset
  Every int64 FFmpeg value with |v| <= 2^53 (and AV_NOPTS_VALUE = -2^63) is exact
  as a double; a larger value is reported as an error instead of rounding.
  Why: one read() through beamcoder costs 100-170 us per packet (a thread-pool
  hop, a promise and a packet object per packet); this makes the cost per packet
  that of av_read_frame itself, with exactly the values the demuxer reports.
*/
#include <string>
#include <vector>
#include <cstring>
#include <cstdarg>
#include "demux.h"
extern "C" {
#include <libavutil/time.h>
}

static const int META_DOUBLES = 8;

// FFmpeg reports some damage only through av_log and then returns a plain EOF (MKV "File ended prematurely",
// MP4 "partial file"). While readBatch runs, error-level lines logged on its thread are captured here, so the
// caller learns that and where reading stopped. thread_local: other demuxers on other pool threads don't mix in.
static thread_local std::string* tlCapture = nullptr;
static bool callbackInstalled = false;

static void captureLog(void* avcl, int level, const char* fmt, va_list vl) {
  if (tlCapture != nullptr && level <= AV_LOG_ERROR && tlCapture->size() < 2048) {
    char line[512];
    int prefix = 1;
    va_list copy;
    va_copy(copy, vl);
    av_log_format_line(avcl, level, fmt, copy, line, sizeof(line), &prefix);
    va_end(copy);
    *tlCapture = line; // keep the last line: the one that explains why reading ended
  }
  av_log_default_callback(avcl, level, fmt, vl);
}

struct cuemuxBatch {
  fmtCtxRef* formatRef = nullptr;
  napi_ref passthru = nullptr;
  napi_deferred deferred = nullptr;
  napi_async_work request = nullptr;
  int32_t maxPackets = 256;
  int64_t maxBytes = 1 << 20;
  bool withData = false;
  std::vector<double> meta;
  std::vector<uint8_t> data;
  int32_t count = 0;
  bool eof = false;
  int errorCode = 0;
  std::string error;
  double stopPos = -1;
};

static const int64_t LIMIT53 = (int64_t) 1 << 53;
/** Batches stop after this long so one read never holds a libuv pool thread for long (slow disks, NAS). */
static const int64_t MAX_BATCH_US = 50000;
static const int32_t MAX_BATCH_PACKETS = 1 << 16;

static bool exact(int64_t v) {
  return v == AV_NOPTS_VALUE || (v <= LIMIT53 && v >= -LIMIT53);
}

static void batchExecute(napi_env env, void* raw) {
  cuemuxBatch* c = (cuemuxBatch*) raw;
  AVFormatContext* fmtCtx = c->formatRef->fmtCtx;
  if (fmtCtx == nullptr) {
    c->errorCode = AVERROR(EBADF);
    c->error = "format context has been closed";
    return;
  }
  std::string logged;
  tlCapture = &logged;
  AVPacket* pkt = av_packet_alloc();
  c->meta.reserve((size_t) c->maxPackets * META_DOUBLES);
  int64_t bytes = 0;
  const int64_t started = av_gettime_relative();
  while (c->count < c->maxPackets && (!c->withData || bytes < c->maxBytes)) {
    if ((c->count & 63) == 63 && av_gettime_relative() - started > MAX_BATCH_US) break;
    // Only what is logged by the read that ends the file explains why it ended.
    logged.clear();
    int ret = av_read_frame(fmtCtx, pkt);
    if (ret == AVERROR_EOF) { c->eof = true; break; }
    if (ret < 0) {
      char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
      av_strerror(ret, buf, sizeof(buf));
      c->errorCode = ret;
      c->error = buf;
      c->stopPos = fmtCtx->pb ? (double) avio_tell(fmtCtx->pb) : -1;
      break;
    }
    if (!exact(pkt->pts) || !exact(pkt->dts) || !exact(pkt->duration) || !exact(pkt->pos)) {
      c->errorCode = AVERROR(ERANGE);
      c->error = "a timestamp or position is beyond 2^53 and cannot be represented exactly";
      av_packet_unref(pkt);
      break;
    }
    double offset = (double) c->data.size();
    if (c->withData && pkt->size > 0) {
      c->data.insert(c->data.end(), pkt->data, pkt->data + pkt->size);
    }
    c->meta.push_back((double) pkt->pts);
    c->meta.push_back((double) pkt->dts);
    c->meta.push_back((double) pkt->duration);
    c->meta.push_back((double) pkt->pos);
    c->meta.push_back((double) pkt->size);
    c->meta.push_back((double) pkt->stream_index);
    c->meta.push_back((double) pkt->flags);
    c->meta.push_back(offset);
    bytes += pkt->size;
    c->count++;
    av_packet_unref(pkt);
  }
  av_packet_free(&pkt);
  tlCapture = nullptr;
  if (c->eof && c->error.empty() && !logged.empty()) {
    while (!logged.empty() && (logged.back() == '\n' || logged.back() == ' ')) logged.pop_back();
    c->errorCode = AVERROR_EOF;
    c->error = logged;
    c->stopPos = fmtCtx->pb ? (double) avio_tell(fmtCtx->pb) : -1;
  }
}

static void batchComplete(napi_env env, napi_status asyncStatus, void* raw) {
  cuemuxBatch* c = (cuemuxBatch*) raw;
  napi_value result, v;
  napi_status s = napi_create_object(env, &result);
  if (s == napi_ok && asyncStatus != napi_ok) {
    c->errorCode = -1;
    c->error = "readBatch did not complete";
  }
  void* out = nullptr;
  napi_create_int32(env, c->count, &v);
  napi_set_named_property(env, result, "count", v);
  napi_create_buffer_copy(env, c->meta.size() * sizeof(double),
    c->meta.empty() ? (const void*) "" : (const void*) c->meta.data(), &out, &v);
  napi_set_named_property(env, result, "meta", v);
  if (c->withData) {
    napi_create_buffer_copy(env, c->data.size(),
      c->data.empty() ? (const void*) "" : (const void*) c->data.data(), &out, &v);
  } else {
    napi_get_null(env, &v);
  }
  napi_set_named_property(env, result, "data", v);
  napi_get_boolean(env, c->eof, &v);
  napi_set_named_property(env, result, "eof", v);
  if (c->error.empty()) {
    napi_get_null(env, &v);
  } else {
    napi_create_string_utf8(env, c->error.c_str(), NAPI_AUTO_LENGTH, &v);
  }
  napi_set_named_property(env, result, "error", v);
  napi_create_int32(env, c->errorCode, &v);
  napi_set_named_property(env, result, "errorCode", v);
  napi_create_double(env, c->stopPos, &v);
  napi_set_named_property(env, result, "stopPos", v);
  napi_resolve_deferred(env, c->deferred, result);
  napi_delete_reference(env, c->passthru);
  napi_delete_async_work(env, c->request);
  delete c;
}

napi_value cuemuxReadBatch(napi_env env, napi_callback_info info) {
  napi_value promise, formatJS, formatRefExt, resourceName;
  napi_value args[3];
  if (!callbackInstalled) { // main thread only: no race
    av_log_set_callback(captureLog);
    callbackInstalled = true;
  }
  size_t argc = 3;
  cuemuxBatch* c = new cuemuxBatch;
  napi_status s = napi_create_promise(env, &c->deferred, &promise);
  if (s != napi_ok) { delete c; return nullptr; }
  s = napi_get_cb_info(env, info, &argc, args, &formatJS, nullptr);
  if (s == napi_ok && argc > 0) napi_get_value_int32(env, args[0], &c->maxPackets);
  if (s == napi_ok && argc > 1) napi_get_value_int64(env, args[1], &c->maxBytes);
  if (s == napi_ok && argc > 2) napi_get_value_bool(env, args[2], &c->withData);
  if (c->maxPackets < 1) c->maxPackets = 1;
  if (c->maxPackets > MAX_BATCH_PACKETS) c->maxPackets = MAX_BATCH_PACKETS;
  if (s == napi_ok) s = napi_get_named_property(env, formatJS, "_formatContextRef", &formatRefExt);
  if (s == napi_ok) s = napi_get_value_external(env, formatRefExt, (void**) &c->formatRef);
  if (s == napi_ok) s = napi_create_reference(env, formatJS, 1, &c->passthru);
  if (s == napi_ok) s = napi_create_string_utf8(env, "CuemuxReadBatch", NAPI_AUTO_LENGTH, &resourceName);
  if (s == napi_ok) s = napi_create_async_work(env, nullptr, resourceName, batchExecute,
    batchComplete, c, &c->request);
  if (s == napi_ok) s = napi_queue_async_work(env, c->request);
  if (s != napi_ok) {
    napi_value err, msg;
    napi_create_string_utf8(env, "readBatch could not be started", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, nullptr, msg, &err);
    napi_reject_deferred(env, c->deferred, err);
    if (c->passthru) napi_delete_reference(env, c->passthru);
    delete c;
  }
  return promise;
}
