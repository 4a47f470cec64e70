// oneDNN kernels for the tfjs training path (MixMask issue 11).
//
// Plain C N-API (node_api.h) + the oneDNN C++ API. Every entry point is synchronous and works
// in place on Float32Arrays (including views into the wasm backend's WebAssembly.Memory):
// activations are NHWC float32, weights HWIO float32 (tfjs layout); internally the weights are
// reordered into the layout oneDNN prefers (once per call, buffers cached per shape).
//
// Precision (setPrecision): 'fp32' (default) runs everything in float32. 'bf16' is mixed
// precision for CPUs with native bf16 (AVX-512 BF16 or AMX): convolutions (all three directions)
// and matmuls read bfloat16 copies of their inputs (the same cached reorders that change the
// layout also round to bf16) and write float32 outputs (y / dx / dW), so the weights the
// optimiser updates, the gradients it reads and BatchNorm (statistics included) stay float32.
#include <node_api.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <unordered_map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

dnnl::engine &eng() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream &strm() {
  static dnnl::stream s(eng());
  return s;
}

struct JsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------- N-API helpers
#define NAPI_OK(call)                                              \
  do {                                                             \
    if ((call) != napi_ok) throw JsError("N-API call failed: " #call); \
  } while (0)

struct F32 {
  float *data;
  size_t length;
};

F32 getF32(napi_env env, napi_value v, const char *what) {
  bool is_ta = false;
  NAPI_OK(napi_is_typedarray(env, v, &is_ta));
  if (!is_ta) throw JsError(std::string(what) + ": expected a Float32Array");
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_value ab;
  size_t offset;
  NAPI_OK(napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset));
  if (type != napi_float32_array) throw JsError(std::string(what) + ": expected a Float32Array");
  if (data == nullptr && length > 0) throw JsError(std::string(what) + ": detached buffer");
  return {static_cast<float *>(data), length};
}

std::vector<int64_t> getInts(napi_env env, napi_value v, size_t expect, const char *what) {
  bool is_arr = false;
  NAPI_OK(napi_is_array(env, v, &is_arr));
  if (!is_arr) throw JsError(std::string(what) + ": expected an array of integers");
  uint32_t n;
  NAPI_OK(napi_get_array_length(env, v, &n));
  if (n != expect) throw JsError(std::string(what) + ": expected " + std::to_string(expect) + " integers");
  std::vector<int64_t> out(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    NAPI_OK(napi_get_element(env, v, i, &e));
    int64_t x;
    if (napi_get_value_int64(env, e, &x) != napi_ok) throw JsError(std::string(what) + ": expected integers");
    out[i] = x;
  }
  return out;
}

double getNum(napi_env env, napi_value v, const char *what) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) throw JsError(std::string(what) + ": expected a number");
  return d;
}

// An optional argument left out: undefined or null.
bool isNullish(napi_env env, napi_value v) {
  napi_valuetype t;
  NAPI_OK(napi_typeof(env, v, &t));
  return t == napi_undefined || t == napi_null;
}

bool getBool(napi_env env, napi_value v) {
  bool b = false;
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_boolean) napi_get_value_bool(env, v, &b);
  if (t == napi_number) {
    double d;
    napi_get_value_double(env, v, &d);
    b = d != 0;
  }
  return b;
}

void need(const F32 &a, size_t n, const char *what) {
  if (a.length < n) throw JsError(std::string(what) + ": array has " + std::to_string(a.length) + " elements, needs " + std::to_string(n));
}

// target_clones: AVX-512 and AVX2 code paths chosen at load time, the build stays portable.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MIXMASK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MIXMASK_CLONES
#endif

// ---------------------------------------------------------------- staged arguments
// One argument of a primitive: the user's memory (NHWC/HWIO at a caller pointer) and, when the
// primitive wants another layout, a cached staging buffer plus the reorder between them.
// `inout`: an output the primitive also reads (the destination of a sum post-op), so it has
// both reorders.
struct Stage {
  int arg;
  bool output;
  memory::desc user;
  memory::desc prim;
  bool reorder;
  bool inout;
  memory staging;
  dnnl::reorder to_prim, to_user;
  Stage(int a, bool out, const memory::desc &u, const memory::desc &p, bool io = false) : arg(a), output(out), user(u), prim(p), inout(io) {
    reorder = !(u == p);
    if (reorder) {
      staging = memory(p, eng());
      if (out) to_user = dnnl::reorder(staging, memory(u, eng(), DNNL_MEMORY_NONE));
      if (!out || io) to_prim = dnnl::reorder(memory(u, eng(), DNNL_MEMORY_NONE), staging);
    }
  }
};

struct Plan {
  dnnl::primitive prim;
  std::vector<Stage> stages;
  memory scratch;  // e.g. a BN workspace nobody reads
  int scratch_arg = -1;
  std::string impl;

  // ptrs: one per stage. `init`: what an inout stage holds before the primitive runs (read from
  // there; the result goes to that stage's own pointer).
  void run(const std::vector<float *> &ptrs, const float *init = nullptr) {
    std::unordered_map<int, memory> args;
    for (size_t i = 0; i < stages.size(); i++) {
      Stage &s = stages[i];
      memory user(s.user, eng(), ptrs[i]);
      if (s.inout && init) {
        if (s.reorder) {
          memory from(s.user, eng(), const_cast<float *>(init));
          s.to_prim.execute(strm(), from, s.staging);
        } else if (init != ptrs[i]) std::memcpy(ptrs[i], init, s.user.get_size());
      }
      if (!s.reorder) {
        args[s.arg] = user;
      } else {
        if (!s.output) s.to_prim.execute(strm(), user, s.staging);
        args[s.arg] = s.staging;
      }
    }
    if (scratch_arg >= 0) args[scratch_arg] = scratch;
    prim.execute(strm(), args);
    for (size_t i = 0; i < stages.size(); i++) {
      Stage &s = stages[i];
      if (s.reorder && s.output) {
        memory user(s.user, eng(), ptrs[i]);
        s.to_user.execute(strm(), s.staging, user);
      }
    }
    strm().wait();
  }
};

std::map<std::vector<int64_t>, std::unique_ptr<Plan>> plans;

// ---------------------------------------------------------------- precision
enum Precision { FP32 = 0, BF16 = 1 };
Precision precision = FP32;

std::string isaName(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::sse41: return "sse41";
    default: return "other";
  }
}

// oneDNN's ISA values are nested bit sets: every ISA from avx512_core_bf16 on (avx512_core_amx,
// and later ones) contains all of avx512_core_bf16's bits; avx2_vnni and older do not. Below it
// oneDNN would emulate bf16 (several times slower than float32), so bf16 is refused there.
bool nativeBf16() {
  const unsigned isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const unsigned bf16 = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_bf16);
  return (isa & bf16) == bf16;
}

// The cached matmul plan: out[b] = op(a[b]) · op(b[b]), row-major, transposes as strides (a
// transposed is stored [B, K, M], b transposed [B, N, K]); in bf16 both operands are rounded to
// bf16 (layouts oneDNN's choice), f32 accumulation and output.
Plan *matmulPlan(int64_t B, int64_t M, int64_t K, int64_t N, bool ta, bool tb, Precision prec, int64_t pad = 0) {
  std::vector<int64_t> key = {20, prec, B, M, K, N, ta, tb, pad};
  auto it = plans.find(key);
  if (it != plans.end()) return it->second.get();
  // pad: the batch entries lie pad floats more than their size apart (a, b and out alike)
  memory::desc a_md({B, M, K}, dt::f32, ta ? memory::dims{M * K + pad, 1, M} : memory::dims{M * K + pad, K, 1});
  memory::desc b_md({B, K, N}, dt::f32, tb ? memory::dims{K * N + pad, 1, K} : memory::dims{K * N + pad, N, 1});
  memory::desc c_md({B, M, N}, dt::f32, memory::dims{M * N + pad, N, 1});
  const bool bf = prec == BF16;
  memory::desc a_p = bf ? memory::desc({B, M, K}, dt::bf16, tag::any) : a_md;
  memory::desc b_p = bf ? memory::desc({B, K, N}, dt::bf16, tag::any) : b_md;
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_p, b_p, c_md), eng());
  auto plan = std::make_unique<Plan>();
  plan->prim = dnnl::matmul(pd);
  plan->impl = pd.impl_info_str();
  plan->stages.emplace_back(DNNL_ARG_SRC, false, a_md, pd.src_desc());
  plan->stages.emplace_back(DNNL_ARG_WEIGHTS, false, b_md, pd.weights_desc());
  plan->stages.emplace_back(DNNL_ARG_DST, true, c_md, pd.dst_desc());
  Plan *p = plan.get();
  plans[key] = std::move(plan);
  return p;
}

// ---------------------------------------------------------------- convolution
// dims: N H W Ci Co KH KW OH OW sh sw top bottom left right
enum { CONV_FWD = 1, CONV_BWD_DATA = 2, CONV_BWD_WEIGHTS = 3 };
struct ConvDims {
  int64_t N, H, W, Ci, Co, KH, KW, OH, OW, sh, sw, pt, pb, pl, pr;
};

ConvDims convDims(const std::vector<int64_t> &d) {
  ConvDims c{d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14]};
  for (int64_t v : d) if (v < 0) throw JsError("conv: negative dimension or padding");
  if (c.N < 1 || c.H < 1 || c.W < 1 || c.Ci < 1 || c.Co < 1 || c.KH < 1 || c.KW < 1 || c.OH < 1 || c.OW < 1 || c.sh < 1 || c.sw < 1)
    throw JsError("conv: dimensions must be positive");
  if ((c.H + c.pt + c.pb - c.KH) / c.sh + 1 != c.OH || (c.W + c.pl + c.pr - c.KW) / c.sw + 1 != c.OW || c.H + c.pt + c.pb < c.KH || c.W + c.pl + c.pr < c.KW)
    throw JsError("conv: output size does not match input, kernel, strides and pads");
  return c;
}

// bias, sum and relu: the forward only (evaluation-mode layers: y = act(conv(x) + bias [+ y0])),
// as oneDNN's bias input and sum / eltwise post-ops on the same primitive; with `sum` the
// destination is read before it is written (Plan::run's `init`: a ResNet block's identity path).
// Its prop_kind is forward_training too: forward_inference picks another Winograd kernel, ~4x
// slower at 32x4x4x512 (measured, 1 thread).
Plan *convPlan(int kind, const ConvDims &c, bool winograd, bool bias = false, bool relu = false, bool sum = false) {
  std::vector<int64_t> key = {kind, precision, winograd, c.N, c.H, c.W, c.Ci, c.Co, c.KH, c.KW, c.OH, c.OW, c.sh, c.sw, c.pt, c.pb, c.pl, c.pr, bias, relu, sum};
  auto it = plans.find(key);
  if (it != plans.end()) return it->second.get();

  memory::dims src_d = {c.N, c.Ci, c.H, c.W}, w_d = {c.Co, c.Ci, c.KH, c.KW}, dst_d = {c.N, c.Co, c.OH, c.OW};
  memory::dims strides = {c.sh, c.sw}, pad_l = {c.pt, c.pl}, pad_r = {c.pb, c.pr};
  memory::desc src_u(src_d, dt::f32, tag::nhwc), w_u(w_d, dt::f32, tag::hwio), dst_u(dst_d, dt::f32, tag::nhwc);
  // Activations stay NHWC for the direct algorithm; Winograd needs its blocked layouts. So does
  // the direct forward of a 3×3 stride-2 layer with ≤ 16 output positions (ResNet-18's 8×8 → 4×4):
  // oneDNN's NHWC kernel runs it at ~100 GFLOP/s, the blocked one (reorders included) measured
  // 21.6 → 14.5 ms at batch 128, 5.4 → 3.9 at 32 (Xeon, 2 threads); every other direct layer
  // measured slower blocked (the 16×16 → 8×8 forward 16.1 → 17.2 ms, 1×1 shortcuts 2.0 → 5.6).
  const bool blocked = winograd || (kind == CONV_FWD && c.KH == 3 && c.KW == 3 && c.sh == 2 && c.sw == 2 && c.OH * c.OW <= 16);
  memory::desc src_a = blocked ? memory::desc(src_d, dt::f32, tag::any) : src_u;
  memory::desc dst_a = blocked ? memory::desc(dst_d, dt::f32, tag::any) : dst_u;
  memory::desc w_a(w_d, dt::f32, tag::any);
  if (precision == BF16) {
    // Mixed precision: the inputs of this direction in bf16 (NHWC, which oneDNN's AMX/AVX-512
    // BF16 kernels take directly), its output in f32 in the caller's layout. oneDNN has no bf16
    // Winograd, so bf16 is always direct (the caller passes winograd = false).
    const memory::desc src_b(src_d, dt::bf16, tag::nhwc), dst_b(dst_d, dt::bf16, tag::nhwc);
    const memory::desc w_b(w_d, dt::bf16, tag::any), w_f(w_d, dt::f32, tag::any);
    if (kind == CONV_FWD) { src_a = src_b; w_a = w_b; dst_a = dst_u; }
    if (kind == CONV_BWD_DATA) { src_a = src_u; w_a = w_b; dst_a = dst_b; }
    if (kind == CONV_BWD_WEIGHTS) { src_a = src_b; w_a = w_f; dst_a = dst_b; }
  }
  auto algo = winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;

  // The forward descriptor that backward primitives take as their hint must itself be a valid
  // forward problem: in bf16 that is the bf16 forward (bf16 src and weights, f32 dst).
  const bool bf = precision == BF16;
  const memory::desc fsrc = bf ? memory::desc(src_d, dt::bf16, tag::nhwc) : src_a, fw = bf ? memory::desc(w_d, dt::bf16, tag::any) : w_a, fdst = bf ? dst_u : dst_a;
  dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, algo, fsrc, fw, fdst, strides, pad_l, pad_r);
  dnnl::convolution_forward::primitive_desc fpd(fd, eng());
  auto plan = std::make_unique<Plan>();
  if (kind == CONV_FWD) {
    // The same problem, with the bias as oneDNN's bias input and the sum and ReLU as post-ops.
    const memory::desc bias_d({c.Co}, dt::f32, tag::a);
    dnnl::primitive_attr attr;
    if (relu || sum) {
      dnnl::post_ops po;
      if (sum) po.append_sum(1.f);
      if (relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      attr.set_post_ops(po);
    }
    dnnl::convolution_forward::primitive_desc pd(
        bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, fsrc, fw, bias_d, fdst, strides, pad_l, pad_r) : fd, attr, eng());
    plan->prim = dnnl::convolution_forward(pd);
    plan->impl = pd.impl_info_str();
    plan->stages.emplace_back(DNNL_ARG_SRC, false, src_u, pd.src_desc());
    plan->stages.emplace_back(DNNL_ARG_WEIGHTS, false, w_u, pd.weights_desc());
    if (bias) plan->stages.emplace_back(DNNL_ARG_BIAS, false, bias_d, pd.bias_desc());
    plan->stages.emplace_back(DNNL_ARG_DST, true, dst_u, pd.dst_desc(), sum);
  } else if (kind == CONV_BWD_DATA) {
    dnnl::convolution_backward_data::desc bd(algo, src_a, w_a, dst_a, strides, pad_l, pad_r);
    dnnl::convolution_backward_data::primitive_desc bpd(bd, eng(), fpd);
    plan->prim = dnnl::convolution_backward_data(bpd);
    plan->impl = bpd.impl_info_str();
    plan->stages.emplace_back(DNNL_ARG_DIFF_DST, false, dst_u, bpd.diff_dst_desc());
    plan->stages.emplace_back(DNNL_ARG_WEIGHTS, false, w_u, bpd.weights_desc());
    plan->stages.emplace_back(DNNL_ARG_DIFF_SRC, true, src_u, bpd.diff_src_desc());
  } else {
    dnnl::convolution_backward_weights::desc bd(algo, src_a, w_a, dst_a, strides, pad_l, pad_r);
    dnnl::convolution_backward_weights::primitive_desc bpd(bd, eng(), fpd);
    plan->prim = dnnl::convolution_backward_weights(bpd);
    plan->impl = bpd.impl_info_str();
    plan->stages.emplace_back(DNNL_ARG_SRC, false, src_u, bpd.src_desc());
    plan->stages.emplace_back(DNNL_ARG_DIFF_DST, false, dst_u, bpd.diff_dst_desc());
    plan->stages.emplace_back(DNNL_ARG_DIFF_WEIGHTS, true, w_u, bpd.diff_weights_desc());
  }
  Plan *p = plan.get();
  plans[key] = std::move(plan);
  return p;
}

// ---------------------------------------------------------------- bf16 convolutions as one GEMM
// oneDNN 2.6's bf16 convolution kernels are slow where the output is small. The same products
// as one AMX matmul over the bf16 im2col of the input (built here, zeros for padding), with
// NP = N·OH·OW output positions and KK = KH·KW·Ci:
//   forward           y[NP, Co]   = col[NP, KK] · W[KK, Co]       (W in HWIO is [KK, Co])
//   backward data     dcol[NP, KK] = dy[NP, Co] · W[KK, Co]ᵀ, then dx = col2im(dcol) (f32 sums)
//   backward weights  dW[KK, Co]  = col[NP, KK]ᵀ · dy[NP, Co]     (dW in HWIO directly)
// Measured on this Xeon (AMX, 1 OpenMP thread, shared machine), batch 128, oneDNN's kernel →
// GEMM, ms per call: backward weights 204 → 60 for a 4×4×512 3×3 layer and 120 → 23 for the
// 8×8→4×4 stride-2 one (load ~7); forward 27.5 → 22 and 16.5 → 9.6, backward data 35.5 → 26 and
// 26.8 → 17.0 for the same two layers (load ~3; the 8×8×256 layer, same multiply-adds as the
// 4×4×512 one, takes 9.3 ms forward in oneDNN's kernel). Where the output is large oneDNN's
// kernels win (backward weights of 32×32×64: 42 ms against 186: the im2col is KH·KW times the
// size of x), so the GEMM serves backward weights with ≤ 64 output positions or 1×1 kernels
// (whose im2col is a strided copy of x), and forward / backward data with ≤ 16 positions. Same
// bf16 rounding of the inputs either way, f32 accumulation and outputs.
bool bf16Gemm(int kind, const ConvDims &c) {
  const int64_t positions = c.OH * c.OW;
  if (kind == CONV_BWD_WEIGHTS) return positions <= 64 || (c.KH == 1 && c.KW == 1);
  return positions <= 16;
}

inline uint16_t toBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even, as oneDNN's f32→bf16 reorders do
  return static_cast<uint16_t>(u >> 16);
}

struct GemmConv {
  dnnl::matmul prim;
  // The operand built here (col for forward / backward weights, dcol for backward data), and the
  // caller's operands with their f32 → bf16 reorders (into the layouts the matmul chose).
  memory::desc own_md, out_md;
  std::vector<Stage> stages;
  std::string impl;
};
std::map<std::vector<int64_t>, std::unique_ptr<GemmConv>> gemms;
// One im2col buffer (bf16) and one dcol buffer (f32) for every shape: calls are sequential.
std::vector<uint16_t> colBuffer;
std::vector<float> dcolBuffer;

GemmConv *gemmPlan(int kind, const ConvDims &c) {
  std::vector<int64_t> key = {kind, c.N, c.H, c.W, c.Ci, c.Co, c.KH, c.KW, c.OH, c.OW, c.sh, c.sw, c.pt, c.pb, c.pl, c.pr};
  auto it = gemms.find(key);
  if (it != gemms.end()) return it->second.get();
  const int64_t KK = c.KH * c.KW * c.Ci, NP = c.N * c.OH * c.OW;
  auto g = std::make_unique<GemmConv>();
  const memory::desc w_user({KK, c.Co}, dt::f32, tag::ab), dy_user({NP, c.Co}, dt::f32, tag::ab);
  memory::desc src, wei, dst;
  if (kind == CONV_FWD) {
    src = g->own_md = memory::desc({NP, KK}, dt::bf16, tag::ab);
    wei = memory::desc({KK, c.Co}, dt::bf16, tag::any);
    dst = g->out_md = memory::desc({NP, c.Co}, dt::f32, tag::ab);
  } else if (kind == CONV_BWD_DATA) {
    src = memory::desc({NP, c.Co}, dt::bf16, tag::ab);
    wei = memory::desc({c.Co, KK}, dt::bf16, tag::any);
    dst = g->own_md = memory::desc({NP, KK}, dt::f32, tag::ab);
  } else {
    src = g->own_md = memory::desc({KK, NP}, dt::bf16, tag::ba);  // colᵀ: col stored [NP, KK]
    wei = memory::desc({NP, c.Co}, dt::bf16, tag::any);
    dst = g->out_md = memory::desc({KK, c.Co}, dt::f32, tag::ab);
  }
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), eng());
  g->prim = dnnl::matmul(pd);
  g->impl = std::string("im2col+") + pd.impl_info_str();
  if (kind == CONV_FWD) {
    g->stages.emplace_back(DNNL_ARG_WEIGHTS, false, w_user, pd.weights_desc());
  } else if (kind == CONV_BWD_DATA) {
    g->stages.emplace_back(DNNL_ARG_SRC, false, dy_user, pd.src_desc());
    // Wᵀ [Co, KK] is W [KK, Co] read column-major.
    g->stages.emplace_back(DNNL_ARG_WEIGHTS, false, memory::desc({c.Co, KK}, dt::f32, tag::ba), pd.weights_desc());
  } else {
    g->stages.emplace_back(DNNL_ARG_WEIGHTS, false, dy_user, pd.weights_desc());
  }
  GemmConv *p = g.get();
  gemms[key] = std::move(g);
  return p;
}

void im2colBf16(const ConvDims &c, const float *x, uint16_t *col) {
  const int64_t KK = c.KH * c.KW * c.Ci;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < c.N; n++) {
    for (int64_t oh = 0; oh < c.OH; oh++) {
      for (int64_t ow = 0; ow < c.OW; ow++) {
        uint16_t *row = col + ((n * c.OH + oh) * c.OW + ow) * KK;
        for (int64_t kh = 0; kh < c.KH; kh++) {
          const int64_t ih = oh * c.sh + kh - c.pt;
          for (int64_t kw = 0; kw < c.KW; kw++) {
            const int64_t iw = ow * c.sw + kw - c.pl;
            uint16_t *dst = row + (kh * c.KW + kw) * c.Ci;
            if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) {
              std::memset(dst, 0, c.Ci * sizeof(uint16_t));
            } else {
              const float *src = x + ((n * c.H + ih) * c.W + iw) * c.Ci;
              for (int64_t ci = 0; ci < c.Ci; ci++) dst[ci] = toBf16(src[ci]);
            }
          }
        }
      }
    }
  }
}

// dx = Σ over the taps that read each input position of dcol (f32): each image is summed by one
// thread in a fixed order, so the result does not depend on the thread count.
void col2im(const ConvDims &c, const float *dcol, float *dx) {
  const int64_t KK = c.KH * c.KW * c.Ci;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < c.N; n++) {
    float *img = dx + n * c.H * c.W * c.Ci;
    std::memset(img, 0, sizeof(float) * c.H * c.W * c.Ci);
    for (int64_t oh = 0; oh < c.OH; oh++) {
      for (int64_t ow = 0; ow < c.OW; ow++) {
        const float *row = dcol + ((n * c.OH + oh) * c.OW + ow) * KK;
        for (int64_t kh = 0; kh < c.KH; kh++) {
          const int64_t ih = oh * c.sh + kh - c.pt;
          if (ih < 0 || ih >= c.H) continue;
          for (int64_t kw = 0; kw < c.KW; kw++) {
            const int64_t iw = ow * c.sw + kw - c.pl;
            if (iw < 0 || iw >= c.W) continue;
            const float *src = row + (kh * c.KW + kw) * c.Ci;
            float *dst = img + (ih * c.W + iw) * c.Ci;
            for (int64_t ci = 0; ci < c.Ci; ci++) dst[ci] += src[ci];
          }
        }
      }
    }
  }
}

// a, b, out as for conv(): forward (x, w, y), backward data (dy, w, dx), backward weights (x, dy, dW).
const std::string &gemmConv(int kind, const ConvDims &c, float *a, float *b, float *out) {
  GemmConv *g = gemmPlan(kind, c);
  const size_t cols = static_cast<size_t>(c.KH * c.KW * c.Ci) * static_cast<size_t>(c.N * c.OH * c.OW);
  std::unordered_map<int, memory> args;
  for (Stage &s : g->stages) {
    memory user(s.user, eng(), s.arg == DNNL_ARG_SRC ? a : b);  // only backward data stages its source (dy)
    s.to_prim.execute(strm(), user, s.staging);
    args[s.arg] = s.staging;
  }
  if (kind == CONV_BWD_DATA) {
    if (dcolBuffer.size() < cols) dcolBuffer.resize(cols);
    args[DNNL_ARG_DST] = memory(g->own_md, eng(), dcolBuffer.data());
  } else {
    if (colBuffer.size() < cols) colBuffer.resize(cols);
    im2colBf16(c, a, colBuffer.data());
    args[DNNL_ARG_SRC] = memory(g->own_md, eng(), colBuffer.data());
    args[DNNL_ARG_DST] = memory(g->out_md, eng(), out);
  }
  g->prim.execute(strm(), args);
  strm().wait();
  if (kind == CONV_BWD_DATA) col2im(c, dcolBuffer.data(), out);
  return g->impl;
}

// y = act(y + bias + residual) over [rows, C] in place (bias and residual optional): the bf16
// GEMM path's epilogue.
void biasRelu(float *y, const float *bias, int64_t rows, int64_t C, bool relu, const float *residual = nullptr) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    float *row = y + r * C;
    const float *res = residual ? residual + r * C : nullptr;
    for (int64_t c = 0; c < C; c++) {
      float v = row[c] + (bias ? bias[c] : 0.f);
      if (res) v += res[c];
      row[c] = relu && v < 0.f ? 0.f : v;
    }
  }
}

// ---------------------------------------------------------------- Winograd, ours: F(2×2, 3×3), F(4×4, 3×3)
// oneDNN 2.6's f32 Winograd is F(4×4, 3×3) with its products interleaved with the transforms. It
// rebuilds its 36 transformed weight matrices on every call (37.7 MB for a 3×3×512×512 layer), and
// its products run at about half the rate a plain oneDNN matmul reaches (Xeon, 2 threads). Where a
// layer has few output tiles for its channels (ResNet-18's 4×4×512 layers on 32-px images) the
// weights are the work, and in a training step they are out of cache: such a layer took 9.9–10.5 ms
// per direction in a batch-32 step against 7.1–8.6 alone. Ours write the transforms out and run
// the α² products (α = m + 2: 16 for F(2×2), 36 for F(4×4)) as one batched oneDNN matmul. With T
// tiles of m×m outputs (N·⌈OH/m⌉·⌈OW/m⌉) and p one of the α² tile positions:
//   forward           U = G g Gᵀ  [α², Ci, Co];  V = Bᵀ d B  [α², T, Ci];  M[p] = V[p]·U[p];  y = Aᵀ M A
//   backward data     the forward of dy with the flipped filter and pads 2 − p (a 3×3 stride-1
//                     convolution's input gradient), the matmul reading U transposed
//   backward weights  V as forward;  M'[p] = A dY Aᵀ  [α², T, Co];  dU[p] = V[p]ᵀ·M'[p];  dW = Gᵀ dU G
// F(2×2) (Lavin & Gray): Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1], G = [1 0 0; ½ ½ ½; ½ −½ ½;
// 0 0 1], Aᵀ = [1 1 1 0; 0 1 −1 −1]; F(4×4): below. Transforms are vector loops over channels
// (NHWC and HWIO keep them contiguous), split over tiles / input channels by OpenMP; every element
// is computed by one thread in a fixed order. float32 throughout (the cpu backend's direct sums
// agree within 1e-5, test/backend/onednn-kernels.test.ts). Stride 1, 3×3, pads ≤ 2; fp32 only.
std::vector<float> winoV, winoU, winoM;  // calls are sequential: one set of buffers for every shape
// The tile positions' matrices lie WINO_PAD floats more than their size apart: at 512×512 channels
// a dense layout puts the 16 or 36 streams a transform writes exactly 1 MB apart, onto the same
// cache sets.
constexpr int64_t WINO_PAD = 64;

bool winoApplies(const ConvDims &c) {
  return c.KH == 3 && c.KW == 3 && c.sh == 1 && c.sw == 1 && c.pt <= 2 && c.pb <= 2 && c.pl <= 2 && c.pr <= 2;
}

inline void grow(std::vector<float> &v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// The geometry both tile sizes share. Tiles of m×m outputs: TH × TW per image, T in all; tile t is
// image n, tile row th, tile column tw.
template <int m>
struct TileGrid {
  int64_t TH, TW, T;
  explicit TileGrid(const ConvDims &c) : TH((c.OH + m - 1) / m), TW((c.OW + m - 1) / m), T(c.N * TH * TW) {}
  void at(int64_t t, int64_t &n, int64_t &th, int64_t &tw) const {
    n = t / (TH * TW);
    th = (t / TW) % TH;
    tw = t % TW;
  }
};

// The (m + 2)² input pixels tile (n, th, tw) reads (zeros where the pads are), as channel rows of x.
template <int m>
static inline void inputPatch(const ConvDims &c, const float *x, int64_t n, int64_t th, int64_t tw, const float *zeros, const float *(&d)[m + 2][m + 2]) {
  for (int i = 0; i < m + 2; i++) {
    const int64_t ih = m * th - c.pt + i;
    for (int j = 0; j < m + 2; j++) {
      const int64_t iw = m * tw - c.pl + j;
      d[i][j] = (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) ? zeros : x + ((n * c.H + ih) * c.W + iw) * c.Ci;
    }
  }
}

// The m² outputs of tile (n, th, tw) as channel rows of y (or dy); `outside` where past y's edge.
template <int m, typename T>
static inline void outputBlock(const ConvDims &c, T *y, int64_t n, int64_t th, int64_t tw, T *outside, T *(&o)[m][m]) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) {
      const int64_t oh = m * th + i, ow = m * tw + j;
      o[i][j] = (oh < c.OH && ow < c.OW) ? y + ((n * c.OH + oh) * c.OW + ow) * c.Co : outside;
    }
}

// The 9 taps of filter w (HWIO) for input channel ci, as rows over Co (flip: g[k][l] = w[2−k][2−l]).
static inline void filterTaps(const float *w, int64_t ci, int64_t Ci, int64_t Co, bool flip, const float *(&g)[3][3]) {
  for (int k = 0; k < 3; k++)
    for (int l = 0; l < 3; l++) g[k][l] = w + ((flip ? (2 - k) * 3 + (2 - l) : k * 3 + l) * Ci + ci) * Co;
}

// U[p][ci][co] = (G g Gᵀ)[p] for g = w[·][·][ci][co] (flip: g[a][b] = w[2−a][2−b], the backward
// data filter).
MIXMASK_CLONES
static void wino23Weights(const float *w, float *U, int64_t Ci, int64_t Co, bool flip) {
  const int64_t CC = Ci * Co + WINO_PAD;
#pragma omp parallel for schedule(static)
  for (int64_t ci = 0; ci < Ci; ci++) {
    const float *g[3][3];
    filterTaps(w, ci, Ci, Co, flip, g);
    float *u = U + ci * Co;
#pragma omp simd
    for (int64_t co = 0; co < Co; co++) {
      float t[4][3];  // G g
      for (int b = 0; b < 3; b++) {
        const float g0 = g[0][b][co], g1 = g[1][b][co], g2 = g[2][b][co];
        t[0][b] = g0;
        t[1][b] = 0.5f * (g0 + g1 + g2);
        t[2][b] = 0.5f * (g0 - g1 + g2);
        t[3][b] = g2;
      }
      for (int i = 0; i < 4; i++) {  // (G g) Gᵀ
        const float t0 = t[i][0], t1 = t[i][1], t2 = t[i][2];
        u[(4 * i + 0) * CC + co] = t0;
        u[(4 * i + 1) * CC + co] = 0.5f * (t0 + t1 + t2);
        u[(4 * i + 2) * CC + co] = 0.5f * (t0 - t1 + t2);
        u[(4 * i + 3) * CC + co] = t2;
      }
    }
  }
}

// dW[a][b][ci][co] = (Gᵀ dU G)[a][b] for dU[p][ci][co].
MIXMASK_CLONES
static void wino23WeightsAdjoint(const float *dU, float *dw, int64_t Ci, int64_t Co) {
  const int64_t CC = Ci * Co + WINO_PAD;
#pragma omp parallel for schedule(static)
  for (int64_t ci = 0; ci < Ci; ci++) {
    const float *u = dU + ci * Co;
    float *out[3][3];
    for (int a = 0; a < 3; a++)
      for (int b = 0; b < 3; b++) out[a][b] = dw + ((a * 3 + b) * Ci + ci) * Co;
#pragma omp simd
    for (int64_t co = 0; co < Co; co++) {
      float t[3][4];  // Gᵀ dU
      for (int j = 0; j < 4; j++) {
        const float u0 = u[(0 + j) * CC + co], u1 = u[(4 + j) * CC + co], u2 = u[(8 + j) * CC + co], u3 = u[(12 + j) * CC + co];
        t[0][j] = u0 + 0.5f * (u1 + u2);
        t[1][j] = 0.5f * (u1 - u2);
        t[2][j] = 0.5f * (u1 + u2) + u3;
      }
      for (int a = 0; a < 3; a++) {  // (Gᵀ dU) G
        const float t0 = t[a][0], t1 = t[a][1], t2 = t[a][2], t3 = t[a][3];
        out[a][0][co] = t0 + 0.5f * (t1 + t2);
        out[a][1][co] = 0.5f * (t1 - t2);
        out[a][2][co] = 0.5f * (t1 + t2) + t3;
      }
    }
  }
}

// V[p][t][ci] = (Bᵀ d B)[p], d the 4×4 patch of x at tile t (zeros outside x).
MIXMASK_CLONES
static void wino23Input(const ConvDims &c, const float *x, float *V, const float *zeros) {
  const TileGrid<2> grid(c);
  const int64_t T = grid.T, C = c.Ci, TC = T * C + WINO_PAD;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; t++) {
    int64_t n, th, tw;
    grid.at(t, n, th, tw);
    const float *d[4][4];
    inputPatch<2>(c, x, n, th, tw, zeros, d);
    float *v = V + t * C;
#pragma omp simd
    for (int64_t ci = 0; ci < C; ci++) {
      float r[4][4];  // Bᵀ d
      for (int j = 0; j < 4; j++) {
        const float d0 = d[0][j][ci], d1 = d[1][j][ci], d2 = d[2][j][ci], d3 = d[3][j][ci];
        r[0][j] = d0 - d2;
        r[1][j] = d1 + d2;
        r[2][j] = d2 - d1;
        r[3][j] = d1 - d3;
      }
      for (int i = 0; i < 4; i++) {  // (Bᵀ d) B
        v[(4 * i + 0) * TC + ci] = r[i][0] - r[i][2];
        v[(4 * i + 1) * TC + ci] = r[i][1] + r[i][2];
        v[(4 * i + 2) * TC + ci] = r[i][2] - r[i][1];
        v[(4 * i + 3) * TC + ci] = r[i][1] - r[i][3];
      }
    }
  }
}

// y = act(Aᵀ M A + bias + residual) for each tile's 2×2 outputs inside y (bias, residual optional).
MIXMASK_CLONES
static void wino23Output(const ConvDims &c, const float *M, float *y, const float *bias, const float *residual, bool relu) {
  const TileGrid<2> grid(c);
  const int64_t T = grid.T, C = c.Co, TC = T * C + WINO_PAD;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; t++) {
    int64_t n, th, tw;
    grid.at(t, n, th, tw);
    const float *m = M + t * C;
    float *o[2][2];
    const float *r[2][2] = {};
    outputBlock<2>(c, y, n, th, tw, static_cast<float *>(nullptr), o);
    if (residual) outputBlock<2>(c, residual, n, th, tw, static_cast<const float *>(nullptr), r);
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 2; j++) {
        if (!o[i][j]) continue;  // past y's edge
        float *out = o[i][j];
        const float *res = r[i][j];
#pragma omp simd
        for (int64_t co = 0; co < C; co++) {
          float s[4];  // row i of Aᵀ M
          for (int k = 0; k < 4; k++) {
            const float m0 = m[(0 + k) * TC + co], m1 = m[(4 + k) * TC + co], m2 = m[(8 + k) * TC + co], m3 = m[(12 + k) * TC + co];
            s[k] = i == 0 ? m0 + m1 + m2 : m1 - m2 - m3;
          }
          float v = j == 0 ? s[0] + s[1] + s[2] : s[1] - s[2] - s[3];
          if (bias) v += bias[co];
          if (res) v += res[co];
          out[co] = relu && v < 0.f ? 0.f : v;
        }
      }
  }
}

// M'[p][t][co] = (A dY Aᵀ)[p], dY the 2×2 block of dy at tile t (zeros outside dy).
MIXMASK_CLONES
static void wino23OutputAdjoint(const ConvDims &c, const float *dy, float *M, const float *zeros) {
  const TileGrid<2> grid(c);
  const int64_t T = grid.T, C = c.Co, TC = T * C + WINO_PAD;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; t++) {
    int64_t n, th, tw;
    grid.at(t, n, th, tw);
    const float *g[2][2];
    outputBlock<2>(c, dy, n, th, tw, zeros, g);
    float *m = M + t * C;
#pragma omp simd
    for (int64_t co = 0; co < C; co++) {
      float r[4][2];  // A dY
      for (int j = 0; j < 2; j++) {
        const float a = g[0][j][co], b = g[1][j][co];
        r[0][j] = a;
        r[1][j] = a + b;
        r[2][j] = a - b;
        r[3][j] = -b;
      }
      for (int i = 0; i < 4; i++) {  // (A dY) Aᵀ
        const float a = r[i][0], b = r[i][1];
        m[(4 * i + 0) * TC + co] = a;
        m[(4 * i + 1) * TC + co] = a + b;
        m[(4 * i + 2) * TC + co] = a - b;
        m[(4 * i + 3) * TC + co] = -b;
      }
    }
  }
}

// F(4×4, 3×3): 6×6 tiles, 36 products. Interpolation points 0, ±3/4, ±3/2 rather than Lavin's 0, ±1, ±2: the
// transforms' entries are smaller (|Bᵀ| ≤ 2.8 against 5, |Aᵀ| ≤ 3.4 against 8) and a 3×3×512×512
// layer lands within 1e-5 of the direct sums where Lavin's did not (1.5e-5 forward, 2.5e-5
// backward data; these 2.8e-6–5.4e-6 over our runs, oneDNN's F(4×4) 3.7e-6–4.5e-6, measured):
//   Bᵀ = [81/64 0 −45/16 0 1 0; 0 −27/16 −9/4 3/4 1 0; 0 27/16 −9/4 −3/4 1 0;
//         0 −27/32 −9/16 3/2 1 0; 0 27/32 −9/16 −3/2 1 0; 0 81/64 0 −45/16 0 1]
//   G  = [64/81 0 0; −128/243 −32/81 −8/27; −128/243 32/81 −8/27; 32/243 16/81 8/27; 32/243 −16/81 8/27; 0 0 1]
//   Aᵀ = [1 1 1 1 1 0; 0 3/4 −3/4 3/2 −3/2 0; 0 9/16 9/16 9/4 9/4 0; 0 27/64 −27/64 27/8 −27/8 1]
// One-dimensional pieces, applied along both axes.
#define MM_INLINE static inline __attribute__((always_inline))
MM_INLINE void bt6(float d0, float d1, float d2, float d3, float d4, float d5, float *r) {
  const float p = d4 - 2.25f * d2, q = 1.6875f * d1 - 0.75f * d3, s = d4 - 0.5625f * d2, u = 0.84375f * d1 - 1.5f * d3;
  r[0] = 1.265625f * d0 - 2.8125f * d2 + d4;
  r[1] = p - q;
  r[2] = p + q;
  r[3] = s - u;
  r[4] = s + u;
  r[5] = 1.265625f * d1 - 2.8125f * d3 + d5;
}
MM_INLINE void g6(float g0, float g1, float g2, float *u) {
  const float e = 128.f / 243 * g0 + 8.f / 27 * g2, o = 32.f / 81 * g1, e2 = 32.f / 243 * g0 + 8.f / 27 * g2, o2 = 16.f / 81 * g1;
  u[0] = 64.f / 81 * g0;
  u[1] = -e - o;
  u[2] = -e + o;
  u[3] = e2 + o2;
  u[4] = e2 - o2;
  u[5] = g2;
}
MM_INLINE void gt6(const float *u, float *g) {  // Gᵀ u
  const float s12 = u[1] + u[2], d12 = u[1] - u[2], s34 = u[3] + u[4], d34 = u[3] - u[4];
  g[0] = 64.f / 81 * u[0] - 128.f / 243 * s12 + 32.f / 243 * s34;
  g[1] = -32.f / 81 * d12 + 16.f / 81 * d34;
  g[2] = 8.f / 27 * (s34 - s12) + u[5];
}
MM_INLINE void at6(const float *m, float *y) {  // Aᵀ m
  const float s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
  y[0] = m[0] + s12 + s34;
  y[1] = 0.75f * d12 + 1.5f * d34;
  y[2] = 0.5625f * s12 + 2.25f * s34;
  y[3] = 0.421875f * d12 + 3.375f * d34 + m[5];
}
MM_INLINE void a6(float g0, float g1, float g2, float g3, float *m) {  // A g
  const float e1 = g0 + 0.5625f * g2, o1 = 0.75f * g1 + 0.421875f * g3, e2 = g0 + 2.25f * g2, o2 = 1.5f * g1 + 3.375f * g3;
  m[0] = g0;
  m[1] = e1 + o1;
  m[2] = e1 - o1;
  m[3] = e2 + o2;
  m[4] = e2 - o2;
  m[5] = g3;
}

MIXMASK_CLONES
static void wino43Weights(const float *w, float *U, int64_t Ci, int64_t Co, bool flip) {
  const int64_t CC = Ci * Co + WINO_PAD;
#pragma omp parallel for schedule(static)
  for (int64_t ci = 0; ci < Ci; ci++) {
    const float *g[3][3];
    filterTaps(w, ci, Ci, Co, flip, g);
    float *u = U + ci * Co;
#pragma omp simd
    for (int64_t co = 0; co < Co; co++) {
      float t[3][6], r[6];  // t[l] = G g[·][l]
      for (int l = 0; l < 3; l++) g6(g[0][l][co], g[1][l][co], g[2][l][co], t[l]);
      for (int i = 0; i < 6; i++) {
        g6(t[0][i], t[1][i], t[2][i], r);
        for (int j = 0; j < 6; j++) u[(6 * i + j) * CC + co] = r[j];
      }
    }
  }
}

MIXMASK_CLONES
static void wino43WeightsAdjoint(const float *dU, float *dw, int64_t Ci, int64_t Co) {
  const int64_t CC = Ci * Co + WINO_PAD;
#pragma omp parallel for schedule(static)
  for (int64_t ci = 0; ci < Ci; ci++) {
    const float *u = dU + ci * Co;
    float *out[3][3];
    for (int k = 0; k < 3; k++)
      for (int l = 0; l < 3; l++) out[k][l] = dw + ((k * 3 + l) * Ci + ci) * Co;
#pragma omp simd
    for (int64_t co = 0; co < Co; co++) {
      float t[6][3], col[6], g[3];  // t[i] = Gᵀ (row i of dU)
      for (int i = 0; i < 6; i++) {
        float row[6];
        for (int j = 0; j < 6; j++) row[j] = u[(6 * i + j) * CC + co];
        gt6(row, t[i]);
      }
      for (int l = 0; l < 3; l++) {
        for (int i = 0; i < 6; i++) col[i] = t[i][l];
        gt6(col, g);
        for (int k = 0; k < 3; k++) out[k][l][co] = g[k];
      }
    }
  }
}

MIXMASK_CLONES
static void wino43Input(const ConvDims &c, const float *x, float *V, const float *zeros) {
  const TileGrid<4> grid(c);
  const int64_t T = grid.T, C = c.Ci, TC = T * C + WINO_PAD;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; t++) {
    int64_t n, th, tw;
    grid.at(t, n, th, tw);
    const float *d[6][6];
    inputPatch<4>(c, x, n, th, tw, zeros, d);
    float *v = V + t * C;
#pragma omp simd
    for (int64_t ci = 0; ci < C; ci++) {
      float r[6][6], o[6];  // r[j] = Bᵀ (column j of d)
      for (int j = 0; j < 6; j++) bt6(d[0][j][ci], d[1][j][ci], d[2][j][ci], d[3][j][ci], d[4][j][ci], d[5][j][ci], r[j]);
      for (int i = 0; i < 6; i++) {
        bt6(r[0][i], r[1][i], r[2][i], r[3][i], r[4][i], r[5][i], o);
        for (int j = 0; j < 6; j++) v[(6 * i + j) * TC + ci] = o[j];
      }
    }
  }
}

MIXMASK_CLONES
static void wino43Output(const ConvDims &c, const float *M, float *y, const float *bias, const float *residual, bool relu, const float *zeros) {
  const TileGrid<4> grid(c);
  const int64_t T = grid.T, C = c.Co, TC = T * C + WINO_PAD;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; t++) {
    int64_t n, th, tw;
    grid.at(t, n, th, tw);
    const float *m = M + t * C;
    float *o[4][4];
    const float *r[4][4] = {};
    outputBlock<4>(c, y, n, th, tw, static_cast<float *>(nullptr), o);
    if (residual) outputBlock<4>(c, residual, n, th, tw, static_cast<const float *>(nullptr), r);
    const float *b = bias ? bias : zeros;
    for (int64_t c0 = 0; c0 < C; c0 += 64) {  // a block of channels: all 16 outputs, then the next
      const int64_t c1 = std::min<int64_t>(C, c0 + 64);
      float blk[4][4][64];
#pragma omp simd
      for (int64_t co = c0; co < c1; co++) {
        float s[6][4], col[6], out[4];  // s[k] = Aᵀ (row k of M)
        for (int k = 0; k < 6; k++) {
          float row[6];
          for (int l = 0; l < 6; l++) row[l] = m[(6 * k + l) * TC + co];
          at6(row, s[k]);
        }
        for (int j = 0; j < 4; j++) {
          for (int k = 0; k < 6; k++) col[k] = s[k][j];
          at6(col, out);
          for (int i = 0; i < 4; i++) blk[i][j][co - c0] = out[i];
        }
      }
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
          if (!o[i][j]) continue;  // past y's edge
          float *dst = o[i][j];
          const float *res = r[i][j];
#pragma omp simd
          for (int64_t co = c0; co < c1; co++) {
            const float v = blk[i][j][co - c0] + b[co] + (res ? res[co] : 0.f);
            dst[co] = relu && v < 0.f ? 0.f : v;
          }
        }
    }
  }
}

MIXMASK_CLONES
static void wino43OutputAdjoint(const ConvDims &c, const float *dy, float *M, const float *zeros) {
  const TileGrid<4> grid(c);
  const int64_t T = grid.T, C = c.Co, TC = T * C + WINO_PAD;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; t++) {
    int64_t n, th, tw;
    grid.at(t, n, th, tw);
    const float *g[4][4];
    outputBlock<4>(c, dy, n, th, tw, zeros, g);
    float *m = M + t * C;
#pragma omp simd
    for (int64_t co = 0; co < C; co++) {
      float r[4][6], o[6];  // r[j] = A (column j of dY)
      for (int j = 0; j < 4; j++) a6(g[0][j][co], g[1][j][co], g[2][j][co], g[3][j][co], r[j]);
      for (int k = 0; k < 6; k++) {
        a6(r[0][k], r[1][k], r[2][k], r[3][k], o);
        for (int l = 0; l < 6; l++) m[(6 * k + l) * TC + co] = o[l];
      }
    }
  }
}

// a, b, out as for conv(): forward (x, w, y), backward data (dy, w, dx), backward weights (x, dy, dW),
// with m×m output tiles (2 or 4). Forward only: bias, residual, relu as runConv's.
template <int m>
std::string winoConv(int kind, const ConvDims &c, const float *a, const float *b, float *out, const float *bias, bool relu, const float *residual) {
  constexpr int64_t P = (m + 2) * (m + 2);  // tile positions: products
  // The problem whose forward this is: the convolution itself, or (backward data) dy's forward
  // with the flipped filter, in and out channels swapped, pads 2 − p.
  const ConvDims f = kind != CONV_BWD_DATA ? c
                     : ConvDims{c.N, c.OH, c.OW, c.Co, c.Ci, 3, 3, c.H, c.W, 1, 1, 2 - c.pt, 2 - c.pb, 2 - c.pl, 2 - c.pr};
  const int64_t T = TileGrid<m>(f).T;
  static std::vector<float> zeros;  // read-only padding source, never written
  if (zeros.size() < static_cast<size_t>(std::max(f.Ci, f.Co))) zeros.assign(std::max(f.Ci, f.Co), 0.f);
  grow(winoV, P * (T * f.Ci + WINO_PAD));
  grow(winoM, P * (T * f.Co + WINO_PAD));
  grow(winoU, P * (c.Ci * c.Co + WINO_PAD));
  Plan *mm;
  if (kind == CONV_BWD_WEIGHTS) {
    if constexpr (m == 2) {
      wino23Input(f, a, winoV.data(), zeros.data());
      wino23OutputAdjoint(f, b, winoM.data(), zeros.data());
    } else {
      wino43Input(f, a, winoV.data(), zeros.data());
      wino43OutputAdjoint(f, b, winoM.data(), zeros.data());
    }
    mm = matmulPlan(P, c.Ci, T, c.Co, true, false, FP32, WINO_PAD);  // dU[p] = V[p]ᵀ · M'[p]
    mm->run({winoV.data(), winoM.data(), winoU.data()});
    if constexpr (m == 2) wino23WeightsAdjoint(winoU.data(), out, c.Ci, c.Co);
    else wino43WeightsAdjoint(winoU.data(), out, c.Ci, c.Co);
  } else {
    const bool bwd = kind == CONV_BWD_DATA;
    if constexpr (m == 2) {
      wino23Weights(b, winoU.data(), c.Ci, c.Co, bwd);
      wino23Input(f, a, winoV.data(), zeros.data());
    } else {
      wino43Weights(b, winoU.data(), c.Ci, c.Co, bwd);
      wino43Input(f, a, winoV.data(), zeros.data());
    }
    // forward M[p] = V[p]·U[p] ([T, Ci]·[Ci, Co]); backward data M[p] = V[p]·U[p]ᵀ ([T, Co]·[Co, Ci])
    mm = matmulPlan(P, T, f.Ci, f.Co, false, bwd, FP32, WINO_PAD);
    mm->run({winoV.data(), winoU.data(), winoM.data()});
    if constexpr (m == 2) wino23Output(f, winoM.data(), out, bias, residual, relu);
    else wino43Output(f, winoM.data(), out, bias, residual, relu, zeros.data());
  }
  return std::string(m == 2 ? "wino_2x3:ours+" : "wino_4x3:ours+") + mm->impl;
}

// The convolution algorithm the caller asks for (lib/backend/onednn/kernels.ts chooses it per
// layer): oneDNN's direct kernels, oneDNN's Winograd F(4×4, 3×3), or ours above, F(2×2, 3×3) or
// F(4×4, 3×3).
enum ConvAlgo { ALGO_DIRECT = 0, ALGO_WINOGRAD = 1, ALGO_WINO23 = 2, ALGO_WINO43 = 3 };

// `false`/`true` (direct / oneDNN's Winograd) or 0, 1, 2, 3.
int getAlgo(napi_env env, napi_value v) {
  napi_valuetype t;
  NAPI_OK(napi_typeof(env, v, &t));
  if (t == napi_boolean) return getBool(env, v) ? ALGO_WINOGRAD : ALGO_DIRECT;
  const double d = getNum(env, v, "algorithm");
  if (d != ALGO_DIRECT && d != ALGO_WINOGRAD && d != ALGO_WINO23 && d != ALGO_WINO43)
    throw JsError("conv: algorithm must be 0 (direct), 1 (oneDNN's Winograd F(4x4,3x3)), 2 (ours, F(2x2,3x3)) or 3 (ours, F(4x4,3x3)), got " + std::to_string(d));
  return static_cast<int>(d);
}

// One convolution: the bf16 GEMM where it serves the shape, else the algorithm asked for where it
// applies (ours for fp32 3×3 stride-1 problems; oneDNN's Winograd where oneDNN has one for the
// shape and attributes), else oneDNN's direct kernels. bf16 runs direct (no Winograd here has a
// bf16 form). Forward only: bias (Co values) and residual (y's size, added before the
// ReLU) may be null.
std::string runConv(int kind, const ConvDims &c, int algo, float *a, float *b, float *out, float *bias, bool relu, const float *residual) {
  if (precision == BF16 && bf16Gemm(kind, c)) {
    const std::string &impl = gemmConv(kind, c, a, b, out);
    if (bias || relu || residual) biasRelu(out, bias, c.N * c.OH * c.OW, c.Co, relu, residual);
    return impl;
  }
  if (precision == BF16) algo = ALGO_DIRECT;
  if (algo == ALGO_WINO23 && winoApplies(c)) return winoConv<2>(kind, c, a, b, out, bias, relu, residual);
  if (algo == ALGO_WINO43 && winoApplies(c)) return winoConv<4>(kind, c, a, b, out, bias, relu, residual);
  const bool hasBias = bias != nullptr, sum = residual != nullptr;
  Plan *p = nullptr;
  if (algo == ALGO_WINOGRAD) {
    try {
      p = convPlan(kind, c, true, hasBias, relu, sum);
    } catch (const dnnl::error &) {
      p = nullptr;  // no Winograd implementation for this shape (and post-ops): direct
    }
  }
  if (!p) p = convPlan(kind, c, false, hasBias, relu, sum);
  if (hasBias) p->run({a, b, bias, out}, residual);
  else p->run({a, b, out}, residual);
  return p->impl;
}

// conv(kind, a, b, out, dims[15], algorithm, bias?, relu?) with
//   kind 1: a = x, b = w (HWIO), out = y; with bias (Float32Array of Co, or null) and relu:
//           y = act(conv(x) + bias), one primitive (the evaluation-mode layers)
//   kind 2: a = dy, b = w, out = dx
//   kind 3: a = x, b = dy, out = dW (HWIO)
// Returns the oneDNN implementation name.
napi_value Conv(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 5) throw JsError("conv(kind, a, b, out, dims, algorithm?, bias?, relu?)");
  int kind = static_cast<int>(getNum(env, argv[0], "kind"));
  if (kind < 1 || kind > 3) throw JsError("conv: kind must be 1, 2 or 3");
  ConvDims c = convDims(getInts(env, argv[4], 15, "dims"));
  const int algo = argc > 5 ? getAlgo(env, argv[5]) : ALGO_DIRECT;
  const bool hasBias = argc > 6 && !isNullish(env, argv[6]);
  const bool relu = argc > 7 && getBool(env, argv[7]);
  if ((hasBias || relu) && kind != CONV_FWD) throw JsError("conv: bias and relu are for the forward (kind 1) only");
  F32 a = getF32(env, argv[1], "a"), b = getF32(env, argv[2], "b"), out = getF32(env, argv[3], "out");
  F32 bias{};
  if (hasBias) { bias = getF32(env, argv[6], "bias"); need(bias, c.Co, "bias"); }
  size_t nx = c.N * c.H * c.W * c.Ci, nw = c.KH * c.KW * c.Ci * c.Co, ny = c.N * c.OH * c.OW * c.Co;
  if (kind == CONV_FWD) { need(a, nx, "x"); need(b, nw, "w"); need(out, ny, "y"); }
  if (kind == CONV_BWD_DATA) { need(a, ny, "dy"); need(b, nw, "w"); need(out, nx, "dx"); }
  if (kind == CONV_BWD_WEIGHTS) { need(a, nx, "x"); need(b, ny, "dy"); need(out, nw, "dW"); }
  const std::string &impl = runConv(kind, c, algo, a.data, b.data, out.data, hasBias ? bias.data : nullptr, relu, nullptr);
  napi_value r;
  NAPI_OK(napi_create_string_utf8(env, impl.c_str(), impl.size(), &r));
  return r;
}

// ---------------------------------------------------------------- evaluation-mode conv + BatchNorm
// convBn(x, w, scale, offset, mean, variance, eps, residual | null, y, dims[15], algorithm, relu):
//   y = act(conv(x, w·s) + (offset − mean·s) [+ residual]),  s = scale / √(variance + ε)
// — a ResNet layer in evaluation mode (BatchNorm with running statistics is an affine map per
// output channel, folded into the filter and a bias) in one call: the folding is one pass over
// the filter here (as tfjs ops it was a weight-sized broadcast Multiply per layer, ~17 % of a
// batch-32 forward), the residual a sum post-op and the ReLU an eltwise post-op of the same
// primitive (as tfjs ops an Add and a Relu, ~11 %).
std::vector<float> foldedW;  // calls are sequential: one buffer for every shape

MIXMASK_CLONES
static void scaleColumns(const float *w, const float *s, float *out, int64_t rows, int64_t C) {
#pragma omp parallel for schedule(static) if (rows * C >= (int64_t(1) << 17))
  for (int64_t r = 0; r < rows; r++) {
    const float *in = w + r * C;
    float *o = out + r * C;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) o[c] = in[c] * s[c];
  }
}

napi_value ConvBn(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 12) throw JsError("convBn(x, w, scale, offset, mean, variance, eps, residual, y, dims, algorithm, relu)");
  ConvDims c = convDims(getInts(env, argv[9], 15, "dims"));
  F32 x = getF32(env, argv[0], "x"), w = getF32(env, argv[1], "w"), sc = getF32(env, argv[2], "scale"), of = getF32(env, argv[3], "offset"),
      m = getF32(env, argv[4], "mean"), v = getF32(env, argv[5], "variance"), y = getF32(env, argv[8], "y");
  const float eps = static_cast<float>(getNum(env, argv[6], "eps"));
  const bool hasResidual = !isNullish(env, argv[7]);
  const int algo = getAlgo(env, argv[10]);
  const bool relu = getBool(env, argv[11]);
  const size_t nx = c.N * c.H * c.W * c.Ci, nw = c.KH * c.KW * c.Ci * c.Co, ny = c.N * c.OH * c.OW * c.Co;
  need(x, nx, "x"); need(w, nw, "w"); need(y, ny, "y");
  need(sc, c.Co, "scale"); need(of, c.Co, "offset"); need(m, c.Co, "mean"); need(v, c.Co, "variance");
  F32 res{};
  if (hasResidual) { res = getF32(env, argv[7], "residual"); need(res, ny, "residual"); }
  // The arithmetic of convBnEvalComposite's tfjs ops (lib/backend/conv-bn-op.ts): s = γ·rsqrt(σ² + ε), b = β − μ·s.
  std::vector<float> s(c.Co), shift(c.Co);
  for (int64_t o = 0; o < c.Co; o++) {
    s[o] = sc.data[o] * (1.f / std::sqrt(v.data[o] + eps));
    shift[o] = of.data[o] - m.data[o] * s[o];
  }
  if (foldedW.size() < nw) foldedW.resize(nw);
  scaleColumns(w.data, s.data(), foldedW.data(), c.KH * c.KW * c.Ci, c.Co);
  const std::string &impl = runConv(CONV_FWD, c, algo, x.data, foldedW.data(), y.data, shift.data(), relu, hasResidual ? res.data : nullptr);
  napi_value r;
  NAPI_OK(napi_create_string_utf8(env, impl.c_str(), impl.size(), &r));
  return r;
}

// ---------------------------------------------------------------- batch normalisation
// Training-mode BN over [rows, C] (any NHWC tensor), optionally plus a residual, optionally
// followed by ReLU, both directions by hand. oneDNN 2.6's forward read x three times (mean,
// variance, normalisation) and had no residual (one more pass over y and r); this reads x twice:
//   pass 1, per channel with shift s = x[0][c] (a sample, near the mean: the squares do not
//   cancel): S1 = Σ(x − s), S2 = Σ(x − s)² (float per block of 64 rows, float64 across blocks and
//   threads); mean = s + S1/n, variance = S2/n − (S1/n)² (biased), rounded to float32;
//   pass 2: y = act(x·k + b [+ r]) with k = scale/√(variance + ε), b = offset − mean·k
//   (bnCoefficients, from the float32 mean and variance the forward returns).
// The gradient gets mean, variance, scale and offset, so without a residual it recomputes the
// ReLU mask [x·k + b > 0] exactly as the forward had it (the same coefficients, the same
// expression in the same clone) instead of reading y: one tensor fewer in both of its passes.
// With a residual the mask needs r, so it reads y.

MIXMASK_CLONES
static void bnStatSums(const float *x, int64_t r0, int64_t r1, int64_t C, const float *shift, double *s1, double *s2) {
  std::vector<float> block1(C), block2(C);
  float *__restrict b1 = block1.data();
  float *__restrict b2 = block2.data();
  for (int64_t q0 = r0; q0 < r1; q0 += 64) {
    std::fill(block1.begin(), block1.end(), 0.f);
    std::fill(block2.begin(), block2.end(), 0.f);
    const int64_t q1 = std::min(r1, q0 + 64);
    for (int64_t r = q0; r < q1; r++) {
      const float *xr = x + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; c++) {
        const float d = xr[c] - shift[c];
        b1[c] += d;
        b2[c] += d * d;
      }
    }
    for (int64_t c = 0; c < C; c++) {
      s1[c] += b1[c];
      s2[c] += b2[c];
    }
  }
}

// k, b of y = x·k + b, from float32 statistics (forward and gradient alike).
static void bnCoefficients(const float *mean, const float *var, const float *scale, const float *offset, float eps, int64_t C, float *k, float *b) {
  for (int64_t c = 0; c < C; c++) {
    const double kc = static_cast<double>(scale[c]) / std::sqrt(static_cast<double>(var[c]) + static_cast<double>(eps));
    k[c] = static_cast<float>(kc);
    b[c] = static_cast<float>(static_cast<double>(offset[c]) - static_cast<double>(mean[c]) * static_cast<double>(k[c]));
  }
}

// The affine part of y, the ReLU mask's argument: one inline function for both directions.
MM_INLINE float bnAffine(float x, float k, float b) { return x * k + b; }

MIXMASK_CLONES
static void bnApply(const float *x, const float *res, float *y, int64_t r0, int64_t r1, int64_t C, const float *k, const float *b, bool relu) {
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = x + r * C;
    const float *rr = res ? res + r * C : nullptr;
    float *yr = y + r * C;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) {
      float t = bnAffine(xr[c], k[c], b[c]);
      if (rr) t += rr[c];  // BN's output rounded to float32 before the add, as the tfjs Add it replaces
      yr[c] = relu && !(t > 0.f) ? 0.f : t;
    }
  }
}

// Threads for a pass over [rows, C]: at most one per 256 rows.
static int bnThreads(int64_t rows) { return std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>((rows + 255) / 256))); }

// A pass over [rows, C] in T contiguous row ranges, one per thread: pass(r0, r1, thread).
template <typename Pass>
static void bnRows(int64_t rows, int T, Pass pass) {
#pragma omp parallel num_threads(T)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    pass(rows * t / n, rows * (t + 1) / n, t);
  }
}

// Two per-channel sums in one such pass: sums(r0, r1, s1, s2) adds its rows' terms into s1 and s2
// (float64, C each); returns [s1 | s2] added over the threads in thread order.
template <typename Sums>
static std::vector<double> bnChannelSums(int64_t rows, int64_t C, int T, Sums sums) {
  std::vector<double> part(static_cast<size_t>(T) * 2 * C, 0.0), total(2 * C, 0.0);
  bnRows(rows, T, [&](int64_t r0, int64_t r1, int t) { sums(r0, r1, &part[static_cast<size_t>(t) * 2 * C], &part[static_cast<size_t>(t) * 2 * C + C]); });
  for (int t = 0; t < T; t++)
    for (int64_t i = 0; i < 2 * C; i++) total[i] += part[static_cast<size_t>(t) * 2 * C + i];
  return total;
}

static void bnForwardPasses(const float *x, const float *scale, const float *offset, const float *res, float *y, float *mean, float *var, int64_t rows, int64_t C, float eps, bool relu) {
  const int T = bnThreads(rows);
  const float *shift = x;  // row 0
  const std::vector<double> sums = bnChannelSums(rows, C, T, [&](int64_t r0, int64_t r1, double *s1, double *s2) { bnStatSums(x, r0, r1, C, shift, s1, s2); });
  for (int64_t c = 0; c < C; c++) {
    const double m1 = sums[c] / rows;
    mean[c] = static_cast<float>(shift[c] + m1);
    var[c] = static_cast<float>(std::max(0.0, sums[C + c] / rows - m1 * m1));
  }
  std::vector<float> k(C), b(C);
  bnCoefficients(mean, var, scale, offset, eps, C, k.data(), b.data());
  bnRows(rows, T, [&](int64_t r0, int64_t r1, int) { bnApply(x, res, y, r0, r1, C, k.data(), b.data(), relu); });
}

// The gradient over [rows, C] (NHWC): two streaming passes (oneDNN 2.6's backward was 4-5x its
// forward at few channels: one vector of 16 lanes per row at C = 16, docs/performance.md).
// With g = dy·mask (mask: [y > 0] read from y, or [x·k + b > 0] recomputed, or none):
//   pass 1, per channel: Σg and Σg·(x − μ) (float per block of rows, float64 across blocks and
//   threads; x − μ before the product: Σg·x − μΣg cancels); dOffset = Σg, dScale = Σg·(x − μ)/σ, dx = k·g − a·(x − μ) − b with k = scale/σ,
//   a = k·dScale/(σ·rows), b = k·Σg/rows (float64 coefficients, rounded to float32 for the pass);
//   pass 2 writes dx (and g to gOut, the residual's gradient, when asked).
enum BnMask { MASK_NONE = 0, MASK_FROM_Y = 1, MASK_FROM_X = 2 };
struct BnMaskSource {
  const float *y;   // MASK_FROM_Y
  const float *mk;  // MASK_FROM_X: the forward's coefficients
  const float *mb;
};

template <int MASK>
MM_INLINE float bnMasked(float d, int64_t i, float xv, int64_t c, const BnMaskSource &ms) {
  if constexpr (MASK == MASK_FROM_Y) return ms.y[i] > 0.f ? d : 0.f;
  else if constexpr (MASK == MASK_FROM_X) return bnAffine(xv, ms.mk[c], ms.mb[c]) > 0.f ? d : 0.f;
  else return d;
}

// Float partial sums over blocks of 64 rows (in vector registers), added into float64 per block:
// accumulating each element into float64 directly measured 12x slower (10.9 vs 0.9 ms for
// [128, 32, 32, 16] on one thread of the Xeon in docs/performance.md).
template <int MASK>
MIXMASK_CLONES static void bnGradSums(const float *dy, const float *x, BnMaskSource ms, const float *mean, int64_t r0, int64_t r1, int64_t C, double *sg, double *sgx) {
  std::vector<float> blockG(C), blockGx(C);
  float *__restrict bg = blockG.data();
  float *__restrict bgx = blockGx.data();
  for (int64_t b0 = r0; b0 < r1; b0 += 64) {
    std::fill(blockG.begin(), blockG.end(), 0.f);
    std::fill(blockGx.begin(), blockGx.end(), 0.f);
    const int64_t b1 = std::min(r1, b0 + 64);
    for (int64_t r = b0; r < b1; r++) {
      const float *d = dy + r * C, *xr = x + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; c++) {
        const float g = bnMasked<MASK>(d[c], r * C + c, xr[c], c, ms);
        bg[c] += g;
        bgx[c] += g * (xr[c] - mean[c]);
      }
    }
    for (int64_t c = 0; c < C; c++) {
      sg[c] += bg[c];
      sgx[c] += bgx[c];
    }
  }
}

template <int MASK>
MIXMASK_CLONES static void bnGradDx(const float *dy, const float *x, BnMaskSource ms, float *dx, float *gOut, int64_t r0, int64_t r1, int64_t C, const float *k, const float *a, const float *b, const float *mu) {
  for (int64_t r = r0; r < r1; r++) {
    const float *d = dy + r * C, *xr = x + r * C;
    float *o = dx + r * C;
    float *go = gOut ? gOut + r * C : nullptr;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) {
      const float g = bnMasked<MASK>(d[c], r * C + c, xr[c], c, ms);
      if (go) go[c] = g;
      o[c] = k[c] * g - a[c] * (xr[c] - mu[c]) - b[c];
    }
  }
}

template <int MASK>
static void bnGradient(const float *dy, const float *x, BnMaskSource ms, float *gOut, const float *mean, const float *var, const float *scale, float *dx, float *dScale, float *dOffset, int64_t rows, int64_t C, float eps) {
  const int T = bnThreads(rows);
  const std::vector<double> sums = bnChannelSums(rows, C, T, [&](int64_t r0, int64_t r1, double *sg, double *sgx) { bnGradSums<MASK>(dy, x, ms, mean, r0, r1, C, sg, sgx); });
  std::vector<float> k(C), a(C), b(C), mu(C);
  for (int64_t c = 0; c < C; c++) {
    const double sg = sums[c], sgx = sums[C + c];
    const double inv = 1.0 / std::sqrt(static_cast<double>(var[c]) + static_cast<double>(eps));
    const double ds = sgx * inv;
    dScale[c] = static_cast<float>(ds);
    dOffset[c] = static_cast<float>(sg);
    const double kc = scale[c] * inv;
    k[c] = static_cast<float>(kc);
    a[c] = static_cast<float>(kc * inv * ds / rows);
    b[c] = static_cast<float>(kc * sg / rows);
    mu[c] = mean[c];
  }
  bnRows(rows, T, [&](int64_t r0, int64_t r1, int) { bnGradDx<MASK>(dy, x, ms, dx, gOut, r0, r1, C, k.data(), a.data(), b.data(), mu.data()); });
}

// BatchNorms below 2^17 elements run on one thread: splitting them costs more in thread
// synchronisation than the work.
constexpr size_t kSmallBn = size_t(1) << 17;
struct OneThreadIfSmall {
  int saved;
  bool on;
  explicit OneThreadIfSmall(size_t n) : saved(omp_get_max_threads()), on(n < kSmallBn && saved > 1) {
    if (on) omp_set_num_threads(1);
  }
  ~OneThreadIfSmall() {
    if (on) omp_set_num_threads(saved);
  }
};

// bnForward(x, scale, offset, y, mean, variance, rows, C, eps, relu, residual?)
// y = act(BN(x) + r) with a residual r (x's size), act(BN(x)) without.
napi_value BnForward(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 10) throw JsError("bnForward(x, scale, offset, y, mean, variance, rows, C, eps, relu, residual?)");
  int64_t rows = static_cast<int64_t>(getNum(env, argv[6], "rows")), C = static_cast<int64_t>(getNum(env, argv[7], "C"));
  if (rows < 1 || C < 1) throw JsError("bnForward: rows and C must be positive");
  float eps = static_cast<float>(getNum(env, argv[8], "eps"));
  bool relu = getBool(env, argv[9]);
  F32 x = getF32(env, argv[0], "x"), s = getF32(env, argv[1], "scale"), o = getF32(env, argv[2], "offset"), y = getF32(env, argv[3], "y"),
      m = getF32(env, argv[4], "mean"), v = getF32(env, argv[5], "variance");
  size_t n = rows * C;
  need(x, n, "x"); need(y, n, "y"); need(s, C, "scale"); need(o, C, "offset"); need(m, C, "mean"); need(v, C, "variance");
  const float *res = nullptr;
  if (argc > 10 && !isNullish(env, argv[10])) {
    F32 r = getF32(env, argv[10], "residual");
    need(r, n, "residual");
    res = r.data;
  }
  OneThreadIfSmall cap(n);
  bnForwardPasses(x.data, s.data, o.data, res, y.data, m.data, v.data, rows, C, eps, relu);
  return nullptr;
}

// bnBackward(dy, x, y, mean, variance, scale, dx, dScale, dOffset, rows, C, eps, relu, dResidual?, offset?)
// g = dy·mask with ReLU, else dy; the BN gradient runs on g. With dResidual (x's size; the
// forward had a residual) g is written there — it is the residual's gradient — and the mask is
// [y > 0]. Without one, given the forward's offset, the mask is recomputed from x (bnForward's
// [x·k + b > 0]) and y is not read (may be null).
napi_value BnBackward(napi_env env, napi_callback_info info) {
  size_t argc = 15;
  napi_value argv[15];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 13) throw JsError("bnBackward(dy, x, y, mean, variance, scale, dx, dScale, dOffset, rows, C, eps, relu, dResidual?, offset?)");
  int64_t rows = static_cast<int64_t>(getNum(env, argv[9], "rows")), C = static_cast<int64_t>(getNum(env, argv[10], "C"));
  if (rows < 1 || C < 1) throw JsError("bnBackward: rows and C must be positive");
  float eps = static_cast<float>(getNum(env, argv[11], "eps"));
  bool relu = getBool(env, argv[12]);
  F32 dy = getF32(env, argv[0], "dy"), x = getF32(env, argv[1], "x"), m = getF32(env, argv[3], "mean"), v = getF32(env, argv[4], "variance"),
      s = getF32(env, argv[5], "scale"), dx = getF32(env, argv[6], "dx"), ds = getF32(env, argv[7], "dScale"), doff = getF32(env, argv[8], "dOffset");
  size_t n = rows * C;
  need(dy, n, "dy"); need(x, n, "x"); need(dx, n, "dx"); need(m, C, "mean"); need(v, C, "variance"); need(s, C, "scale"); need(ds, C, "dScale"); need(doff, C, "dOffset");
  float *gOut = nullptr;
  if (argc > 13 && !isNullish(env, argv[13])) {
    F32 dr = getF32(env, argv[13], "dResidual");
    need(dr, n, "dResidual");
    gOut = dr.data;
  }
  const bool fromX = relu && !gOut && argc > 14 && !isNullish(env, argv[14]);
  BnMaskSource ms{nullptr, nullptr, nullptr};
  std::vector<float> mk, mb;
  if (fromX) {
    F32 of = getF32(env, argv[14], "offset");
    need(of, C, "offset");
    mk.resize(C);
    mb.resize(C);
    bnCoefficients(m.data, v.data, s.data, of.data, eps, C, mk.data(), mb.data());
    ms.mk = mk.data();
    ms.mb = mb.data();
  } else if (relu) {
    F32 y = getF32(env, argv[2], "y");
    need(y, n, "y");
    ms.y = y.data;
  }
  OneThreadIfSmall cap(n);
  if (fromX) bnGradient<MASK_FROM_X>(dy.data, x.data, ms, gOut, m.data, v.data, s.data, dx.data, ds.data, doff.data, rows, C, eps);
  else if (relu) bnGradient<MASK_FROM_Y>(dy.data, x.data, ms, gOut, m.data, v.data, s.data, dx.data, ds.data, doff.data, rows, C, eps);
  else bnGradient<MASK_NONE>(dy.data, x.data, ms, gOut, m.data, v.data, s.data, dx.data, ds.data, doff.data, rows, C, eps);
  return nullptr;
}

// ---------------------------------------------------------------- elementwise add
// add(a, b, out): out = a + b, equal lengths (the gradient sums of a ResNet's skip connections:
// tfjs's wasm Add took ~27 ms for 6.3M elements on one thread, this pass ~4 ms).
MIXMASK_CLONES
static void addArrays(const float *a, const float *b, float *out, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= (int64_t(1) << 17))
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

napi_value Add(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 3) throw JsError("add(a, b, out)");
  F32 a = getF32(env, argv[0], "a"), b = getF32(env, argv[1], "b"), out = getF32(env, argv[2], "out");
  need(b, a.length, "b");
  need(out, a.length, "out");
  addArrays(a.data, b.data, out.data, static_cast<int64_t>(a.length));
  return nullptr;
}

// ---------------------------------------------------------------- parameter updates
// The fused updates of lib/backend/fused-update-op.ts, one tensor per call, float32 arithmetic in
// the formula's order (as the wasm SIMD loops), over the configured threads where the tensor is
// large: the wasm loop is one thread (~12 GB/s here), these reach ~35 GB/s on two cores.
//   sgd(w, g, v, w2, v2, lr, μ, wd, nesterov)   v2 = μ·v + (g + wd·w);  w2 = w − lr·v2
//                                                (nesterov: w2 = w − lr·(g + wd·w + μ·v2))
//   ema(t, o, out, m, k)                         out = m·t + k·o
MIXMASK_CLONES
static void sgdLoop(const float *w, const float *g, const float *v, float *w2, float *v2, int64_t n, float lr, float mu, float wd, bool nesterov) {
#pragma omp parallel for simd schedule(static) if (n >= (int64_t(1) << 16))
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] + wd * w[i];
    const float vi = mu * v[i] + gi;
    v2[i] = vi;
    w2[i] = w[i] - lr * (nesterov ? gi + mu * vi : vi);
  }
}

MIXMASK_CLONES
static void emaLoop(const float *t, const float *o, float *out, int64_t n, float m, float k) {
#pragma omp parallel for simd schedule(static) if (n >= (int64_t(1) << 16))
  for (int64_t i = 0; i < n; i++) out[i] = m * t[i] + k * o[i];
}

napi_value SgdUpdate(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 9) throw JsError("sgd(w, g, v, w2, v2, lr, momentum, weightDecay, nesterov)");
  F32 w = getF32(env, argv[0], "w"), g = getF32(env, argv[1], "g"), v = getF32(env, argv[2], "v"), w2 = getF32(env, argv[3], "w2"), v2 = getF32(env, argv[4], "v2");
  const size_t n = w.length;
  need(g, n, "g"); need(v, n, "v"); need(w2, n, "w2"); need(v2, n, "v2");
  sgdLoop(w.data, g.data, v.data, w2.data, v2.data, static_cast<int64_t>(n), static_cast<float>(getNum(env, argv[5], "lr")),
          static_cast<float>(getNum(env, argv[6], "momentum")), static_cast<float>(getNum(env, argv[7], "weightDecay")), getBool(env, argv[8]));
  return nullptr;
}

napi_value EmaUpdate(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 5) throw JsError("ema(target, online, out, m, k)");
  F32 t = getF32(env, argv[0], "target"), o = getF32(env, argv[1], "online"), out = getF32(env, argv[2], "out");
  const size_t n = t.length;
  need(o, n, "online"); need(out, n, "out");
  emaLoop(t.data, o.data, out.data, static_cast<int64_t>(n), static_cast<float>(getNum(env, argv[3], "m")), static_cast<float>(getNum(env, argv[4], "k")));
  return nullptr;
}

// ---------------------------------------------------------------- matrix multiplication
// matmul(a, b, out, [B, M, K, N, transposeA, transposeB]): out[b] = op(a[b]) · op(b[b]), all
// row-major; a transposed is stored [B, K, M], b transposed [B, N, K]. Batch must match.
napi_value MatMul(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 4) throw JsError("matmul(a, b, out, [B, M, K, N, transposeA, transposeB])");
  auto d = getInts(env, argv[3], 6, "dims");
  int64_t B = d[0], M = d[1], K = d[2], N = d[3];
  bool ta = d[4] != 0, tb = d[5] != 0;
  if (B < 1 || M < 1 || K < 1 || N < 1) throw JsError("matmul: dimensions must be positive");
  F32 a = getF32(env, argv[0], "a"), b = getF32(env, argv[1], "b"), out = getF32(env, argv[2], "out");
  need(a, B * M * K, "a"); need(b, B * K * N, "b"); need(out, B * M * N, "out");
  Plan *p = matmulPlan(B, M, K, N, ta, tb, precision);
  p->run({a.data, b.data, out.data});
  napi_value r;
  NAPI_OK(napi_create_string_utf8(env, p->impl.c_str(), p->impl.size(), &r));
  return r;
}

// ---------------------------------------------------------------- misc
napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int n = argc > 0 ? static_cast<int>(getNum(env, argv[0], "threads")) : 0;
  if (n < 1) throw JsError("setThreads: expected a positive integer");
  omp_set_num_threads(n);
  napi_value r;
  NAPI_OK(napi_create_int32(env, omp_get_max_threads(), &r));
  return r;
}

// setPrecision('fp32' | 'bf16') → the precision now in force. bf16 where the ISA oneDNN reports
// has no native bf16 is an error (and the precision stays as it was).
napi_value SetPrecision(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  char buf[16] = {0};
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], buf, sizeof(buf), &len) != napi_ok)
    throw JsError("setPrecision: expected 'fp32' or 'bf16'");
  const std::string want(buf, len);
  if (want == "fp32") {
    precision = FP32;
  } else if (want == "bf16") {
    if (!nativeBf16())
      throw JsError("setPrecision('bf16'): oneDNN reports ISA " + isaName(dnnl::get_effective_cpu_isa()) +
                    ", which has no native bf16 (needs avx512_core_bf16, avx512_core_amx or later); precision stays " +
                    (precision == BF16 ? "bf16" : "fp32"));
    precision = BF16;
  } else {
    throw JsError("setPrecision: expected 'fp32' or 'bf16', got '" + want + "'");
  }
  napi_value r;
  NAPI_OK(napi_create_string_utf8(env, buf, len, &r));
  return r;
}

napi_value Info(napi_env env, napi_callback_info) {
  const dnnl_version_t *ver = dnnl_version();
  napi_value obj, s, i;
  NAPI_OK(napi_create_object(env, &obj));
  std::string version = std::to_string(ver->major) + "." + std::to_string(ver->minor) + "." + std::to_string(ver->patch);
  NAPI_OK(napi_create_string_utf8(env, version.c_str(), version.size(), &s));
  NAPI_OK(napi_set_named_property(env, obj, "version", s));
  std::string isa = isaName(dnnl::get_effective_cpu_isa());
  NAPI_OK(napi_create_string_utf8(env, isa.c_str(), isa.size(), &s));
  NAPI_OK(napi_set_named_property(env, obj, "isa", s));
  napi_value b;
  NAPI_OK(napi_get_boolean(env, nativeBf16(), &b));
  NAPI_OK(napi_set_named_property(env, obj, "bf16", b));
  const char *prec = precision == BF16 ? "bf16" : "fp32";
  NAPI_OK(napi_create_string_utf8(env, prec, NAPI_AUTO_LENGTH, &s));
  NAPI_OK(napi_set_named_property(env, obj, "precision", s));
  NAPI_OK(napi_create_int32(env, omp_get_max_threads(), &i));
  NAPI_OK(napi_set_named_property(env, obj, "threads", i));
  NAPI_OK(napi_create_int32(env, static_cast<int32_t>(plans.size() + gemms.size()), &i));
  NAPI_OK(napi_set_named_property(env, obj, "cachedPrimitives", i));
  return obj;
}

napi_value ClearCache(napi_env env, napi_callback_info) {
  plans.clear();
  gemms.clear();
  std::vector<uint16_t>().swap(colBuffer);
  std::vector<float>().swap(dcolBuffer);
  std::vector<float>().swap(foldedW);
  for (std::vector<float> *v : {&winoV, &winoU, &winoM}) std::vector<float>().swap(*v);
  return nullptr;
}

// Signals wait while the addon runs. oneDNN 2.6's generated sgemm kernels (gemm:jit: the
// products of our Winograd, whose padded batch strides brgemm does not take) point rsp into the
// heap while they run, so a signal delivered to such a thread writes its frame into the heap
// (oneDNN issue #4845, fixed in 3.x). Measured here: `node --cpu-prof` (SIGPROF every ms)
// aborted within a second of our Winograd with "corrupted size vs. prev_size"; a Jupyter
// interrupt (SIGINT) or a child's SIGCHLD could land the same way. So the calling thread blocks
// asynchronous signals for the call and takes them when it returns (a call lasts milliseconds);
// the OpenMP workers are created inside such calls, inherit the mask and never take them.
// Faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP) stay deliverable.
struct SignalsWait {
  sigset_t saved;
  SignalsWait() {
    sigset_t set;
    sigfillset(&set);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP}) sigdelset(&set, sig);
    pthread_sigmask(SIG_BLOCK, &set, &saved);
  }
  ~SignalsWait() { pthread_sigmask(SIG_SETMASK, &saved, nullptr); }
  SignalsWait(const SignalsWait &) = delete;
  SignalsWait &operator=(const SignalsWait &) = delete;
};

// Converts C++ exceptions into JS errors; signals wait (above).
template <napi_value (*F)(napi_env, napi_callback_info)>
napi_value Guard(napi_env env, napi_callback_info info) {
  SignalsWait wait;
  try {
    return F(env, info);
  } catch (const dnnl::error &e) {
    napi_throw_error(env, nullptr, (std::string("oneDNN: ") + e.what() + " (status " + std::to_string(static_cast<int>(e.status)) + ")").c_str());
  } catch (const std::exception &e) {
    napi_throw_error(env, nullptr, e.what());
  }
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"conv", nullptr, Guard<Conv>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convBn", nullptr, Guard<ConvBn>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matmul", nullptr, Guard<MatMul>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"add", nullptr, Guard<Add>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgd", nullptr, Guard<SgdUpdate>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ema", nullptr, Guard<EmaUpdate>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bnForward", nullptr, Guard<BnForward>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bnBackward", nullptr, Guard<BnBackward>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setPrecision", nullptr, Guard<SetPrecision>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, Guard<SetThreads>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Guard<Info>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"clearCache", nullptr, Guard<ClearCache>, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
