// lcnas native batch-1 convolution: direct NHWC convolution of one image, vectorised over output
// channels (8 floats per vector), with the block's epilogue fused (bias, residual scale, residual
// add, ReLU, per-channel scale).
//
// Why: at batch 1 PyTorch runs these small convs as im2col + GEMM, whose im2col costs the same
// whatever the number of output channels, so dropping channels barely saves time. A direct
// convolution's cost is proportional to (kept outputs) x (inputs): channel skipping pays.
//
// Layout: x [H][W][Cin]; weights [K][K][Cin][Kp] with Kp a multiple of 8 (zero-padded outputs);
// y and res [Ho][Wo][Kp]. Built at first use by lcnas/models/_native.py with -O3 -march=native.
// The operations per output are in a fixed order, so results do not depend on the thread count.
#include <cstring>
#include <algorithm>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef float v8 __attribute__((vector_size(32)));

static float g_zero[8192];

namespace {
struct Args {
    const float* x; int H, W, Cin, K, stride, pad;
    const float* w; const float* bias; int Kp;
    float alpha; const float* res; int relu; const float* chscale;
    float* y; int Ho, Wo;
};

static inline v8 load8(const float* p) { v8 v; std::memcpy(&v, p, 32); return v; }
static inline void store8(float* p, v8 v) { std::memcpy(p, &v, 32); }

template <int P, int B>
static inline void tile(const Args& a, int ho, int wo0, int ob) {
    v8 acc[P][B];
    for (int b = 0; b < B; ++b) {
        v8 bv = load8(a.bias + (ob + b) * 8);
        for (int p = 0; p < P; ++p) acc[p][b] = bv;
    }
    const int Cin = a.Cin, Kp = a.Kp;
    for (int kh = 0; kh < a.K; ++kh) {
        int hi = ho * a.stride + kh - a.pad;
        if (hi < 0 || hi >= a.H) continue;
        const float* xrow = a.x + (long)hi * a.W * Cin;
        const float* wk = a.w + (long)kh * a.K * Cin * Kp + ob * 8;
        int first = wo0 * a.stride - a.pad, last = (wo0 + P - 1) * a.stride - a.pad + a.K - 1;
        if (first >= 0 && last < a.W) {
            // Interior tile: in NHWC a pixel's K taps along the row are K*Cin contiguous floats,
            // matching the weights' (kw, ci) order, so one loop covers the whole kernel row.
            const float* xp[P];
            for (int p = 0; p < P; ++p) xp[p] = xrow + (long)((wo0 + p) * a.stride - a.pad) * Cin;
            const int n = a.K * Cin;
            for (int j = 0; j < n; ++j) {
                v8 wv[B];
                for (int b = 0; b < B; ++b) wv[b] = load8(wk + (long)j * Kp + b * 8);
                for (int p = 0; p < P; ++p) {
                    float xs = xp[p][j];
                    for (int b = 0; b < B; ++b) acc[p][b] += xs * wv[b];
                }
            }
            continue;
        }
        for (int kw = 0; kw < a.K; ++kw) {
            const float* xp[P];
            for (int p = 0; p < P; ++p) {
                int wi = (wo0 + p) * a.stride + kw - a.pad;
                xp[p] = (wi < 0 || wi >= a.W) ? g_zero : xrow + (long)wi * Cin;
            }
            const float* wr = wk + (long)kw * Cin * Kp;
            for (int ci = 0; ci < Cin; ++ci) {
                v8 wv[B];
                for (int b = 0; b < B; ++b) wv[b] = load8(wr + (long)ci * Kp + b * 8);
                for (int p = 0; p < P; ++p) {
                    float xs = xp[p][ci];
                    for (int b = 0; b < B; ++b) acc[p][b] += xs * wv[b];
                }
            }
        }
    }
    for (int p = 0; p < P; ++p) {
        long o = ((long)ho * a.Wo + wo0 + p) * Kp;
        for (int b = 0; b < B; ++b) {
            int c = (ob + b) * 8;
            v8 v = acc[p][b];
            if (a.alpha != 1.0f) v *= a.alpha;
            if (a.res) v += load8(a.res + o + c);
            if (a.relu) { v8 z = {}; v = v > z ? v : z; }
            if (a.chscale) v *= load8(a.chscale + c);
            store8(a.y + o + c, v);
        }
    }
}

template <int B>
static inline void row_blocks(const Args& a, int ho, int ob) {
    constexpr int P = B <= 2 ? 8 : 4;
    int wo = 0;
    for (; wo + P <= a.Wo; wo += P) tile<P, B>(a, ho, wo, ob);
    for (; wo < a.Wo; ++wo) tile<1, B>(a, ho, wo, ob);
}

static void run_row(const Args& a, int ho) {
    int nb = a.Kp / 8, ob = 0;
    for (; ob + 4 <= nb; ob += 4) row_blocks<4>(a, ho, ob);
    switch (nb - ob) {
        case 3: row_blocks<3>(a, ho, ob); break;
        case 2: row_blocks<2>(a, ho, ob); break;
        case 1: row_blocks<1>(a, ho, ob); break;
        default: break;
    }
}
}  // namespace

extern "C" int lcnas_conv_nhwc(const float* x, int H, int W, int Cin, int K, int stride, int pad,
                               const float* w, const float* bias, int Kp,
                               float alpha, const float* res, int relu, const float* chscale,
                               float* y, int nthreads) {
    if (Kp % 8 != 0 || Cin > 8192) return 1;
    Args a{x, H, W, Cin, K, stride, pad, w, bias, Kp, alpha, res, relu, chscale, y, 0, 0};
    a.Ho = (H + 2 * pad - K) / stride + 1;
    a.Wo = (W + 2 * pad - K) / stride + 1;
    if (nthreads <= 1 || a.Ho < 2) {
        for (int ho = 0; ho < a.Ho; ++ho) run_row(a, ho);
        return 0;
    }
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int ho = 0; ho < a.Ho; ++ho) run_row(a, ho);
    return 0;
}
