/* Compiled on a GPU machine by scripts/gpu_check.sh against NVIDIA's headers: every constant
 * and struct our decl.h declares must equal NVIDIA's, or the build fails here. */
#include <cuda.h>
#include <nvrtc.h>
#include <cudnn.h>
#include "decl.h"

_Static_assert(sizeof(sk_CUdeviceptr) == sizeof(CUdeviceptr), "CUdeviceptr");
_Static_assert(sizeof(sk_CUresult) == sizeof(CUresult), "CUresult");
_Static_assert(sizeof(sk_CUdevice) == sizeof(CUdevice), "CUdevice");
_Static_assert(sizeof(sk_nvrtcResult) == sizeof(nvrtcResult), "nvrtcResult");
_Static_assert(sizeof(sk_cudnnStatus) == sizeof(cudnnStatus_t), "cudnnStatus_t");
_Static_assert(SK_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "cc major");
_Static_assert(SK_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "cc minor");
_Static_assert(SK_CUDNN_DATA_FLOAT == CUDNN_DATA_FLOAT, "CUDNN_DATA_FLOAT");
_Static_assert(SK_CUDNN_TENSOR_NCHW == CUDNN_TENSOR_NCHW, "CUDNN_TENSOR_NCHW");
_Static_assert(SK_CUDNN_CROSS_CORRELATION == CUDNN_CROSS_CORRELATION, "CUDNN_CROSS_CORRELATION");
_Static_assert(SK_CUDNN_DEFAULT_MATH == CUDNN_DEFAULT_MATH, "CUDNN_DEFAULT_MATH");
_Static_assert(SK_CUDNN_FMA_MATH == CUDNN_FMA_MATH, "CUDNN_FMA_MATH");
_Static_assert(SK_CUDNN_BATCHNORM_SPATIAL == CUDNN_BATCHNORM_SPATIAL, "CUDNN_BATCHNORM_SPATIAL");
_Static_assert(SK_CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, "fwd implicit gemm");
_Static_assert(SK_CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, "fwd precomp gemm");
_Static_assert(SK_CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, "fwd winograd");
_Static_assert(SK_CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, "bwd data algo 1");
_Static_assert(SK_CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, "bwd filter algo 1");
_Static_assert(SK_CUDNN_DETERMINISTIC == CUDNN_DETERMINISTIC, "CUDNN_DETERMINISTIC");
_Static_assert(sizeof(sk_cudnnAlgoPerf) == sizeof(cudnnConvolutionFwdAlgoPerf_t), "cudnnConvolutionFwdAlgoPerf_t");

int main(void) { return 0; }
