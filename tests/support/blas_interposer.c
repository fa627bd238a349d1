/* A test-only stand-in for two ways the loaded OpenBLAS can let atp down, preloaded
 * (LD_PRELOAD) into the `atp` processes that tests/common/blas_runtime_test.cc starts, never
 * linked into atp itself. Every other call goes to the real library (RTLD_NEXT).
 *   ATP_TEST_CORRUPT_KERNEL=NAME  while OPENBLAS_CORETYPE is NAME, sgemm_ returns a wrong
 *                                 product (one element off by 1): a kernel that miscomputes.
 *   ATP_TEST_LIBRARY_KERNEL=NAME  while OPENBLAS_CORETYPE is unset, openblas_get_corename
 *                                 reports NAME: a CPU the library does not know. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <strings.h>

typedef void (*SgemmFn)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                        const int*, const float*, const int*, const float*, float*, const int*);
typedef char* (*CoreNameFn)(void);

void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc) {
  SgemmFn real = (SgemmFn)dlsym(RTLD_NEXT, "sgemm_");
  real(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  const char* corrupt = getenv("ATP_TEST_CORRUPT_KERNEL");
  const char* core = getenv("OPENBLAS_CORETYPE");
  if (corrupt && core && strcasecmp(corrupt, core) == 0 && *m > 0 && *n > 0) c[0] += 1.0f;
}

char* openblas_get_corename(void) {
  const char* fake = getenv("ATP_TEST_LIBRARY_KERNEL");
  if (fake && !getenv("OPENBLAS_CORETYPE")) return (char*)fake;
  CoreNameFn real = (CoreNameFn)dlsym(RTLD_NEXT, "openblas_get_corename");
  return real ? real() : NULL;
}
