// lcnas native batch-1 convolution: direct convolution of one image, vectorised over output
// channels (8 floats per vector), with a residual block's epilogue fused in (bias, residual
// scale, shortcut add, ReLU, per-channel scale).
//
// Why: at batch 1 PyTorch runs these small convs as im2col + GEMM, whose im2col costs the same
// whatever the number of output channels, so dropping channels barely saves time. A direct
// convolution's cost is proportional to (kept outputs) x (inputs): channel skipping pays.
//
// Layout: x is addressed by strides (any layout; NHWC takes the fast path); weights
// [K][K][Cin][Kp] with Kp a multiple of 4 (zero-padded outputs; 8-wide vectors and a 4-wide
// tail in the same pass); y [Ho][Wo][Kp]. Out-of-image
// taps read `padv` (per input channel; zeros when null), which lets the stem fold the input
// normalisation into its weights. The shortcut is read through strides and a channel window
// [res_lo, res_hi), so identity and "option A" (subsample + zero channels) shortcuts need no copy.
// Built at first use by lcnas/models/_native.py with -O3 -march=native. Each output's operations
// run in a fixed order, so results do not depend on the thread count.
#include <cstring>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));  // a trailing 4-channel block (groups of 4)

static const int kMaxCin = 8192;
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
};

template <typename V>
static inline V load(const float* p) { V v; std::memcpy(&v, p, sizeof(V)); return v; }
template <typename V>
static inline void store(float* p, V v) { std::memcpy(p, &v, sizeof(V)); }

// What follows a conv in a block, on one output vector at channel c: residual scale, shortcut
// add (inside its channel window), ReLU, per-channel scale.
template <typename V>
static inline V epilogue(const Args& a, V v, const float* ro, int c) {
    if (a.alpha != 1.0f) v *= a.alpha;
    if (ro && c >= a.res_lo && c < a.res_hi) v += load<V>(ro + (c - a.res_lo));
    if (a.relu) { V z = {}; v = v > z ? v : z; }
    if (a.chscale) v *= load<V>(a.chscale + c);
    return v;
}

// P output pixels along a row x (B 8-channel vectors + T ? one 4-channel vector) from channel c0.
// The 4-wide tail rides in the same pass as the 8-wide vectors, so a kept width of 12 or 28
// (3 or 7 groups of 4) reads its input once, not twice.
template <int P, int B, bool T, bool NHWC>
static inline void tile(const Args& a, int ho, int wo0, int c0) {
    v8 acc[P][B > 0 ? B : 1];
    v4 acct[P];
    for (int b = 0; b < B; ++b) {
        v8 bv = load<v8>(a.bias + c0 + b * 8);
        for (int p = 0; p < P; ++p) acc[p][b] = bv;
    }
    if (T) {
        v4 bv = load<v4>(a.bias + c0 + B * 8);
        for (int p = 0; p < P; ++p) acct[p] = bv;
    }
    const int Cin = a.Cin, Kp = a.Kp;
    const float* padv = a.padv ? a.padv : g_zero;
    for (int kh = 0; kh < a.K; ++kh) {
        int hi = ho * a.stride + kh - a.pad;
        const float* wk = a.w + (long)kh * a.K * Cin * Kp + c0;
        bool row_in = hi >= 0 && hi < a.H;
        const float* xrow = a.x + (long)hi * a.xs_h;
        int first = wo0 * a.stride - a.pad, last = (wo0 + P - 1) * a.stride - a.pad + a.K - 1;
        if (NHWC && row_in && first >= 0 && last < a.W) {
            // Interior tile: in NHWC a pixel's K taps along the row are K*Cin contiguous floats,
            // matching the weights' (kw, ci) order, so one loop covers the whole kernel row.
            const float* xp[P];
            for (int p = 0; p < P; ++p) xp[p] = xrow + (long)((wo0 + p) * a.stride - a.pad) * Cin;
            const int n = a.K * Cin;
            for (int j = 0; j < n; ++j) {
                v8 wv[B > 0 ? B : 1];
                for (int b = 0; b < B; ++b) wv[b] = load<v8>(wk + (long)j * Kp + b * 8);
                v4 wt = T ? load<v4>(wk + (long)j * Kp + B * 8) : v4{};
                for (int p = 0; p < P; ++p) {
                    float xs = xp[p][j];
                    for (int b = 0; b < B; ++b) acc[p][b] += xs * wv[b];
                    if (T) acct[p] += xs * wt;
                }
            }
            continue;
        }
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
                v8 wv[B > 0 ? B : 1];
                for (int b = 0; b < B; ++b) wv[b] = load<v8>(wr + (long)ci * Kp + b * 8);
                v4 wt = T ? load<v4>(wr + (long)ci * Kp + B * 8) : v4{};
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
            int c = c0 + b * 8;
            if (b < B) store<v8>(yo + c, epilogue<v8>(a, acc[p][b], ro, c));
            else store<v4>(yo + c, epilogue<v4>(a, acct[p], ro, c));
        }
    }
}

template <int B, bool T, bool NHWC>
static inline void row_blocks(const Args& a, int ho, int c0) {
    constexpr int V = B + (T ? 1 : 0);
    constexpr int P = V <= 2 ? 8 : 4;  // at most 16 accumulators: register-resident with AVX-512VL's 32
    int wo = 0;
    for (; wo + P <= a.Wo; wo += P) tile<P, B, T, NHWC>(a, ho, wo, c0);
    for (; wo < a.Wo; ++wo) tile<1, B, T, NHWC>(a, ho, wo, c0);
}

template <bool NHWC>
static void run_row(const Args& a, int ho) {
    int nb = a.Kp / 8, ob = 0;
    const bool tail = a.Kp % 8 != 0;
    for (; ob + 4 <= nb; ob += 4) row_blocks<4, false, NHWC>(a, ho, ob * 8);
    // the last 0-3 vectors of 8 and the 4-wide tail in one pass
    const int c0 = ob * 8;
    switch ((nb - ob) * 2 + (tail ? 1 : 0)) {
        case 7: row_blocks<3, true, NHWC>(a, ho, c0); break;
        case 6: row_blocks<3, false, NHWC>(a, ho, c0); break;
        case 5: row_blocks<2, true, NHWC>(a, ho, c0); break;
        case 4: row_blocks<2, false, NHWC>(a, ho, c0); break;
        case 3: row_blocks<1, true, NHWC>(a, ho, c0); break;
        case 2: row_blocks<1, false, NHWC>(a, ho, c0); break;
        case 1: row_blocks<0, true, NHWC>(a, ho, c0); break;
        default: break;
    }
}

template <bool NHWC>
static void run(const Args& a, int nthreads) {
    // Splitting rows over threads costs a few microseconds of fork/join: only worth it for
    // convs of a few hundred thousand multiply-adds or more.
    long macs = (long)a.Ho * a.Wo * a.Kp * a.K * a.K * a.Cin;
    if (nthreads <= 1 || a.Ho < 2 || macs < 300000) {
        for (int ho = 0; ho < a.Ho; ++ho) run_row<NHWC>(a, ho);
        return;
    }
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int ho = 0; ho < a.Ho; ++ho) run_row<NHWC>(a, ho);
}
}  // namespace

// Returns 0, or 1 when the arguments are outside what the kernel handles.
extern "C" int lcnas_conv(const float* x, int H, int W, int Cin, long xs_h, long xs_w, long xs_c,
                          const float* padv, int K, int stride, int pad,
                          const float* w, const float* bias, int Kp, float alpha,
                          const float* res, long rs_h, long rs_w, int res_lo, int res_hi,
                          int relu, const float* chscale, float* y, int nthreads) {
    if (Kp % 4 != 0 || Cin > kMaxCin || res_lo % 8 != 0 || res_hi % 8 != 0) return 1;
    Args a{x, H, W, Cin, K, stride, pad, xs_h, xs_w, xs_c, padv, w, bias, Kp, alpha,
           res, rs_h, rs_w, res_lo, res_hi, relu, chscale, y, 0, 0};
    a.Ho = (H + 2 * pad - K) / stride + 1;
    a.Wo = (W + 2 * pad - K) / stride + 1;
    if (xs_c == 1 && xs_w == Cin) run<true>(a, nthreads);
    else run<false>(a, nthreads);
    return 0;
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
