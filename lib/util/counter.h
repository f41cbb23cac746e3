// counter.h - statistics counters that one writer at a time updates and anyone may read.
//
// Most counters here have an owner: a thread (its thread cache's counters) or a lock (a central
// pool's counters, written only under the pool lock). Such a counter needs no read-modify-write
// instruction (a fetch_add is a locked instruction on x86): the owner adds without a lock prefix,
// and readers (statistics) load it relaxed from any thread and see some recent value, never a torn
// one (an aligned 4- or 8-byte access is single-copy atomic on x86-64).
//
// Note [Counter adds]: GCC compiles a relaxed load, add and store of an atomic to three
// instructions (load, add, store); it never fuses them into one add to memory. On x86-64 the add
// is therefore one instruction written in assembly, which the compiler cannot split or tear; the
// malloc fast path has three such adds (its bin count and two counters): 41 -> 35 instructions up
// to 1 KiB (disassembled), callgrind churn 172 -> 165 per op. ThreadSanitizer builds keep the
// atomics, so that it sees every access.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

// ThreadSanitizer: GCC defines __SANITIZE_THREAD__, Clang answers __has_feature.
#if defined(__SANITIZE_THREAD__)
#define CA_COUNTER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CA_COUNTER_TSAN 1
#endif
#endif
#if defined(__x86_64__) && !defined(CA_COUNTER_TSAN)
#define CA_COUNTER_ASM 1
#endif

namespace cachealloc {

// Adds `n` (wrapping) to `*c`, which only the caller writes now and other threads may read with a
// relaxed atomic load. Pre: no concurrent writer; `c` aligned to its size.
template <class T>
[[gnu::always_inline]] inline void owner_add_raw(T* c, T n) noexcept {
  static_assert(std::is_unsigned_v<T> && (sizeof(T) == 4 || sizeof(T) == 8));
#ifdef CA_COUNTER_ASM
  if constexpr (sizeof(T) == 8) {
    asm volatile("addq %1, %0" : "+m"(*c) : "er"(n) : "cc");
  } else {
    asm volatile("addl %1, %0" : "+m"(*c) : "ir"(n) : "cc");
  }
#else
  __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
#endif
}

// The same for a std::atomic counter (the layout of a lock-free std::atomic<T> is T's).
template <class T>
[[gnu::always_inline]] inline void owner_add(std::atomic<T>& c, std::type_identity_t<T> n) noexcept {
  static_assert(sizeof(std::atomic<T>) == sizeof(T) && std::atomic<T>::is_always_lock_free);
  owner_add_raw(reinterpret_cast<T*>(&c), n);
}

// The 16-bit field at `offset` in the object at `base`, which another thread may write (with an
// atomic store or compare-and-swap), read relaxed as one `movzwl` from the object's address:
// GCC's atomic load recomputes the field's address from scratch, and an asm given the field
// itself as a memory operand did the same (four more instructions on free, which reads a page's
// bin so: Note [Shared pages]). The same assembly rule and TSan exception as Note [Counter adds].
template <size_t offset, class T>
[[gnu::always_inline]] inline uint64_t relaxed_load16_at(const T& base) noexcept {
  const char* bytes = reinterpret_cast<const char*>(&base);
  const auto* field = reinterpret_cast<const uint16_t*>(bytes + offset);
#ifdef CA_COUNTER_ASM
  uint64_t out;
  asm("movzwl %c2(%1), %k0" : "=r"(out) : "r"(&base), "i"(offset), "m"(*field));
  return out;
#else
  return __atomic_load_n(field, __ATOMIC_RELAXED);
#endif
}

// Whether the 32-bit `v` has its sign bit set, as one compare with memory (GCC loads it and tests
// the register: one instruction more). For counters that only their owner writes (Note [Bin
// slack]); same assembly rule and TSan exception as above.
[[gnu::always_inline]] inline bool sign_bit_set(const uint32_t& v) noexcept {
#ifdef CA_COUNTER_ASM
  bool negative;
  asm("cmpl $0, %1" : "=@ccs"(negative) : "m"(v));
  return negative;
#else
  return static_cast<int32_t>(__atomic_load_n(&v, __ATOMIC_RELAXED)) < 0;
#endif
}

}  // namespace cachealloc
