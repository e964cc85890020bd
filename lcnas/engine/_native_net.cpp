// lcnas native batch-1 network: a whole gated CIFAR ResNet forward pass in one call.
//
// Why: at batch 1 a block's arithmetic takes tens of microseconds, and every Python-side step
// (a gate's pooling and linear layers, a decision, a kernel call) costs a few microseconds of
// fixed overhead. Run from Python, 16-wide gates on every block made the forward pass 1.4-1.9x
// slower than the static network; here a gate costs its arithmetic. Decisions are taken in C
// by the same rule as the Python paths (_decision.py), and the skipped work is not computed.
//
// Scope: basic blocks with identity or "option A" shortcuts, a 3x3 stem without max-pooling,
// global average pooling + linear head (the CIFAR ResNets). Other models keep the per-conv path.
// A block's kept channel groups are gathered into compact weights (9 x Cin x kept floats for
// conv1, 9 x kept x Cout for conv2, and conv1's narrow-kernel layout where it takes that kernel),
// cached per channel set (see Compact), so any set runs at full vector width.
#include "_native_conv.cpp"

#include <atomic>
#include <cmath>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

extern "C" {
struct LcGateHead {  // one gate's outputs from rows [lo, hi) of the block's stacked first layer
    int lo, hi;
    const float* w2;  // second layer (out x (hi - lo)) after a ReLU, or null: the rows are the outputs
    const float* b2;
    int out;  // number of outputs (0: no such gate)
};

struct LcBlock {
    int cin, cmid, cout, h, w, stride;
    const float *w1, *b1, *w2, *b2;  // packed [3][3][cin][cmid], [3][3][cmid][cout] (BN folded)
    int pad_stride, pad_lo;          // shortcut: 0 = identity; else option A (every pad_stride-th pixel at pad_lo)
    int pool;                        // gate input: 0 avg, 1 max, 2 avg ++ max
    int feat, rows;                  // gate input width; rows of the stacked first layer (0: no gates)
    const float *gw, *gb;            // stacked first layer, rows x feat
    LcGateHead layer, channel;
    int groups, gsize, scaling;
    double run_logit, keep_logit;    // thresholds as logits, compared in double as Python does
};

struct LcNet {
    const float *stem_w, *stem_b, *stem_padv;  // packed [3][3][cin][stem_cout]
    int cin, h, w, stem_cout, stem_stride, stem_pad;
    int nblocks;
    const LcBlock* blocks;
    const float *fc_w, *fc_b;  // classes x feat
    int classes, feat;
    unsigned long long id;  // unique per packing: keys the compact-weight caches
};
}

namespace {
struct Work {  // per-thread scratch, grown on demand
    Floats act[2], mid, scale, pooled, hidden, out;
    Floats parts;  // per-row poolings (pool_rows; a team's in the shared Work): 2 buffers x parts_rows x parts_width
    int parts_rows = 0, parts_width = 0;
};

// Which of the two partial-pooling buffers a team thread's next pool_rows writes (reset per pass).
thread_local int t_pool_buffer = 0;

// The threads of one batch-1 pass (nthreads > 1): all of them run the whole pass, making the same
// decisions and calls, with the activations and the middle buffer in the first thread's Work
// (`shared`) and each conv's rows split into one band per thread (team_rows, which borders its
// own input rows): no fork/join per conv. Outside a team (one thread, or an image of a batch)
// shared is the thread's own Work and `on` is false.
struct Team {
    Work* shared;
    bool on;
};

// f() by the team's first thread (the others wait at the team's barrier), or by this thread.
template <typename F>
void once(const Team& t, F&& f) {
#ifdef _OPENMP
    if (t.on) {
        if (omp_get_thread_num() == 0) f();
        team_barrier();
        return;
    }
#endif
    f();
}

// f(this thread's Work, the Team, whether this thread's outputs are the caller's) on a team of
// nthreads sharing ws, when nthreads > 1 outside any parallel region; else once on this thread
// with ws. Returns the first thread's result.
template <typename F>
int on_team(int nthreads, Work& ws, F&& f) {
#ifdef _OPENMP
    if (nthreads > 1 && !omp_in_parallel()) {
        Work* shared = &ws;
        int rc = 0;
        TeamBarrier barrier;
#pragma omp parallel num_threads(nthreads)
        {
            thread_local Work own;
            const bool first = omp_get_thread_num() == 0;
            t_team_barrier = &barrier;
            t_pool_buffer = 0;
            int r = f(first ? *shared : own, Team{shared, true}, first);
            if (first) rc = r;
        }
        return rc;
    }
#endif
    return f(ws, Team{&ws, false}, true);
}

// The width conv1 computes for `kept` channels (the extra ones zero): the kernel writes multiples
// of 4, and past 12 multiples of 8. A 4-wide tail beside 8-wide vectors made 32->28 at 16x16 take
// 1.24 of 32->32's time and 64->60 at 8x8 1.21 of 64->64's (benchmarks/conv_cost.py, Zen 4);
// padded, the block costs at most its full width. Python's _native.kept_width is the same rule.
int kept_width(int kept) {
    int w = (kept + 3) / 4 * 4;
    return w > 12 && w % 8 ? w + 4 : w;
}

// A block's weights restricted to one kept channel set (conv1's kept outputs, conv2's kept
// inputs), zero-padded to kept_width. Trained Channel-Nets choose among few recurring sets,
// so the gathered weights are cached (LRU, shared by the threads of a batch), keyed by the
// network's id, the block and the set: a hit costs a hash lookup instead of a gather of
// 9 x (Cin + Cout) x kept floats, which on an 8x8 map is a third of the convs' own work.
struct Compact {
    Floats w1, b1, w2;
    Floats w1t;  // w1 in the narrow kernel's layout, when conv1 takes it (else empty)
    std::atomic<unsigned long long> used{0};
    size_t floats() const { return w1.size() + b1.size() + w2.size() + w1t.size(); }
};
const size_t kCacheFloats = (size_t)16 << 20;  // 64 MiB of gathered weights at most

// Lookups share the lock: a team's threads look up the same set at the same moment, and on an
// exclusive mutex the second one sleeps in the kernel (futex) for the first one's few hundred ns.
// Whole calls, 2 threads, scratch A/B against the mutex: 0.86-0.93 of the time on ResNet-56
// channel levels, 0.95-1.00 on ResNet-20.
class CompactCache {
    std::unordered_map<std::string, std::shared_ptr<Compact>> map_;
    std::atomic<unsigned long long> clock_{0};
    size_t floats_ = 0;
    std::shared_mutex mu_;

  public:
    std::shared_ptr<Compact> find(const std::string& key) {
        std::shared_lock<std::shared_mutex> lock(mu_);
        auto it = map_.find(key);
        if (it == map_.end()) return nullptr;
        it->second->used.store(++clock_, std::memory_order_relaxed);
        return it->second;
    }
    void insert(const std::string& key, std::shared_ptr<Compact> c) {
        std::unique_lock<std::shared_mutex> lock(mu_);
        c->used.store(++clock_, std::memory_order_relaxed);
        auto [it, added] = map_.emplace(key, c);
        if (!added) return;  // another thread gathered the same set first
        floats_ += c->floats();
        while (floats_ > kCacheFloats && map_.size() > 1) {  // evict the least recently used
            auto old = map_.begin();
            for (auto j = map_.begin(); j != map_.end(); ++j)
                if (j->second->used.load(std::memory_order_relaxed) < old->second->used.load(std::memory_order_relaxed)) old = j;
            floats_ -= old->second->floats();
            map_.erase(old);  // users still holding it keep it alive
        }
    }
};
CompactCache g_compact;

float* grow(Floats& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
}

inline double sigmoid2(double z) { return 2.0 / (1.0 + std::exp(-z)); }

// Sum (Max) over pixels of NHWC rows, channels [c0, c0 + 8*NV) in registers: with the block's
// activation read once at full vector width, a gate's pooling costs a fraction of a microsecond.
template <int NV, bool MAX>
void pool_vectors(const float* __restrict x, int hw, int c, int c0, float* __restrict out) {
    v8 acc[NV];
    for (int b = 0; b < NV; ++b) acc[b] = load<v8>(x + c0 + 8 * b);
    for (int p = 1; p < hw; ++p) {
        const float* xp = x + (long)p * c + c0;
        for (int b = 0; b < NV; ++b) {
            v8 v = load<v8>(xp + 8 * b);
            if (MAX) acc[b] = v > acc[b] ? v : acc[b];
            else acc[b] += v;
        }
    }
    for (int b = 0; b < NV; ++b) store<v8>(out + c0 + 8 * b, acc[b]);
}

template <bool MAX>
void pool_kind(const float* x, int hw, int c, float* v) {
    int c0 = 0;
    for (; c0 + 32 <= c; c0 += 32) pool_vectors<4, MAX>(x, hw, c, c0, v);
    for (; c0 + 8 <= c; c0 += 8) pool_vectors<1, MAX>(x, hw, c, c0, v);
    for (; c0 < c; ++c0) {  // widths not a multiple of 8
        float a = x[c0];
        for (int p = 1; p < hw; ++p) { float e = x[(long)p * c + c0]; a = MAX ? (e > a ? e : a) : a + e; }
        v[c0] = a;
    }
}

// A gate's (and the head's) pooling of an h x w x c NHWC activation into this thread's v (avg into
// v[0, c), max into v[c, 2c) for avgmax, else v[0, c)), summed in one order on any number of
// threads: each image row's pixels, then the rows in order, so that a pass makes the same
// decisions on 1, 2 or 3 threads. In a team each thread pools the rows it wrote (team_rows' share
// of the conv that made x) into the shared Work and, after one barrier, combines every row: h
// vectors of c floats (2 KB on CIFAR ResNets), half of them from the other cores. Each thread
// pooling the whole activation read the others' rows from their cores' caches: on 2 threads
// (Zen 4) that made a gate cost 2-8 us inside the pass against ~1 us on 1 thread. Two buffers
// alternate: a thread writes one again only after the barrier of the other, which every thread
// reaches after reading the first.
void pool_rows(const Team& t, const float* x, int h, int w, int c, int kind, float* v) {
    Work& sh = *t.shared;
    const int width = kind == 2 ? 2 * c : c;
    float* buf = sh.parts.data() + (size_t)t_pool_buffer * sh.parts_rows * sh.parts_width;  // grow_parts sized it
    t_pool_buffer ^= 1;
    int r0 = 0, r1 = h;
#ifdef _OPENMP
    if (t.on) {
        const int k = omp_get_thread_num(), nt = omp_get_num_threads();
        r0 = k * h / nt;
        r1 = (k + 1) * h / nt;
    }
#endif
    for (int r = r0; r < r1; ++r) {
        const float* xr = x + (long)r * w * c;
        float* row = buf + (size_t)r * sh.parts_width;
        if (kind != 1) pool_kind<false>(xr, w, c, row);
        if (kind != 0) pool_kind<true>(xr, w, c, kind == 2 ? row + c : row);
    }
#ifdef _OPENMP
    if (t.on) team_barrier();
#endif
    for (int j = 0; j < width; ++j) v[j] = buf[j];
    for (int r = 1; r < h; ++r) {
        const float* row = buf + (size_t)r * sh.parts_width;
        if (kind != 1)
            for (int j = 0; j < c; ++j) v[j] += row[j];
        if (kind != 0) {
            const int m0 = kind == 2 ? c : 0;
            for (int j = m0; j < m0 + c; ++j) v[j] = row[j] > v[j] ? row[j] : v[j];
        }
    }
    if (kind != 1) {
        const float inv = 1.f / (float)(h * w);
        for (int j = 0; j < c; ++j) v[j] *= inv;
    }
}

// rows [lo, hi) of y = W v + b
long linear(const float* w, const float* b, const float* v, int feat, int lo, int hi, float* y) {
    for (int r = lo; r < hi; ++r) {
        const float* wr = w + (long)r * feat;
        float s = 0.f;
        for (int f = 0; f < feat; ++f) s += wr[f] * v[f];
        y[r] = s + b[r];
    }
    return (long)(hi - lo) * feat;
}

// a gate's outputs into `out` (multiply-adds returned); h holds its first-layer rows
long head(const LcGateHead& g, const float* h, float* out) {
    int n = g.hi - g.lo;
    if (!g.w2) {
        std::memcpy(out, h + g.lo, sizeof(float) * n);
        return 0;
    }
    for (int o = 0; o < g.out; ++o) {
        const float* wr = g.w2 + (long)o * n;
        float s = 0.f;
        for (int j = 0; j < n; ++j) { float a = h[g.lo + j]; s += wr[j] * (a > 0.f ? a : 0.f); }
        out[o] = s + g.b2[o];
    }
    return (long)g.out * n;
}

int conv(const Team& t, const float* x, int H, int W, int C, const float* padv, int stride, int pad, int K,
         const float* w, const float* b, int Kp, float alpha, const float* res, long rs_h, long rs_w,
         int lo, int hi, int relu, const float* chscale, float* y, int nthreads, const float* wt = nullptr) {
    return conv_impl(x, H, W, C, (long)W * C, C, 1, padv, K, stride, pad, w, b, Kp, alpha,
                     res, rs_h, rs_w, lo, hi, relu, chscale, y, nthreads, wt, t.on);
}

// Block B's weights for the kept channels idx[0, kept) (padded to kp), from the cache or gathered.
std::shared_ptr<Compact> compact_for(const LcBlock& B, const std::string& key, const int* idx, int kept, int kp) {
    std::shared_ptr<Compact> compact = g_compact.find(key);
    if (compact) return compact;
    compact = std::make_shared<Compact>();
    Compact& c = *compact;
    c.w1.assign((size_t)9 * B.cin * kp, 0.f);
    c.b1.assign(kp, 0.f);
    c.w2.assign((size_t)9 * kp * B.cout, 0.f);
    for (int t = 0; t < 9 * B.cin; ++t) {
        const float* src = B.w1 + (long)t * B.cmid;
        float* dst = c.w1.data() + (long)t * kp;
        for (int j = 0; j < kept; ++j) dst[j] = src[idx[j]];
    }
    for (int j = 0; j < kept; ++j) c.b1[j] = B.b1[idx[j]];
    for (int t = 0; t < 9; ++t)
        for (int j = 0; j < kept; ++j)
            std::memcpy(c.w2.data() + ((long)t * kp + j) * B.cout, B.w2 + ((long)t * B.cmid + idx[j]) * B.cout, sizeof(float) * B.cout);
    if (narrow_takes(B.cin, kp)) {  // kept once, not transposed on every call
        c.w1t.resize(c.w1.size());
        narrow_layout(c.w1.data(), 3, B.cin, kp, kp, c.w1t.data());
    }
    g_compact.insert(key, compact);
    return compact;
}

// One block; returns the buffer holding its output (x itself for a skipped identity block).
// ws: this thread's scratch (gates); t.shared: the buffers the team shares (ws itself outside a team).
float* block(const LcBlock& B, unsigned long long net_id, int index, float* x, float* spare, Work& ws, const Team& t,
             int forced_run, const unsigned char* forced_keep, int eval_gates, unsigned char* ran, int* kept_out,
             unsigned char* groups_out, double* macs, int nthreads) {
    const int Ho = (B.h - 1) / B.stride + 1, Wo = (B.w - 1) / B.stride + 1;
    const bool gates = eval_gates && B.rows > 0;
    float* h = gates ? grow(ws.hidden, B.rows) : nullptr;
    float* out = grow(ws.out, 2 + 2 * (size_t)B.groups);  // layer: logit, scale; channel: G logits, G scales
    // The gate decision rule of lcnas/engine/_decision.py (run, keep groups, at least one group,
    // forced overrides, 2*sigmoid scales), held to it by tests/engine_tests/test_parity.py.
    bool run = forced_run < 0 ? true : forced_run != 0;
    float alpha = 1.f;
    if (gates) {
        float* v = grow(ws.pooled, B.feat);
        pool_rows(t, x, B.h, B.w, B.cin, B.pool, v);
        if (B.layer.out) {
            *macs += linear(B.gw, B.gb, v, B.feat, B.layer.lo, B.layer.hi, h);
            *macs += head(B.layer, h, out);
            if (forced_run < 0) run = (double)out[0] > B.run_logit;
            if (B.scaling) alpha = (float)sigmoid2(out[1]);
        }
    }
    if (!run) {
        *ran = 0;
        *kept_out = 0;
        if (groups_out) std::memset(groups_out, 0, (size_t)B.groups);
        if (!B.pad_stride) return x;
        once(t, [&] { lcnas_pad_subsample(x, B.h, B.w, B.cin, B.pad_stride, B.pad_lo, B.cout, spare); });
        return spare;
    }
    // Which channel groups run: forced, else the channel gate, else all.
    const int G = B.groups, g = B.gsize;
    unsigned char keep[4096];
    bool all = true;
    const float* cscale = nullptr;
    if (G > 0) {
        for (int k = 0; k < G; ++k) keep[k] = 1;
        float* c_out = out + 2;
        if (gates && B.channel.out) {
            *macs += linear(B.gw, B.gb, grow(ws.pooled, B.feat), B.feat, B.channel.lo, B.channel.hi, h);
            *macs += head(B.channel, h, c_out);
            if (!forced_keep) {
                int any = 0, top = 0;
                for (int k = 0; k < G; ++k) {
                    keep[k] = (double)c_out[k] > B.keep_logit;
                    any |= keep[k];
                    if (c_out[k] > c_out[top]) top = k;
                }
                if (!any) keep[top] = 1;  // a block with 0 channels would be a skip: keep the likeliest group
            }
            if (B.scaling) cscale = c_out + G;
        }
        if (forced_keep) {
            int any = 0;
            for (int k = 0; k < G; ++k) { keep[k] = forced_keep[k] != 0; any |= keep[k]; }
            if (!any) keep[0] = 1;
        }
        for (int k = 0; k < G; ++k) all &= keep[k] != 0;
    }
    if (groups_out && G > 0) std::memcpy(groups_out, keep, (size_t)G);
    int nkept = 0;
    if (G > 0) for (int k = 0; k < G; ++k) nkept += keep[k];
    const int kept = G > 0 ? nkept * g : B.cmid;
    const int kp = kept_width(kept);
    const float *w1 = B.w1, *b1 = B.b1, *w2 = B.w2, *w1t = nullptr;
    float* sc = nullptr;
    int idx[4096], n = 0;  // the kept channels, in order
    for (int k = 0; k < (G > 0 ? G : 1); ++k)
        if (G == 0 || keep[k])
            for (int j = 0; j < (G > 0 ? g : B.cmid); ++j) idx[n++] = (G > 0 ? k * g : 0) + j;
    if (cscale) {
        sc = grow(ws.scale, kp);
        for (int j = 0; j < kp; ++j) sc[j] = j < kept ? (float)sigmoid2(cscale[idx[j] / g]) : 0.f;
    }
    std::shared_ptr<Compact> compact;  // held until the block's convs are done
    if (!all || kp != kept) {
        std::string key(reinterpret_cast<const char*>(&net_id), sizeof(net_id));
        key.append(reinterpret_cast<const char*>(&index), sizeof(index));
        for (int k = 0; k < G; ++k) key.push_back((char)keep[k]);
        // Each thread of a team looks up on its own: the lock is cheaper than a barrier.
        compact = compact_for(B, key, idx, kept, kp);
        const Compact& c = *compact;
        w1 = c.w1.data(); b1 = c.b1.data(); w2 = c.w2.data();
        if (!c.w1t.empty()) w1t = c.w1t.data();
    }
    // A team's shared middle buffer is sized before the team starts (grow_mid): growing it here
    // would take a barrier per block.
    float* mid = t.on ? t.shared->mid.data() : grow(t.shared->mid, (size_t)Ho * Wo * kp);
    int rc = conv(t, x, B.h, B.w, B.cin, nullptr, B.stride, 1, 3, w1, b1, kp, 1.f, nullptr, 0, 0, 0, 0, 1, sc, mid, nthreads, w1t);
    long rs_h = (long)B.w * B.cin, rs_w = B.cin;
    int lo = 0;
    if (B.pad_stride) { rs_h *= B.pad_stride; rs_w *= B.pad_stride; lo = B.pad_lo; }
    rc |= conv(t, mid, Ho, Wo, kp, nullptr, 1, 1, 3, w2, B.b2, B.cout, alpha, x, rs_h, rs_w, lo, lo + B.cin, 1, nullptr, spare, nthreads);
    *macs += 9.0 * Ho * Wo * kept * ((double)B.cin + B.cout);
    *ran = 1;
    *kept_out = kept;
    return rc ? nullptr : spare;
}
}  // namespace

namespace {
// The middle buffer (conv1's output) for any block of N, in w.
void grow_mid(const LcNet& N, Work& w) {
    size_t most = 0;
    for (int i = 0; i < N.nblocks; ++i) {
        const LcBlock& B = N.blocks[i];
        most = std::max(most, (size_t)((B.h - 1) / B.stride + 1) * ((B.w - 1) / B.stride + 1) * kept_width(B.cmid));
    }
    grow(w.mid, most);
}

// The per-row pooling buffers of pool_rows over N's activations, in w.
void grow_parts(const LcNet& N, Work& w) {
    int rows = 1, width = N.feat;
    for (int i = 0; i < N.nblocks; ++i) {
        rows = std::max(rows, N.blocks[i].h);
        width = std::max(width, 2 * N.blocks[i].cin);  // avg ++ max: twice the channels
    }
    if (rows > w.parts_rows || width > w.parts_width) {
        w.parts_rows = std::max(rows, w.parts_rows);
        w.parts_width = std::max(width, w.parts_width);
        w.parts.assign(2 * (size_t)w.parts_rows * w.parts_width, 0.f);
    }
}

// Activation and middle buffers for a pass of N, in w.
void grow_acts(const LcNet& N, Work& w) {
    grow_mid(N, w);
    int Ho = (N.h + 2 * N.stem_pad - 3) / N.stem_stride + 1, Wo = (N.w + 2 * N.stem_pad - 3) / N.stem_stride + 1;
    size_t most = (size_t)Ho * Wo * N.stem_cout;
    for (int i = 0; i < N.nblocks; ++i) {
        const LcBlock& B = N.blocks[i];
        size_t o = (size_t)((B.h - 1) / B.stride + 1) * ((B.w - 1) / B.stride + 1) * B.cout;
        if (o > most) most = o;
    }
    grow(w.act[0], most);
    grow(w.act[1], most);
}

// One image through the network with ws this thread's scratch and t.shared the activations.
int forward_pass(const LcNet& N, const float* x, long xs_c, long xs_h, long xs_w, const signed char* forced_run,
                 const int* forced_keep, const unsigned char* keep_bits, int eval_gates, float* logits,
                 unsigned char* ran, int* kept, unsigned char* groups, double* macs, int nthreads, Work& ws, const Team& t) {
    int Ho = (N.h + 2 * N.stem_pad - 3) / N.stem_stride + 1, Wo = (N.w + 2 * N.stem_pad - 3) / N.stem_stride + 1;
    float* buf[2] = {t.shared->act[0].data(), t.shared->act[1].data()};  // sized by grow_acts
    *macs = 9.0 * N.cin * N.stem_cout * Ho * Wo;
    if (conv_impl(x, N.h, N.w, N.cin, xs_h, xs_w, xs_c, N.stem_padv, 3, N.stem_stride, N.stem_pad,
                  N.stem_w, N.stem_b, N.stem_cout, 1.f, nullptr, 0, 0, 0, 0, 1, nullptr, buf[0], nthreads, nullptr, t.on))
        return 1;
    float* cur = buf[0];
    int goff = 0;  // block i's kept groups start at groups + goff (one byte per group)
    for (int i = 0; i < N.nblocks; ++i) {
        float* spare = cur == buf[0] ? buf[1] : buf[0];
        const unsigned char* fk = forced_keep && forced_keep[i] >= 0 ? keep_bits + forced_keep[i] : nullptr;
        cur = block(N.blocks[i], N.id, i, cur, spare, ws, t, forced_run ? forced_run[i] : -1, fk, eval_gates, ran + i, kept + i,
                    groups ? groups + goff : nullptr, macs, nthreads);
        goff += N.blocks[i].groups;
        if (!cur) return 1;
    }
    const LcBlock& last = N.blocks[N.nblocks - 1];
    float* v = grow(ws.pooled, N.feat);
    pool_rows(t, cur, (last.h - 1) / last.stride + 1, (last.w - 1) / last.stride + 1, N.feat, 0, v);
    *macs += linear(N.fc_w, N.fc_b, v, N.feat, 0, N.classes, logits);
    return 0;
}

// Outputs a team's other threads write instead of the caller's (theirs are the same values).
struct Discard {
    Floats logits;
    std::vector<unsigned char> ran;
    std::vector<int> kept;
    double macs = 0;
};

// One image (see lcnas_net_forward); forced rows are this sample's. With nthreads > 1, outside
// any parallel region, a team of nthreads runs the pass (see Team); else this thread alone.
int forward_one(const LcNet& N, const float* x, long xs_c, long xs_h, long xs_w, const signed char* forced_run,
                const int* forced_keep, const unsigned char* keep_bits, int eval_gates, float* logits,
                unsigned char* ran, int* kept, unsigned char* groups, double* macs, int nthreads) {
    thread_local Work ws;
    grow_acts(N, ws);
    grow_parts(N, ws);
    return on_team(nthreads, ws, [&](Work& mine, const Team& t, bool first) {
        thread_local Discard d;  // the other threads' outputs
        if (!first) {
            d.logits.resize(N.classes);
            d.ran.resize(N.nblocks);
            d.kept.resize(N.nblocks);
        }
        return forward_pass(N, x, xs_c, xs_h, xs_w, forced_run, forced_keep, keep_bits, eval_gates,
                            first ? logits : d.logits.data(), first ? ran : d.ran.data(), first ? kept : d.kept.data(),
                            first ? groups : nullptr, first ? macs : &d.macs, nthreads, mine, t);
    });
}
}  // namespace

// kept_width, for Python's test that _native.kept_width follows the same rule.
extern "C" int lcnas_kept_width(int kept) { return kept_width(kept); }

// n images (x: n x cin x h x w, any strides). Forced decisions per sample and block: forced_run
// (n x nblocks; -1 none, 0, 1) and forced_keep (n x nblocks offsets into keep_bits, -1 none), each
// may be null. Writes logits (n x classes), the trace (ran, kept channels: n x nblocks; and where
// groups is not null, each image's kept channel groups: n rows of sum(groups) bytes, block after
// block, 0 for a skipped block) and the multiply-adds computed per image (n). One image runs on a team of nthreads (see Team); a batch
// runs its images in parallel, one per thread, each taking only its own path (nothing grouped,
// gathered or masked). Returns 0, or 1 on arguments the kernel rejects.
extern "C" int lcnas_net_forward(const LcNet* net, const float* x, int n, long xs_n, long xs_c, long xs_h, long xs_w,
                                 const signed char* forced_run, const int* forced_keep, const unsigned char* keep_bits,
                                 int eval_gates, float* logits, unsigned char* ran, int* kept, unsigned char* groups, double* macs,
                                 int nthreads) {
    const LcNet& N = *net;
    const int B = N.nblocks;
    if (n == 1)
        return forward_one(N, x, xs_c, xs_h, xs_w, forced_run, forced_keep, keep_bits, eval_gates, logits, ran, kept, groups, macs,
                           nthreads);
    long row = 0;  // one image's kept-group bytes
    for (int i = 0; i < B; ++i) row += N.blocks[i].groups;
    int rc = 0;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic) reduction(| : rc)
    for (int s = 0; s < n; ++s)
        rc |= forward_one(N, x + (long)s * xs_n, xs_c, xs_h, xs_w, forced_run ? forced_run + (long)s * B : nullptr,
                          forced_keep ? forced_keep + (long)s * B : nullptr, keep_bits, eval_gates,
                          logits + (long)s * N.classes, ran + (long)s * B, kept + (long)s * B, groups ? groups + s * row : nullptr,
                          macs + s, 1);
    return rc;
}

// Block i of the network alone, on n images (x: n NHWC images of that block's input, contiguous;
// y: n NHWC outputs), with the same forced-decision layout as lcnas_net_forward (rows of nblocks).
// What the latency tables time: the very code a forward pass runs for that block. A skipped
// identity block outputs its input: *same is set to 1 when every image skipped that way (y is
// then untouched), else skipped images are copied into y. Returns 0, or 1 on rejected arguments.
extern "C" int lcnas_net_block(const LcNet* net, int i, const float* x, int n, float* y, const signed char* forced_run,
                               const int* forced_keep, const unsigned char* keep_bits, int eval_gates,
                               unsigned char* ran, int* kept, double* macs, int* same, int nthreads) {
    const LcNet& N = *net;
    const LcBlock& B = N.blocks[i];
    const long in_size = (long)B.h * B.w * B.cin;
    const long out_size = (long)((B.h - 1) / B.stride + 1) * ((B.w - 1) / B.stride + 1) * B.cout;
    const int nb = N.nblocks;
    int rc = 0, copied = 0;
    // first: the thread whose outputs are the caller's (a team's others write to locals)
    auto one = [&](int s, int threads, Work& ws, const Team& t, bool first) {
        const float* xs = x + s * in_size;
        const unsigned char* fk = forced_keep && forced_keep[(long)s * nb + i] >= 0 ? keep_bits + forced_keep[(long)s * nb + i] : nullptr;
        double m = 0;
        unsigned char ran_other;
        int kept_other;
        float* out = block(B, N.id, i, const_cast<float*>(xs), y + s * out_size, ws, t, forced_run ? forced_run[(long)s * nb + i] : -1,
                           fk, eval_gates, first ? ran + s : &ran_other, first ? kept + s : &kept_other, nullptr, &m, threads);
        if (first) macs[s] = m;
        if (!out) return 1;
        if (out == xs) return 2;  // identity skip: the output is the input
        return 0;
    };
    if (n == 1) {  // as a forward pass runs it: a team for several threads (see forward_one)
        thread_local Work ws;
        grow_mid(N, ws);
        grow_parts(N, ws);
        rc = on_team(nthreads, ws, [&](Work& mine, const Team& t, bool first) { return one(0, nthreads, mine, t, first); });
    } else {
#pragma omp parallel for num_threads(nthreads) schedule(dynamic) reduction(| : rc)
        for (int s = 0; s < n; ++s) {
            thread_local Work ws;
            grow_parts(N, ws);
            rc |= one(s, 1, ws, Team{&ws, false}, true);
        }
    }
    if (rc & 1) return 1;
    *same = 0;
    if (rc & 2) {
        for (int s = 0; s < n; ++s) copied += !ran[s];
        if (copied == n && B.pad_stride == 0) { *same = 1; return 0; }
        for (int s = 0; s < n; ++s)
            if (!ran[s]) std::memcpy(y + s * out_size, x + s * in_size, sizeof(float) * out_size);
    }
    return 0;
}
