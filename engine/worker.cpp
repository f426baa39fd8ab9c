#include "engine/worker.hpp"

#include <algorithm>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "engine/errors.hpp"
#include "engine/store.hpp"

namespace engine {

namespace {
constexpr size_t kPerItemBurst = 256;  // -s 0: items (epochs) read in one round of the loop
constexpr auto kParkTimeout = std::chrono::milliseconds(50);
constexpr auto kSourcePoll = std::chrono::milliseconds(2);  // idle unbounded sources are polled this often
constexpr auto kSpin = std::chrono::microseconds(50);       // an idle worker spins this long before it parks
thread_local const ItemOrigin* tls_origin = nullptr;
thread_local WarningLog* tls_warnings = nullptr;
const ItemOrigin kNoOrigin{};
}  // namespace

const ItemOrigin& current_origin() noexcept { return tls_origin != nullptr ? *tls_origin : kNoOrigin; }

void warn_item(std::string_view kind, std::string_view message) {
  if (tls_warnings == nullptr) {
    spdlog::warn("{}", message);
    return;
  }
  const ItemOrigin& o = current_origin();
  tls_warnings->warn(o.step != nullptr ? fmt::format("input step '{}'", *o.step) : "items from other workers", kind,
                     message);
}

Worker::Worker(RunShared& shared, uint32_t index)
    : sh_(shared), me_(index), n_(shared.workers), ctx_(shared, *this, index) {}

Worker::~Worker() = default;

void Worker::run() noexcept {
  tls_origin = &ctx_.origin();
  tls_warnings = &sh_.warnings;
  try {
    build();
    loop();
    if (!sh_.coordinator.failed()) {
      for (auto& s : steps_) s->finish();  // outputs deliver what they wrote
    }
  } catch (...) {
    sh_.coordinator.fail(ctx_.item_epoch(), std::current_exception());
  }
  wind_down();
  count_keys();
  try {
    steps_.clear();  // sinks flush and close here
  } catch (...) {
    sh_.coordinator.fail(ctx_.item_epoch(), std::current_exception());
  }
  tls_origin = nullptr;
  tls_warnings = nullptr;
}

void Worker::count_keys() {
  const auto& descs = sh_.flow.steps();
  std::lock_guard lock(sh_.keys_mu);
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (steps_[i] == nullptr) continue;
    if (const auto n = steps_[i]->keys_in_memory()) sh_.keys_in_memory[descs[i].id] += *n;
  }
}

void Worker::build() {
  const auto& descs = sh_.flow.steps();
  steps_.resize(descs.size());
  for (size_t i = 0; i < descs.size(); ++i) steps_[i] = descs[i].make(ctx_, static_cast<int>(i));
  for (size_t i = 0; i < descs.size(); ++i) {
    for (const auto& e : descs[i].inputs) e.connect(*steps_[e.step], *steps_[i]);
    if (descs[i].role == StepRole::kInput) inputs_.push_back(static_cast<InputBase*>(steps_[i].get()));
  }
  for (int step : sh_.exchange_steps) exchanges_.push_back(static_cast<ExchangeBase*>(steps_[step].get()));
  done_.assign(exchanges_.size(), sh_.first_epoch - 1);
  closed_.assign(exchanges_.size(), sh_.first_epoch - 1);
  overflow_.resize(exchanges_.size() * n_);
  for (auto* ex : exchanges_) ex->close_local(sh_.first_epoch - 1);  // a resumed run starts after the commit
  immediate_ = sh_.store != nullptr && sh_.opts.snapshot_mode == SnapshotMode::kImmediate;
  per_item_ = sh_.opts.snapshot_interval <= 0;
  src_epoch_ = sh_.first_epoch;
  next_report_ = sh_.first_epoch;
  empty_reported_ = sh_.first_epoch - 1;
}

EpochWriter& Worker::writer(uint64_t epoch) {
  ENGINE_CHECK(epoch >= next_report_, "an epoch already reported cannot be written to");
  while (writers_.size() <= epoch - next_report_) {
    writers_.emplace_back();
    writers_.back().epoch = next_report_ + writers_.size() - 1;
  }
  return writers_[epoch - next_report_];
}

void Worker::loop() {
  begin_src_epoch();
  const auto flush_every = std::chrono::milliseconds(sh_.opts.flush_interval_ms);
  next_flush_ = std::chrono::steady_clock::now() + flush_every;
  while (!sh_.coordinator.should_exit(lowest_open())) {
    bool progress = false;
    try {
      progress = step();
    } catch (...) {
      // The epoch the failing item belonged to and every later one never
      // commit; the earlier ones still complete here and everywhere.
      sh_.coordinator.fail(ctx_.item_epoch(), std::current_exception());
      progress = true;
    }
    if (!progress) idle();
    if (const auto now = std::chrono::steady_clock::now(); now >= next_flush_) {
      flush_outputs();
      next_flush_ = now + flush_every;
    }
  }
}

bool Worker::step() {
  bool progress = retry_overflow();
  progress |= receive();
  progress |= advance();
  if (sources_may_run()) progress |= poll_sources();
  return progress;
}

// The lowest epoch this worker still works on.
uint64_t Worker::lowest_open() const {
  uint64_t low = src_epoch_;
  for (const uint64_t d : done_) low = std::min(low, d + 1);
  return low;
}

void Worker::flush_outputs() {
  for (auto* ex : exchanges_) ex->flush();
  for (auto& s : steps_) s->flush_output();
}

// ---- sources ---------------------------------------------------------------

void Worker::begin_src_epoch() {
  tail_ = false;
  if (per_item_) {
    deadline_ = std::chrono::steady_clock::time_point::max();  // an item, not the clock, closes the epoch
    return;
  }
  const double interval = sh_.opts.snapshot_interval;
  deadline_ = std::chrono::steady_clock::now() +
              std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(interval));
}

bool Worker::sources_may_run() const {
  if (overflow_total_ > 0 || sh_.coordinator.should_exit(src_epoch_)) return false;
  if (!sh_.coordinator.has_room(src_epoch_)) return false;
  uint64_t low = src_epoch_;
  size_t queued = 0;
  for (size_t x = 0; x < exchanges_.size(); ++x) {
    low = std::min(low, done_[x] + 1);
    queued += exchanges_[x]->queued();
  }
  return src_epoch_ - low < kMaxEpochsAhead && queued < kMaxQueued;
}

bool Worker::inputs_exhausted() const {
  return std::all_of(inputs_.begin(), inputs_.end(), [](auto* in) { return in->exhausted(); });
}

bool Worker::inputs_have_tail() const {
  return std::any_of(inputs_.begin(), inputs_.end(), [](auto* in) { return in->has_tail(); });
}

void Worker::close_sources() {
  const bool stop = sh_.stop.load(std::memory_order_relaxed);
  const bool exhausted = inputs_exhausted();
  EpochWriter& w = writer(src_epoch_);
  w.inputs_done = stop || exhausted;
  // A signal is how a run over a never-ending input ends; otherwise it interrupted the run.
  const bool unbounded = std::any_of(inputs_.begin(), inputs_.end(), [](auto* in) { return in->unbounded(); });
  if (stop && !exhausted && !unbounded) sh_.interrupted.store(true);
  await_tail_decision(false);
  if (sh_.store != nullptr) {
    for (auto* in : inputs_) in->snapshot_offsets(w);
  }
  for (const int s : sh_.source_segment) steps_[static_cast<size_t>(s)]->end_epoch(w);
  if (exhausted && sh_.exhausted_at[me_].load(std::memory_order_relaxed) == ~uint64_t{0}) {
    sh_.exhausted_at[me_].store(src_epoch_, std::memory_order_release);
  }
  ++src_epoch_;
  begin_src_epoch();
  propagate_closes();
  advance();  // with one worker, the exchanges follow at once and items never wait
}

void Worker::await_tail_decision(bool waiting) {
  if (waiting == awaiting_tail_) return;
  awaiting_tail_ = waiting;
  sh_.coordinator.await_tail_decision(waiting);
}

bool Worker::poll_sources() {
  const size_t burst = per_item_ ? kPerItemBurst : 1;
  const size_t max = per_item_ ? 1 : sh_.opts.source_batch;
  bool progress = false;
  for (size_t k = 0; k < burst; ++k) {
    if (k > 0 && !sources_may_run()) break;
    ctx_.set_item_epoch(src_epoch_);
    if (sh_.stop.load(std::memory_order_relaxed)) {
      close_sources();
      return true;
    }
    if (inputs_exhausted()) return poll_exhausted() || progress;
    size_t got = 0;
    for (auto* in : inputs_) {
      if (got >= max) break;
      got += in->poll(max - got);
    }
    if (immediate_ && got > 0) stage();
    sources_idle_ = got == 0;
    if (got > 0) progress = true;
    const bool exhausted = inputs_exhausted();
    if (exhausted && !(per_item_ && got > 0) && inputs_have_tail()) return true;  // poll_exhausted goes on
    if (exhausted || (per_item_ && got > 0) || (!per_item_ && std::chrono::steady_clock::now() >= deadline_)) {
      close_sources();
      progress = true;
      continue;
    }
    break;
  }
  return progress;
}

// Inputs exhausted. Unterminated tails are read only in the tail epoch, the
// one after the final epoch, which is never committed; until every worker
// reported the previous epoch it is not known whether this is it. Without
// tails, an exhausted worker closes empty epochs as the others close them
// (an epoch another worker closed, or one whose predecessor is complete
// everywhere), not as fast as it can.
bool Worker::poll_exhausted() {
  if (!tail_) {
    const auto t = sh_.coordinator.tail_epoch(src_epoch_);
    uint64_t seen = 0;
    for (auto* ex : exchanges_) seen = std::max(seen, ex->remote_closes());
    if (t == Coordinator::Tail::kUnknown && (inputs_have_tail() || src_epoch_ > seen)) {
      await_tail_decision(true);
      return false;
    }
    await_tail_decision(false);
    if (t != Coordinator::Tail::kYes || !inputs_have_tail()) {
      close_sources();
      return true;
    }
    tail_ = true;
  }
  size_t got = 0;
  for (auto* in : inputs_) {
    if (got >= sh_.opts.source_batch) break;
    if (!in->tails_done()) got += in->poll_tail(sh_.opts.source_batch - got);
  }
  if (immediate_ && got > 0) stage();
  if (std::all_of(inputs_.begin(), inputs_.end(), [](auto* in) { return in->tails_done(); })) {
    close_sources();
    return true;
  }
  return got > 0;
}

// ---- exchanges and epochs ----------------------------------------------------

// Pops what other workers sent into the exchanges' channels (a channel that
// has kMaxWaiting batches waiting is left for later: its ring fills and
// holds its sender back).
bool Worker::receive() {
  bool any = false;
  for (size_t x = 0; x < exchanges_.size(); ++x) {
    for (uint32_t s = 0; s < n_; ++s) {
      if (s == me_) continue;
      auto& ring = sh_.ring(static_cast<int>(x), s, me_);
      bool popped = false;
      while (exchanges_[x]->waiting(s) < kMaxWaiting) {
        Batch* raw = ring.try_pop();
        if (raw == nullptr) break;
        exchanges_[x]->receive(s, std::unique_ptr<Batch>(raw));
        popped = true;
      }
      if (popped) {
        any = true;
        sh_.parkers[s].wake();  // the sender may be waiting for room in this ring
      }
    }
  }
  return any;
}

// The last epoch this worker's own steps pushed everything of into exchange x.
uint64_t Worker::upstream_closed(size_t x) const {
  uint64_t closed = sh_.exchange_after_sources[x] ? src_epoch_ - 1 : ~uint64_t{0};
  for (const int up : sh_.exchange_after[x]) closed = std::min(closed, done_[static_cast<size_t>(up)]);
  return closed;
}

bool Worker::propagate_closes() {
  bool any = false;
  for (size_t x = 0; x < exchanges_.size(); ++x) {
    const uint64_t closed = upstream_closed(x);
    if (closed == ~uint64_t{0} || closed <= closed_[x]) continue;
    closed_[x] = closed;
    exchanges_[x]->close_local(closed);
    any = true;
  }
  return any;
}

// Lets every exchange, in topological order, deliver its epoch and finish
// every epoch it can; reports the epochs now complete on this worker.
bool Worker::advance() {
  bool changed = false;
  for (size_t x = 0; x < exchanges_.size(); ++x) {
    for (;;) {
      const uint64_t e = done_[x] + 1;
      if (sh_.coordinator.should_exit(e)) break;
      ctx_.set_item_epoch(e);
      if (exchanges_[x]->deliver(e) > 0) {
        changed = true;
        if (immediate_) stage_segment(x, e);
      }
      if (upstream_closed(x) < e || !exchanges_[x]->remote_done(e)) break;
      // Epoch e is whole here: the steps behind the exchange write their snapshot of it.
      if (immediate_) stage_segment(x, e);
      EpochWriter& w = writer(e);
      for (const int s : sh_.exchange_segment[x]) steps_[static_cast<size_t>(s)]->end_epoch(w);
      done_[x] = e;
      changed = true;
      propagate_closes();
    }
  }
  changed |= report_complete();
  return changed;
}

// Reports the epochs now complete on this worker, in order. Runs of epochs
// with nothing in them are reported in one call, when kEmptyRun of them
// gathered, before the next epoch with something in it, and when the worker
// idles (flush_empty), so a report costs a lock per run, not per epoch.
bool Worker::report_complete() {
  const uint64_t reported_before = next_report_;
  while (next_report_ < src_epoch_ &&
         std::all_of(done_.begin(), done_.end(), [&](uint64_t d) { return d >= next_report_; })) {
    EpochWriter& w = writer(next_report_);
    if (w.empty()) {
      empty_through_ = next_report_;
    } else {
      flush_empty();
      sh_.coordinator.report(me_, std::move(w));
    }
    writers_.pop_front();
    ++next_report_;
  }
  if (empty_through_ != 0 && empty_through_ - empty_reported_ >= kEmptyRun) flush_empty();
  return next_report_ != reported_before;
}

bool Worker::flush_empty() {
  if (empty_through_ == 0) return false;
  sh_.coordinator.report_empty(me_, empty_through_);
  empty_reported_ = std::exchange(empty_through_, 0);
  return true;
}

// Immediate snapshot mode: writes the state changes made so far to the staging area.
void Worker::stage() {
  for (size_t x = 0; x < exchanges_.size(); ++x) stage_segment(x, done_[x] + 1);
}

void Worker::stage_segment(size_t x, uint64_t epoch) {
  EpochWriter staged;
  staged.staging = true;
  staged.epoch = epoch;
  for (const int s : sh_.exchange_segment[x]) steps_[static_cast<size_t>(s)]->stage(staged);
  if (!staged.writes.empty()) sh_.store->stage(epoch, staged.writes);
}

void Worker::send(int x, uint32_t dest, std::unique_ptr<Batch> batch) {
  auto& q = overflow_[static_cast<size_t>(x) * n_ + dest];
  if (q.empty() && sh_.ring(x, me_, dest).try_push(batch.get())) {
    (void)batch.release();  // now owned by the ring
    sh_.parkers[dest].wake();
    return;
  }
  q.push_back(std::move(batch));
  ++overflow_total_;
}

bool Worker::retry_overflow() {
  if (overflow_total_ == 0) return false;
  bool any = false;
  for (size_t i = 0; i < overflow_.size(); ++i) {
    auto& q = overflow_[i];
    if (q.empty()) continue;
    const int x = static_cast<int>(i / n_);
    const auto dest = static_cast<uint32_t>(i % n_);
    auto& ring = sh_.ring(x, me_, dest);
    bool pushed = false;
    while (!q.empty() && ring.try_push(q.front().get())) {
      (void)q.front().release();
      q.pop_front();
      --overflow_total_;
      pushed = true;
    }
    if (pushed) {
      any = true;
      sh_.parkers[dest].wake();
    }
  }
  return any;
}

bool Worker::has_work() {
  if (sh_.coordinator.should_exit(lowest_open())) return true;
  if (sources_may_run()) {
    if (sh_.stop.load()) return true;
    if (awaiting_tail_) {
      if (sh_.coordinator.tail_epoch(src_epoch_) != Coordinator::Tail::kUnknown) return true;
      for (auto* ex : exchanges_) {
        if (ex->remote_closes() >= src_epoch_) return true;
      }
    } else if (!sources_idle_ && !inputs_exhausted()) {
      return true;
    }
  }
  for (size_t x = 0; x < exchanges_.size(); ++x) {
    for (uint32_t s = 0; s < n_; ++s) {
      if (s != me_ && exchanges_[x]->waiting(s) < kMaxWaiting &&
          sh_.ring(static_cast<int>(x), s, me_).size_approx() > 0) {
        return true;
      }
    }
  }
  for (size_t i = 0; i < overflow_.size(); ++i) {
    if (overflow_[i].empty()) continue;
    auto& ring = sh_.ring(static_cast<int>(i / n_), me_, static_cast<uint32_t>(i % n_));
    if (ring.size_approx() < ring.capacity()) return true;
  }
  return false;
}

void Worker::idle() {
  bool flushed = flush_empty();
  for (auto* ex : exchanges_) flushed = ex->flush() || flushed;
  if (flushed) return;
  // Nothing to do: what the outputs buffer becomes visible now, not at the epoch's end.
  for (auto& s : steps_) s->flush_output();
  // A peer's batch usually comes within microseconds: spin a little before
  // sleeping, which costs tens of microseconds to wake from.
  const auto spin_until = std::chrono::steady_clock::now() + kSpin;
  while (std::chrono::steady_clock::now() < spin_until) {
    if (has_work()) return;
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
  // Idle sources (a followed file, a topic) are polled again soon, and an epoch closes on time.
  auto timeout = kParkTimeout;
  if (sources_idle_) {
    const auto to_deadline =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
    timeout = std::clamp(to_deadline, std::chrono::milliseconds(0), kSourcePoll);
  }
  sh_.parkers[me_].park([this] { return has_work(); }, timeout);
}

// Peers may still need batches that sit in this worker's overflow queues (the
// markers of epochs they have not finished), and may be waiting for room in
// its rings. So until every worker has got here with nothing left to send, a
// stopped worker keeps pushing its overflow and discards whatever arrives:
// everything still arriving belongs to the epoch it stopped in or a later one,
// which never commits (a worker stops only at the final epoch + 1 or at or
// after a failed epoch, and it has all markers of every earlier epoch).
void Worker::wind_down() noexcept {
  try {
    flush_outputs();  // a commit of an earlier epoch may wait for this worker's buffered output
  } catch (...) {
    sh_.coordinator.fail(ctx_.item_epoch(), std::current_exception());
  }
  bool counted = false;
  for (;;) {
    bool progress = retry_overflow();
    for (size_t x = 0; x < exchanges_.size(); ++x) {
      for (uint32_t s = 0; s < n_; ++s) {
        if (s == me_) continue;
        auto& ring = sh_.ring(static_cast<int>(x), s, me_);
        while (Batch* raw = ring.try_pop()) {
          std::unique_ptr<Batch> discarded(raw);
          progress = true;
        }
      }
    }
    if (progress) sh_.wake_all();  // senders waiting for room
    if (!counted && overflow_total_ == 0) {
      counted = true;
      sh_.wound_down.fetch_add(1);
    }
    if (counted && sh_.wound_down.load() == n_) return;
    if (!progress) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

}  // namespace engine
