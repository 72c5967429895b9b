// Front-to-back alpha compositing of projected 2D Gaussians on the CPU, with its backward pass.
//
// Each tile's Gaussians are first gathered into contiguous arrays. The same rule as gsplat's CUDA kernel and geossl.ops.rasterize._composite_chunk (the PyTorch
// oracle these are tested against): per pixel, the tile's Gaussians in depth order;
// sigma = 0.5 (a dx^2 + c dy^2) + b dx dy, alpha = min(0.999, opacity exp(-sigma)); skip when
// sigma < 0 or alpha < 1/255; stop before the transmittance would fall to 1e-4.
// Tiles run in parallel with OpenMP; the backward pass accumulates per-thread gradients and sums
// them, so results do not depend on the schedule beyond float summation order.

#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

constexpr float kAlphaMax = 0.999f;
constexpr float kAlphaMin = 1.0f / 255.0f;
constexpr float kTMin = 1e-4f;

int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Gathers the K Gaussians ids[0..K) of one tile into contiguous arrays: per Gaussian
// (mx, my, a, b, c, opacity, sigma_max) in loc and its D features in lf. Beyond sigma_max,
// opacity * exp(-sigma) < 1/255 for certain, so a pixel can skip it without an exp.
void gather_tile(const int64_t* ids, int64_t K, const float* m, const float* cn, const float* op, const float* f,
                 int64_t D, std::vector<float>& loc, std::vector<float>& lf) {
  loc.resize(7 * K);
  lf.resize(D * K);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t g = ids[k];
    loc[7 * k] = m[2 * g];
    loc[7 * k + 1] = m[2 * g + 1];
    loc[7 * k + 2] = cn[3 * g];
    loc[7 * k + 3] = cn[3 * g + 1];
    loc[7 * k + 4] = cn[3 * g + 2];
    loc[7 * k + 5] = op[g];
    loc[7 * k + 6] = op[g] > 0.0f ? std::log(op[g] * 255.0f) + 1e-3f : -1.0f;
    for (int64_t d = 0; d < D; ++d) lf[k * D + d] = f[g * D + d];
  }
}

}  // namespace

// Returns (features [H, W, D], alpha [H, W], final transmittance [H, W], contributors [H, W] int32:
// how many entries of the pixel's tile list were walked, the last one included).
std::vector<torch::Tensor> composite_forward(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opacities,
                                             torch::Tensor feats, torch::Tensor tile_offsets, torch::Tensor ids,
                                             int64_t width, int64_t height, int64_t tile) {
  TORCH_CHECK(means2d.dtype() == torch::kFloat32 && feats.dtype() == torch::kFloat32, "composite: float32 only");
  const int64_t D = feats.size(1);
  const int64_t tiles_x = (width + tile - 1) / tile, tiles_y = (height + tile - 1) / tile;
  auto out = torch::zeros({height, width, D}, feats.options());
  auto alpha_out = torch::zeros({height, width}, feats.options());
  auto final_t = torch::ones({height, width}, feats.options());
  auto count = torch::zeros({height, width}, tile_offsets.options().dtype(torch::kInt32));
  const float* m = means2d.data_ptr<float>();
  const float* cn = conics.data_ptr<float>();
  const float* op = opacities.data_ptr<float>();
  const float* f = feats.data_ptr<float>();
  const int64_t* off = tile_offsets.data_ptr<int64_t>();
  const int64_t* gid = ids.data_ptr<int64_t>();
  float* o = out.data_ptr<float>();
  float* a_o = alpha_out.data_ptr<float>();
  float* t_o = final_t.data_ptr<float>();
  int32_t* c_o = count.data_ptr<int32_t>();

#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < tiles_x * tiles_y; ++t) {
    const int64_t start = off[t], end = off[t + 1];
    if (start == end) continue;
    const int64_t x0 = (t % tiles_x) * tile, y0 = (t / tiles_x) * tile;
    const int64_t K = end - start;
    std::vector<float> loc, lf;
    gather_tile(gid + start, K, m, cn, op, f, D, loc, lf);
    std::vector<float> acc(D);
    for (int64_t py = y0; py < std::min(y0 + tile, height); ++py) {
      for (int64_t px = x0; px < std::min(x0 + tile, width); ++px) {
        const float u = px + 0.5f, v = py + 0.5f;
        std::fill(acc.begin(), acc.end(), 0.0f);
        float T = 1.0f;
        int32_t walked = 0;
        for (int64_t k = 0; k < K; ++k) {
          const float* q = &loc[7 * k];
          const float dx = u - q[0], dy = v - q[1];
          const float sigma = 0.5f * (q[2] * dx * dx + q[4] * dy * dy) + q[3] * dx * dy;
          if (sigma < 0.0f || sigma > q[6]) continue;
          const float alpha = std::min(kAlphaMax, q[5] * std::exp(-sigma));
          if (alpha < kAlphaMin) continue;
          const float next_t = T * (1.0f - alpha);
          if (next_t <= kTMin) break;
          const float w = alpha * T;
          for (int64_t d = 0; d < D; ++d) acc[d] += w * lf[k * D + d];
          T = next_t;
          walked = static_cast<int32_t>(k + 1);
        }
        const int64_t p = py * width + px;
        for (int64_t d = 0; d < D; ++d) o[p * D + d] = acc[d];
        a_o[p] = 1.0f - T;
        t_o[p] = T;
        c_o[p] = walked;
      }
    }
  }
  return {out, alpha_out, final_t, count};
}

// Gradients with respect to (means2d [N, 2], conics [N, 3], opacities [N], feats [N, D]) given the
// gradients of the forward outputs (features [H, W, D], alpha [H, W]).
std::vector<torch::Tensor> composite_backward(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opacities,
                                              torch::Tensor feats, torch::Tensor tile_offsets, torch::Tensor ids,
                                              int64_t width, int64_t height, int64_t tile, torch::Tensor final_t,
                                              torch::Tensor count, torch::Tensor grad_out, torch::Tensor grad_alpha) {
  const int64_t N = means2d.size(0), D = feats.size(1);
  const int64_t tiles_x = (width + tile - 1) / tile, tiles_y = (height + tile - 1) / tile;
  const int threads = num_threads();
  const int64_t stride = 2 + 3 + 1 + D;  // per-Gaussian gradient slots: mean2d, conic, opacity, features
  std::vector<float> buffers(static_cast<size_t>(threads) * N * stride, 0.0f);
  const float* m = means2d.data_ptr<float>();
  const float* cn = conics.data_ptr<float>();
  const float* op = opacities.data_ptr<float>();
  const float* f = feats.data_ptr<float>();
  const int64_t* off = tile_offsets.data_ptr<int64_t>();
  const int64_t* gid = ids.data_ptr<int64_t>();
  const float* tf = final_t.data_ptr<float>();
  const int32_t* cnt = count.data_ptr<int32_t>();
  const float* go = grad_out.data_ptr<float>();
  const float* ga = grad_alpha.data_ptr<float>();

#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < tiles_x * tiles_y; ++t) {
    const int64_t start = off[t];
    if (start == off[t + 1]) continue;
    float* buf = buffers.data() + static_cast<size_t>(thread_id()) * N * stride;
    const int64_t x0 = (t % tiles_x) * tile, y0 = (t / tiles_x) * tile;
    const int64_t K = off[t + 1] - start;
    std::vector<float> loc, lf, lg(stride * K, 0.0f);  // gathered inputs; the tile's gradients
    gather_tile(gid + start, K, m, cn, op, f, D, loc, lf);
    std::vector<float> behind(D);
    for (int64_t py = y0; py < std::min(y0 + tile, height); ++py) {
      for (int64_t px = x0; px < std::min(x0 + tile, width); ++px) {
        const int64_t p = py * width + px;
        const float u = px + 0.5f, v = py + 0.5f;
        const float t_final = tf[p];
        const float* dc = go + p * D;
        const float da = ga[p];
        std::fill(behind.begin(), behind.end(), 0.0f);  // sum over later Gaussians of w_j c_j
        float T = t_final;                                // transmittance after the current Gaussian
        for (int64_t k = cnt[p] - 1; k >= 0; --k) {
          const float* q = &loc[7 * k];
          const float dx = u - q[0], dy = v - q[1];
          const float a = q[2], b = q[3], c = q[4];
          const float sigma = 0.5f * (a * dx * dx + c * dy * dy) + b * dx * dy;
          if (sigma < 0.0f || sigma > q[6]) continue;
          const float vis = std::exp(-sigma);
          const float raw = q[5] * vis;
          const float alpha = std::min(kAlphaMax, raw);
          if (alpha < kAlphaMin) continue;
          const float one_minus = 1.0f - alpha;
          const float T_before = T / one_minus;
          const float w = alpha * T_before;
          float* gb = &lg[k * stride];
          float d_alpha = 0.0f;
          for (int64_t d = 0; d < D; ++d) {
            const float c_d = lf[k * D + d];
            gb[6 + d] += w * dc[d];
            d_alpha += dc[d] * (c_d * T_before - behind[d] / one_minus);
            behind[d] += w * c_d;
          }
          d_alpha += da * t_final / one_minus;
          T = T_before;
          if (raw > kAlphaMax) continue;  // clamped: no gradient through the Gaussian's value
          const float d_sigma = -raw * d_alpha;
          gb[5] += vis * d_alpha;  // opacity
          gb[2] += 0.5f * dx * dx * d_sigma;  // conic a
          gb[3] += dx * dy * d_sigma;         // conic b
          gb[4] += 0.5f * dy * dy * d_sigma;  // conic c
          gb[0] += -(a * dx + b * dy) * d_sigma;  // mean x (dx = u - mx)
          gb[1] += -(b * dx + c * dy) * d_sigma;  // mean y
        }
      }
    }
    for (int64_t k = 0; k < K; ++k) {  // the tile's gradients into this thread's buffer
      float* gb = buf + gid[start + k] * stride;
      for (int64_t j = 0; j < stride; ++j) gb[j] += lg[k * stride + j];
    }
  }
  auto g_means = torch::zeros({N, 2}, feats.options());
  auto g_conics = torch::zeros({N, 3}, feats.options());
  auto g_opac = torch::zeros({N}, feats.options());
  auto g_feats = torch::zeros({N, D}, feats.options());
  float* gm = g_means.data_ptr<float>();
  float* gc = g_conics.data_ptr<float>();
  float* go_ = g_opac.data_ptr<float>();
  float* gf = g_feats.data_ptr<float>();
#pragma omp parallel for
  for (int64_t g = 0; g < N; ++g) {
    for (int th = 0; th < threads; ++th) {
      const float* gb = buffers.data() + (static_cast<size_t>(th) * N + g) * stride;
      gm[2 * g] += gb[0];
      gm[2 * g + 1] += gb[1];
      gc[3 * g] += gb[2];
      gc[3 * g + 1] += gb[3];
      gc[3 * g + 2] += gb[4];
      go_[g] += gb[5];
      for (int64_t d = 0; d < D; ++d) gf[g * D + d] += gb[6 + d];
    }
  }
  return {g_means, g_conics, g_opac, g_feats};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &composite_forward, "Gaussian compositing, forward (CPU, OpenMP)");
  m.def("backward", &composite_backward, "Gaussian compositing, backward (CPU, OpenMP)");
}
