/* CVectorKernels' narrow product (scion_gemm_narrow) against OpenBLAS's cblas_sgemm on convolution
 * shapes with at most 64 filters: one thread each, thread CPU time, fastest of 3, and the largest
 * difference relative to OpenBLAS's result. docs/benchmarks.md (issue #18, session 12) has the numbers.
 *
 *   clang -O2 bench/narrow_gemm_bench.c Sources/CVectorKernels/vector_kernels.c \
 *         -ISources/CVectorKernels/include -o .build/narrow_gemm_bench -lopenblas -lm
 *   OPENBLAS_CORETYPE=Cooperlake .build/narrow_gemm_bench     # the kernel Scion runs on this machine
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <time.h>
#include "vector_kernels.h"
static double now(){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){
  openblas_set_num_threads(1);
  int shapes[][3]= /* rows (pixels), depth (kh*kw*C), columns (filters) */ {{100352,144,24},{25088,1152,32},{100352,128,32},{25088,576,64},{100352,96,16},{6272,1152,32},{3000,17,5},{100352,32,48}};
  for(int s=0;s<8;s++){int M=shapes[s][0],K=shapes[s][1],N=shapes[s][2];
    float*A=malloc(sizeof(float)*M*K),*B=malloc(sizeof(float)*N*K),*C=malloc(sizeof(float)*M*N),*D=malloc(sizeof(float)*M*N),*P=malloc(sizeof(float)*K*64);
    for(long i=0;i<(long)M*K;i++)A[i]=((i*7919)%13)*0.1f-0.6f; for(long i=0;i<(long)N*K;i++)B[i]=((i*31)%5)*0.1f-0.2f;
    double best=1e9,best2=1e9; for(int r=0;r<3;r++){double t=now(); cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,M,N,K,1,A,K,B,K,0,C,N); t=now()-t; if(t<best)best=t;
      t=now(); scion_pack_narrow(B,N,K,P); if(scion_gemm_narrow(A,K,P,D,N,M,N,K))printf("refused\n"); t=now()-t; if(t<best2)best2=t;}
    double err=0,mx=0; for(long i=0;i<(long)M*N;i++){err=fmax(err,fabs(C[i]-D[i])); mx=fmax(mx,fabs(C[i]));}
    printf("M=%d K=%d N=%d  openblas %.1f  narrow %.1f GFLOP/s  rel err %.1e  (%s)\n",M,K,N,2.0*M*N*K/best/1e9,2.0*M*N*K/best2/1e9,err/mx,scion_vector_level());
    free(A);free(B);free(C);free(D);free(P);}
}
