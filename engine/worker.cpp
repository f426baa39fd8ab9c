#include "engine/worker.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "engine/errors.hpp"
#include "engine/store.hpp"

namespace engine {

namespace {
constexpr size_t kMaxBatchesPerDrain = 16;
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
    sh_.coordinator.fail(cur_, std::current_exception());
  }
  wind_down();
  try {
    steps_.clear();  // sinks flush and close here
  } catch (...) {
    sh_.coordinator.fail(cur_, std::current_exception());
  }
  tls_origin = nullptr;
  tls_warnings = nullptr;
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
  const size_t x = exchanges_.size();
  sent_.assign(x, false);
  received_.assign(x, 0);
  closed_.assign(x, false);
  blocked_.assign(x * n_, false);
  overflow_.resize(x * n_);
  immediate_ = sh_.store != nullptr && sh_.opts.snapshot_mode == SnapshotMode::kImmediate;
}

void Worker::loop() {
  begin_epoch(sh_.first_epoch);
  const auto flush_every = std::chrono::milliseconds(sh_.opts.flush_interval_ms);
  next_flush_ = std::chrono::steady_clock::now() + flush_every;
  while (!sh_.coordinator.should_exit(cur_)) {
    bool progress = retry_overflow();
    progress |= drain();
    if (!sources_closed_ && overflow_total_ == 0) progress |= poll_sources();
    progress |= advance();
    if (!progress) idle();
    if (const auto now = std::chrono::steady_clock::now(); now >= next_flush_) {
      flush_outputs();
      next_flush_ = now + flush_every;
    }
  }
}

void Worker::flush_outputs() {
  for (auto* ex : exchanges_) ex->flush();
  for (auto& s : steps_) s->flush_output();
}

void Worker::begin_epoch(uint64_t epoch) {
  if (!sh_.coordinator.has_room(epoch)) {
    flush_outputs();  // the commit being waited for may wait for this worker's output
    sh_.coordinator.wait_for_room(epoch);
  }
  cur_ = epoch;
  std::fill(sent_.begin(), sent_.end(), false);
  std::fill(received_.begin(), received_.end(), 0);
  std::fill(closed_.begin(), closed_.end(), false);
  std::fill(blocked_.begin(), blocked_.end(), false);
  writer_ = EpochWriter{};
  writer_.epoch = epoch;
  sources_closed_ = false;
  inputs_done_ = false;
  tail_ = false;
  const double interval = sh_.opts.snapshot_interval;
  deadline_ = std::chrono::steady_clock::now() +
              std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(interval));
  // With tails left, poll_tails decides whether this is the tail epoch.
  if (sh_.stop.load(std::memory_order_relaxed) || (inputs_exhausted() && !inputs_have_tail())) close_sources();
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
  inputs_done_ = stop || exhausted;
  // A signal is how a run over a never-ending input ends; otherwise it interrupted the run.
  const bool unbounded = std::any_of(inputs_.begin(), inputs_.end(), [](auto* in) { return in->unbounded(); });
  if (stop && !exhausted && !unbounded) sh_.interrupted.store(true);
  await_tail_decision(false);
  for (auto* in : inputs_) in->snapshot_offsets(writer_);
  sources_closed_ = true;
}

void Worker::await_tail_decision(bool waiting) {
  if (waiting == awaiting_tail_) return;
  awaiting_tail_ = waiting;
  sh_.coordinator.await_tail_decision(waiting);
}

// Inputs exhausted but for unterminated tails: they are read only in the tail
// epoch, the one after the final epoch, which is never committed. Until every
// worker reported the previous epoch it is not known whether this is it.
bool Worker::poll_tails() {
  if (sh_.stop.load(std::memory_order_relaxed)) {
    close_sources();
    return true;
  }
  if (!tail_) {
    const auto t = sh_.coordinator.tail_epoch(cur_);
    if (t == Coordinator::Tail::kUnknown) {
      await_tail_decision(true);
      return false;
    }
    await_tail_decision(false);
    if (t == Coordinator::Tail::kNo) {
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

bool Worker::poll_sources() {
  if (inputs_exhausted()) return poll_tails();
  const bool per_item = sh_.opts.snapshot_interval <= 0;
  const size_t max = per_item ? 1 : sh_.opts.source_batch;
  size_t got = 0;
  for (auto* in : inputs_) {
    if (got >= max) break;
    got += in->poll(max - got);
  }
  if (immediate_ && got > 0) stage();
  sources_idle_ = got == 0;
  const bool exhausted = inputs_exhausted();
  const bool stop = sh_.stop.load(std::memory_order_relaxed);
  if (exhausted && !stop && !(per_item && got > 0) && inputs_have_tail()) return true;  // poll_tails goes on
  if (exhausted || stop || (per_item && got > 0) || (!per_item && std::chrono::steady_clock::now() >= deadline_)) {
    close_sources();
    return true;
  }
  return got > 0;
}

bool Worker::drain() {
  bool any = false;
  for (size_t x = 0; x < exchanges_.size(); ++x) {
    for (uint32_t s = 0; s < n_; ++s) {
      if (s == me_ || blocked_[x * n_ + s]) continue;
      auto& ring = sh_.ring(static_cast<int>(x), s, me_);
      bool popped = false;
      for (size_t k = 0; k < kMaxBatchesPerDrain; ++k) {
        Batch* raw = ring.try_pop();
        if (raw == nullptr) break;
        popped = true;
        std::unique_ptr<Batch> batch(raw);
        ENGINE_CHECK(batch->epoch == cur_,
                     fmt::format("worker {} got a batch of epoch {} in epoch {}", me_, batch->epoch, cur_));
        if (batch->marker) {
          blocked_[x * n_ + s] = true;
          ++received_[x];
          break;
        }
        exchanges_[x]->deliver(std::move(batch));
        if (immediate_) stage();
      }
      if (popped) {
        any = true;
        sh_.parkers[s].wake();  // the sender may be waiting for room in this ring
      }
    }
  }
  return any;
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

bool Worker::advance() {
  bool changed = false;
  bool all_closed = true;
  for (size_t x = 0; x < exchanges_.size(); ++x) {
    if (!sent_[x]) {
      bool ready = !sh_.exchange_after_sources[x] || sources_closed_;
      for (int up : sh_.exchange_after[x]) ready = ready && closed_[up];
      if (ready) {
        exchanges_[x]->flush();
        for (uint32_t d = 0; d < n_; ++d) {
          if (d == me_) continue;
          auto marker = std::make_unique<Batch>();
          marker->epoch = cur_;
          marker->marker = true;
          send(static_cast<int>(x), d, std::move(marker));
        }
        sent_[x] = true;
        changed = true;
      }
    }
    closed_[x] = sent_[x] && received_[x] == n_ - 1;
    all_closed = all_closed && closed_[x];
  }
  if (sources_closed_ && all_closed) {
    complete_epoch();
    changed = true;
  }
  return changed;
}

void Worker::complete_epoch() {
  if (immediate_) stage();
  for (auto& s : steps_) s->end_epoch(writer_);
  writer_.dead_letters = std::move(dead_letters_);
  dead_letters_.clear();
  sh_.coordinator.report(me_, std::move(writer_), inputs_done_);
  begin_epoch(cur_ + 1);
}

// Immediate snapshot mode: writes the state changes made so far to the staging area.
void Worker::stage() {
  EpochWriter staged;
  staged.staging = true;
  staged.epoch = cur_;
  for (auto& s : steps_) s->stage(staged);
  if (!staged.writes.empty()) sh_.store->stage(cur_, staged.writes);
}

bool Worker::has_work() {
  if (sh_.coordinator.should_exit(cur_)) return true;
  if (!sources_closed_ && overflow_total_ == 0) {
    if (sh_.stop.load()) return true;
    if (awaiting_tail_) return sh_.coordinator.tail_epoch(cur_) != Coordinator::Tail::kUnknown;
    if (!sources_idle_) return true;
  }
  for (size_t x = 0; x < exchanges_.size(); ++x) {
    for (uint32_t s = 0; s < n_; ++s) {
      if (s != me_ && !blocked_[x * n_ + s] && sh_.ring(static_cast<int>(x), s, me_).size_approx() > 0) return true;
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
  bool flushed = false;
  for (auto* ex : exchanges_) flushed = ex->flush() || flushed;
  if (flushed) return;
  // Nothing to do: what the outputs buffer becomes visible now, not at the epoch's end.
  for (auto& s : steps_) s->flush_output();
  // A peer's batch or marker usually comes within microseconds: spin a little
  // before sleeping, which costs tens of microseconds to wake from.
  const auto spin_until = std::chrono::steady_clock::now() + kSpin;
  while (std::chrono::steady_clock::now() < spin_until) {
    if (has_work()) return;
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
  // Idle sources (a followed file, a topic) are polled again soon, and an epoch closes on time.
  auto timeout = kParkTimeout;
  if (!sources_closed_ && sources_idle_) {
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
    sh_.coordinator.fail(cur_, std::current_exception());
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
