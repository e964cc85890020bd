// lcnas native batch-1 convolution: direct convolution of one image, with a residual block's
// epilogue fused in (bias, residual scale, shortcut add, ReLU, per-channel scale).
//
// Why: at batch 1 PyTorch runs these small convs as im2col + GEMM, whose im2col costs the same
// whatever the number of output channels, so dropping channels barely saves time. A direct
// convolution's cost is proportional to (kept outputs) x (inputs): channel skipping pays, if
// every kept width runs near the full width's rate. Three register-blocked kernels, picked by
// shape (rates on Zen 4, 1 thread, benchmarks/conv_cost.py):
//   outputs  vectorised over output channels: 2 (or 3) 8-float vectors x 8 pixels per tile,
//            each input value broadcast once per tile row of vectors (~50-60 GMAC/s at 16+ outputs);
//   narrow   up to 12 outputs (a Channel-Net's conv1 at 25-75 % of 16 channels), vectorised over
//            input channels with a reduction at the end (2-3x the outputs kernel at 4 outputs);
//   small    3 or 4-32 inputs in 4s, outputs in 16s (the stem; conv2 after a narrow conv1; the full
//            16- and 32-wide convs of stages 1-2) from a bordered copy, one loop per kernel row,
//            12-pixel tiles on rows of 24+ pixels; 64 inputs stay on `outputs` (no faster there).
//
// Where AVX-512 is there (-march=native), outputs in 16s (and widths of 16n + 8, with an 8-float
// tail) run on 16-float vectors in `outputs` and `small`: one FMA does two 8-float ones' work
// (static ResNet-56 at batch 1, 1 thread, Sapphire Rapids: 2.52 -> 1.56 ms); and `narrow` takes 4
// inputs x 4 outputs per 16-float FMA (16->8 at 32x32: 30 -> 21 us, 16->12: 42 -> 28).
//
// Layout: x is addressed by strides (any layout; NHWC takes the fast paths); weights
// [K][K][Cin][Kp] with Kp a multiple of 4 (zero-padded outputs); y [Ho][Wo][Kp]. Out-of-image
// taps read `padv` (per input channel; zeros when null), which lets the stem fold the input
// normalisation into its weights. The shortcut is read through strides and a channel window
// [res_lo, res_hi), so identity and "option A" (subsample + zero channels) shortcuts need no copy.
// Built at first use by lcnas/models/_native.py with -O3 -march=native. Each output's operations
// run in a fixed order, so results do not depend on the thread count.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif
#include <sched.h>

// Buffers on 64-byte boundaries: std::vector's 16-byte ones split every other 8-float load across
// two cache lines (gathered weights of a 12-kept conv2 at 32x32: 64 vs 37 us in the network).
template <class T>
struct Aligned64 {
    using value_type = T;
    Aligned64() = default;
    template <class U>
    Aligned64(const Aligned64<U>&) {}
    T* allocate(size_t n) {
        void* p = nullptr;
        if (posix_memalign(&p, 64, n * sizeof(T)) != 0) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, size_t) { free(p); }
    template <class U>
    bool operator==(const Aligned64<U>&) const { return true; }
    template <class U>
    bool operator!=(const Aligned64<U>&) const { return false; }
};
typedef std::vector<float, Aligned64<float>> Floats;

typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));  // a trailing 4-channel block (groups of 4)
// 16-float vectors where AVX-512 is there: one FMA does the work of two 8-float ones, and an input
// value broadcast from memory feeds twice the outputs (the convs of full 16-, 32- and 64-wide
// stages, and kept widths in 16s; other widths stay on 8-float vectors and 4-float tails).
typedef float v16 __attribute__((vector_size(64)));
#if defined(__AVX512F__)
static constexpr bool kWide = true;
#else
static constexpr bool kWide = false;
#endif
template <typename V>
constexpr int lanes() { return (int)(sizeof(V) / sizeof(float)); }

static const int kMaxCin = 8192;
// Pixels per tile by vectors per tile (at most 24 accumulators: AVX-512VL has 32 registers) and
// for the narrow kernel by its output width; tuned on Zen 4 (benchmarks/conv_cost.py).
constexpr int kPixels(int vectors) { return vectors <= 3 ? 8 : 6; }
constexpr int kNarrowPixels(int kp) { return kp == 4 ? 6 : kp == 8 ? 3 : 2; }
static float g_zero[kMaxCin];

namespace {
struct Args {
    const float* x; int H, W, Cin, K, stride, pad;
    long xs_h, xs_w, xs_c;
    const float* padv;
    const float* w; const float* bias; int Kp;
    float alpha;
    const float* res; long rs_h, rs_w; int res_lo, res_hi;
    int relu; const float* chscale;
    float* y; int Ho, Wo;
    const float* wt = nullptr;  // the narrow kernel's weights (narrow_layout of w), if the caller keeps them
    bool team = false;          // inside a team running a whole pass (see team_rows)
};

// Whether a conv's outputs run on 16-float vectors (an 8-float tail for widths of 16n + 8).
static inline bool wide_ok(const Args& a) {
    return kWide && a.Kp >= 16 && a.Kp % 8 == 0;
}

template <typename V>
static inline V load(const float* p) { V v; std::memcpy(&v, p, sizeof(V)); return v; }
template <typename V>
static inline void store(float* p, V v) { std::memcpy(p, &v, sizeof(V)); }

// Which part of the output vector at channel c lies in the shortcut's channel window [res_lo,
// res_hi): 0 none, 1 all, 2 its low 8 floats, 3 its high 8 (a 16-float vector that a window edge,
// in 8s, splits: "option A" shortcuts of 16 -> 32 channels add channels 8-23).
template <typename V>
static inline int window_part(const Args& a, int c) {
    const bool lo = c >= a.res_lo && c < a.res_hi;
    if constexpr (lanes<V>() == 16) {
        const bool hi = c + 8 >= a.res_lo && c + 8 < a.res_hi;
        return lo && hi ? 1 : lo ? 2 : hi ? 3 : 0;
    }
    return lo ? 1 : 0;
}

// The shortcut's part of the output vector at channel c (part from window_part), from ro: the
// pixel's shortcut channels.
template <typename V>
static inline V shortcut(const Args& a, const float* ro, int c, int part) {
    V r = {};
    if (part == 1) return load<V>(ro + (c - a.res_lo));
    if constexpr (lanes<V>() == 16) {
        if (part == 2) std::memcpy(&r, ro + (c - a.res_lo), sizeof(v8));
        else if (part == 3) std::memcpy(reinterpret_cast<char*>(&r) + sizeof(v8), ro + (c + 8 - a.res_lo), sizeof(v8));
    }
    return r;
}

// What follows a conv in a block, on one output vector at channel c: residual scale, shortcut
// add (inside its channel window), ReLU, per-channel scale.
template <typename V>
static inline V epilogue(const Args& a, V v, const float* ro, int c) {
    if (a.alpha != 1.0f) v *= a.alpha;
    if (ro) v += shortcut<V>(a, ro, c, window_part<V>(a, c));
    if (a.relu) { V z = {}; v = v > z ? v : z; }
    if (a.chscale) v *= load<V>(a.chscale + c);
    return v;
}

// epilogue() on the small kernel's P x B vectors (outputs c0.. of pixels wo0.. of row ho), its
// per-call choices made once per tile: the accumulators stay in registers, no per-vector pointer
// arithmetic. Scratch A/B, Zen 4: 4->16 at 32x32 15.1 -> 13.6 us, the stem 11.7 -> 10.6, 16->16
// 0.98 of its time. (The outputs kernel keeps the per-vector form: this one made its 3-vector
// tiles 1.6-2x slower.)
template <int P, int B, typename V>
static inline void tile_epilogue(const Args& a, V (&acc)[P][B], int ho, int wo0, int c0) {
    constexpr int L = lanes<V>();
    float* yo = a.y + ((long)ho * a.Wo + wo0) * a.Kp + c0;
    const long ys = a.Kp;
    const bool scaled = a.alpha != 1.0f, relu = a.relu;
    const V alpha = V{} + a.alpha, zero = {};
    const float* ro = a.res ? a.res + (long)ho * a.rs_h + (long)wo0 * a.rs_w : nullptr;  // the tile's first pixel
    int part[B];  // each vector's part in the shortcut window (window_part)
    V cs[B];
    for (int b = 0; b < B; ++b) {
        int c = c0 + b * L;
        part[b] = ro ? window_part<V>(a, c) : 0;
        cs[b] = a.chscale ? load<V>(a.chscale + c) : V{};
    }
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
#pragma GCC unroll 4
        for (int b = 0; b < B; ++b) {
            V v = acc[p][b];
            if (scaled) v *= alpha;
            if (part[b]) v += shortcut<V>(a, ro + p * a.rs_w, c0 + b * L, part[b]);
            if (relu) v = v > zero ? v : zero;
            if (a.chscale) v *= cs[b];
            store<V>(yo + p * ys + b * L, v);
        }
    }
}

// P output pixels along a row x (B vectors of V + TW ? one TW-wide tail vector) from channel c0.
// The tail rides in the same pass as the full vectors, so a kept width of 12 or 28 (3 or 7 groups
// of 4; 8-float V) or 24, 40, 56 (16-float V) reads its input once, not twice.
template <int TW>
using TailVec = std::conditional_t<TW == 8, v8, v4>;

template <int P, int B, int TW, bool NHWC, typename V = v8>
static inline void tile(const Args& a, int ho, int wo0, int c0) {
    constexpr int L = lanes<V>();
    constexpr bool T = TW > 0;
    using VT = TailVec<TW>;
    V acc[P][B > 0 ? B : 1];
    VT acct[P];
    for (int b = 0; b < B; ++b) {
        V bv = load<V>(a.bias + c0 + b * L);
        for (int p = 0; p < P; ++p) acc[p][b] = bv;
    }
    if (T) {
        VT bv = load<VT>(a.bias + c0 + B * L);
        for (int p = 0; p < P; ++p) acct[p] = bv;
    }
    const int Cin = a.Cin, Kp = a.Kp;
    const float* padv = a.padv ? a.padv : g_zero;
    for (int kh = 0; kh < a.K; ++kh) {
        int hi = ho * a.stride + kh - a.pad;
        const float* wk = a.w + (long)kh * a.K * Cin * Kp + c0;
        bool row_in = hi >= 0 && hi < a.H;
        const float* xrow = a.x + (long)hi * a.xs_h;
        if (!row_in && !a.padv) continue;  // zero padding contributes nothing
        for (int kw = 0; kw < a.K; ++kw) {
            const float* xp[P];
            long st[P];
            for (int p = 0; p < P; ++p) {
                int wi = (wo0 + p) * a.stride + kw - a.pad;
                bool in = row_in && wi >= 0 && wi < a.W;
                xp[p] = in ? xrow + (long)wi * a.xs_w : padv;
                st[p] = in ? (NHWC ? 1 : a.xs_c) : 1;
            }
            const float* wr = wk + (long)kw * Cin * Kp;
            for (int ci = 0; ci < Cin; ++ci) {
                V wv[B > 0 ? B : 1];
                for (int b = 0; b < B; ++b) wv[b] = load<V>(wr + (long)ci * Kp + b * L);
                VT wt = T ? load<VT>(wr + (long)ci * Kp + B * L) : VT{};
                for (int p = 0; p < P; ++p) {
                    float xs = NHWC ? xp[p][ci] : xp[p][ci * st[p]];
                    for (int b = 0; b < B; ++b) acc[p][b] += xs * wv[b];
                    if (T) acct[p] += xs * wt;
                }
            }
        }
    }
    for (int p = 0; p < P; ++p) {
        int wo = wo0 + p;
        float* yo = a.y + ((long)ho * a.Wo + wo) * Kp;
        const float* ro = a.res ? a.res + (long)ho * a.rs_h + (long)wo * a.rs_w : nullptr;
        for (int b = 0; b < B + (T ? 1 : 0); ++b) {
            int c = c0 + b * L;
            if (b < B) store<V>(yo + c, epilogue<V>(a, acc[p][b], ro, c));
            else store<VT>(yo + c, epilogue<VT>(a, acct[p], ro, c));
        }
    }
}

template <int B, int TW, bool NHWC, typename V = v8, int P = kPixels(B + (TW ? 1 : 0))>
static inline void row_blocks(const Args& a, int ho, int c0) {
    int wo = 0;
    for (; wo + P <= a.Wo; wo += P) tile<P, B, TW, NHWC, V>(a, ho, wo, c0);
    for (; wo < a.Wo; ++wo) tile<1, B, TW, NHWC, V>(a, ho, wo, c0);
}

template <bool NHWC>
static void run_row(const Args& a, int ho) {
    if (wide_ok(a)) {  // pairs of 16-float vectors over 8 pixels, then the last one with an 8-wide tail
        int c0 = 0;
        const int n16 = a.Kp / 16;
        for (int k = 0; k + 2 <= n16 - (n16 % 2); k += 2, c0 += 32) row_blocks<2, 0, NHWC, v16>(a, ho, c0);
        const bool one = n16 % 2 == 1, tail = a.Kp % 16 != 0;
        if (one && tail) row_blocks<1, 8, NHWC, v16>(a, ho, c0);
        else if (one) row_blocks<1, 0, NHWC, v16>(a, ho, c0);
        else if (tail) row_blocks<0, 8, NHWC, v16>(a, ho, c0);
        return;
    }
    int nb = a.Kp / 8, ob = 0;
    const bool tail = a.Kp % 8 != 0;
    // Pairs of vectors over 8 pixels (16 accumulators): measured faster than 4 vectors over 4
    // pixels although the input is read once per pair (Zen 4: 44 vs 74 us for 64->64 on 8x8).
    for (; ob + 2 <= nb && nb - ob != 3; ob += 2) row_blocks<2, 0, NHWC>(a, ho, ob * 8);
    // the last 0-3 vectors of 8 and the 4-wide tail in one pass
    const int c0 = ob * 8;
    switch ((nb - ob) * 2 + (tail ? 1 : 0)) {
        case 7: row_blocks<3, 4, NHWC>(a, ho, c0); break;
        case 6: row_blocks<3, 0, NHWC>(a, ho, c0); break;
        case 5: row_blocks<2, 4, NHWC>(a, ho, c0); break;
        case 4: row_blocks<2, 0, NHWC>(a, ho, c0); break;
        case 3: row_blocks<1, 4, NHWC>(a, ho, c0); break;
        case 2: row_blocks<1, 0, NHWC>(a, ho, c0); break;
        case 1: row_blocks<0, 4, NHWC>(a, ho, c0); break;
        default: break;
    }
}


// Output rows, split over threads when `parallel` (each output's sums run in the same order
// whatever the split); `pre(r)` for r < npre first (a bordered input copy), in the same
// parallel region: one fork/join per conv, and the copy is split too.
template <typename F, typename G>
static void for_rows(const Args& a, int nthreads, bool parallel, F&& row, int npre, G&& pre) {
    if (!parallel) {
        for (int r = 0; r < npre; ++r) pre(r);
        for (int ho = 0; ho < a.Ho; ++ho) row(ho);
        return;
    }
#pragma omp parallel num_threads(nthreads)
    {
#pragma omp for schedule(static)
        for (int r = 0; r < npre; ++r) pre(r);
#pragma omp for schedule(static)
        for (int ho = 0; ho < a.Ho; ++ho) row(ho);
    }
}

// The barrier of a batch-1 team: a counter and a generation on their own cache lines, waited on
// by spinning. libgomp's team barrier makes a futex_wake system call on every completion
// (config/linux/bar.c): 0.24-0.30 us per 2-thread barrier here against this one's 0.03 (scratch
// probe, Zen 4 VM), and up to 1.4-9 us in this host's slow spells, where this one stayed under
// 0.4. A pass has 2 per block. After 4096 pauses (tens of us) a waiter yields its core each
// round, so more threads than cores still progress.
struct alignas(64) TeamBarrier {
    std::atomic<int> arrived{0};
    alignas(64) std::atomic<unsigned> generation{0};

    void wait(int nthreads) {
        const unsigned g = generation.load(std::memory_order_relaxed);  // only our arrival can end g
        if (arrived.fetch_add(1, std::memory_order_acq_rel) == nthreads - 1) {
            arrived.store(0, std::memory_order_relaxed);  // before the release below: the next round starts at 0
            generation.store(g + 1, std::memory_order_release);
            return;
        }
        for (int spins = 0; generation.load(std::memory_order_acquire) == g; ++spins) {
            if (spins < (1 << 12)) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            } else {
                sched_yield();
            }
        }
    }
};

// The barrier of the team this thread runs a pass in (set by the team's owner for its threads).
static thread_local TeamBarrier* t_team_barrier = nullptr;

static inline void team_barrier() {
#ifdef _OPENMP
    t_team_barrier->wait(omp_get_num_threads());
#endif
}

// Inside a team of threads that runs a whole network pass together (a.team: every thread makes
// the same calls), band(r0, r1) runs this thread's equal share [r0, r1) of the output rows,
// everything it needs private to it, then one barrier: no fork/join per conv and no barrier
// between a conv's steps (a shared bordered copy cost two more, ~0.5 us each on 2 threads,
// Zen 4, for ~10 us convs). Shares are equal to the row: bands in whole groups of the narrow
// kernel's 6 rows gave one of 2 threads 18 of 32 rows.
template <typename F>
static void team_rows(const Args& a, F&& band) {
#ifdef _OPENMP
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int r0 = t * a.Ho / nt, r1 = (t + 1) * a.Ho / nt;
    if (r0 < r1) band(r0, r1);
    team_barrier();
#else
    band(0, a.Ho);
#endif
}

template <typename F>
static void for_rows(const Args& a, int nthreads, bool parallel, F&& row) {
    for_rows(a, nthreads, parallel, row, 0, [](int) {});
}

// The input bordered with zeros (padv): (H + 2 pad) x (W + 2 pad) x Cin floats in `buf`, one
// row r at a time (bordered_row), so that threads can share the copy.
struct Bordered {
    float* x;
    int Hp, Wp;
};

static Bordered bordered(const Args& a, Floats& buf) {
    const int Hp = a.H + 2 * a.pad, Wp = a.W + 2 * a.pad;
    if (buf.size() < (size_t)Hp * Wp * a.Cin) buf.resize((size_t)Hp * Wp * a.Cin);
    return {buf.data(), Hp, Wp};
}

// C floats of the border value (zeros without padv): inline, not a memcpy call per border pixel
// (a small conv's copy has 2 (W + H + 2) of them; 4->16 at 32x32: 15.8 -> 15.2 us with this).
static inline void fill_border(float* dst, const float* padv, int C) {
    if (padv) for (int c = 0; c < C; ++c) dst[c] = padv[c];
    else for (int c = 0; c < C; ++c) dst[c] = 0.f;
}

static void bordered_row(const Args& a, const Bordered& b, int r) {
    const int C = a.Cin;
    float* dst = b.x + (long)r * b.Wp * C;
    int hi = r - a.pad;
    if (hi < 0 || hi >= a.H) {
        for (int c = 0; c < b.Wp; ++c) fill_border(dst + (long)c * C, a.padv, C);
        return;
    }
    for (int c = 0; c < a.pad; ++c) fill_border(dst + (long)c * C, a.padv, C);
    for (int c = a.pad + a.W; c < b.Wp; ++c) fill_border(dst + (long)c * C, a.padv, C);
    const float* src = a.x + (long)hi * a.xs_h;
    float* d = dst + (long)a.pad * C;
    if (a.xs_c == 1 && a.xs_w == C) {
        std::memcpy(d, src, sizeof(float) * a.W * C);
        return;
    }
    if (a.xs_w == 1) {  // NCHW rows (the network input): channel by channel, unit-stride reads
        for (int ci = 0; ci < C; ++ci) {
            const float* s = src + (long)ci * a.xs_c;
            for (int wi = 0; wi < a.W; ++wi) d[(long)wi * C + ci] = s[wi];
        }
        return;
    }
    for (int wi = 0; wi < a.W; ++wi)  // any other layout: gathered to NHWC
        for (int ci = 0; ci < C; ++ci) d[(long)wi * C + ci] = src[(long)wi * a.xs_w + (long)ci * a.xs_c];
}

// Keeps a value in a register: stops the compiler from re-reading it from memory in every use.
static inline void opaque(v8& v) {
#if defined(__GNUC__) && defined(__AVX__)  // a 32-byte vector fits one ymm register
    __asm__("" : "+x"(v));
#else
    (void)v;
#endif
}

// Four 8-lane accumulators to their four sums.
static inline v4 hsum4(v8 a0, v8 a1, v8 a2, v8 a3) {
#if defined(__AVX__)
    __m256 t0 = _mm256_hadd_ps((__m256)a0, (__m256)a1), t1 = _mm256_hadd_ps((__m256)a2, (__m256)a3);
    __m256 u = _mm256_hadd_ps(t0, t1);  // [a0 a1 a2 a3 | a0 a1 a2 a3] over lanes 0-3 | 4-7
    return (v4)_mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
#else
    v8 v[4] = {a0, a1, a2, a3};
    v4 r;
    for (int k = 0; k < 4; ++k) {
        float s = 0.0f;
        for (int l = 0; l < 8; ++l) s += v[k][l];
        r[k] = s;
    }
    return r;
#endif
}

// Narrow outputs (Kp of 4 to 12: what a Channel-Net leaves of a 16-wide conv1) vectorised over
// input channels instead of outputs. Vectorised over outputs, each input value broadcast feeds
// Kp/8 multiply-adds: at Kp = 4 or 8 the loads, not the multiply-adds, set the pace (Zen 4:
// 14 and 29 GMAC/s against 50 at Kp = 16). Here a tile of P pixels x KP outputs keeps P x KP
// 8-lane accumulators over (kw, ci) and reduces them at the end, so P + KP loads feed P x KP
// multiply-adds. Weights come in the layout [kh][(kw, ci) / 8][KP][8] (narrow_layout): kept with
// a cached channel set by the network engine, else transposed per call (1/(Ho Wo) of the work).
// Interior tiles read a kernel row of a pixel as one run of K x Cin floats; tiles on the left or
// right edge go tap by tap (out-of-image taps read zeros); rows above or below the image are
// skipped (zero padding only: see narrow_ok).
template <int P, int KP>
static inline void narrow_step(v8 (&acc)[P][KP], const float* const (&xp)[P], int off, const float* w) {
    v8 xv[P];
    for (int p = 0; p < P; ++p) xv[p] = load<v8>(xp[p] + off);
    for (int k = 0; k < KP; ++k) {
        v8 wv = load<v8>(w + k * 8);
        opaque(wv);  // one load per weight vector, not one folded into each pixel's FMA
        for (int p = 0; p < P; ++p) acc[p][k] += xv[p] * wv;
    }
}

// P x NQ sums of 4 outputs (bias not yet added) through epilogue(), for pixels (ho + p dh, wo + p dw):
// along a row or down an edge column; per-call choices made once per tile (16->4 at 32x32
// 0.86-0.91 of the per-pixel form's time, 16->12 0.89, 32->8 at 16x16 0.93).
template <int P, int NQ>
static inline void quad_epilogue(const Args& a, v4 (&sum)[P][NQ], int ho, int wo, int dh, int dw) {
    constexpr int KP = 4 * NQ;
    const long ys = ((long)dh * a.Wo + dw) * KP, rs = (long)dh * a.rs_h + (long)dw * a.rs_w;
    float* yo = a.y + ((long)ho * a.Wo + wo) * KP;
    const bool scaled = a.alpha != 1.0f, relu = a.relu;
    const v4 alpha = v4{} + a.alpha, zero = {};
    const float* ro[NQ];
    v4 bias[NQ], cs[NQ];
    for (int q = 0; q < NQ; ++q) {
        int c = 4 * q;
        ro[q] = a.res && c >= a.res_lo && c < a.res_hi ? a.res + (long)ho * a.rs_h + (long)wo * a.rs_w + (c - a.res_lo) : nullptr;
        bias[q] = load<v4>(a.bias + c);
        cs[q] = a.chscale ? load<v4>(a.chscale + c) : v4{};
    }
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
#pragma GCC unroll 3
        for (int q = 0; q < NQ; ++q) {
            v4 v = sum[p][q] + bias[q];
            if (scaled) v *= alpha;
            if (ro[q]) v += load<v4>(ro[q] + p * rs);
            if (relu) v = v > zero ? v : zero;
            if (a.chscale) v *= cs[q];
            store<v4>(yo + p * ys + 4 * q, v);
        }
    }
}

// The narrow kernel's P x KP accumulators reduced to outputs and through quad_epilogue().
template <int P, int KP>
static inline void narrow_epilogue(const Args& a, v8 (&acc)[P][KP], int ho, int wo, int dh, int dw) {
    v4 sum[P][KP / 4];
    for (int p = 0; p < P; ++p)
        for (int q = 0; q < KP / 4; ++q) sum[p][q] = hsum4(acc[p][4 * q], acc[p][4 * q + 1], acc[p][4 * q + 2], acc[p][4 * q + 3]);
    quad_epilogue<P, KP / 4>(a, sum, ho, wo, dh, dw);
}

template <int P, int KP, bool EDGE>
static inline void narrow_tile(const Args& a, const float* wd, int ho, int wo0) {
    const int C = a.Cin, K = a.K, nv = C / 8, n = K * nv;
    v8 acc[P][KP];
    for (int p = 0; p < P; ++p)
        for (int k = 0; k < KP; ++k) acc[p][k] = v8{};
    for (int kh = 0; kh < K; ++kh) {
        int hi = ho * a.stride + kh - a.pad;
        if (hi < 0 || hi >= a.H) continue;
        const float* xr = a.x + (long)hi * a.xs_h;
        const float* wk = wd + (long)kh * n * KP * 8;
        if (!EDGE) {
            const float* xp[P];
            for (int p = 0; p < P; ++p) xp[p] = xr + (long)((wo0 + p) * a.stride - a.pad) * C;
            for (int v = 0; v < n; ++v) narrow_step<P, KP>(acc, xp, v * 8, wk + (long)v * KP * 8);
            continue;
        }
        for (int kw = 0; kw < K; ++kw) {
            const float* xp[P];
            for (int p = 0; p < P; ++p) {
                int wi = (wo0 + p) * a.stride + kw - a.pad;
                xp[p] = wi >= 0 && wi < a.W ? xr + (long)wi * C : g_zero;
            }
            for (int v = 0; v < nv; ++v) narrow_step<P, KP>(acc, xp, v * 8, wk + (long)(kw * nv + v) * KP * 8);
        }
    }
    narrow_epilogue<P, KP>(a, acc, ho, wo0, 0, 1);
}

template <int P, int KP>
static inline void narrow_tiles(const Args& a, const float* wd, int ho, int wo0) {
    bool inside = wo0 * a.stride - a.pad >= 0 && (wo0 + P - 1) * a.stride - a.pad + a.K <= a.W;
    if (inside) narrow_tile<P, KP, false>(a, wd, ho, wo0);
    else narrow_tile<P, KP, true>(a, wd, ho, wo0);
}

template <int P, int KP>
static void narrow_pairs(const Args& a, const float* wd, int ho) {
    int wo = 0;
    for (; wo + P <= a.Wo; wo += P) narrow_tiles<P, KP>(a, wd, ho, wo);
    for (; wo < a.Wo; ++wo) narrow_tiles<1, KP>(a, wd, ho, wo);
}

// A row's columns [lo, end) have all their taps inside the image (see narrow_row).
struct Interior {
    int lo, end;
};

static Interior interior_columns(const Args& a) {
    const int lo = (a.pad + a.stride - 1) / a.stride, hi = a.W + a.pad >= a.K ? (a.W + a.pad - a.K) / a.stride + 1 : 0;
    return {lo < a.Wo ? lo : a.Wo, hi < a.Wo ? (hi > lo ? hi : lo) : a.Wo};
}

template <int P, int KP>
static void narrow_row(const Args& a, const float* wd, int ho) {
    if constexpr (P <= 2) {  // pairs: an edge pair costs less than two single pixels
        narrow_pairs<P, KP>(a, wd, ho);
        return;
    }
    // Columns whose taps are all inside the image run as whole tiles along the row; the 1-2
    // columns at each edge run down the columns (narrow_edge_column), so that no P-pixel tile
    // takes the slower tap-by-tap path (on a 32-pixel row 1 + 5 x 6 + 1 or 1 + 10 x 3 + 1).
    const Interior in = interior_columns(a);
    int wo = in.lo;
    for (; wo + P <= in.end; wo += P) narrow_tile<P, KP, false>(a, wd, ho, wo);
    for (; wo + 2 <= in.end; wo += 2) narrow_tile<2, KP, false>(a, wd, ho, wo);  // a 1-pixel tile: KP FMAs per KP + 1 loads
    for (; wo < in.end; ++wo) narrow_tile<1, KP, false>(a, wd, ho, wo);
}

// P pixels down edge column wo, rows ho0.. : the column's in-image taps [kw_lo, kw_hi) are the
// same for every pixel, so each kernel row of a pixel is again one run of (kw_hi - kw_lo) x Cin
// floats (rows above or below the image read zeros), and the edge runs P x KP accumulators wide
// instead of one pixel tap by tap (16->4 at 32x32: the edge columns took 15 % of the conv's
// time, 32->8 at 16x16 21 %, for 6 and 12 % of its pixels; Zen 4).
template <int P, int KP>
static void narrow_edge_column(const Args& a, const float* wd, int ho0, int wo) {
    const int C = a.Cin, K = a.K, nv = C / 8, n = K * nv;
    const int w0 = wo * a.stride - a.pad, kw_lo = w0 < 0 ? -w0 : 0, kw_hi = w0 + K > a.W ? a.W - w0 : K;
    const int steps = (kw_hi - kw_lo) * nv;
    v8 acc[P][KP];
    for (int p = 0; p < P; ++p)
        for (int k = 0; k < KP; ++k) acc[p][k] = v8{};
    for (int kh = 0; kh < K; ++kh) {
        const float* xp[P];
        for (int p = 0; p < P; ++p) {
            int hi = (ho0 + p) * a.stride + kh - a.pad;
            xp[p] = hi >= 0 && hi < a.H ? a.x + (long)hi * a.xs_h + (long)(w0 + kw_lo) * C : g_zero;
        }
        const float* wk = wd + ((long)kh * n + (long)kw_lo * nv) * KP * 8;
        for (int v = 0; v < steps; ++v) narrow_step<P, KP>(acc, xp, v * 8, wk + (long)v * KP * 8);
    }
    narrow_epilogue<P, KP>(a, acc, ho0, wo, 1, 0);
}

// narrow_edge_column for m <= P rows (a band's or the map's last group may be short).
template <int P, int KP>
static void narrow_edge_rows(const Args& a, const float* wd, int ho0, int m, int wo) {
    if (m == P) narrow_edge_column<P, KP>(a, wd, ho0, wo);
    else if constexpr (P > 1) narrow_edge_rows<P - 1, KP>(a, wd, ho0, m, wo);
}

// The edge columns of rows [ho0, ho0 + m), m <= P, for narrow_row's P > 2.
template <int P, int KP>
static void narrow_edges(const Args& a, const float* wd, int ho0, int m) {
    const Interior in = interior_columns(a);
    for (int wo = 0; wo < a.Wo; ++wo) {
        if (wo == in.lo) wo = in.end;
        if (wo >= a.Wo) break;
        narrow_edge_rows<P, KP>(a, wd, ho0, m, wo);
    }
}

static bool narrow_ok(const Args& a) {
    // (the edge columns read up to K x Cin zeros for rows outside the image: within g_zero)
    return a.Kp <= 12 && a.Cin % 8 == 0 && (long)a.K * a.Cin <= kMaxCin && !a.padv && a.xs_c == 1 && a.xs_w == a.Cin;
}

#if defined(__AVX512F__)
// Narrow outputs on 16-float vectors (AVX-512): each FMA takes 4 input channels x 4 outputs of one
// pixel, the input quad broadcast (a plain load) against weights laid out [k][ci % 4], summed over
// the quad once per tile. One load per FMA, like the full-width kernels, where vectorising over 8
// input channels (below) needs a load per 8-float FMA and a reduction per output.
static constexpr bool kPacked = true;

static inline v16 bcast4(const float* p) { return (v16)_mm512_broadcast_f32x4(_mm_loadu_ps(p)); }

// [k0c0 k0c1 k0c2 k0c3 k1c0 ...] -> the 4 sums over c.
static inline v4 sum_quads(v16 v) {
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512 t = _mm512_permutexvar_ps(idx, (__m512)v);
    __m256 s = _mm256_add_ps(_mm512_castps512_ps256(t), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));
    return (v4)_mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

// Four pixels' accumulators of 4 outputs ([k][c] each) summed over c into [pixel][k] (in-lane
// pairwise adds, then one permute), with bias, residual scale, ReLU and channel scale: the output
// of 4 consecutive pixels of a 4-wide conv (no shortcut), 16 contiguous floats.
static inline v16 four_pixels(const Args& a, v16 a0, v16 a1, v16 a2, v16 a3) {
    const __m512 x0 = (__m512)a0, x1 = (__m512)a1, x2 = (__m512)a2, x3 = (__m512)a3;
    const __m512 h01 = _mm512_add_ps(_mm512_shuffle_ps(x0, x1, 0x88), _mm512_shuffle_ps(x0, x1, 0xDD));
    const __m512 h23 = _mm512_add_ps(_mm512_shuffle_ps(x2, x3, 0x88), _mm512_shuffle_ps(x2, x3, 0xDD));
    const __m512 h = _mm512_add_ps(_mm512_shuffle_ps(h01, h23, 0x88), _mm512_shuffle_ps(h01, h23, 0xDD));
    // 128-bit lane k holds [p0 p1 p2 p3] of output k: transposed to [p][k]
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    v16 v = (v16)_mm512_permutexvar_ps(idx, h);
    const v16 bias = (v16)_mm512_broadcast_f32x4(_mm_loadu_ps(a.bias));
    v += bias;
    if (a.alpha != 1.0f) v *= a.alpha;
    if (a.relu) { v16 z = {}; v = v > z ? v : z; }
    if (a.chscale) v *= (v16)_mm512_broadcast_f32x4(_mm_loadu_ps(a.chscale));
    return v;
}

// P pixels along row ho from wo0, NQ quads of outputs, CIN inputs (0: a.Cin), read in place: rows
// outside the image are skipped (zero padding), and with EDGE the taps outside it too (tap by
// tap); without, every tap of the tile's pixels is inside, so each kernel row of a pixel is one
// run of K x Cin floats. Weights (narrow_layout): [kh][(kw, ci) / 4][NQ][4 outputs][4 inputs].
template <int P, int NQ, int CIN, bool EDGE>
static inline void packed_tile(const Args& a, const float* wd, int ho, int wo0) {
    v16 acc[P][NQ];
    for (int p = 0; p < P; ++p)
        for (int q = 0; q < NQ; ++q) acc[p][q] = v16{};
    const int C = CIN > 0 ? CIN : a.Cin, n = 3 * C / 4, nc = C / 4;
    const long ps = (long)a.stride * C;
    for (int kh = 0; kh < 3; ++kh) {
        const int hi = ho * a.stride + kh - a.pad;
        if (hi < 0 || hi >= a.H) continue;
        const float* wk = wd + (long)kh * n * NQ * 16;
        if constexpr (EDGE) {
            // One pixel: a sum per tap keeps 3 FMA chains in flight instead of 1.
            v16 e[3][NQ];
            for (int kw = 0; kw < 3; ++kw)
                for (int q = 0; q < NQ; ++q) e[kw][q] = v16{};
            for (int kw = 0; kw < 3; ++kw) {
                const int wi = wo0 * a.stride + kw - a.pad;
                if (wi < 0 || wi >= a.W) continue;
                const float* xr = a.x + (long)hi * a.xs_h + (long)wi * C;
                for (int j = 0; j < nc; ++j) {
                    const v16 xv = bcast4(xr + 4 * j);
                    for (int q = 0; q < NQ; ++q) e[kw][q] += xv * load<v16>(wk + ((long)(kw * nc + j) * NQ + q) * 16);
                }
            }
            for (int q = 0; q < NQ; ++q) acc[0][q] += e[0][q] + e[1][q] + e[2][q];
            continue;
        }
        const float* xr = a.x + (long)hi * a.xs_h + (long)(wo0 * a.stride - a.pad) * C;
        for (int j = 0; j < n; ++j) {
            v16 wv[NQ];
            for (int q = 0; q < NQ; ++q) wv[q] = load<v16>(wk + ((long)j * NQ + q) * 16);
            for (int p = 0; p < P; ++p) {
                const v16 xv = bcast4(xr + p * ps + 4 * j);
                for (int q = 0; q < NQ; ++q) acc[p][q] += xv * wv[q];
            }
        }
    }
    if constexpr (NQ == 1 && P >= 4) {
        if (!a.res) {  // 4 outputs: 4 pixels' sums in one vector, the epilogue on 16 floats at once
            constexpr int P4 = P / 4 * 4, R = P - P4;  // a 15-pixel tile: 3 such groups and 3 pixels
            for (int p = 0; p < P4; p += 4) store<v16>(a.y + ((long)ho * a.Wo + wo0 + p) * 4, four_pixels(a, acc[p][0], acc[p + 1][0], acc[p + 2][0], acc[p + 3][0]));
            if constexpr (R > 0) {
                v4 rest[R][1];
                for (int p = 0; p < R; ++p) rest[p][0] = sum_quads(acc[P4 + p][0]);
                quad_epilogue<R, 1>(a, rest, ho, wo0 + P4, 0, 1);
            }
            return;
        }
    }
    v4 sum[P][NQ];
    for (int p = 0; p < P; ++p)
        for (int q = 0; q < NQ; ++q) sum[p][q] = sum_quads(acc[p][q]);
    quad_epilogue<P, NQ>(a, sum, ho, wo0, 0, 1);
}

// One interior tile of p pixels (p from packed_span's set).
template <int NQ, int CIN>
static inline void packed_tile_p(const Args& a, const float* wd, int ho, int wo, int p) {
    switch (p) {
        case 16: if constexpr (NQ == 1) { packed_tile<16, NQ, CIN, false>(a, wd, ho, wo); return; } break;
        case 15: if constexpr (NQ == 1) { packed_tile<15, NQ, CIN, false>(a, wd, ho, wo); return; } break;
        case 14: if constexpr (NQ == 1) { packed_tile<14, NQ, CIN, false>(a, wd, ho, wo); return; } break;
        case 8: packed_tile<8, NQ, CIN, false>(a, wd, ho, wo); return;
        case 7: packed_tile<7, NQ, CIN, false>(a, wd, ho, wo); return;
        case 6: packed_tile<6, NQ, CIN, false>(a, wd, ho, wo); return;
        case 4: packed_tile<4, NQ, CIN, false>(a, wd, ho, wo); return;
        case 2: packed_tile<2, NQ, CIN, false>(a, wd, ho, wo); return;
        default: break;
    }
    packed_tile<1, NQ, CIN, false>(a, wd, ho, wo);
}

// A row's interior columns in tiles of near-equal size (30 = 15 + 15, 14 = 7 + 7, not 16 + 8 + 4
// + 2: a short tile has too few accumulators to keep the FMA units busy); its edge pixels tap by tap.
template <int NQ, int CIN>
static void packed_row(const Args& a, const float* wd, int ho) {
    constexpr int PMAX = NQ == 1 ? 16 : 8;  // 16 or 24 accumulators at most
    static const int kSizes[] = {16, 15, 14, 8, 7, 6, 4, 2, 1};
    const Interior in = interior_columns(a);
    for (int wo = 0; wo < in.lo; ++wo) packed_tile<1, NQ, CIN, true>(a, wd, ho, wo);
    int wo = in.lo, left = in.end - in.lo;
    for (int tiles = (left + PMAX - 1) / PMAX; left > 0; --tiles) {
        const int want = (left + tiles - 1) / tiles;
        int p = 1;
        for (int s : kSizes)
            if (s <= want && s <= PMAX) { p = s; break; }
        packed_tile_p<NQ, CIN>(a, wd, ho, wo, p);
        wo += p;
        left -= p;
        if (tiles == 1 && left > 0) tiles = 1 + (left + PMAX - 1) / PMAX;  // a rounded-down tile leaves a rest
    }
    for (wo = in.end; wo < a.Wo; ++wo) packed_tile<1, NQ, CIN, true>(a, wd, ho, wo);
}

template <int NQ, int CIN>
static void run_packed_c(const Args& a, const float* wd, int nthreads, bool parallel) {
    if (a.team)
        team_rows(a, [&](int r0, int r1) { for (int ho = r0; ho < r1; ++ho) packed_row<NQ, CIN>(a, wd, ho); });
    else
        for_rows(a, nthreads, parallel, [&](int ho) { packed_row<NQ, CIN>(a, wd, ho); });
}

template <int NQ>
static void run_packed(const Args& a, const float* wd, int nthreads, bool parallel) {
    switch (a.Cin) {  // the loop length known at compile time for the full stage widths
        case 16: run_packed_c<NQ, 16>(a, wd, nthreads, parallel); break;
        case 32: run_packed_c<NQ, 32>(a, wd, nthreads, parallel); break;
        case 64: run_packed_c<NQ, 64>(a, wd, nthreads, parallel); break;
        default: run_packed_c<NQ, 0>(a, wd, nthreads, parallel); break;
    }
}
#else
static constexpr bool kPacked = false;
#endif

// [K][K][Cin][Kp] weights (first `kp` outputs) in the narrow kernel's layout: with AVX-512 and 3x3
// the packed kernel's [kh][(kw, ci) / 4][kp / 4][4 outputs][4 inputs], else [kh][(kw, ci) / 8][kp][8].
static void narrow_layout(const float* w, int K, int C, int Kp, int kp, float* out) {
    if (kPacked && K == 3) {
        const int nq = kp / 4;
        for (int t = 0; t < K * K; ++t)
            for (int cq = 0; cq < C / 4; ++cq)
                for (int q = 0; q < nq; ++q)
                    for (int k = 0; k < 4; ++k)
                        for (int c = 0; c < 4; ++c)
                            out[(((long)t * (C / 4) + cq) * nq + q) * 16 + k * 4 + c] = w[((long)t * C + 4 * cq + c) * Kp + 4 * q + k];
        return;
    }
    const int n = K * C / 8;
    for (int kh = 0; kh < K; ++kh)
        for (int j = 0; j < K * C; ++j)
            for (int k = 0; k < kp; ++k)
                out[(((long)kh * n + j / 8) * kp + k) * 8 + j % 8] = w[((long)kh * K * C + j) * Kp + k];
}

template <int P, int KP>
static void run_narrow(const Args& a, int nthreads, bool parallel) {
    const float* wd = a.wt;
    if (!wd) {  // transposed per call (1/(Ho Wo) of the multiply-adds); the network engine keeps its own
        thread_local Floats wbuf;  // per thread (a batch runs one image per thread)
        if (wbuf.size() < (size_t)a.K * a.K * a.Cin * KP) wbuf.resize((size_t)a.K * a.K * a.Cin * KP);
        narrow_layout(a.w, a.K, a.Cin, a.Kp, KP, wbuf.data());
        wd = wbuf.data();
    }
#if defined(__AVX512F__)
    if (a.K == 3) return run_packed<KP / 4>(a, wd, nthreads, parallel);
#endif
    if (a.team) {  // an equal share of rows (groups of P from the band's first row): edges, then rows
        team_rows(a, [&](int r0, int r1) {
            if constexpr (P > 2)
                for (int ho = r0; ho < r1; ho += P) narrow_edges<P, KP>(a, wd, ho, std::min(P, r1 - ho));
            for (int ho = r0; ho < r1; ++ho) narrow_row<P, KP>(a, wd, ho);
        });
    } else if constexpr (P <= 2) {
        for_rows(a, nthreads, parallel, [&](int ho) { narrow_row<P, KP>(a, wd, ho); });
    } else {  // edge columns in groups of P rows first, in the same parallel region
        for_rows(a, nthreads, parallel, [&](int ho) { narrow_row<P, KP>(a, wd, ho); }, (a.Ho + P - 1) / P,
                 [&](int g) { narrow_edges<P, KP>(a, wd, g * P, std::min(P, a.Ho - g * P)); });
    }
}

// Few input channels (what a Channel-Net leaves of conv2's input; the stem; the 16- and 32-wide
// stages): the per-tap loop over Cin is too short to pay for its per-pixel address and bounds
// set-up, so the input is bordered once per call and each kernel row of a pixel (K x Cin
// contiguous floats) runs as one loop. Same-process A/B against `outputs` (Zen 4, 1 thread):
// 16->16 at 32x32 0.76-0.93 of its time, 32->32 at 16x16 0.80-0.93, 16->64 at 8x8 0.78-0.88,
// 64->64 at 8x8 0.91-1.03 (kept there).
// A tile is only 3 x 3 x Cin steps long, so its set-up and epilogue weigh: on 32-pixel rows,
// tiles of 12 pixels (24 accumulators) with the 3x3 size known at compile time took 4->16 from
// 17.2 to 15.7 us and the stem from 13.7 to 12.3 (Zen 4).
template <int P, int B, int CIN, int KK, typename V = v8>  // KK: the kernel size, or 0 for a.K
static inline void small_tile(const Args& a, const float* xpad, int Wp, int ho, int wo0, int c0) {
    constexpr int L = lanes<V>();
    V acc[P][B];
    for (int b = 0; b < B; ++b) {
        V bv = load<V>(a.bias + c0 + b * L);
        for (int p = 0; p < P; ++p) acc[p][b] = bv;
    }
    const int Kp = a.Kp, K = KK > 0 ? KK : a.K, n = K * CIN;
    const long ps = (long)a.stride * CIN;
    for (int kh = 0; kh < K; ++kh) {
        const float* xr = xpad + ((long)(ho * a.stride + kh) * Wp + (long)wo0 * a.stride) * CIN;
        const float* wk = a.w + (long)kh * n * Kp + c0;
        for (int j = 0; j < n; ++j) {
            V wv[B];
            for (int b = 0; b < B; ++b) wv[b] = load<V>(wk + (long)j * Kp + b * L);
            for (int p = 0; p < P; ++p) {
                float xs = xr[p * ps + j];
                for (int b = 0; b < B; ++b) acc[p][b] += xs * wv[b];
            }
        }
    }
    tile_epilogue<P, B, V>(a, acc, ho, wo0, c0);
}

// One output row in tiles of P pixels x B vectors of V, the 3x3 size known at compile time.
template <int CIN, int B, typename V, int P0>
static inline void small_tiles(const Args& a, const float* xpad, int Wp, int ho, int c0) {
    int wo = 0;
    if (a.K == 3) {
        if (a.Wo >= 24)  // P0-pixel tiles where they leave no long remainder
            for (; wo + P0 <= a.Wo; wo += P0) small_tile<P0, B, CIN, 3, V>(a, xpad, Wp, ho, wo, c0);
        for (; wo + 8 <= a.Wo; wo += 8) small_tile<8, B, CIN, 3, V>(a, xpad, Wp, ho, wo, c0);
        for (; wo + 4 <= a.Wo; wo += 4) small_tile<4, B, CIN, 3, V>(a, xpad, Wp, ho, wo, c0);
        for (; wo < a.Wo; ++wo) small_tile<1, B, CIN, 3, V>(a, xpad, Wp, ho, wo, c0);
    } else {
        for (; wo + 8 <= a.Wo; wo += 8) small_tile<8, B, CIN, 0, V>(a, xpad, Wp, ho, wo, c0);
        for (; wo < a.Wo; ++wo) small_tile<1, B, CIN, 0, V>(a, xpad, Wp, ho, wo, c0);
    }
}

template <int CIN>
static void small_row(const Args& a, const float* xpad, int Wp, int ho) {
    if (wide_ok(a)) {
        int c0 = 0;
        for (; c0 + 32 <= a.Kp; c0 += 32) small_tiles<CIN, 2, v16, 12>(a, xpad, Wp, ho, c0);
        for (; c0 < a.Kp; c0 += 16) small_tiles<CIN, 1, v16, 16>(a, xpad, Wp, ho, c0);
        return;
    }
    for (int c0 = 0; c0 < a.Kp; c0 += 16) small_tiles<CIN, 2, v8, 12>(a, xpad, Wp, ho, c0);
}

// Any layout too (the stem's image: the bordered copy is NHWC).
static bool small_ok(const Args& a) {
    return a.Kp % 16 == 0 && (a.Cin == 3 || (a.Cin % 4 == 0 && a.Cin <= 32));
}

template <int CIN>
static void run_small(const Args& a, int nthreads, bool parallel) {
    thread_local Floats xbuf;  // per thread: a team's threads each border the input rows they read
    const Bordered xb = bordered(a, xbuf);
    if (a.team) {
        team_rows(a, [&](int r0, int r1) {
            for (int r = r0 * a.stride, end = std::min(xb.Hp, (r1 - 1) * a.stride + a.K); r < end; ++r) bordered_row(a, xb, r);
            for (int ho = r0; ho < r1; ++ho) small_row<CIN>(a, xb.x, xb.Wp, ho);
        });
        return;
    }
    for_rows(a, nthreads, parallel, [&](int ho) { small_row<CIN>(a, xb.x, xb.Wp, ho); },
             xb.Hp, [&](int r) { bordered_row(a, xb, r); });
}

#if defined(__AVX512F__)
// The stem (3 inputs, 3x3, stride 1, 16 outputs, rows a multiple of 16 wide), vectorised over 16
// pixels of a row rather than over the outputs: with 3 inputs a pixel meets only 27 weights, and
// the output-vectorised kernels broadcast one input per FMA. Here each loaded row segment meets 8
// outputs and each broadcast weight 2 output rows (0.6 loads per FMA), and a register transpose
// writes channels-last. The input is bordered into 3 planes first (any input layout).
static constexpr bool kStem = true;

static bool stem_ok(const Args& a) {
    return a.Cin == 3 && a.K == 3 && a.stride == 1 && a.pad == 1 && a.Kp == 16 && a.W % 16 == 0 && !a.res && !a.chscale &&
           a.alpha == 1.0f;
}

// Row r of the bordered planes [3][H + 2][W + 2] (border: the pad value of each channel).
static void stem_border_row(const Args& a, float* xb, int r) {
    const int S = a.W + 2, Hp = a.H + 2, hi = r - 1;
    for (int c = 0; c < 3; ++c) {
        float* d = xb + ((long)c * Hp + r) * S;
        const float pv = a.padv ? a.padv[c] : 0.f;
        if (hi < 0 || hi >= a.H) {
            for (int i = 0; i < S; ++i) d[i] = pv;
            continue;
        }
        d[0] = d[a.W + 1] = pv;
        const float* src = a.x + (long)hi * a.xs_h + (long)c * a.xs_c;
        if (a.xs_w == 1) std::memcpy(d + 1, src, sizeof(float) * a.W);
        else for (int i = 0; i < a.W; ++i) d[1 + i] = src[(long)i * a.xs_w];
    }
}

// 8 vectors of 16 pixels (one output channel each) stored as 16 pixels x 8 channels at y (pixel
// stride 16 floats): unpack, shuffle, then one two-source permute per pair of pixels.
static inline void store_eight_channels(const v16 (&v)[8], float* y) {
    __m512 t[8], u[8];
    for (int i = 0; i < 4; ++i) {
        t[2 * i] = _mm512_unpacklo_ps((__m512)v[2 * i], (__m512)v[2 * i + 1]);      // per lane: c0p0 c1p0 c0p1 c1p1
        t[2 * i + 1] = _mm512_unpackhi_ps((__m512)v[2 * i], (__m512)v[2 * i + 1]);  // c0p2 c1p2 c0p3 c1p3
    }
    for (int h = 0; h < 2; ++h) {  // channels 4h..4h+3; u[4h + i]: lane L holds pixel 4L + i
        u[4 * h + 0] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        u[4 * h + 1] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
        u[4 * h + 2] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        u[4 * h + 3] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
    }
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int i = 0; i < 4; ++i) {
        const __m512 a = _mm512_permutex2var_ps(u[i], lo, u[4 + i]);  // pixels i and 4 + i
        const __m512 b = _mm512_permutex2var_ps(u[i], hi, u[4 + i]);  // pixels 8 + i and 12 + i
        _mm256_storeu_ps(y + (long)i * 16, _mm512_castps512_ps256(a));
        _mm256_storeu_ps(y + (long)(4 + i) * 16, _mm512_extractf32x8_ps(a, 1));
        _mm256_storeu_ps(y + (long)(8 + i) * 16, _mm512_castps512_ps256(b));
        _mm256_storeu_ps(y + (long)(12 + i) * 16, _mm512_extractf32x8_ps(b, 1));
    }
}

// R output rows from ho, 16 pixels from wo0, outputs h..h+7. Every output sums bias, then inputs
// c, kernel rows kh, columns kw in that order, whatever R: results do not depend on the split.
template <int R>
static inline void stem_tile(const Args& a, const float* xb, int ho, int wo0, int h) {
    const int S = a.W + 2, Hp = a.H + 2;
    v16 acc[R][8];
    for (int k = 0; k < 8; ++k)
        for (int r = 0; r < R; ++r) acc[r][k] = (v16)_mm512_set1_ps(a.bias[h + k]);
    for (int c = 0; c < 3; ++c)
        for (int kh = 0; kh < 3; ++kh) {
            const float* row = xb + ((long)c * Hp + ho + kh) * S + wo0;
            for (int kw = 0; kw < 3; ++kw) {
                v16 xv[R];
                for (int r = 0; r < R; ++r) xv[r] = load<v16>(row + (long)r * S + kw);
                const float* wk = a.w + ((long)(kh * 3 + kw) * 3 + c) * 16 + h;  // [kh][kw][c][16]
                for (int k = 0; k < 8; ++k) {
                    const v16 wb = (v16)_mm512_set1_ps(wk[k]);  // a load (v16{} + w would add 0 first: -0.0)
                    for (int r = 0; r < R; ++r) acc[r][k] += xv[r] * wb;
                }
            }
        }
    for (int r = 0; r < R; ++r) {
        if (a.relu) {
            const v16 z = {};
            for (int k = 0; k < 8; ++k) acc[r][k] = acc[r][k] > z ? acc[r][k] : z;
        }
        store_eight_channels(acc[r], a.y + ((long)(ho + r) * a.Wo + wo0) * 16 + h);
    }
}

// Output rows [r0, r1) in pairs (a last single row alone).
static void stem_rows(const Args& a, const float* xb, int r0, int r1) {
    for (int ho = r0; ho < r1; ho += 2)
        for (int wo0 = 0; wo0 < a.Wo; wo0 += 16)
            for (int h = 0; h < 16; h += 8) {
                if (ho + 1 < r1) stem_tile<2>(a, xb, ho, wo0, h);
                else stem_tile<1>(a, xb, ho, wo0, h);
            }
}

static void run_stem(const Args& a, int nthreads, bool parallel) {
    thread_local Floats xbuf;  // per thread: a team's threads each border the rows they read
    const size_t n = (size_t)3 * (a.H + 2) * (a.W + 2);
    if (xbuf.size() < n) xbuf.resize(n);
    float* xb = xbuf.data();
    if (a.team) {
        team_rows(a, [&](int r0, int r1) {
            for (int r = r0; r < r1 + 2; ++r) stem_border_row(a, xb, r);
            stem_rows(a, xb, r0, r1);
        });
        return;
    }
    if (!parallel) {
        for (int r = 0; r < a.H + 2; ++r) stem_border_row(a, xb, r);
        stem_rows(a, xb, 0, a.Ho);
        return;
    }
    for_rows(a, nthreads, parallel, [&](int ho) { stem_rows(a, xb, ho, ho + 1); }, a.H + 2,
             [&](int r) { stem_border_row(a, xb, r); });
}
#else
static constexpr bool kStem = false;
static bool stem_ok(const Args&) { return false; }
static void run_stem(const Args&, int, bool) {}
#endif

template <bool NHWC>
static void run(const Args& a, int nthreads) {
    // Splitting rows over threads costs a few microseconds of fork/join: only worth it for
    // convs of a few hundred thousand multiply-adds or more.
    long macs = (long)a.Ho * a.Wo * a.Kp * a.K * a.K * a.Cin;
    const bool parallel = !(nthreads <= 1 || a.Ho < 2 || macs < 300000);
    if (NHWC && narrow_ok(a)) {
        if (a.Kp == 4) run_narrow<kNarrowPixels(4), 4>(a, nthreads, parallel);
        else if (a.Kp == 8) run_narrow<kNarrowPixels(8), 8>(a, nthreads, parallel);
        else run_narrow<kNarrowPixels(12), 12>(a, nthreads, parallel);
        return;
    }
    if (kStem && stem_ok(a)) {
        run_stem(a, nthreads, parallel);
        return;
    }
    if (small_ok(a)) {
        // The loop length known at compile time: with a runtime one the same kernel ran
        // 12->16 at 32x32 in 61 us against 34 (and 40 on `outputs`).
        switch (a.Cin) {
            case 3: run_small<3>(a, nthreads, parallel); break;
            case 4: run_small<4>(a, nthreads, parallel); break;
            case 8: run_small<8>(a, nthreads, parallel); break;
            case 12: run_small<12>(a, nthreads, parallel); break;
            case 16: run_small<16>(a, nthreads, parallel); break;
            case 20: run_small<20>(a, nthreads, parallel); break;
            case 24: run_small<24>(a, nthreads, parallel); break;
            case 28: run_small<28>(a, nthreads, parallel); break;
            default: run_small<32>(a, nthreads, parallel); break;
        }
        return;
    }
    if (a.team)
        team_rows(a, [&](int r0, int r1) { for (int ho = r0; ho < r1; ++ho) run_row<NHWC>(a, ho); });
    else
        for_rows(a, nthreads, parallel, [&](int ho) { run_row<NHWC>(a, ho); });
}
}  // namespace

namespace {
// lcnas_conv with, optionally, the narrow kernel's weights kept by the caller (narrow_layout of w;
// used when the conv takes the narrow kernel, see narrow_takes).
int conv_impl(const float* x, int H, int W, int Cin, long xs_h, long xs_w, long xs_c,
              const float* padv, int K, int stride, int pad,
              const float* w, const float* bias, int Kp, float alpha,
              const float* res, long rs_h, long rs_w, int res_lo, int res_hi,
              int relu, const float* chscale, float* y, int nthreads, const float* wt, bool team = false) {
    if (Kp <= 0 || Kp % 4 != 0 || Cin <= 0 || Cin > kMaxCin || res_lo % 8 != 0 || res_hi % 8 != 0) return 1;
    if (K <= 0 || stride <= 0 || pad < 0 || H <= 0 || W <= 0 || H + 2 * pad < K || W + 2 * pad < K) return 1;
    Args a{x, H, W, Cin, K, stride, pad, xs_h, xs_w, xs_c, padv, w, bias, Kp, alpha,
           res, rs_h, rs_w, res_lo, res_hi, relu, chscale, y, 0, 0, wt, team};
    a.Ho = (H + 2 * pad - K) / stride + 1;
    a.Wo = (W + 2 * pad - K) / stride + 1;
    if (xs_c == 1 && xs_w == Cin) run<true>(a, nthreads);
    else run<false>(a, nthreads);
    return 0;
}

// Whether an NHWC 3x3 conv of Cin inputs, Kp outputs and zero padding takes the narrow kernel.
bool narrow_takes(int Cin, int Kp) {
    Args a{};
    a.Cin = Cin; a.Kp = Kp; a.K = 3; a.xs_c = 1; a.xs_w = Cin;
    return narrow_ok(a);
}
}  // namespace

// Returns 0, or 1 when the arguments are outside what the kernel handles.
extern "C" int lcnas_conv(const float* x, int H, int W, int Cin, long xs_h, long xs_w, long xs_c,
                          const float* padv, int K, int stride, int pad,
                          const float* w, const float* bias, int Kp, float alpha,
                          const float* res, long rs_h, long rs_w, int res_lo, int res_hi,
                          int relu, const float* chscale, float* y, int nthreads) {
    return conv_impl(x, H, W, Cin, xs_h, xs_w, xs_c, padv, K, stride, pad, w, bias, Kp, alpha,
                     res, rs_h, rs_w, res_lo, res_hi, relu, chscale, y, nthreads, nullptr);
}

// "Option A" shortcut of a skipped downsampling block: y[ho][wo][lo + c] = x[ho*s][wo*s][c], other
// channels zero; x NHWC [H][W][Cin], y NHWC [Ho][Wo][Cout].
extern "C" void lcnas_pad_subsample(const float* x, int H, int W, int Cin, int stride, int lo, int Cout, float* y) {
    int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
    for (int ho = 0; ho < Ho; ++ho)
        for (int wo = 0; wo < Wo; ++wo) {
            float* yo = y + ((long)ho * Wo + wo) * Cout;
            std::memset(yo, 0, sizeof(float) * Cout);
            std::memcpy(yo + lo, x + ((long)ho * stride * W + (long)wo * stride) * Cin, sizeof(float) * Cin);
        }
}
