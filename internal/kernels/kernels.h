// Every C function of the package, declared once: the kernel files include this, so a definition
// that drifts from its declaration fails to compile, and so do the cgo preambles, which call the
// kernels through the table of the instruction set in use (segkit_kernels_for).
//
// A kernel is declared through its function type: segkit_X_fn segkit_avx2_X, segkit_avx512_X.
// Definitions must match it exactly (C rejects conflicting types), and so must the tables.

#ifndef SEGKIT_KERNELS_H
#define SEGKIT_KERNELS_H

// sgemm computes C = alpha·op(A)·op(B) + beta·C (row-major; op(A) m×k, op(B) k×n), then the
// epilogue (row i: scale[i]·c + shift[i] + add, then max(·, 0) when relu; NULL scale or shift:
// 1 or 0, NULL add: none) when any of them is set. Requires k > 0.
typedef void segkit_sgemm_fn(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda,
                             const float *b, long ldb, float beta, float *c, long ldc, const float *scale,
                             const float *shift, const float *add, int relu);

// conv_sgemm computes output pixels [q0, q0+nq) of all K channels of one image's convolution,
// y = w · patches(x), through the epilogue (as sgemm's); y and add point at pixel q0 of channel
// 0, rows OH·OW apart; w is K×(C·k·k). phased: stride 2, packed from phase planes.
typedef void segkit_conv_sgemm_fn(long C, long H, long W, long K, long k, long s, long p, long d, const float *x,
                                  const float *w, long q0, long nq, float *y, const float *scale,
                                  const float *shift, const float *add, int relu, int phased);

// conv_filter_grad adds (beta = 1) or writes (beta = 0) dw = dy · patches(x)ᵀ over the output
// pixels [q0, q0+nq) of one image: dy points at pixel q0 of channel 0 (rows OH·OW apart), dw is
// K×(C·k·k).
typedef void segkit_conv_filter_grad_fn(long C, long H, long W, long K, long k, long s, long p, long d,
                                        const float *x, const float *dy, long q0, long nq, float *dw, float beta);

// wino_filter writes U[ξ][k][c] = (G g_kc G^T)[ξ] for filters k in [k0, k1).
typedef void segkit_wino_filter_fn(long K, long C, const float *w, float *u, long k0, long k1);

// wino_block convolves tiles [t0, t0+nt) (raster order over ⌈H/4⌉×⌈W/4⌉ per image) of the
// N×C×H×W x with the transformed filters u (36×K×C), writing output channels [k0, k1) of y
// through the per-channel epilogue (as sgemm's, add laid out as y).
typedef void segkit_wino_block_fn(long C, long K, long H, long W, const float *x, const float *u,
                                  const float *scale, const float *shift, const float *add, int relu, float *y,
                                  long t0, long nt, long k0, long k1);

// Batch normalisation over channels [c0, c1) of an N×C×HW tensor (batchnorm.go, syncbn.go).
typedef void segkit_bn_train_fn(long N, long C, long HW, float eps, int relu, float momentum, const float *x,
                                const float *gamma, const float *beta, float *y, float *mean_out,
                                float *invstd_out, float *run_mean, float *run_var, long c0, long c1);
typedef void segkit_bn_affine_fn(long N, long C, long HW, int relu, const float *x, const float *scale,
                                 const float *shift, float *y, long c0, long c1);
typedef void segkit_bn_backward_fn(long N, long C, long HW, int relu, int train, const float *x, const float *y,
                                   const float *dy, const float *gamma, const float *mean_in,
                                   const float *invstd_in, float *dx, float *dgamma, float *dbeta, long c0,
                                   long c1);
typedef void segkit_bn_sums_fn(long N, long C, long HW, const float *x, const float *mean, double *sum, long c0,
                               long c1);
typedef void segkit_bn_norm_fn(long N, long C, long HW, float eps, int relu, float momentum, const float *x,
                               const float *gamma, const float *beta, float *y, const float *mean, const double *ss,
                               double m, float *mean_out, float *invstd_out, float *run_mean, float *run_var,
                               long c0, long c1);
typedef void segkit_bn_grad_sums_fn(long N, long C, long HW, int relu, const float *x, const float *y,
                                    const float *dy, const float *mean, double *sum_dy, double *sum_dyxc, long c0,
                                    long c1);
typedef void segkit_bn_grad_dx_fn(long N, long C, long HW, int relu, const float *x, const float *y,
                                  const float *dy, const float *gamma, const float *mean, const float *invstd,
                                  const double *sum_dy, const double *sum_dyxc, double m, float *dx, long c0,
                                  long c1);

// Bilinear resizing of planes [p0, p1) (bilinear.go) and its adjoint, in → out; scratch: as
// bilinear.go allocates it.
typedef void segkit_bilinear_fn(long H, long W, long OH, long OW, const float *in, float *out, const int *yi0,
                                const int *yi1, const float *ya0, const float *ya1, const int *xi0,
                                const int *xi1, const float *xw0, const float *xw1, long p0, long p1,
                                float *scratch);

// Elementwise kernels (elementwise.go): y = x0 + x1 (+ x2 (+ x3)) then max(·, 0) when relu;
// dx = dy where y > 0; one SGD-with-momentum step.
typedef void segkit_sum4_fn(long n, int relu, float *y, const float *x0, const float *x1, const float *x2,
                            const float *x3);
typedef void segkit_relu_backward_fn(long n, const float *y, const float *dy, float *dx);
typedef void segkit_momentum_fn(long n, float *w, const float *g, float *v, float lr, float wd, float mu);

// softmax_ce returns the summed loss of pixels [p0, p1) of the flattened N×HW and, when dlogits
// is not NULL, writes g·(softmax − one-hot) there.
typedef double segkit_softmax_ce_fn(long c, long hw, const float *logits, const int *labels, int ignore, float g,
                                    float *dlogits, long p0, long p1);

// resample is DynOPool's forward for planes [p0, p1) (resample.go).
typedef void segkit_resample_fn(long H, long W, long OH, long OW, const float *x, float *y, unsigned char *argmax,
                                int mean, const int *ri0, const int *ri1, const float *rt, const int *cl0,
                                const int *cl1, const float *clt, const int *cr0, const int *cr1, const float *crt,
                                long p0, long p1, float *scratch);

// The kernels of one instruction set.
typedef struct segkit_kernels {
	segkit_sgemm_fn *sgemm;
	segkit_conv_sgemm_fn *conv_sgemm;
	segkit_conv_filter_grad_fn *conv_filter_grad;
	segkit_wino_filter_fn *wino_filter;
	segkit_wino_block_fn *wino_block;
	segkit_bn_train_fn *bn_train;
	segkit_bn_affine_fn *bn_affine;
	segkit_bn_backward_fn *bn_backward;
	segkit_bn_sums_fn *bn_sums;
	segkit_bn_norm_fn *bn_norm;
	segkit_bn_grad_sums_fn *bn_grad_sums;
	segkit_bn_grad_dx_fn *bn_grad_dx;
	segkit_bilinear_fn *bilinear_forward, *bilinear_backward;
	segkit_sum4_fn *sum4;
	segkit_relu_backward_fn *relu_backward;
	segkit_momentum_fn *momentum;
	segkit_softmax_ce_fn *softmax_ce;
	segkit_resample_fn *resample;
} segkit_kernels;

// SEGKIT_DECLARE(isa) declares the kernels segkit_<isa>_*.
#define SEGKIT_DECLARE(isa)                                                                                      \
	segkit_sgemm_fn segkit_##isa##_sgemm;                                                                        \
	segkit_conv_sgemm_fn segkit_##isa##_conv_sgemm;                                                              \
	segkit_conv_filter_grad_fn segkit_##isa##_conv_filter_grad;                                                  \
	segkit_wino_filter_fn segkit_##isa##_wino_filter;                                                            \
	segkit_wino_block_fn segkit_##isa##_wino_block;                                                              \
	segkit_bn_train_fn segkit_##isa##_bn_train;                                                                  \
	segkit_bn_affine_fn segkit_##isa##_bn_affine;                                                                \
	segkit_bn_backward_fn segkit_##isa##_bn_backward;                                                            \
	segkit_bn_sums_fn segkit_##isa##_bn_sums;                                                                    \
	segkit_bn_norm_fn segkit_##isa##_bn_norm;                                                                    \
	segkit_bn_grad_sums_fn segkit_##isa##_bn_grad_sums;                                                          \
	segkit_bn_grad_dx_fn segkit_##isa##_bn_grad_dx;                                                              \
	segkit_bilinear_fn segkit_##isa##_bilinear_forward, segkit_##isa##_bilinear_backward;                        \
	segkit_sum4_fn segkit_##isa##_sum4;                                                                          \
	segkit_relu_backward_fn segkit_##isa##_relu_backward;                                                        \
	segkit_momentum_fn segkit_##isa##_momentum;                                                                  \
	segkit_softmax_ce_fn segkit_##isa##_softmax_ce;                                                              \
	segkit_resample_fn segkit_##isa##_resample;

SEGKIT_DECLARE(avx2)
SEGKIT_DECLARE(avx512)

// segkit_kernels_for returns the table of isa (1: AVX2+FMA, 2: AVX-512F; blas.go's isa), or NULL.
// Defined on amd64 only.
const segkit_kernels *segkit_kernels_for(int isa);

// segkit_cpu_isa returns the best isa the CPU runs (0: none of ours). Defined on amd64 only.
int segkit_cpu_isa(void);

// Plain C (common.c), shared by both instruction sets' kernels.

// segkit_grow returns *buf with room for n floats (64-byte aligned), reallocating it when *cap is
// short: the kernels' per-thread scratch.
float *segkit_grow(float **buf, long *cap, long n);

// segkit_phase_rows writes rows [i0, i0+R) of the four phase planes of every channel of image x
// (C×H×W) to out: channel by channel, 4 planes of R×((W+1)/2), plane 2a + b holding
// x[2i + a][2j + b], zero past the image.
void segkit_phase_rows(long C, long H, long W, const float *x, float *out, long i0, long R);

// segkit_resample_back_plane is resample.go's backPlane for one plane (resample_back.c).
void segkit_resample_back_plane(long W, long OH, long OW, const float *src, const float *g, float *dx,
                                const unsigned char *won, const int *ri0, const int *ri1, const float *rt,
                                const float *rmask, const int *ci0, const int *ci1, const float *ct,
                                const float *cmask, float *grow, float *gcol);

// Calls through a table, for Go (cgo cannot call a function pointer).
static inline void segkit_sgemm(const segkit_kernels *k, int transA, int transB, long m, long n, long kk,
                                float alpha, const float *a, long lda, const float *b, long ldb, float beta,
                                float *c, long ldc, const float *scale, const float *shift, const float *add,
                                int relu) {
	k->sgemm(transA, transB, m, n, kk, alpha, a, lda, b, ldb, beta, c, ldc, scale, shift, add, relu);
}
static inline void segkit_conv_sgemm(const segkit_kernels *kt, long C, long H, long W, long K, long k, long s, long p,
                                     long d, const float *x, const float *w, long q0, long nq, float *y,
                                     const float *scale, const float *shift, const float *add, int relu,
                                     int phased) {
	kt->conv_sgemm(C, H, W, K, k, s, p, d, x, w, q0, nq, y, scale, shift, add, relu, phased);
}
static inline void segkit_conv_filter_grad(const segkit_kernels *kt, long C, long H, long W, long K, long k, long s,
                                           long p, long d, const float *x, const float *dy, long q0, long nq,
                                           float *dw, float beta) {
	kt->conv_filter_grad(C, H, W, K, k, s, p, d, x, dy, q0, nq, dw, beta);
}
static inline void segkit_wino_filter(const segkit_kernels *kt, long K, long C, const float *w, float *u, long k0,
                                      long k1) {
	kt->wino_filter(K, C, w, u, k0, k1);
}
static inline void segkit_wino_block(const segkit_kernels *kt, long C, long K, long H, long W, const float *x,
                                     const float *u, const float *scale, const float *shift, const float *add,
                                     int relu, float *y, long t0, long nt, long k0, long k1) {
	kt->wino_block(C, K, H, W, x, u, scale, shift, add, relu, y, t0, nt, k0, k1);
}
static inline void segkit_bn_train(const segkit_kernels *k, long N, long C, long HW, float eps, int relu,
                                   float momentum, const float *x, const float *gamma, const float *beta, float *y,
                                   float *mean_out, float *invstd_out, float *run_mean, float *run_var, long c0,
                                   long c1) {
	k->bn_train(N, C, HW, eps, relu, momentum, x, gamma, beta, y, mean_out, invstd_out, run_mean, run_var, c0, c1);
}
static inline void segkit_bn_affine(const segkit_kernels *k, long N, long C, long HW, int relu, const float *x,
                                    const float *scale, const float *shift, float *y, long c0, long c1) {
	k->bn_affine(N, C, HW, relu, x, scale, shift, y, c0, c1);
}
static inline void segkit_bn_backward(const segkit_kernels *k, long N, long C, long HW, int relu, int train,
                                      const float *x, const float *y, const float *dy, const float *gamma,
                                      const float *mean_in, const float *invstd_in, float *dx, float *dgamma,
                                      float *dbeta, long c0, long c1) {
	k->bn_backward(N, C, HW, relu, train, x, y, dy, gamma, mean_in, invstd_in, dx, dgamma, dbeta, c0, c1);
}
static inline void segkit_bn_sums(const segkit_kernels *k, long N, long C, long HW, const float *x,
                                  const float *mean, double *sum, long c0, long c1) {
	k->bn_sums(N, C, HW, x, mean, sum, c0, c1);
}
static inline void segkit_bn_norm(const segkit_kernels *k, long N, long C, long HW, float eps, int relu,
                                  float momentum, const float *x, const float *gamma, const float *beta, float *y,
                                  const float *mean, const double *ss, double m, float *mean_out, float *invstd_out,
                                  float *run_mean, float *run_var, long c0, long c1) {
	k->bn_norm(N, C, HW, eps, relu, momentum, x, gamma, beta, y, mean, ss, m, mean_out, invstd_out, run_mean,
	           run_var, c0, c1);
}
static inline void segkit_bn_grad_sums(const segkit_kernels *k, long N, long C, long HW, int relu, const float *x,
                                       const float *y, const float *dy, const float *mean, double *sum_dy,
                                       double *sum_dyxc, long c0, long c1) {
	k->bn_grad_sums(N, C, HW, relu, x, y, dy, mean, sum_dy, sum_dyxc, c0, c1);
}
static inline void segkit_bn_grad_dx(const segkit_kernels *k, long N, long C, long HW, int relu, const float *x,
                                     const float *y, const float *dy, const float *gamma, const float *mean,
                                     const float *invstd, const double *sum_dy, const double *sum_dyxc, double m,
                                     float *dx, long c0, long c1) {
	k->bn_grad_dx(N, C, HW, relu, x, y, dy, gamma, mean, invstd, sum_dy, sum_dyxc, m, dx, c0, c1);
}
static inline void segkit_bilinear(const segkit_kernels *k, int backward, long H, long W, long OH, long OW,
                                   const float *in, float *out, const int *yi0, const int *yi1, const float *ya0,
                                   const float *ya1, const int *xi0, const int *xi1, const float *xw0,
                                   const float *xw1, long p0, long p1, float *scratch) {
	(backward ? k->bilinear_backward : k->bilinear_forward)(H, W, OH, OW, in, out, yi0, yi1, ya0, ya1, xi0, xi1,
	                                                        xw0, xw1, p0, p1, scratch);
}
static inline void segkit_sum4(const segkit_kernels *k, long n, int relu, float *y, const float *x0,
                               const float *x1, const float *x2, const float *x3) {
	k->sum4(n, relu, y, x0, x1, x2, x3);
}
static inline void segkit_relu_backward(const segkit_kernels *k, long n, const float *y, const float *dy,
                                        float *dx) {
	k->relu_backward(n, y, dy, dx);
}
static inline void segkit_momentum(const segkit_kernels *k, long n, float *w, const float *g, float *v, float lr,
                                   float wd, float mu) {
	k->momentum(n, w, g, v, lr, wd, mu);
}
static inline double segkit_softmax_ce(const segkit_kernels *k, long c, long hw, const float *logits,
                                       const int *labels, int ignore, float g, float *dlogits, long p0, long p1) {
	return k->softmax_ce(c, hw, logits, labels, ignore, g, dlogits, p0, p1);
}
static inline void segkit_resample(const segkit_kernels *k, long H, long W, long OH, long OW, const float *x,
                                   float *y, unsigned char *argmax, int mean, const int *ri0, const int *ri1,
                                   const float *rt, const int *cl0, const int *cl1, const float *clt,
                                   const int *cr0, const int *cr1, const float *crt, long p0, long p1,
                                   float *scratch) {
	k->resample(H, W, OH, OW, x, y, argmax, mean, ri0, ri1, rt, cl0, cl1, clt, cr0, cr1, crt, p0, p1, scratch);
}

#endif
