// dlsym.cpp - the exported dlsym: a trampoline that keeps the caller's return address.
//
// See Note [dlsym interposition] in lib/cuda/driver_hooks.h. The trampoline saves the two
// argument registers, asks cachealloc_cuda_dlsym_target(handle, name) where to go, restores them
// and jumps. No frame of ours is left on the stack, so libc's dlsym sees the original caller's
// return address and resolves RTLD_NEXT (and RTLD_DEFAULT namespaces) for that caller. It is
// written in assembly because a C++ tail call is only an optimisation the compiler may skip.
#include "cuda/driver_hooks.h"

#if defined(__x86_64__)
__asm__(
    "  .text\n"
    "  .globl dlsym\n"
    "  .type dlsym, @function\n"
    "  .p2align 4\n"
    "dlsym:\n"
    "  .cfi_startproc\n"
    "  pushq %rdi\n"
    "  .cfi_adjust_cfa_offset 8\n"
    "  pushq %rsi\n"
    "  .cfi_adjust_cfa_offset 8\n"
    "  subq $8, %rsp\n"  // 16-byte stack alignment at the call
    "  .cfi_adjust_cfa_offset 8\n"
    "  call cachealloc_cuda_dlsym_target\n"
    "  addq $8, %rsp\n"
    "  .cfi_adjust_cfa_offset -8\n"
    "  popq %rsi\n"
    "  .cfi_adjust_cfa_offset -8\n"
    "  popq %rdi\n"
    "  .cfi_adjust_cfa_offset -8\n"
    "  jmp *%rax\n"
    "  .cfi_endproc\n"
    "  .size dlsym, .-dlsym\n");
#elif defined(__aarch64__)
__asm__(
    "  .text\n"
    "  .globl dlsym\n"
    "  .type dlsym, %function\n"
    "  .p2align 4\n"
    "dlsym:\n"
    "  .cfi_startproc\n"
    "  stp x29, x30, [sp, #-32]!\n"
    "  .cfi_def_cfa_offset 32\n"
    "  .cfi_offset 29, -32\n"
    "  .cfi_offset 30, -24\n"
    "  mov x29, sp\n"
    "  stp x0, x1, [sp, #16]\n"
    "  bl cachealloc_cuda_dlsym_target\n"
    "  mov x16, x0\n"
    "  ldp x0, x1, [sp, #16]\n"
    "  ldp x29, x30, [sp], #32\n"
    "  .cfi_def_cfa_offset 0\n"
    "  br x16\n"
    "  .cfi_endproc\n"
    "  .size dlsym, .-dlsym\n");
#else
#error "preload/cuda/dlsym.cpp: add the dlsym trampoline for this architecture"
#endif
