#pragma once
// Time and windows: clocks, windowers and the window operators, named as
// Bytewax's `bytewax.operators.windowing`.
//
//   auto out = op::count_window("per_minute", keyed, op::EventClock(ts_of, 5s),
//                               op::TumblingWindower(60s));
//   out.down   // (key, (window id, count)) when a window closes
//   out.late   // (key, (window id, item)) for items older than the watermark
//   out.meta   // (key, (window id, WindowMeta{open, close})) when a window closes
//
// The watermark rule (what "late" means, and when a window closes):
//  - Each source partition has its own watermark: the largest timestamp read
//    from it so far minus the clock's wait. An item is late when its
//    timestamp is below the watermark of the partition it was read from, at
//    the moment it is read. So whether an item is late depends only on the
//    order of its own partition, never on how fast other partitions are read,
//    and a rerun, a resume or another -w decides it the same way. (Items that
//    crossed an exchange before the window's clock, e.g. after redistribute,
//    have the worker that sent them as their partition.)
//  - A window closes when the step's watermark passes its end: the minimum,
//    over every partition feeding the step, of the partition's watermark at
//    the end of an epoch (as Flink combines its inputs' watermarks). A
//    partition that has sent nothing yet holds every window open, as does one
//    that went idle: a window never closes before an on-time item of it can
//    still come, so what a window holds is the same in every run.
//  - When every input is exhausted (a bounded input's end), every window closes.
//  - The clock's state (each partition's largest timestamp) is snapshotted with
//    the epoch like all state; a resume continues it, so an item on time
//    before a crash is on time after it.
//  - SystemClock: an item's time is when it is read, and windows close as
//    system time passes (at the end of an epoch); nothing is late.
//
// Windows are half-open [start, end) and aligned to align_to (default the
// Unix epoch). A session holds items no more than `gap` apart (inclusive):
// its open time is its first item's, its close time its last item's, and it
// closes once the watermark is past last + gap. Each key's open windows are
// keyed state (KeyedState): a closed window is deleted from memory and from
// the store in the epoch it closes in, and a key with no open window has no
// state at all.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/codec.hpp"
#include "engine/dataflow.hpp"
#include "engine/errors.hpp"
#include "engine/exchange.hpp"
#include "engine/hash.hpp"
#include "engine/worker_context.hpp"
#include "operators/keyed_state.hpp"
#include "operators/operators.hpp"
#include "operators/traits.hpp"
#include "operators/user_code.hpp"

namespace engine::op {

// Event and processing times: milliseconds since the Unix epoch, UTC.
using Duration = std::chrono::milliseconds;
using Time = std::chrono::sys_time<Duration>;

// Processing time: an item's time is the system time when it is read.
struct SystemClock {};

// Event time: ts_getter(const V&) -> Time gives an item's timestamp; the
// watermark waits `wait` behind the largest timestamp seen.
template <class F>
struct EventClock {
  EventClock(F get, Duration wait_for_system_duration = Duration(0))
      : ts_getter(std::move(get)), wait(wait_for_system_duration) {
    if (wait.count() < 0) throw ConfigError("EventClock: the wait must not be negative");
  }
  F ts_getter;
  Duration wait;
};

// A window's open and close times, emitted on `meta` when it closes.
struct WindowMeta {
  Time open_time;
  Time close_time;
  bool operator==(const WindowMeta&) const = default;
};

// Fixed, non-overlapping windows [align_to + k * length, + length).
struct TumblingWindower {
  explicit TumblingWindower(Duration len, Time align = Time(Duration(0))) : length(len), align_to(align) {
    if (length.count() <= 0) throw ConfigError("TumblingWindower: the length must be positive");
  }
  Duration length;
  Time align_to;
};

// Windows of `length` starting every `offset`: [align_to + k * offset, + length).
struct SlidingWindower {
  SlidingWindower(Duration len, Duration off, Time align = Time(Duration(0)))
      : length(len), offset(off), align_to(align) {
    if (length.count() <= 0 || offset.count() <= 0) {
      throw ConfigError("SlidingWindower: the length and offset must be positive");
    }
    if (offset > length) {
      throw ConfigError(
          fmt::format("SlidingWindower: the offset ({} ms) must not exceed the length ({} ms): items "
                      "between windows would belong to none",
                      offset.count(), length.count()));
    }
  }
  Duration length;
  Duration offset;
  Time align_to;
};

// Sessions: items of a key at most `gap` apart are one window.
struct SessionWindower {
  explicit SessionWindower(Duration g) : gap(g) {
    if (gap.count() < 0) throw ConfigError("SessionWindower: the gap must not be negative");
  }
  Duration gap;
};

// What a window operator returns, as Bytewax's WindowOut.
template <class V, class W>
struct WindowOut {
  KeyedStream<std::pair<int64_t, W>> down;
  KeyedStream<std::pair<int64_t, V>> late;
  KeyedStream<std::pair<int64_t, WindowMeta>> meta;
};

namespace detail {

inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
inline constexpr int64_t kMinTime = std::numeric_limits<int64_t>::min();

inline int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// An item on its way from the clock step to the window step.
template <class V>
struct Stamped {
  V value;
  int64_t ts = 0;  // ms
  bool late = false;
};

// The watermarks of the partitions feeding one window step, shared by the
// clock steps that publish them and the window steps that read them (every
// worker's). A partition's history keeps, per epoch, the watermark after
// that epoch's items so far; a reader done with epoch e takes the newest
// entry of an epoch <= e, which no item it has not received yet can be older
// than. Thread-safe.
class WatermarkBoard {
 public:
  WatermarkBoard(std::vector<std::string> parts, uint32_t workers) : readers_(workers) {
    for (auto& p : parts) add(std::move(p));
    for (auto& r : readers_) r.store(0);
  }
  // The slot of a partition name; npos if it does not feed the step.
  size_t slot(const std::string& part) const {
    const auto it = index_.find(part);
    return it == index_.end() ? npos : it->second;
  }
  static constexpr size_t npos = ~size_t{0};

  void publish(size_t slot, uint64_t epoch, int64_t watermark) {
    Slot& s = *slots_[slot];
    std::lock_guard lock(s.mu);
    if (!s.history.empty() && s.history.back().first == epoch) {
      s.history.back().second = watermark;
    } else {
      s.history.emplace_back(epoch, watermark);
    }
    if (s.history.size() > 16) {
      const uint64_t reading = min_reader();
      while (s.history.size() > 1 && s.history[1].first <= reading) s.history.pop_front();
    }
  }

  // The step's watermark for a reader (worker `reader`) done with `epoch`:
  // the minimum over the partitions; kMinTime while any has published nothing.
  int64_t read(uint32_t reader, uint64_t epoch) {
    readers_[reader].store(epoch, std::memory_order_relaxed);
    int64_t low = kNever;
    for (auto& sp : slots_) {
      Slot& s = *sp;
      std::lock_guard lock(s.mu);
      int64_t wm = kMinTime;
      for (auto it = s.history.rbegin(); it != s.history.rend(); ++it) {
        if (it->first <= epoch) {
          wm = it->second;
          break;
        }
      }
      low = std::min(low, wm);
      if (low == kMinTime) break;
    }
    return low;
  }

 private:
  struct Slot {
    std::mutex mu;
    std::deque<std::pair<uint64_t, int64_t>> history;  // (epoch, watermark), epochs increasing
  };
  void add(std::string part) {
    if (index_.count(part) != 0) return;
    index_.emplace(std::move(part), slots_.size());
    slots_.push_back(std::make_unique<Slot>());
  }
  uint64_t min_reader() const {
    uint64_t m = ~uint64_t{0};
    for (const auto& r : readers_) m = std::min(m, r.load(std::memory_order_relaxed));
    return m;
  }

  std::unordered_map<std::string, size_t> index_;  // fixed after construction
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::atomic<uint64_t>> readers_;  // the last epoch each worker read for
};

// The partitions feeding window step `step` (behind its key exchange): those
// of the input steps its clock step reaches without crossing an exchange, and
// one per worker ("worker N") if an exchange is upstream too.
inline std::vector<std::string> feeding_parts(WorkerContext& ctx, int step) {
  std::vector<std::string> parts;
  std::vector<int> stack;
  for (const auto& key_exchange : ctx.step(step).inputs) {
    for (const auto& e : ctx.step(key_exchange.step).inputs) stack.push_back(e.step);
  }
  std::vector<int> seen;
  bool exchanged = false;
  while (!stack.empty()) {
    const int s = stack.back();
    stack.pop_back();
    if (std::find(seen.begin(), seen.end(), s) != seen.end()) continue;
    seen.push_back(s);
    const StepDesc& d = ctx.step(s);
    if (d.role == StepRole::kInput) {
      for (const auto& p : ctx.parts_of(s)) parts.push_back(d.id + '\n' + p);
    } else if (d.role == StepRole::kExchange) {
      exchanged = true;
    } else {
      for (const auto& e : d.inputs) stack.push_back(e.step);
    }
  }
  if (exchanged) {
    for (uint32_t w = 0; w < ctx.workers(); ++w) parts.push_back(fmt::format("worker {}", w));
  }
  return parts;
}

// The clock of the finals (collect, count_final, ...): no time at all; their
// one window per key closes when the input ends.
struct NoClock {};
// The windower of the finals: one window per key, open until the input ends.
struct WholeInput {};

enum class ClockKind : uint8_t { kEvent, kSystem, kNone };

template <class T>
struct IsEventClock : std::false_type {};
template <class F>
struct IsEventClock<EventClock<F>> : std::true_type {};

inline int64_t now_ms() {
  return std::chrono::duration_cast<Duration>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The clock step, on the worker that read the item (before the key
// exchange): stamps each item with its time and, for an event clock, whether
// it is late for its partition; keeps each partition's largest timestamp (a
// snapshot value per partition, under this step's id) and publishes the
// partition watermarks on the board.
template <class V, class Clock>
class ClockStep final : public StepInstance, public Receiver<KV<V>> {
  using Out = KV<Stamped<V>>;

 public:
  ClockStep(WorkerContext& ctx, const std::string& id, int window_step, Clock clock)
      : ctx_(ctx), id_(id), clock_(std::move(clock)) {
    board_ = std::static_pointer_cast<WatermarkBoard>(ctx.shared_for_step(
        window_step, [&] { return std::make_shared<WatermarkBoard>(feeding_parts(ctx, window_step), ctx.workers()); }));
  }
  void* input(int) override { return static_cast<Receiver<KV<V>>*>(this); }
  void* output(int) override { return &out_; }

  void push(KV<V>&& kv) override {
    if constexpr (IsEventClock<Clock>::value) {
      int64_t ts = 0;
      const bool ok = call_user(
          ctx_, id_, "event_clock", kv.second, clock_.ts_getter,
          [&](const auto& t) { ts = std::chrono::time_point_cast<Duration>(t).time_since_epoch().count(); },
          std::as_const(kv.second));
      if (!ok) return;
      Part& p = part();
      const int64_t wait = clock_.wait.count();
      const bool late = p.max_ts != kMinTime && ts < p.max_ts - wait;
      if (ts > p.max_ts) {
        p.max_ts = ts;
        p.dirty = true;
        if (p.slot != WatermarkBoard::npos) board_->publish(p.slot, ctx_.item_epoch(), ts - wait);
      }
      out_.push(Out(std::move(kv.first), Stamped<V>{std::move(kv.second), ts, late}));
    } else if constexpr (std::is_same_v<Clock, NoClock>) {
      out_.push(Out(std::move(kv.first), Stamped<V>{std::move(kv.second), 0, false}));
    } else {
      out_.push(Out(std::move(kv.first), Stamped<V>{std::move(kv.second), now_ms(), false}));
    }
  }

  void end_epoch(EpochWriter& w) override {
    if (!ctx_.recovery()) return;
    for (auto& [name, p] : parts_) {
      if (!p.dirty) continue;
      p.dirty = false;
      w.put_state(id_, key_group_of(name, ctx_.key_groups()), name, encode_value(p.max_ts));
    }
  }

 private:
  struct Part {
    int64_t max_ts = kMinTime;
    size_t slot = WatermarkBoard::npos;
    bool dirty = false;
  };

  // The state of the partition the current item was read from.
  Part& part() {
    const ItemOrigin& o = ctx_.origin();
    if (o.part == last_source_ && last_ != nullptr) return *last_;
    last_source_ = o.part;
    const std::string name = o.part != nullptr ? *o.step + '\n' + *o.part : fmt::format("worker {}", ctx_.index());
    auto [it, added] = parts_.try_emplace(name);
    Part& p = it->second;
    if (added) {
      p.slot = board_->slot(name);
      if (ctx_.restoring()) {
        ctx_.load_group(id_, key_group_of(name, ctx_.key_groups()), [&](std::string_view key, std::string_view v) {
          if (key == name) p.max_ts = decode_value<int64_t>(v);
        });
      }
      if (p.max_ts != kMinTime && p.slot != WatermarkBoard::npos) {
        board_->publish(p.slot, ctx_.item_epoch(), p.max_ts - wait());
      }
    }
    last_ = &p;
    return p;
  }
  int64_t wait() const {
    if constexpr (IsEventClock<Clock>::value) {
      return clock_.wait.count();
    } else {
      return 0;
    }
  }

  WorkerContext& ctx_;
  const std::string& id_;
  Clock clock_;
  std::shared_ptr<WatermarkBoard> board_;
  std::unordered_map<std::string, Part> parts_;  // node-based: last_ stays valid
  const std::string* last_source_ = nullptr;
  Part* last_ = nullptr;
  Output<Out> out_;
};

// One open window of a key and its accumulator.
template <class A>
struct OpenWindow {
  int64_t id = 0;
  int64_t open = 0;   // ms: the window's start (a session: its first item)
  int64_t close = 0;  // ms: the window's end (a session: its last item)
  A acc{};
};

// A key's open windows, oldest first.
template <class A>
struct KeyWindows {
  std::vector<OpenWindow<A>> open;
};

// How a windower places items: the windows of a timestamp, and when a window
// closes (the watermark must be past it).
template <class Windower>
struct Placement;

template <>
struct Placement<TumblingWindower> {
  const TumblingWindower& w;
  template <class Visit>
  void windows(int64_t ts, Visit visit) const {
    const int64_t len = w.length.count();
    const int64_t align = w.align_to.time_since_epoch().count();
    const int64_t k = floor_div(ts - align, len);
    visit(k, align + k * len, align + (k + 1) * len);
  }
};

template <>
struct Placement<WholeInput> {
  const WholeInput& w;
  template <class Visit>
  void windows(int64_t, Visit visit) const {
    visit(0, 0, kNever);
  }
};

template <>
struct Placement<SlidingWindower> {
  const SlidingWindower& w;
  template <class Visit>
  void windows(int64_t ts, Visit visit) const {
    const int64_t len = w.length.count();
    const int64_t off = w.offset.count();
    const int64_t align = w.align_to.time_since_epoch().count();
    const int64_t last = floor_div(ts - align, off);
    for (int64_t k = floor_div(ts - align - len, off) + 1; k <= last; ++k)
      visit(k, align + k * off, align + k * off + len);
  }
};

// The window step, behind the key exchange: each key's open windows, closed
// as the watermark passes them (see the file comment).
template <class V, class A, class W, class Windower, class Builder, class Folder, class Merger, class Closer>
class WindowStep final : public StepInstance, public KeyedReceiver<Stamped<V>> {
  using Down = KV<std::pair<int64_t, W>>;
  using Late = KV<std::pair<int64_t, V>>;
  using Meta = KV<std::pair<int64_t, WindowMeta>>;
  using State = KeyWindows<A>;
  static constexpr bool kSession = std::is_same_v<Windower, SessionWindower>;

 public:
  WindowStep(WorkerContext& ctx, const std::string& id, std::string_view kind, int step, ClockKind clock,
             Windower windower, Builder builder, Folder folder, Merger merger, Closer closer)
      : ctx_(ctx),
        id_(id),
        kind_(kind),
        clock_(clock),
        windower_(std::move(windower)),
        builder_(std::move(builder)),
        folder_(std::move(folder)),
        merger_(std::move(merger)),
        closer_(std::move(closer)),
        state_(ctx, id) {
    board_ = std::static_pointer_cast<WatermarkBoard>(ctx.shared_for_step(
        step, [&] { return std::make_shared<WatermarkBoard>(feeding_parts(ctx, step), ctx.workers()); }));
    // Every restored window must be known to close: load them all now.
    state_.load_owned([&](uint64_t hash, std::string_view key, const State& s) {
      for (const auto& win : s.open) schedule(win.close, hash, key);
    });
  }
  void* input(int) override { return static_cast<Receiver<HashedKV<Stamped<V>>>*>(this); }
  void* output(int port) override {
    if (port == 0) return &down_;
    if (port == 1) return &late_;
    return &meta_;
  }

  void push_keyed(uint64_t hash, KV<Stamped<V>>&& item) override {
    std::string& key = item.first;
    Stamped<V>& s = item.second;
    if (s.late || s.ts < closed_through_) {
      late_.push(Late(std::move(key), std::pair<int64_t, V>(late_id(s.ts), std::move(s.value))));
      return;
    }
    auto& e = state_.find_or_add(hash, key);
    if (!e.state) e.state.emplace();
    const bool ok = call_user(
        ctx_, id_, kind_, key, *this, [] {}, *e.state, s.ts, std::move(s.value), hash, key);
    if (!ok && e.state->open.empty()) e.state.reset();
    state_.changed(e, hash, key);
  }

  // Places one item (call_user's callable: user code runs inside it).
  void operator()(State& st, int64_t ts, V&& value, uint64_t hash, const std::string& key) {
    if constexpr (kSession) {
      place_session(st, ts, std::move(value), hash, key);
    } else {
      Placement<Windower>{windower_}.windows(ts, [&](int64_t id, int64_t open, int64_t close) {
        auto it = std::find_if(st.open.begin(), st.open.end(), [&](const auto& w) { return w.id == id; });
        if (it == st.open.end()) {
          it = st.open.insert(
              std::upper_bound(st.open.begin(), st.open.end(), id, [](int64_t i, const auto& w) { return i < w.id; }),
              OpenWindow<A>{id, open, close, builder_()});
          schedule(close, hash, key);
        }
        if constexpr (std::is_same_v<Windower, TumblingWindower>) {
          it->acc = folder_(std::move(it->acc), std::move(value));  // one window: the item moves in
        } else {
          it->acc = folder_(std::move(it->acc), V(value));
        }
      });
    }
  }

  void stage(EpochWriter& w) override { state_.write_changed(w); }
  std::optional<uint64_t> keys_in_memory() const override { return state_.size(); }
  void end_epoch(EpochWriter& w) override {
    const uint64_t epoch = ctx_.item_epoch();
    int64_t wm = kMinTime;
    if (ctx_.inputs_exhausted_by(epoch)) {
      wm = kNever;
    } else if (clock_ == ClockKind::kSystem) {
      wm = now_ms();
    } else if (clock_ == ClockKind::kEvent && !due_.empty()) {
      wm = board_->read(ctx_.index(), epoch);
    }
    if (wm > closed_through_) {
      closed_through_ = wm;
      close_through(wm);
    }
    state_.write_changed(w);
  }

 private:
  struct Due {
    int64_t at;
    uint64_t hash;
    std::string key;
    bool operator>(const Due& o) const { return at > o.at; }
  };

  void schedule(int64_t close, uint64_t hash, std::string_view key) {
    int64_t at = close;
    if constexpr (kSession) at = session_closes_at(close);
    due_.push(Due{at, hash, std::string(key)});
  }
  // A session of last item `last` closes once the watermark is past last + gap.
  int64_t session_closes_at(int64_t last) const {
    if constexpr (kSession) {
      const int64_t gap = windower_.gap.count();
      return last > kNever - gap - 1 ? kNever : last + gap + 1;
    } else {
      return last;
    }
  }
  int64_t closes(const OpenWindow<A>& w) const {
    if constexpr (kSession) {
      return session_closes_at(w.close);
    } else {
      return w.close;
    }
  }

  int64_t late_id(int64_t ts) const {
    if constexpr (kSession) {
      return ts;
    } else {
      int64_t first = 0;
      bool got = false;
      Placement<Windower>{windower_}.windows(ts, [&](int64_t id, int64_t, int64_t) {
        if (!got) first = id;
        got = true;
      });
      return first;
    }
  }

  void place_session(State& st, int64_t ts, V&& value, uint64_t hash, const std::string& key) {
    const int64_t gap = windower_.gap.count();
    // Sessions are disjoint and ordered; the item joins every one within gap of it.
    auto near = [&](const OpenWindow<A>& w) { return ts >= w.open - gap && ts <= w.close + gap; };
    auto first = std::find_if(st.open.begin(), st.open.end(), near);
    if (first == st.open.end()) {
      auto at =
          std::upper_bound(st.open.begin(), st.open.end(), ts, [](int64_t t, const auto& w) { return t < w.open; });
      A acc = folder_(builder_(), std::move(value));
      st.open.insert(at, OpenWindow<A>{ts, ts, ts, std::move(acc)});
      schedule(ts, hash, key);
      return;
    }
    first->acc = folder_(std::move(first->acc), std::move(value));
    first->open = std::min(first->open, ts);
    first->close = std::max(first->close, ts);
    // The item may bridge the next sessions: merge them in.
    auto next = first + 1;
    while (next != st.open.end() && next->open - gap <= first->close) {
      first->acc = merger_(std::move(first->acc), std::move(next->acc));
      first->close = std::max(first->close, next->close);
      next = st.open.erase(next);
      first = next - 1;
    }
    first->id = first->open;
    // Its close moved later: the earlier due entry finds it open and reschedules.
  }

  // Closes every window the watermark `wm` is past, oldest due first.
  void close_through(int64_t wm) {
    while (!due_.empty() && due_.top().at <= wm) {
      const Due d = due_.top();
      due_.pop();
      auto& e = state_.find_or_add(d.hash, d.key);
      if (!e.state) {
        state_.changed(e, d.hash, d.key);  // no shell left behind
        continue;
      }
      auto& open = e.state->open;
      bool closed_any = false;
      int64_t next_due = kNever;
      for (auto it = open.begin(); it != open.end();) {
        if (closes(*it) > wm) {
          next_due = std::min(next_due, closes(*it));
          ++it;
          continue;
        }
        emit(d.key, std::move(*it));
        it = open.erase(it);
        closed_any = true;
      }
      if (open.empty()) {
        e.state.reset();
      } else if (next_due != kNever && (closed_any || next_due > d.at)) {
        due_.push(Due{next_due, d.hash, d.key});
      }
      state_.changed(e, d.hash, d.key);
    }
  }

  void emit(const std::string& key, OpenWindow<A>&& w) {
    const WindowMeta meta{Time(Duration(w.open)), Time(Duration(w.close))};
    meta_.push(Meta(key, std::pair<int64_t, WindowMeta>(w.id, meta)));
    call_user(
        ctx_, id_, kind_, key, closer_,
        [&](auto&& out) { down_.push(Down(key, std::pair<int64_t, W>(w.id, std::forward<decltype(out)>(out)))); }, meta,
        std::move(w.acc));
  }

  WorkerContext& ctx_;
  const std::string& id_;
  std::string_view kind_;
  const ClockKind clock_;
  Windower windower_;
  Builder builder_;
  Folder folder_;
  Merger merger_;
  Closer closer_;
  KeyedState<State> state_;
  std::shared_ptr<WatermarkBoard> board_;
  // Keys with a window to close, by when (entries may be stale: checked when due).
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
  int64_t closed_through_ = kMinTime;  // the watermark windows were closed through
  Output<Down> down_;
  Output<Late> late_;
  Output<Meta> meta_;
};

// Adds the clock step, the key exchange and the window step.
template <class V, class Clock, class Windower, class Builder, class Folder, class Merger, class Closer>
auto add_window(const std::string& id, const KeyedStream<V>& in, std::string kind, Clock clock, Windower windower,
                Builder builder, Folder folder, Merger merger, Closer closer) {
  using A = std::remove_cvref_t<std::invoke_result_t<Builder&>>;
  using W = std::remove_cvref_t<std::invoke_result_t<Closer&, const WindowMeta&, A&&>>;
  using Step = WindowStep<V, A, W, Windower, Builder, Folder, Merger, Closer>;
  auto& graph = in.graph();
  // clock step, exchange, window step: the window step's index is known now.
  const int window_step = static_cast<int>(graph.steps().size()) + 2;
  StepDesc c;
  c.id = id + ".clock";
  c.kind = "clock";
  c.inputs.push_back(Dataflow::edge(in, 0));
  c.make = [clock, window_step](WorkerContext& ctx, int step) -> std::unique_ptr<StepInstance> {
    return std::make_unique<ClockStep<V, Clock>>(ctx, ctx.step(step).id, window_step, clock);
  };
  const int clock_step = graph.add_step(std::move(c));
  auto ex = key_exchange(KeyedStream<Stamped<V>>(&graph, clock_step, 0), id);
  StepDesc d;
  d.id = id;
  d.kind = std::move(kind);
  d.role = StepRole::kStateful;
  d.outputs = 3;
  d.inputs.push_back(Dataflow::edge(ex, 0));
  const ClockKind clock_kind = IsEventClock<Clock>::value       ? ClockKind::kEvent
                               : std::is_same_v<Clock, NoClock> ? ClockKind::kNone
                                                                : ClockKind::kSystem;
  d.make = [=](WorkerContext& ctx, int step) -> std::unique_ptr<StepInstance> {
    const auto& desc = ctx.step(step);
    return std::make_unique<Step>(ctx, desc.id, desc.kind, step, clock_kind, windower, builder, folder, merger, closer);
  };
  const int idx = graph.add_step(std::move(d));
  ENGINE_CHECK(idx == window_step, "window step index");
  return WindowOut<V, W>{KeyedStream<std::pair<int64_t, W>>(&graph, idx, 0),
                         KeyedStream<std::pair<int64_t, V>>(&graph, idx, 1),
                         KeyedStream<std::pair<int64_t, WindowMeta>>(&graph, idx, 2)};
}

template <class A>
struct NoMerge {
  A operator()(A&&, A&&) const {
    throw std::logic_error("this window operator cannot merge sessions: give fold_window a merger");
  }
};

struct KeepAcc {
  template <class A>
  A operator()(const WindowMeta&, A&& a) const {
    return std::move(a);
  }
};

}  // namespace detail

// The generic window operator: per key and window, the accumulator starts as
// builder(), each item is folded in with folder(A&&, V&&) -> A, two sessions an
// item bridges are merged with merger(A&&, A&&) -> A, and when the window
// closes on_close(const WindowMeta&, A&&) -> W is emitted on `down`.
template <class V, class Clock, class Windower, class Builder, class Folder, class Merger, class Closer>
auto window(const std::string& id, const KeyedStream<V>& in, Clock clock, Windower windower, Builder builder,
            Folder folder, Merger merger, Closer on_close) {
  return detail::add_window(id, in, "window", std::move(clock), std::move(windower), std::move(builder),
                            std::move(folder), std::move(merger), std::move(on_close));
}

// Folds each window's items into an accumulator: builder() -> A,
// folder(A&&, V&&) -> A, merger(A&&, A&&) -> A (sessions); emits A.
template <class V, class Clock, class Windower, class Builder, class Folder, class Merger>
auto fold_window(const std::string& id, const KeyedStream<V>& in, Clock clock, Windower windower, Builder builder,
                 Folder folder, Merger merger) {
  return detail::add_window(id, in, "fold_window", std::move(clock), std::move(windower), std::move(builder),
                            std::move(folder), std::move(merger), detail::KeepAcc{});
}
template <class V, class Clock, class Windower, class Builder, class Folder>
auto fold_window(const std::string& id, const KeyedStream<V>& in, Clock clock, Windower windower, Builder builder,
                 Folder folder) {
  using A = std::remove_cvref_t<std::invoke_result_t<Builder&>>;
  return fold_window(id, in, std::move(clock), std::move(windower), std::move(builder), std::move(folder),
                     detail::NoMerge<A>{});
}

// Every item of each window, in arrival order.
template <class V, class Clock, class Windower>
auto collect_window(const std::string& id, const KeyedStream<V>& in, Clock clock, Windower windower) {
  auto fold = [](std::vector<V>&& acc, V&& v) {
    acc.push_back(std::move(v));
    return std::move(acc);
  };
  auto merge = [](std::vector<V>&& a, std::vector<V>&& b) {
    a.insert(a.end(), std::make_move_iterator(b.begin()), std::make_move_iterator(b.end()));
    return std::move(a);
  };
  return detail::add_window(
      id, in, "collect_window", std::move(clock), std::move(windower), [] { return std::vector<V>(); }, fold, merge,
      detail::KeepAcc{});
}

// The number of items of each window.
template <class V, class Clock, class Windower>
auto count_window(const std::string& id, const KeyedStream<V>& in, Clock clock, Windower windower) {
  return detail::add_window(
      id, in, "count_window", std::move(clock), std::move(windower), [] { return int64_t{0}; },
      [](int64_t n, V&&) { return n + 1; }, [](int64_t a, int64_t b) { return a + b; }, detail::KeepAcc{});
}

// reducer(V&&, V&&) -> V over each window's items.
template <class V, class Clock, class Windower, class Reducer>
auto reduce_window(const std::string& id, const KeyedStream<V>& in, Clock clock, Windower windower, Reducer reducer) {
  auto fold = [reducer](std::optional<V>&& acc, V&& v) mutable {
    if (!acc) return std::optional<V>(std::move(v));
    return std::optional<V>(reducer(std::move(*acc), std::move(v)));
  };
  auto merge = [reducer](std::optional<V>&& a, std::optional<V>&& b) mutable {
    if (!a) return std::move(b);
    if (!b) return std::move(a);
    return std::optional<V>(reducer(std::move(*a), std::move(*b)));
  };
  auto unwrap = [](const WindowMeta&, std::optional<V>&& a) { return std::move(*a); };
  return detail::add_window(
      id, in, "reduce_window", std::move(clock), std::move(windower), [] { return std::optional<V>(); }, fold, merge,
      unwrap);
}

// The largest / smallest item of each window (by operator<, or by(const V&)).
template <class V, class Clock, class Windower, class By = std::identity>
auto max_window(const std::string& id, const KeyedStream<V>& in, Clock clock, Windower windower, By by = {}) {
  return reduce_window(id, in, std::move(clock), std::move(windower),
                       [by](V&& a, V&& b) mutable { return by(a) < by(b) ? std::move(b) : std::move(a); });
}
template <class V, class Clock, class Windower, class By = std::identity>
auto min_window(const std::string& id, const KeyedStream<V>& in, Clock clock, Windower windower, By by = {}) {
  return reduce_window(id, in, std::move(clock), std::move(windower),
                       [by](V&& a, V&& b) mutable { return by(b) < by(a) ? std::move(b) : std::move(a); });
}

// ---- finals: one value per key when the input ends -------------------------

namespace detail {
// A window operator over the whole input, its down stream without window ids.
template <class V, class Builder, class Folder, class Closer>
auto add_final(const std::string& id, const KeyedStream<V>& in, std::string kind, Builder builder, Folder folder,
               Closer closer) {
  using A = std::remove_cvref_t<std::invoke_result_t<Builder&>>;
  auto out = add_window(id, in, std::move(kind), NoClock{}, WholeInput{}, std::move(builder), std::move(folder),
                        NoMerge<A>{}, std::move(closer));
  using W = typename decltype(out.down)::Value::second_type;
  return map_value(id + ".value", out.down, [](std::pair<int64_t, W>&& p) { return std::move(p.second); });
}
}  // namespace detail

// folder(A&&, V&&) -> A over all of a key's items, from builder(); emits A per key at the end.
template <class V, class Builder, class Folder>
auto fold_final(const std::string& id, const KeyedStream<V>& in, Builder builder, Folder folder) {
  return detail::add_final(id, in, "fold_final", std::move(builder), std::move(folder), detail::KeepAcc{});
}

// Every item of each key, in arrival order, at the end.
template <class V>
auto collect(const std::string& id, const KeyedStream<V>& in) {
  auto fold = [](std::vector<V>&& acc, V&& v) {
    acc.push_back(std::move(v));
    return std::move(acc);
  };
  return detail::add_final(
      id, in, "collect", [] { return std::vector<V>(); }, fold, detail::KeepAcc{});
}

// The number of items of each key, at the end.
template <class V>
auto count_final(const std::string& id, const KeyedStream<V>& in) {
  return detail::add_final(
      id, in, "count_final", [] { return int64_t{0}; }, [](int64_t n, V&&) { return n + 1; }, detail::KeepAcc{});
}

// reducer(V&&, V&&) -> V over each key's items, at the end.
template <class V, class Reducer>
auto reduce_final(const std::string& id, const KeyedStream<V>& in, Reducer reducer) {
  auto fold = [reducer](std::optional<V>&& acc, V&& v) mutable {
    if (!acc) return std::optional<V>(std::move(v));
    return std::optional<V>(reducer(std::move(*acc), std::move(v)));
  };
  auto unwrap = [](const WindowMeta&, std::optional<V>&& a) { return std::move(*a); };
  return detail::add_final(
      id, in, "reduce_final", [] { return std::optional<V>(); }, fold, unwrap);
}

// The largest / smallest item of each key (by operator<, or by(const V&)), at the end.
template <class V, class By = std::identity>
auto max_final(const std::string& id, const KeyedStream<V>& in, By by = {}) {
  return reduce_final(id, in, [by](V&& a, V&& b) mutable { return by(a) < by(b) ? std::move(b) : std::move(a); });
}
template <class V, class By = std::identity>
auto min_final(const std::string& id, const KeyedStream<V>& in, By by = {}) {
  return reduce_final(id, in, [by](V&& a, V&& b) mutable { return by(b) < by(a) ? std::move(b) : std::move(a); });
}

}  // namespace engine::op

// Snapshots of a key's open windows.
template <class A>
struct engine::Codec<engine::op::detail::KeyWindows<A>> {
  static void encode(const engine::op::detail::KeyWindows<A>& v, std::string& out) {
    put_varint(out, v.open.size());
    for (const auto& w : v.open) {
      Codec<int64_t>::encode(w.id, out);
      Codec<int64_t>::encode(w.open, out);
      Codec<int64_t>::encode(w.close, out);
      Codec<A>::encode(w.acc, out);
    }
  }
  static engine::op::detail::KeyWindows<A> decode(Reader& in) {
    engine::op::detail::KeyWindows<A> v;
    v.open.resize(in.length());  // checked against the remaining bytes
    for (auto& w : v.open) {
      w.id = Codec<int64_t>::decode(in);
      w.open = Codec<int64_t>::decode(in);
      w.close = Codec<int64_t>::decode(in);
      w.acc = Codec<A>::decode(in);
    }
    return v;
  }
};
