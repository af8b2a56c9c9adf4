// jlstm's CPU kernels for the LSTM recurrence, called from JAX through the XLA FFI:
// the forward loop (with or without saving what the backward needs) and the
// reverse loop of the backward. jlstm/_cpu_kernel.py builds and registers them;
// jlstm/_fused.py's lax.scan loops are the reference they must equal.
//
// XLA:CPU runs the small per-step product of a scanned LSTM on one core, and
// the gate arithmetic in separate passes over memory (benchmarks/README.md).
// Here each loop is one call:
//
//   * the weights are packed once per call into column panels (forward: [w_x;
//     w_h] by panels of kLanes units of all four gates, so that one panel gives
//     every gate of its units; backward: w_h^T by panels of 4 kLanes units);
//   * a work item is one panel for a block of batch rows: its product and the
//     elementwise work of the same units, on the product's registers;
//   * the items of a step are shared by the calling thread and a helper task on
//     XLA's intra-op thread pool, claimed from one atomic counter; a step starts
//     once every item of the step before it is done. The caller runs every
//     item the helper does not claim, so nothing waits on a thread that never
//     starts.
//
// Forward. The arithmetic is _fused.py's: the i, f and o columns of w and b
// arrive halved, one tanh gives all four gates (sigmoid(a) = (1 + tanh(a / 2))
// / 2), c_t = f c_{t-1} + i g, h_t = o tanh(c_t); where the mask is false the
// state is held and the output is zero. Shapes: xs (T, B, I), or (B, T, I)
// with the attribute batch_major, w (I + H, 4H), b (4H,), h0, c0 (B, H), mask
// (T, B) or (0, 0) for none. Outputs: hs (T, B, H), or (B, T, H) with
// batch_major, h_T, c_T (B, H); the saving variant returns h_T, c_T, the gates in
// tanh form, (T, B, 4H) in the order of w's columns, and c and h after each
// step, (T, B, H) each, in place of hs (which is h, zeroed where masked).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr int kRows = 6;  // rows per register block: 6 x 4 accumulators of 16 floats
#elif defined(__AVX__) || defined(__ARM_NEON) || defined(__aarch64__)
constexpr int kLanes = 8;
constexpr int kRows = 3;
#else
constexpr int kLanes = 4;
constexpr int kRows = 2;
#endif

typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

inline Vec Splat(float x) { return Vec{} + x; }

inline Vec Load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof(Vec));
  return v;
}

inline void Store(float* p, Vec v) { std::memcpy(p, &v, sizeof(Vec)); }

// Stores the first n lanes of v (n <= kLanes).
inline void StorePart(float* p, Vec v, int n) {
  if (n == kLanes) {
    Store(p, v);
  } else {
    std::memcpy(p, &v, n * sizeof(float));
  }
}

inline Vec LoadPart(const float* p, int n) {
  if (n == kLanes) return Load(p);
  Vec v = Splat(0.0f);
  std::memcpy(&v, p, n * sizeof(float));
  return v;
}

inline Vec Min(Vec a, Vec b) { return a < b ? a : b; }
inline Vec Max(Vec a, Vec b) { return a > b ? a : b; }

// tanh as a 13/6 rational function on [-7.9053, 7.9053] (Eigen's float
// coefficients; XLA:CPU's tanh is of the same family): a few ulp of float32.
inline Vec Tanh(Vec x) {
  const Vec clamp = Splat(7.90531110763549805f);
  Vec xc = Max(Min(x, clamp), -clamp);
  Vec x2 = xc * xc;
  Vec p = Splat(-2.76076847742355e-16f);
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * xc;
  Vec q = Splat(1.19825839466702e-06f);
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  Vec y = p / q;
  // |x| < 0.0004: tanh(x) = x to float precision; NaN stays NaN (the clamp would lose it).
  Vec ax = x < 0.0f ? -x : x;
  return (ax < 0.0004f) | (x != x) ? x : y;
}

inline void Pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Waits until done() holds: spins briefly, then yields the core on every try.
// The process has more threads than cores (XLA's pool, its dispatch thread), so
// a partner holding an item can be descheduled while this thread spins; yielding
// lets it, or whatever displaced it, run. Spinning without yielding left jlstm's
// threads waiting for a core 30-60% of a small call's time; yielding after 100
// pauses (about 2 us) cut that to 10-25% and S1's forward by about 10%, with the
// large shapes level (benchmarks/README.md).
template <typename Done>
void WaitUntil(const Done& done) {
  constexpr int kSpins = 100;
  for (int i = 0; !done(); ++i) {
    if (i < kSpins) {
      Pause();
    } else {
      std::this_thread::yield();
    }
  }
}

struct Problem {
  int64_t steps, batch, input, hidden;
  bool reverse;
  const float* xs;     // (T, B, I), or (B, T, I) when batch-major
  int64_t x_step, x_row;  // strides of xs between steps and between rows
  const bool* mask;    // (T, B) or null
  const float* bias;   // (4H,), i, f, o halved
  const float* packed;  // (panels, I + H, 4, kLanes)
  float* h[2];         // ping-pong (B, H): the state before / after a step
  float* c;            // (B, H), updated in place
  float* hs;           // (T, B, H) or (B, T, H) like xs; null when saving (h_all holds h)
  int64_t hs_step, hs_row;  // strides of hs
  float* gates;        // (T, B, 4H): t_i, t_f, t_g, t_o of each row, or null
  float* cs;           // (T, B, H): c after each step, or null
  float* h_all;        // (T, B, H): h after each step (held where masked), or null
  int64_t panels, row_blocks, rows_per_block;
};

// acc[r] += z[r, :n] w[:n] for R rows of z (row stride `stride`) and n rows of
// a packed panel w: one row of 4 vectors per k. Both loops' products.
template <int R>
inline void Accumulate(Vec (&acc)[R][4], const float* z, int64_t stride, const float* w,
                       int64_t n) {
  for (int64_t k = 0; k < n; ++k, w += 4 * kLanes) {
    Vec w0 = Load(w), w1 = Load(w + kLanes), w2 = Load(w + 2 * kLanes), w3 = Load(w + 3 * kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      Vec a = Splat(z[r * stride + k]);
      acc[r][0] += a * w0;
      acc[r][1] += a * w1;
      acc[r][2] += a * w2;
      acc[r][3] += a * w3;
    }
  }
}

// One panel (kLanes units of all four gates) for rows [r0, r0 + R) of step s.
template <int R>
void Block(const Problem& p, int64_t s, int64_t panel, int64_t r0) {
  const int64_t t = p.reverse ? p.steps - 1 - s : s;
  const int64_t I = p.input, H = p.hidden, K = I + H;
  const float* hp = p.h[s & 1];
  float* hn = p.h[(s + 1) & 1];
  const float* x = p.xs + t * p.x_step + r0 * p.x_row;
  const float* h_prev = hp + r0 * H;
  const float* w = p.packed + panel * K * 4 * kLanes;
  const int64_t u0 = panel * kLanes;
  const int n = static_cast<int>(std::min<int64_t>(kLanes, H - u0));

  Vec acc[R][4];
  for (int g = 0; g < 4; ++g) {
    Vec bg = LoadPart(p.bias + g * H + u0, n);
    for (int r = 0; r < R; ++r) acc[r][g] = bg;
  }
  Accumulate<R>(acc, x, p.x_row, w, I);                    // x_t [w_x]
  Accumulate<R>(acc, h_prev, H, w + I * 4 * kLanes, H);    // h_{t-1} [w_h]

  const Vec half = Splat(0.5f);
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r;
    const int64_t at = row * H + u0;             // in (B, H)
    const int64_t out = (t * p.batch + row) * H + u0;  // in (T, B, H)
    Vec ti = Tanh(acc[r][0]), tf = Tanh(acc[r][1]), tg = Tanh(acc[r][2]), to = Tanh(acc[r][3]);
    Vec c_old = LoadPart(p.c + at, n);
    Vec c_new = (half * tf + half) * c_old + (half * ti + half) * tg;
    Vec h_new = (half * to + half) * Tanh(c_new);
    Vec y = h_new;
    if (p.mask != nullptr && !p.mask[t * p.batch + row]) {
      c_new = c_old;
      h_new = LoadPart(hp + at, n);
      y = Splat(0.0f);
    }
    StorePart(p.c + at, c_new, n);
    StorePart(hn + at, h_new, n);
    if (p.hs != nullptr) StorePart(p.hs + t * p.hs_step + row * p.hs_row + u0, y, n);
    if (p.gates != nullptr) {
      float* g = p.gates + (t * p.batch + row) * 4 * H + u0;
      StorePart(g, ti, n);
      StorePart(g + H, tf, n);
      StorePart(g + 2 * H, tg, n);
      StorePart(g + 3 * H, to, n);
      StorePart(p.cs + out, c_new, n);
      StorePart(p.h_all + out, h_new, n);
    }
  }
}

template <int R>
void Rows(const Problem& p, int64_t s, int64_t panel, int64_t r0, int64_t r1) {
  if constexpr (R > 0) {
    for (; r0 + R <= r1; r0 += R) Block<R>(p, s, panel, r0);
    Rows<R - 1>(p, s, panel, r0, r1);
  }
}

struct Team {
  std::atomic<int64_t> next{0};       // the next unclaimed item
  std::atomic<int64_t> completed{0};  // items done
  std::atomic<int> active{0};         // helpers inside Work
  std::atomic<bool> finished{false};
};

// Claims and runs items until none is left. An item of step s waits until
// all s * items items before it are done.
template <typename F>
void Work(const F& item, Team& team, int64_t items, int64_t total) {
  for (;;) {
    const int64_t w = team.next.fetch_add(1);
    if (w >= total) return;
    const int64_t ready = (w / items) * items;
    WaitUntil([&] { return team.completed.load(std::memory_order_acquire) >= ready; });
    item(w / items, w % items);
    team.completed.fetch_add(1, std::memory_order_release);
  }
}

// Runs item(step, i) for every step in order and i in [0, items), on the
// calling thread and one helper task of XLA's pool. Returns once all are
// done and the helper can no longer touch them.
template <typename F>
void RunSteps(ffi::ThreadPool& pool, int64_t steps, int64_t items, const F& item) {
  const int64_t total = steps * items;
  auto team = std::make_shared<Team>();
  if (items > 1 && pool.num_threads() > 1) {
    pool.Schedule([team, &item, items, total] {
      team->active.fetch_add(1);
      if (!team->finished.load()) Work(item, *team, items, total);
      team->active.fetch_sub(1);
    });
  }
  Work(item, *team, items, total);
  WaitUntil([&] { return team->completed.load(std::memory_order_acquire) >= total; });
  team->finished.store(true);
  WaitUntil([&] { return team->active.load() == 0; });
}

// Row blocks of whole register tiles, enough of them that a step has about
// eight items for the two threads. Returns (blocks, rows per block).
std::pair<int64_t, int64_t> RowBlocks(int64_t batch, int64_t panels) {
  const int64_t want = std::max<int64_t>(1, (8 + panels - 1) / panels);
  const int64_t tiles = (batch + kRows - 1) / kRows;
  const int64_t per_block = ((tiles + std::min(want, tiles) - 1) / std::min(want, tiles)) * kRows;
  return {(batch + per_block - 1) / per_block, per_block};
}

// [w_x; w_h] (K, 4H) -> panels of kLanes units: (panels, K, 4, kLanes), zero-padded.
void Pack(const float* w, int64_t K, int64_t H, int64_t panels, float* out) {
  for (int64_t panel = 0; panel < panels; ++panel) {
    const int64_t u0 = panel * kLanes;
    const int64_t n = std::min<int64_t>(kLanes, H - u0);
    for (int64_t k = 0; k < K; ++k) {
      for (int g = 0; g < 4; ++g) {
        float* dst = out + ((panel * K + k) * 4 + g) * kLanes;
        std::memcpy(dst, w + k * 4 * H + g * H + u0, n * sizeof(float));
        std::fill(dst + n, dst + kLanes, 0.0f);
      }
    }
  }
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> xs, ffi::Buffer<ffi::F32> w,
                   ffi::Buffer<ffi::F32> b, ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                   ffi::Buffer<ffi::PRED> mask, bool reverse, bool batch_major, float* hs,
                   ffi::Result<ffi::Buffer<ffi::F32>> h_out,
                   ffi::Result<ffi::Buffer<ffi::F32>> c_out, float* gates, float* cs,
                   float* h_all) {
  const auto dims = xs.dimensions();
  if (dims.size() != 3 || w.dimensions().size() != 2 || h0.dimensions().size() != 2) {
    return ffi::Error::InvalidArgument(
        "jlstm_lstm_forward: xs must be (T, B, I) or (B, T, I), w (I + H, 4H)");
  }
  const int64_t T = dims[batch_major ? 1 : 0], B = dims[batch_major ? 0 : 1], I = dims[2];
  const int64_t H = h0.dimensions()[1];
  if (w.dimensions()[0] != I + H || w.dimensions()[1] != 4 * H || h0.dimensions()[0] != B) {
    return ffi::Error::InvalidArgument("jlstm_lstm_forward: shapes of xs, w and h0 disagree");
  }
  const bool masked = mask.element_count() > 0;
  if (masked && (mask.dimensions()[0] != T || mask.dimensions()[1] != B)) {
    return ffi::Error::InvalidArgument("jlstm_lstm_forward: mask must be (T, B)");
  }

  Problem p;
  p.steps = T;
  p.batch = B;
  p.input = I;
  p.hidden = H;
  p.reverse = reverse;
  p.xs = xs.typed_data();
  p.x_step = batch_major ? I : B * I;
  p.x_row = batch_major ? T * I : I;
  p.hs_step = batch_major ? H : B * H;
  p.hs_row = batch_major ? T * H : H;
  p.mask = masked ? mask.typed_data() : nullptr;
  p.bias = b.typed_data();
  p.panels = (H + kLanes - 1) / kLanes;
  std::vector<float> packed(p.panels * (I + H) * 4 * kLanes);
  Pack(w.typed_data(), I + H, H, p.panels, packed.data());
  p.packed = packed.data();
  std::vector<float> h_next(B * H);
  std::memcpy(h_out->typed_data(), h0.typed_data(), B * H * sizeof(float));
  std::memcpy(c_out->typed_data(), c0.typed_data(), B * H * sizeof(float));
  // h_out holds h_0 and then every even step's state; h_next the odd ones.
  p.h[0] = h_out->typed_data();
  p.h[1] = h_next.data();
  p.c = c_out->typed_data();
  p.hs = hs;
  p.gates = gates;
  p.cs = cs;
  p.h_all = h_all;

  std::tie(p.row_blocks, p.rows_per_block) = RowBlocks(B, p.panels);
  RunSteps(pool, T, p.panels * p.row_blocks, [&p](int64_t s, int64_t i) {
    const int64_t r0 = (i % p.row_blocks) * p.rows_per_block;
    Rows<kRows>(p, s, i / p.row_blocks, r0, std::min(p.batch, r0 + p.rows_per_block));
  });

  if (T % 2 == 1) std::memcpy(h_out->typed_data(), h_next.data(), B * H * sizeof(float));
  return ffi::Error::Success();
}

ffi::Error ForwardPlain(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> xs, ffi::Buffer<ffi::F32> w,
                        ffi::Buffer<ffi::F32> b, ffi::Buffer<ffi::F32> h0,
                        ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::PRED> mask, bool reverse,
                        bool batch_major, ffi::Result<ffi::Buffer<ffi::F32>> hs,
                        ffi::Result<ffi::Buffer<ffi::F32>> h_out,
                        ffi::Result<ffi::Buffer<ffi::F32>> c_out) {
  return Forward(pool, xs, w, b, h0, c0, mask, reverse, batch_major, hs->typed_data(), h_out,
                 c_out, nullptr, nullptr, nullptr);
}

ffi::Error ForwardSaving(
    ffi::ThreadPool pool, ffi::Buffer<ffi::F32> xs, ffi::Buffer<ffi::F32> w,
    ffi::Buffer<ffi::F32> b, ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
    ffi::Buffer<ffi::PRED> mask, bool reverse, bool batch_major,
    ffi::Result<ffi::Buffer<ffi::F32>> h_out, ffi::Result<ffi::Buffer<ffi::F32>> c_out,
    ffi::Result<ffi::Buffer<ffi::F32>> gates, ffi::Result<ffi::Buffer<ffi::F32>> cs,
    ffi::Result<ffi::Buffer<ffi::F32>> h_all) {
  return Forward(pool, xs, w, b, h0, c0, mask, reverse, batch_major, nullptr, h_out, c_out,
                 gates->typed_data(), cs->typed_data(), h_all->typed_data());
}


// ------------------------------------------------------------------ backward
//
// The reverse recurrence of the same LSTM: given the forward's saved gates and
// states and the output cotangents dys, the gradients of the (unscaled) gate
// pre-activations dG_t, and dh, dc before the first step. Per step, in
// reverse scan order:
//
//   dh_t = dG_{t+1} w_h^T (held where step t+1 is masked)   -- the product
//   dhc = dh_t + dy_t,  dcc = dc + dhc o (1 - tanh(c_t)^2)
//   dG_t = [di i', df f', dg g', do o'] (zero where masked),  dc = dcc f
//
// A work item is a panel of 4 kLanes units for a block of rows: the product
// for its units (which needs all of dG_{t+1}, the step before's), then the
// elementwise part for the same units, which needs only its own dh and dc.

constexpr int kVecs = 4;  // vectors of units per backward panel
static_assert(kVecs == 4, "the reverse product shares Accumulate's tile of 4 vectors");

struct Reverse {
  int64_t steps, batch, hidden;
  bool reverse;                // the forward's direction
  const float* dys;            // (T, B, H)
  const float* cs;             // (T, B, H): c after each step
  const float* c0;             // (B, H): the state before the forward's first step
  const bool* mask;            // (T, B) or null
  const float* packed;         // (panels, 4H, kVecs, kLanes): w_h^T by panels of units
  float* dgates;               // (T, B, 4H): the forward's gates on entry, dG over them
  float* dh;                   // (B, H)
  float* dc;                   // (B, H)
  float* partial;              // (B, panels * kVecs * kLanes): the product's partial sums
  int64_t panels, row_blocks, rows_per_block;

  // The array index of scan step s of the backward (the forward's steps in reverse).
  int64_t At(int64_t s) const { return reverse ? s : steps - 1 - s; }
};

// dh[rows r0.., this panel's units] = dG_t w_h^T, held where step t is masked:
// the part of the sum over k in [k0, k1), added to the partial sums of the
// earlier parts. Summing over 4H in blocks keeps the panel's block of w_h^T
// in cache while the rows go by (a whole step's dG can outgrow the L2 cache).
template <int R>
void ReverseProduct(const Reverse& p, int64_t t, int64_t panel, int64_t r0, int64_t k0,
                    int64_t k1) {
  const int64_t H = p.hidden, G = 4 * H, width = kVecs * kLanes;
  const bool first = k0 == 0, last = k1 == G;
  const float* dg = p.dgates + (t * p.batch + r0) * G;
  const float* w = p.packed + (panel * G + k0) * width;
  float* partial = p.partial + r0 * p.panels * width + panel * width;
  Vec acc[R][kVecs];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kVecs; ++v)
      acc[r][v] = first ? Splat(0.0f) : Load(partial + r * p.panels * width + v * kLanes);
  Accumulate<R>(acc, dg + k0, G, w, k1 - k0);
  for (int r = 0; r < R; ++r) {
    if (!last) {
      for (int v = 0; v < kVecs; ++v) Store(partial + r * p.panels * width + v * kLanes, acc[r][v]);
      continue;
    }
    const int64_t row = r0 + r;
    if (p.mask != nullptr && !p.mask[t * p.batch + row]) continue;  // dh held
    for (int v = 0; v < kVecs; ++v) {
      const int64_t u = (panel * kVecs + v) * kLanes;
      if (u >= H) break;
      StorePart(p.dh + row * H + u, acc[r][v], static_cast<int>(std::min<int64_t>(kLanes, H - u)));
    }
  }
}

template <int R>
void ReverseProductRows(const Reverse& p, int64_t t, int64_t panel, int64_t r0, int64_t r1,
                        int64_t k0, int64_t k1) {
  if constexpr (R > 0) {
    for (; r0 + R <= r1; r0 += R) ReverseProduct<R>(p, t, panel, r0, k0, k1);
    ReverseProductRows<R - 1>(p, t, panel, r0, r1, k0, k1);
  }
}

// The product of step t for rows [r0, r1) and this panel's units, block by block of k.
void ReverseProductBlocks(const Reverse& p, int64_t t, int64_t panel, int64_t r0, int64_t r1) {
  constexpr int64_t kBlock = 256;  // 256 x 64 floats of w_h^T: 64 KiB
  const int64_t G = 4 * p.hidden;
  for (int64_t k0 = 0; k0 < G; k0 += kBlock) {
    ReverseProductRows<kRows>(p, t, panel, r0, r1, k0, std::min(G, k0 + kBlock));
  }
}

// The elementwise part of step t for rows [r0, r1) and this panel's units.
void ReverseGates(const Reverse& p, int64_t t, int64_t panel, int64_t r0, int64_t r1) {
  const int64_t H = p.hidden, B = p.batch;
  const int64_t before = p.reverse ? t + 1 : t - 1;  // the forward's step before t
  const bool first = before < 0 || before >= p.steps;
  const Vec one = Splat(1.0f), half = Splat(0.5f), quarter = Splat(0.25f);
  for (int64_t row = r0; row < r1; ++row) {
    const bool real = p.mask == nullptr || p.mask[t * B + row];
    float* dg = p.dgates + (t * B + row) * 4 * H;
    for (int v = 0; v < kVecs; ++v) {
      const int64_t u = (panel * kVecs + v) * kLanes;
      if (u >= H) break;
      const int n = static_cast<int>(std::min<int64_t>(kLanes, H - u));
      const int64_t at = row * H + u, out = (t * B + row) * H + u;
      if (!real) {
        for (int g = 0; g < 4; ++g) StorePart(dg + g * H + u, Splat(0.0f), n);
        continue;  // dh and dc held
      }
      Vec ti = LoadPart(dg + u, n), tf = LoadPart(dg + H + u, n);
      Vec tg = LoadPart(dg + 2 * H + u, n), to = LoadPart(dg + 3 * H + u, n);
      Vec c = LoadPart(p.cs + out, n);
      Vec c_prev = first ? LoadPart(p.c0 + at, n) : LoadPart(p.cs + (before * B + row) * H + u, n);
      Vec tc = Tanh(c);
      Vec dhc = LoadPart(p.dh + at, n) + LoadPart(p.dys + out, n);
      Vec dcc = LoadPart(p.dc + at, n) + dhc * (half * to + half) * (one - tc * tc);
      StorePart(dg + u, quarter * (one - ti * ti) * dcc * tg, n);
      StorePart(dg + H + u, quarter * (one - tf * tf) * dcc * c_prev, n);
      StorePart(dg + 2 * H + u, (one - tg * tg) * dcc * (half * ti + half), n);
      StorePart(dg + 3 * H + u, quarter * (one - to * to) * dhc * tc, n);
      StorePart(p.dc + at, dcc * (half * tf + half), n);
    }
  }
}

// `gates` is aliased to the result `dgates` (jlstm/_cpu_kernel.py asks XLA to
// alias them, and XLA copies the operand in first where it cannot): the loop
// reads each step's gates from dgates and writes dG over them, so the backward
// needs no fresh (T, B, 4H) array.
ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> w_h, ffi::Buffer<ffi::F32> dys,
                    ffi::Buffer<ffi::F32> gates, ffi::Buffer<ffi::F32> cs,
                    ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::F32> dh, ffi::Buffer<ffi::F32> dc,
                    ffi::Buffer<ffi::PRED> mask, bool reverse,
                    ffi::Result<ffi::Buffer<ffi::F32>> dgates,
                    ffi::Result<ffi::Buffer<ffi::F32>> dh_out,
                    ffi::Result<ffi::Buffer<ffi::F32>> dc_out) {
  const auto dims = dys.dimensions();
  if (dims.size() != 3 || w_h.dimensions().size() != 2) {
    return ffi::Error::InvalidArgument("jlstm_lstm_backward: dys must be (T, B, H), w_h (H, 4H)");
  }
  const int64_t T = dims[0], B = dims[1], H = dims[2];
  if (w_h.dimensions()[0] != H || w_h.dimensions()[1] != 4 * H) {
    return ffi::Error::InvalidArgument("jlstm_lstm_backward: w_h must be (H, 4H)");
  }
  if (gates.element_count() != T * B * 4 * H || cs.element_count() != T * B * H ||
      dgates->element_count() != T * B * 4 * H) {
    return ffi::Error::InvalidArgument(
        "jlstm_lstm_backward: gates must be (T, B, 4H), c (T, B, H)");
  }
  const bool masked = mask.element_count() > 0;

  Reverse p;
  p.steps = T;
  p.batch = B;
  p.hidden = H;
  p.reverse = reverse;
  p.dys = dys.typed_data();
  p.cs = cs.typed_data();
  p.c0 = c0.typed_data();
  p.mask = masked ? mask.typed_data() : nullptr;
  p.panels = (H + kVecs * kLanes - 1) / (kVecs * kLanes);
  // w_h (H, 4H) -> (panels, 4H, kVecs * kLanes): panel q holds rows u of w_h
  // as columns, zero past H.
  const int64_t width = kVecs * kLanes;
  std::vector<float> packed(p.panels * 4 * H * width, 0.0f);
  const float* wh = w_h.typed_data();
  for (int64_t u = 0; u < H; ++u) {
    float* dst = packed.data() + (u / width) * 4 * H * width + u % width;
    for (int64_t k = 0; k < 4 * H; ++k) dst[k * width] = wh[u * 4 * H + k];
  }
  p.packed = packed.data();
  std::vector<float> partial(B * p.panels * width);
  p.partial = partial.data();
  p.dgates = dgates->typed_data();
  p.dh = dh_out->typed_data();
  p.dc = dc_out->typed_data();
  std::memcpy(p.dh, dh.typed_data(), B * H * sizeof(float));
  std::memcpy(p.dc, dc.typed_data(), B * H * sizeof(float));

  std::tie(p.row_blocks, p.rows_per_block) = RowBlocks(B, p.panels);
  // Step s: the product for dG of step s - 1 (none at s = 0), then the gates
  // of step s (none at s = T, which leaves dh, dc before the first step).
  RunSteps(pool, T + 1, p.panels * p.row_blocks, [&p](int64_t s, int64_t i) {
    const int64_t panel = i / p.row_blocks;
    const int64_t r0 = (i % p.row_blocks) * p.rows_per_block;
    const int64_t r1 = std::min(p.batch, r0 + p.rows_per_block);
    if (s > 0) ReverseProductBlocks(p, p.At(s - 1), panel, r0, r1);
    if (s < p.steps) ReverseGates(p, p.At(s), panel, r0, r1);
  });
  return ffi::Error::Success();
}

}  // namespace

// Operands of both forwards: xs, w, b, h0, c0, mask.
#define JLSTM_FORWARD_ARGS           \
  ffi::Ffi::Bind()                   \
      .Ctx<ffi::ThreadPool>()        \
      .Arg<ffi::Buffer<ffi::F32>>()  \
      .Arg<ffi::Buffer<ffi::F32>>()  \
      .Arg<ffi::Buffer<ffi::F32>>()  \
      .Arg<ffi::Buffer<ffi::F32>>()  \
      .Arg<ffi::Buffer<ffi::F32>>()  \
      .Arg<ffi::Buffer<ffi::PRED>>() \
      .Attr<bool>("reverse")         \
      .Attr<bool>("batch_major")

// Returns hs, h_T, c_T.
XLA_FFI_DEFINE_HANDLER_SYMBOL(JlstmLstmForward, ForwardPlain,
                              JLSTM_FORWARD_ARGS.Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

// Returns h_T, c_T, the gates (T, B, 4H), c and h per step (hs is h, zeroed where masked).
XLA_FFI_DEFINE_HANDLER_SYMBOL(JlstmLstmForwardSaving, ForwardSaving,
                              JLSTM_FORWARD_ARGS.Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(JlstmLstmBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // w_h
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dys
                                  .Arg<ffi::Buffer<ffi::F32>>()  // gates (T, B, 4H)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c per step
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dh
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dc
                                  .Arg<ffi::Buffer<ffi::PRED>>()
                                  .Attr<bool>("reverse")
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dG, over the gates
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dh before
                                  .Ret<ffi::Buffer<ffi::F32>>());  // dc before

// The build's SIMD width in floats (16 with AVX-512, 8 with AVX2 or NEON pairs):
// jlstm/_cpu_kernel.py uses the kernels on every shape only where it is 16.
extern "C" int JlstmVectorLanes() { return kLanes; }
