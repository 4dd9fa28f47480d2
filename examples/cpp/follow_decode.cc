// follow_decode: follow one cuemux output over gRPC, decode its packets with libavcodec, and print every decoded
// frame with the show-clock time at which it is due. A starting point for a C++ player; the contract is
// proto/cuemux/v1/media_server.proto and docs/player-guide.md explains the model.
//
// usage: follow_decode [--target T] [--output NAME] [--lead S] [--remote] [--md5] [--packets] [--seconds S]
//                      [--until-stopped] [--no-prepare]
//   --target T       unix:///path/to/cuemux.sock or HOST:PORT (default: the server's default socket,
//                    $XDG_RUNTIME_DIR/cuemux/cuemux.sock, else ${TMPDIR:-/tmp}/cuemux-UID/cuemux.sock)
//   --output NAME    the output to follow, as named in the cue list's "outputs" (default "video")
//   --lead S         lead window in seconds of show time (default 0.5; at most 10)
//   --remote         compute the clock from anchor_unix_ns and a Ping offset instead of anchor_monotonic_ns
//   --md5            print the MD5 of each decoded frame (as `ffmpeg -f framemd5` computes it for rawvideo and
//                    packed PCM output)
//   --seconds S      stop after S seconds (default: run until interrupted)
//   --until-stopped  stop after the first CueStopped (once its last frames are out)
//   --packets        also print one line per FollowPackets and CuePreroll message
//   --no-prepare     do not ask for prerolls (FollowRequest.prepare): every packet of a segment then comes in
//                    FollowPackets after the GO
//
// Output: one line per event and per decoded frame, e.g.
//   frame cue=1 seg=0 gen=3 stream=0 video pts=2048 media=0.160000 clock=12.160000 due_in_ms=+431.7 present md5=...
// "present" frames are due in the future; "late" frames' whole span has passed on the clock; "preroll" frames lie
// before the segment's media_seconds and "after-end" ones at or after its end_media_seconds: decode, do not present.
// A cue's preroll (CuePreroll, before its GO) is decoded at once into decoders of its own:
//   frame cue=1 preroll=3 stream=0 video pts=2048 media=0.160000 prepared md5=...
// "prepared" frames (the one covering the in-point and later ones) are kept, "preroll" ones (before the in-point)
// are not; "prepared cue=1 preroll=3 ..." ends the preroll. When a segment adopts it (FollowPackets.preroll):
//   adopt cue=1 preroll=3 seg=2 gen=5 kept=7 clock=...
// then every kept frame again, now with its segment and clock time, marked "adopted".
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <time.h>
#include <unistd.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/imgutils.h>
#include <libavutil/md5.h>
#include <libavutil/pixdesc.h>
#include <libavutil/samplefmt.h>
}

#include "cuemux/v1/media_server.grpc.pb.h"

namespace v1 = cuemux::v1;

// FFmpeg 5.1 (Debian 12) is what this was verified with; these keep it compiling with FFmpeg 6.1 and later.
#ifdef AV_PROFILE_UNKNOWN
#define CUEMUX_PROFILE_UNKNOWN AV_PROFILE_UNKNOWN
#define CUEMUX_LEVEL_UNKNOWN AV_LEVEL_UNKNOWN
#else
#define CUEMUX_PROFILE_UNKNOWN FF_PROFILE_UNKNOWN
#define CUEMUX_LEVEL_UNKNOWN FF_LEVEL_UNKNOWN
#endif

// ---------------------------------------------------------------------------------------------------------------
// Clocks and the show position

static int64_t now_ns(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// The show position (seconds) of `s` now: position_seconds + rate * (now - anchor) / 1e9 while the clock runs.
// Same machine as the server: anchor_monotonic_ns against our CLOCK_MONOTONIC (exact). Elsewhere: anchor_unix_ns
// against our CLOCK_REALTIME plus the server-minus-local offset estimated with Ping.
struct ShowClock {
  v1::ClockState state;
  bool known = false;
  bool remote = false;
  int64_t offset_ns = 0;  // server wall clock - local wall clock (remote only)

  bool running() const { return state.state() != "stopped" && state.rate() != 0; }
  double position() const {
    if (!running()) return state.position_seconds();
    int64_t elapsed = remote ? now_ns(CLOCK_REALTIME) + offset_ns - state.anchor_unix_ns()
                             : now_ns(CLOCK_MONOTONIC) - state.anchor_monotonic_ns();
    return state.position_seconds() + state.rate() * double(elapsed) / 1e9;
  }
};

// NTP-style offset from several Pings: keep the sample with the smallest round trip (see PingResponse).
static bool estimate_offset(v1::MediaServer::Stub& stub, int samples, int64_t* offset_ns, int64_t* rtt_ns) {
  bool ok = false;
  for (int i = 0; i < samples; i++) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::PingRequest req;
    v1::PingResponse res;
    int64_t c1 = now_ns(CLOCK_REALTIME);
    req.set_client_send_unix_ns(c1);
    if (!stub.Ping(&ctx, req, &res).ok()) continue;
    int64_t c2 = now_ns(CLOCK_REALTIME);
    int64_t s1 = res.server_receive_unix_ns(), s2 = res.server_send_unix_ns();
    int64_t rtt = (c2 - c1) - (s2 - s1);
    if (!ok || rtt < *rtt_ns) {
      *rtt_ns = rtt;
      *offset_ns = ((s1 - c1) + (s2 - c2)) / 2;
      ok = true;
    }
  }
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoders from StreamInfo

static std::string averr(int e) {
  char buf[AV_ERROR_MAX_STRING_SIZE];
  av_strerror(e, buf, sizeof buf);
  return buf;
}

static AVFieldOrder field_order_of(const std::string& s) {
  if (s == "progressive") return AV_FIELD_PROGRESSIVE;
  if (s == "tt") return AV_FIELD_TT;
  if (s == "bb") return AV_FIELD_BB;
  if (s == "tb") return AV_FIELD_TB;
  if (s == "bt") return AV_FIELD_BT;
  return AV_FIELD_UNKNOWN;
}

// An FFmpeg decoder configured from StreamInfo alone (no AVFormatContext on the player's side). Returns null (and
// says why) for a stream this FFmpeg cannot decode.
static AVCodecContext* open_decoder(const v1::StreamInfo& s, std::string* why) {
  // codec_name is portable across FFmpeg builds; codec_id is the server's numbering and may differ from ours.
  const AVCodecDescriptor* desc = avcodec_descriptor_get_by_name(s.codec_name().c_str());
  const AVCodec* codec = desc ? avcodec_find_decoder(desc->id) : nullptr;
  if (codec == nullptr) {
    *why = "no decoder for codec \"" + s.codec_name() + "\" in this FFmpeg";
    return nullptr;
  }
  AVCodecParameters* par = avcodec_parameters_alloc();
  par->codec_type = codec->type;
  par->codec_id = codec->id;
  par->codec_tag = s.codec_tag();
  par->bit_rate = s.bit_rate();
  par->bits_per_coded_sample = s.bits_per_coded_sample();
  par->bits_per_raw_sample = s.bits_per_raw_sample();
  par->profile = s.has_profile() ? s.profile() : CUEMUX_PROFILE_UNKNOWN;
  par->level = s.has_level() ? s.level() : CUEMUX_LEVEL_UNKNOWN;
  if (!s.extradata().empty()) {
    // Decoders may read up to AV_INPUT_BUFFER_PADDING_SIZE bytes past the end: allocate them, zeroed.
    par->extradata = static_cast<uint8_t*>(av_mallocz(s.extradata().size() + AV_INPUT_BUFFER_PADDING_SIZE));
    std::memcpy(par->extradata, s.extradata().data(), s.extradata().size());
    par->extradata_size = int(s.extradata().size());
  }
  if (s.codec_type() == "video") {
    par->width = s.width();
    par->height = s.height();
    par->format = s.format().empty() ? -1 : av_get_pix_fmt(s.format().c_str());
    par->sample_aspect_ratio = AVRational{s.sample_aspect_ratio_num(), s.sample_aspect_ratio_den()};
    par->field_order = field_order_of(s.field_order());
    int v;
    if ((v = av_color_range_from_name(s.color_range().c_str())) >= 0) par->color_range = AVColorRange(v);
    if ((v = av_color_primaries_from_name(s.color_primaries().c_str())) >= 0) par->color_primaries = AVColorPrimaries(v);
    if ((v = av_color_transfer_from_name(s.color_transfer().c_str())) >= 0) par->color_trc = AVColorTransferCharacteristic(v);
    if ((v = av_color_space_from_name(s.color_space().c_str())) >= 0) par->color_space = AVColorSpace(v);
    if ((v = av_chroma_location_from_name(s.chroma_location().c_str())) >= 0) par->chroma_location = AVChromaLocation(v);
    par->video_delay = s.video_delay();
  } else if (s.codec_type() == "audio") {
    par->format = s.format().empty() ? -1 : av_get_sample_fmt(s.format().c_str());
    par->sample_rate = s.sample_rate();
    if (s.channel_layout().empty() || av_channel_layout_from_string(&par->ch_layout, s.channel_layout().c_str()) < 0 ||
        par->ch_layout.nb_channels != s.channels()) {
      av_channel_layout_uninit(&par->ch_layout);
      av_channel_layout_default(&par->ch_layout, s.channels());
    }
    par->block_align = s.block_align();
    par->frame_size = s.frame_size();
    par->initial_padding = s.initial_padding();
    par->trailing_padding = s.trailing_padding();
    par->seek_preroll = s.seek_preroll();
  }
  AVCodecContext* ctx = avcodec_alloc_context3(codec);
  int r = avcodec_parameters_to_context(ctx, par);
  avcodec_parameters_free(&par);
  // Packet timestamps are in the stream's time base.
  ctx->pkt_timebase = AVRational{s.time_base_num(), s.time_base_den()};
  if (r >= 0) r = avcodec_open2(ctx, codec, nullptr);
  if (r < 0) {
    *why = "cannot open the " + std::string(codec->name) + " decoder: " + averr(r);
    avcodec_free_context(&ctx);
    return nullptr;
  }
  return ctx;
}

// MD5 of a decoded frame as `ffmpeg -f framemd5` hashes it: the picture packed without padding (rawvideo), or the
// samples interleaved (packed PCM, e.g. -c:a pcm_f32le for fltp).
static std::string frame_md5(const AVFrame* f, bool video) {
  std::vector<uint8_t> buf;
  if (video) {
    int size = av_image_get_buffer_size(AVPixelFormat(f->format), f->width, f->height, 1);
    if (size < 0) return "?";
    buf.resize(size);
    av_image_copy_to_buffer(buf.data(), size, f->data, f->linesize, AVPixelFormat(f->format), f->width, f->height, 1);
  } else {
    AVSampleFormat fmt = AVSampleFormat(f->format);
    int bps = av_get_bytes_per_sample(fmt), ch = f->ch_layout.nb_channels;
    buf.resize(size_t(bps) * ch * f->nb_samples);
    if (!av_sample_fmt_is_planar(fmt)) {
      std::memcpy(buf.data(), f->extended_data[0], buf.size());
    } else {
      for (int i = 0; i < f->nb_samples; i++)
        for (int c = 0; c < ch; c++)
          std::memcpy(&buf[(size_t(i) * ch + c) * bps], f->extended_data[c] + size_t(i) * bps, bps);
    }
  }
  uint8_t md5[16];
  av_md5_sum(md5, buf.data(), int(buf.size()));
  char hex[33];
  for (int i = 0; i < 16; i++) std::snprintf(hex + 2 * i, 3, "%02x", md5[i]);
  return hex;
}

// ---------------------------------------------------------------------------------------------------------------
// Cues

struct Decoder {
  AVCodecContext* ctx = nullptr;
  v1::StreamInfo info;
  bool fed = false;         // packets were sent since the last flush
  bool drained = false;     // the decoder was drained for (generation, segment): no packet of it may follow
  uint64_t generation = 0;  // of the packets being decoded
  uint32_t segment = 0;     // of the packets being decoded
  uint32_t preroll = 0;     // the preroll it decodes, until a segment adopts it; 0: a segment's decoder
};

// A decoded frame kept from a preroll until a segment adopts it.
struct KeptFrame {
  int stream;
  AVFrame* frame;
};

// A preroll (CuePreroll) being prepared: decoders of its own, fed before the GO, and the frames they gave from the
// in-point on. Not the cue's decoders: the cue may still be playing a segment (a loop pass, a run that a new GO
// restarts) while its next start is prepared.
struct Prepared {
  std::map<int, Decoder> decoders;  // by stream index
  std::vector<KeptFrame> frames;    // the frame covering the in-point and those after it, in decoding order
  int packets = 0;
  uint64_t next_entry = 0;          // one past the highest Packet.entry: where a reconnect goes on after adoption
  bool complete = false;            // its last message arrived
};

struct Cue {
  v1::CueLoaded loaded;
  std::map<int, Decoder> decoders;                 // by stream index: the segment being played
  std::map<uint32_t, v1::CueStarted> segments;     // every segment of the current run
  std::map<uint32_t, Prepared> prepared;           // by preroll number: the newest only (a new one replaces it)
  bool has_resume = false;                         // where to go on after a reconnect
  v1::FollowResume resume;
  bool has_resumed = false;                        // what this connection's FollowRequest.resume named for the cue:
  v1::FollowResume resumed;                        // packets before its next_entry were received already
};

struct Options {
  std::string target, output = "video";
  double lead = 0.5, seconds = 0;
  bool remote = false, md5 = false, until_stopped = false, packets = false, prepare = true;
};

class Player {
 public:
  explicit Player(const Options& o) : o_(o), frame_(av_frame_alloc()), pkt_(av_packet_alloc()) {}
  ~Player() {
    for (auto& [id, cue] : cues_) release(cue);
    av_frame_free(&frame_);
    av_packet_free(&pkt_);
  }

  ShowClock clock;
  bool stop_requested = false;

  // A new Follow call starts: its first event is the clock, which resets the generation we accept.
  void connected() {
    fresh_connection_ = true;
    for (auto& [id, cue] : cues_) {
      // Preroll numbers belong to the call that sent them: the new call sends its own prerolls of the loaded cues.
      drop_prepared(cue, "reconnect");
      cue.has_resumed = cue.has_resume;
      cue.resumed = cue.resume;
    }
  }

  std::vector<v1::FollowResume> resume_list() const {
    std::vector<v1::FollowResume> out;
    for (auto& [id, cue] : cues_)
      if (cue.has_resume) out.push_back(cue.resume);
    return out;
  }

  void on_event(const v1::FollowEvent& ev) {
    switch (ev.event_case()) {
      case v1::FollowEvent::kClock: on_clock(ev.clock()); break;
      case v1::FollowEvent::kLoaded: on_loaded(ev.loaded()); break;
      case v1::FollowEvent::kStarted: on_started(ev.started()); break;
      case v1::FollowEvent::kStopped: on_stopped(ev.stopped()); break;
      case v1::FollowEvent::kUnloaded: on_unloaded(ev.unloaded()); break;
      case v1::FollowEvent::kPackets: on_packets(ev.packets()); break;
      case v1::FollowEvent::kPreroll: on_preroll(ev.preroll()); break;
      default: break;
    }
  }

 private:

  void on_clock(const v1::ClockState& s) {
    if (fresh_connection_ && clock.known && !s.show_id().empty() && s.show_id() != clock.state.show_id()) {
      // Another show (the server restarted cleanly, or another server answers): its cues, segments and generations
      // are new, and it ignores our resume points. Forget every cue; the new call announces the loaded ones.
      std::printf("another show (show_id %s, was %s): forgetting its cues\n", s.show_id().c_str(), clock.state.show_id().c_str());
      for (auto& [id, cue] : cues_) release(cue);
      cues_.clear();
    }
    bool discontinuity = fresh_connection_ ? s.generation() != generation_ : s.generation() > generation_;
    if (!clock.known || discontinuity || s.state() != clock.state.state() || s.rate() != clock.state.rate())
      std::printf("clock gen=%" PRIu64 " %s rate=%g position=%.6f tc=%s source=%s\n", s.generation(), s.state().c_str(), s.rate(),
                  s.position_seconds(), s.timecode().c_str(), s.source().c_str());
    clock.state = s;
    clock.known = true;
    fresh_connection_ = false;
    if (discontinuity) {
      // A new timeline: what the decoders hold belongs to the old one. The server resends from the new position.
      // Prerolls stay: they hold no clock time, and a segment of the new generation may adopt them.
      generation_ = s.generation();
      for (auto& [id, cue] : cues_)
        for (auto& [index, d] : cue.decoders) flush(d);
    }
  }

  void on_loaded(const v1::CueLoaded& l) {
    auto it = cues_.find(l.cue_id());
    // A CueLoaded (re-armed, or repeated on reconnect) drops the cue's preroll: a new one follows it.
    if (it != cues_.end()) drop_prepared(it->second, "loaded");
    if (it != cues_.end() && it->second.loaded.media().media_id() == l.media().media_id() &&
        std::equal(l.streams().begin(), l.streams().end(), it->second.loaded.streams().begin(), it->second.loaded.streams().end())) {
      it->second.loaded = l;  // the same decoders; the in- and out-points may have changed
      return;
    }
    if (it != cues_.end()) {
      release(it->second);
      cues_.erase(it);
    }
    Cue& cue = cues_[l.cue_id()];
    cue.loaded = l;
    std::printf("loaded cue=%s media=%s in=%.6f out=%s loop=%d streams=%d\n", l.cue_id().c_str(), l.media().path().c_str(), l.in_seconds(),
                l.has_out_seconds() ? std::to_string(l.out_seconds()).c_str() : "end", int(l.loop()), l.streams_size());
    for (uint32_t index : l.streams()) {
      const v1::StreamInfo& s = l.media().streams(int(index));
      if (s.codec_type() != "video" && s.codec_type() != "audio") continue;
      std::string why;
      AVCodecContext* ctx = open_decoder(s, &why);
      if (ctx == nullptr) {
        std::printf("  stream %u: %s (skipped)\n", index, why.c_str());
        continue;
      }
      std::printf("  stream %u: %s %s tb=%d/%d %s\n", index, s.codec_type().c_str(), ctx->codec->name, s.time_base_num(), s.time_base_den(),
                  s.codec_type() == "video" ? (std::to_string(s.width()) + "x" + std::to_string(s.height()) + " " + s.format()).c_str()
                                            : (std::to_string(s.sample_rate()) + " Hz " + s.channel_layout() + " " + s.format()).c_str());
      Decoder& d = cue.decoders[int(index)];
      d.ctx = ctx;
      d.info = s;
    }
  }

  void on_started(const v1::CueStarted& st) {
    auto it = cues_.find(st.cue_id());
    if (it == cues_.end()) return;
    if (it->second.segments.count(st.segment())) return;  // repeated on reconnect
    it->second.segments[st.segment()] = st;
    std::printf("started cue=%s seg=%u clock=%.6f media=%.6f end_media=%.6f\n", st.cue_id().c_str(), st.segment(), st.clock_seconds(),
                st.media_seconds(), st.end_media_seconds());
  }

  void on_stopped(const v1::CueStopped& st) {
    auto it = cues_.find(st.cue_id());
    std::printf("stopped cue=%s reason=%s clock=%.6f media=%.6f\n", st.cue_id().c_str(), st.reason().c_str(), st.clock_seconds(), st.media_seconds());
    if (it != cues_.end()) {
      Cue& cue = it->second;
      for (auto& [index, d] : cue.decoders) {
        // "ended": the last frames are still wanted (normally drained at the last batch already); otherwise drop them.
        if (st.reason() == "ended") drain(cue, d);
        else flush(d);
      }
      cue.segments.clear();  // the run is over (a new GO announces its segments again)
      cue.has_resume = false;
    }
    if (o_.until_stopped) stop_requested = true;
  }

  void on_unloaded(const v1::CueUnloaded& u) {
    std::printf("unloaded cue=%s\n", u.cue_id().c_str());
    auto it = cues_.find(u.cue_id());
    if (it == cues_.end()) return;
    drop_prepared(it->second, "unloaded");
    release(it->second);
    cues_.erase(it);
  }

  void on_packets(const v1::FollowPackets& fp) {
    auto it = cues_.find(fp.cue_id());
    if (it == cues_.end()) return;
    Cue& cue = it->second;
    if (o_.packets && (fp.packets_size() > 0 || fp.preroll() != 0))
      std::printf("packets cue=%s seg=%u gen=%" PRIu64 " count=%d entries=%s%s%s clock=%.6f%s\n", fp.cue_id().c_str(), fp.segment(), fp.generation(),
                  fp.packets_size(),
                  fp.packets_size() > 0 ? (std::to_string(fp.packets(0).entry()) + ".." + std::to_string(fp.packets(fp.packets_size() - 1).entry())).c_str() : "none",
                  fp.last() ? " last" : "", fp.preroll() != 0 ? (" preroll=" + std::to_string(fp.preroll())).c_str() : "", clock.position(),
                  fp.generation() < generation_ ? " (old generation: dropped)" : "");
    if (fp.generation() < generation_) {  // planned for an older timeline: drop
      // The server counts the preroll as adopted even so: it will never name it again.
      if (fp.preroll() != 0 && cue.prepared.count(fp.preroll())) drop_prepared(cue, "adopted by an old generation");
      return;
    }
    if (fp.generation() > generation_) {  // (the ClockState comes first; be safe anyway)
      generation_ = fp.generation();
      for (auto& [index, d] : cue.decoders) flush(d);
    }
    if (fp.preroll() != 0) adopt(cue, fp);
    bool repeat_check = cue.has_resumed && cue.resumed.segment() == fp.segment() && cue.resumed.generation() == fp.generation();
    for (const v1::Packet& p : fp.packets()) {
      if (repeat_check && p.entry() < cue.resumed.next_entry()) continue;  // already received before a reconnect
      // Entries grow in file order; right after an adopted preroll a stream's next packet may lie before another
      // stream's last preroll packet in the file, so go on from the highest entry received.
      bool same = cue.has_resume && cue.resume.segment() == fp.segment() && cue.resume.generation() == fp.generation();
      cue.has_resume = true;
      cue.resume.set_cue_id(fp.cue_id());
      cue.resume.set_segment(fp.segment());
      cue.resume.set_generation(fp.generation());
      cue.resume.set_show_id(clock.state.show_id());
      cue.resume.set_next_entry(same ? std::max(cue.resume.next_entry(), p.entry() + 1) : p.entry() + 1);
      auto dit = cue.decoders.find(p.stream_index());
      if (dit == cue.decoders.end()) continue;
      Decoder& d = dit->second;
      if (d.fed && d.generation != fp.generation()) flush(d);
      if (d.fed && d.segment != fp.segment()) drain(cue, d);  // a new pass of a loop (or a resume): finish the old one
      if (d.drained && d.segment == fp.segment() && d.generation == fp.generation())
        std::printf("warning: packet of cue=%s seg=%u after its last batch\n", fp.cue_id().c_str(), fp.segment());
      d.generation = fp.generation();
      d.segment = fp.segment();
      d.fed = true;
      d.drained = false;
      send(cue, d, p);
    }
    // The segment's final batch in this generation: drain now, so the frames a decoder holds back (reordering,
    // frame threads) come out before their clock time.
    if (fp.last())
      for (auto& [index, d] : cue.decoders)
        if (d.fed && d.segment == fp.segment() && d.generation == fp.generation()) drain(cue, d);
  }

  // A cue's preroll: open its decoders and decode its packets now, while the cue waits for its GO, so the GO finds
  // the in-point's frames decoded (a keyframe and the reordering delay take more than a frame's time to decode).
  // Here on the one thread; a player that presents decodes it beside the playing cues and below them in priority:
  // the server renews a preroll about 1 s after a segment adopted it, while the cue plays.
  void on_preroll(const v1::CuePreroll& pr) {
    auto it = cues_.find(pr.cue_id());
    if (it == cues_.end()) return;  // (its CueLoaded comes first)
    Cue& cue = it->second;
    if (o_.packets)
      std::printf("preroll cue=%s preroll=%u count=%d entries=%s%s clock=%.6f\n", pr.cue_id().c_str(), pr.preroll(), pr.packets_size(),
                  pr.packets_size() > 0 ? (std::to_string(pr.packets(0).entry()) + ".." + std::to_string(pr.packets(pr.packets_size() - 1).entry())).c_str()
                                        : "none",
                  pr.last() ? " last" : "", clock.position());
    auto pit = cue.prepared.find(pr.preroll());
    if (pit == cue.prepared.end()) {
      drop_prepared(cue, "replaced");  // a new preroll of the cue replaces the older one
      pit = cue.prepared.emplace(pr.preroll(), Prepared()).first;
      for (uint32_t index : cue.loaded.streams()) {
        const v1::StreamInfo& s = cue.loaded.media().streams(int(index));
        if (s.codec_type() != "video" && s.codec_type() != "audio") continue;
        std::string why;
        AVCodecContext* ctx = open_decoder(s, &why);
        if (ctx == nullptr) continue;  // said at CueLoaded
        Decoder& d = pit->second.decoders[int(index)];
        d.ctx = ctx;
        d.info = s;
        d.preroll = pr.preroll();
      }
    }
    Prepared& p = pit->second;
    if (p.complete) std::printf("warning: preroll=%u of cue=%s after its last message\n", pr.preroll(), pr.cue_id().c_str());
    for (const v1::Packet& pk : pr.packets()) {
      p.packets++;
      p.next_entry = std::max(p.next_entry, pk.entry() + 1);
      auto dit = p.decoders.find(pk.stream_index());
      if (dit == p.decoders.end()) continue;
      dit->second.fed = true;
      send(cue, dit->second, pk);
    }
    if (pr.last()) {
      p.complete = true;
      std::printf("prepared cue=%s preroll=%u packets=%d kept=%zu clock=%.6f\n", pr.cue_id().c_str(), pr.preroll(), p.packets, p.frames.size(),
                  clock.position());
    }
  }

  // The first batch of a segment names a preroll: its decoders, with the frames they gave, become the segment's (in
  // this batch's generation), and the batch's packets continue them. The server does not send the preroll's packets
  // again, so without the preroll the segment cannot be decoded from its start.
  void adopt(Cue& cue, const v1::FollowPackets& fp) {
    auto pit = cue.prepared.find(fp.preroll());
    if (pit == cue.prepared.end()) {
      std::printf("warning: cue=%s seg=%u adopts preroll=%u, which we do not hold: the segment's first packets are missing\n", fp.cue_id().c_str(),
                  fp.segment(), fp.preroll());
      return;
    }
    Prepared& p = pit->second;
    if (!p.complete) std::printf("warning: cue=%s seg=%u adopts preroll=%u before its last message\n", fp.cue_id().c_str(), fp.segment(), fp.preroll());
    std::printf("adopt cue=%s preroll=%u seg=%u gen=%" PRIu64 " kept=%zu clock=%.6f\n", fp.cue_id().c_str(), fp.preroll(), fp.segment(), fp.generation(),
                p.frames.size(), clock.position());
    for (auto& [index, pd] : p.decoders) {
      Decoder& slot = cue.decoders[index];
      if (slot.ctx != nullptr) {
        // The segment before (the previous pass of a loop) ends here: get its last frames, then let the
        // preroll's decoder take its place.
        if (slot.fed && slot.generation != fp.generation()) flush(slot);
        else drain(cue, slot);
        avcodec_free_context(&slot.ctx);
      }
      slot = pd;
      pd.ctx = nullptr;
      slot.preroll = 0;
      slot.segment = fp.segment();
      slot.generation = fp.generation();
      slot.drained = false;
    }
    // The kept frames now have a place on the clock: classify them against the segment's mapping.
    for (KeptFrame& k : p.frames) {
      auto dit = cue.decoders.find(k.stream);
      if (dit != cue.decoders.end()) print_frame(cue, dit->second, k.frame, " adopted");
    }
    // The segment's packets so far are the preroll's: a reconnect from here goes on after them.
    if (p.packets > 0) {
      cue.has_resume = true;
      cue.resume.set_cue_id(fp.cue_id());
      cue.resume.set_segment(fp.segment());
      cue.resume.set_generation(fp.generation());
      cue.resume.set_show_id(clock.state.show_id());
      cue.resume.set_next_entry(p.next_entry);
    }
    release(p);
    cue.prepared.erase(pit);
  }

  // Free the cue's preroll (replaced, or dropped by a CueLoaded, CueUnloaded or a new call) and say so.
  void drop_prepared(Cue& cue, const char* why) {
    for (auto& [number, p] : cue.prepared) {
      std::printf("drop cue=%s preroll=%u kept=%zu (%s)\n", cue.loaded.cue_id().c_str(), number, p.frames.size(), why);
      release(p);
    }
    cue.prepared.clear();
  }

  // Packet -> AVPacket. Protobuf's bytes have no AV_INPUT_BUFFER_PADDING_SIZE padding: copy into a padded buffer.
  void send(Cue& cue, Decoder& d, const v1::Packet& p) {
    if (av_new_packet(pkt_, int(p.data().size())) < 0) return;
    std::memcpy(pkt_->data, p.data().data(), p.data().size());
    pkt_->stream_index = p.stream_index();
    pkt_->pts = p.has_pts() ? p.pts() : AV_NOPTS_VALUE;
    pkt_->dts = p.has_dts() ? p.dts() : AV_NOPTS_VALUE;
    pkt_->duration = p.duration();
    pkt_->pos = p.has_pos() ? p.pos() : -1;
    pkt_->flags = int(p.flags());  // AV_PKT_FLAG_KEY / CORRUPT / DISCARD ...
    pkt_->time_base = d.ctx->pkt_timebase;
    int r = avcodec_send_packet(d.ctx, pkt_);
    if (r == AVERROR(EAGAIN)) {  // cannot happen when every send is followed by receive_all(); handled anyway
      receive_all(cue, d);
      r = avcodec_send_packet(d.ctx, pkt_);
    }
    av_packet_unref(pkt_);
    if (r < 0) std::printf("decode error cue=%s stream=%d entry=%" PRIu64 ": %s\n", cue.loaded.cue_id().c_str(), p.stream_index(), p.entry(), averr(r).c_str());
    receive_all(cue, d);
  }

  void receive_all(Cue& cue, Decoder& d) {
    while (avcodec_receive_frame(d.ctx, frame_) >= 0) {
      on_frame(cue, d, frame_);
      av_frame_unref(frame_);
    }
  }

  // End of a segment's packets: get the frames the decoder still holds, then make it ready for a new start.
  void drain(Cue& cue, Decoder& d) {
    if (!d.fed || d.drained) return;
    avcodec_send_packet(d.ctx, nullptr);
    receive_all(cue, d);
    avcodec_flush_buffers(d.ctx);
    d.drained = true;
  }

  // Discard whatever the decoder holds (a new generation): the next packet is a keyframe.
  void flush(Decoder& d) {
    if (!d.fed) return;
    avcodec_flush_buffers(d.ctx);
    d.fed = false;
    d.drained = false;
  }

  void release(Prepared& p) {
    for (auto& [index, d] : p.decoders) avcodec_free_context(&d.ctx);
    p.decoders.clear();
    for (KeptFrame& k : p.frames) av_frame_free(&k.frame);
    p.frames.clear();
  }

  void release(Cue& cue) {
    for (auto& [index, d] : cue.decoders) avcodec_free_context(&d.ctx);
    cue.decoders.clear();
    for (auto& [number, p] : cue.prepared) release(p);
    cue.prepared.clear();
  }

  // A frame's media time and span in seconds (its duration for video, its samples for audio); false without a
  // timestamp.
  static bool frame_time(const Decoder& d, const AVFrame* f, double* media, double* span) {
    int64_t ts = f->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) return false;
    double tb = av_q2d(d.ctx->pkt_timebase);
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(57, 30, 100)
    int64_t frame_ticks = f->duration;
#else
    int64_t frame_ticks = f->pkt_duration;
#endif
    *media = double(ts) * tb;
    *span = d.ctx->codec_type == AVMEDIA_TYPE_VIDEO ? double(frame_ticks) * tb : double(f->nb_samples) / f->sample_rate;
    return true;
  }

  void on_frame(Cue& cue, Decoder& d, const AVFrame* f) {
    if (d.preroll != 0) on_prepared_frame(cue, d, f);
    else print_frame(cue, d, f, "");
  }

  // A frame of a preroll: it has no clock time until a segment adopts the preroll. Keep the one covering the
  // in-point and the later ones (the segment presents them from its first instant); those wholly before the
  // in-point only led the decoder there (the keyframe, the audio pre-roll).
  void on_prepared_frame(Cue& cue, Decoder& d, const AVFrame* f) {
    bool video = d.ctx->codec_type == AVMEDIA_TYPE_VIDEO;
    double media = 0, span = 0;
    bool timed = frame_time(d, f, &media, &span);
    bool keep = !timed || media + span > cue.loaded.in_seconds() + 1e-9;
    auto pit = cue.prepared.find(d.preroll);
    if (keep && pit != cue.prepared.end()) pit->second.frames.push_back(KeptFrame{d.info.index(), av_frame_clone(f)});
    int64_t ts = f->best_effort_timestamp;
    std::printf("frame cue=%s preroll=%u stream=%d %s pts=%s media=%s %s%s%s\n", cue.loaded.cue_id().c_str(), d.preroll, d.info.index(),
                video ? "video" : "audio", ts == AV_NOPTS_VALUE ? "none" : std::to_string(ts).c_str(), timed ? std::to_string(media).c_str() : "?",
                keep ? "prepared" : "preroll", o_.md5 ? " md5=" : "", o_.md5 ? frame_md5(f, video).c_str() : "");
  }

  // Where a decoded frame goes on the show clock: media time m of segment s is due at
  //   s.clock_seconds + (m - s.media_seconds)
  void print_frame(Cue& cue, Decoder& d, const AVFrame* f, const char* suffix) {
    bool video = d.ctx->codec_type == AVMEDIA_TYPE_VIDEO;
    auto seg = cue.segments.find(d.segment);
    int64_t ts = f->best_effort_timestamp;
    double media = 0, span = 0;
    std::string where;
    if (!frame_time(d, f, &media, &span) || seg == cue.segments.end()) {
      where = "media=? clock=? unknown";
    } else {
      const v1::CueStarted& s = seg->second;
      double due = s.clock_seconds() + (media - s.media_seconds());
      double now = clock.position();
      const char* status = "present";
      char extra[64] = "";
      if (media + span <= s.media_seconds() + 1e-9) status = "preroll";
      else if (media >= s.end_media_seconds() - 1e-9) status = "after-end";
      else if (due + span <= now) status = "late";
      else if (!video && media < s.media_seconds()) {
        // Sample accuracy: the first samples lie before the segment's start.
        std::snprintf(extra, sizeof extra, " skip_samples=%ld", std::lround((s.media_seconds() - media) * f->sample_rate));
      }
      char buf[256];
      std::snprintf(buf, sizeof buf, "media=%.6f clock=%.6f due_in_ms=%+.1f %s%s", media, due, (due - now) * 1000 / (clock.running() ? clock.state.rate() : 1),
                    status, extra);
      where = buf;
    }
    std::printf("frame cue=%s seg=%u gen=%" PRIu64 " stream=%d %s pts=%s %s%s%s%s\n", cue.loaded.cue_id().c_str(), d.segment, d.generation,
                d.info.index(), video ? "video" : "audio", ts == AV_NOPTS_VALUE ? "none" : std::to_string(ts).c_str(), where.c_str(), suffix,
                o_.md5 ? " md5=" : "", o_.md5 ? frame_md5(f, video).c_str() : "");
  }

  Options o_;
  AVFrame* frame_;
  AVPacket* pkt_;
  std::map<std::string, Cue> cues_;
  uint64_t generation_ = 0;
  bool fresh_connection_ = true;
};

// ---------------------------------------------------------------------------------------------------------------
// Connection: a reader thread per Follow stream hands events to the main (player) thread.

struct EventQueue {
  std::mutex m;
  std::condition_variable cv;
  std::deque<v1::FollowEvent> events;
  bool ended = false;
  grpc::Status status;
};

static std::string default_target() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && xdg[0] == '/') return std::string("unix://") + xdg + "/cuemux/cuemux.sock";
  const char* tmp = std::getenv("TMPDIR");  // as Node's os.tmpdir(), which the server uses
  std::string dir = tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp";
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return "unix://" + dir + "/cuemux-" + std::to_string(getuid()) + "/cuemux.sock";
}

static bool retryable(grpc::StatusCode c) {
  return c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::INTERNAL || c == grpc::StatusCode::UNKNOWN;
}

int main(int argc, char** argv) {
  Options o;
  o.target = default_target();
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (a == "--target") o.target = value();
    else if (a == "--output") o.output = value();
    else if (a == "--lead") o.lead = std::atof(value().c_str());
    else if (a == "--seconds") o.seconds = std::atof(value().c_str());
    else if (a == "--remote") o.remote = true;
    else if (a == "--md5") o.md5 = true;
    else if (a == "--until-stopped") o.until_stopped = true;
    else if (a == "--packets") o.packets = true;
    else if (a == "--no-prepare") o.prepare = false;
    else { std::fprintf(stderr, "unknown argument %s (see the comment at the top of follow_decode.cc)\n", a.c_str()); return 2; }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // one packet can exceed gRPC's default 4 MiB (intra-only 4K video)
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // gRPC's default reconnect backoff starts at 1 s and grows to 120 s: a restarted server would wait that long for
  // us. (Leave GRPC_ARG_MIN_RECONNECT_BACKOFF_MS alone: it is also the connect timeout, and a server that is
  // starting up may take longer than a few hundred ms to answer.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  auto channel = grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::MediaServer::NewStub(channel);

  Player player(o);
  player.clock.remote = o.remote;
  {
    int64_t offset = 0, rtt = 0;
    if (estimate_offset(*stub, 8, &offset, &rtt)) {
      std::printf("ping offset_us=%.1f rtt_us=%.1f\n", offset / 1e3, rtt / 1e3);
      player.clock.offset_ns = offset;
    } else if (o.remote) {
      std::printf("ping failed: no clock offset yet (will use 0)\n");
    }
  }

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(o.seconds * 1000));
  auto over = [&] { return player.stop_requested || (o.seconds > 0 && std::chrono::steady_clock::now() >= deadline); };
  int backoff_ms = 50;
  int exit_code = 0;
  while (!over()) {
    v1::FollowRequest req;
    req.set_output(o.output);
    req.set_lead_seconds(o.lead);
    req.set_prepare(o.prepare);  // prerolls: decoders open and the in-point decoded before the GO
    for (const auto& r : player.resume_list()) *req.add_resume() = r;

    grpc::ClientContext ctx;
    // Wait for the server instead of failing at once while it is down: measured with gRPC 1.51, a fail-fast call
    // retried every 250 ms reconnected ~3 s after a restarted server was back, a wait-for-ready call ~0.2 s.
    ctx.set_wait_for_ready(true);
    auto queue = std::make_shared<EventQueue>();
    // The call starts in the network thread: with wait-for-ready, starting it blocks until the server is there, and
    // the main thread must stay free to cancel it (ctx.TryCancel()).
    std::thread net([&stub, &ctx, &req, queue] {
      std::unique_ptr<grpc::ClientReader<v1::FollowEvent>> reader(stub->Follow(&ctx, req));
      v1::FollowEvent ev;
      while (reader->Read(&ev)) {
        std::lock_guard<std::mutex> lock(queue->m);
        queue->events.push_back(std::move(ev));
        queue->cv.notify_one();
        ev.Clear();
      }
      grpc::Status st = reader->Finish();
      std::lock_guard<std::mutex> lock(queue->m);
      queue->ended = true;
      queue->status = st;
      queue->cv.notify_one();
    });
    player.connected();
    bool got_events = false;
    for (;;) {
      std::deque<v1::FollowEvent> batch;
      bool ended;
      {
        std::unique_lock<std::mutex> lock(queue->m);
        queue->cv.wait_for(lock, std::chrono::milliseconds(5), [&] { return !queue->events.empty() || queue->ended; });
        batch.swap(queue->events);
        ended = queue->ended;
      }
      for (const auto& ev : batch) player.on_event(ev);
      got_events = got_events || !batch.empty();
      if (ended && queue->events.empty()) break;
      if (over()) ctx.TryCancel();  // the reader thread then ends with CANCELLED
    }
    net.join();
    grpc::Status st = queue->status;
    if (over()) break;
    if (!retryable(st.error_code())) {
      std::fprintf(stderr, "Follow failed: code %d: %s\n", int(st.error_code()), st.error_message().c_str());
      exit_code = 1;
      break;
    }
    if (got_events) backoff_ms = 50;
    std::printf("reconnect: code %d: %s (in %d ms)\n", int(st.error_code()), st.error_message().c_str(), backoff_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, 250);
  }
  return exit_code;
}
