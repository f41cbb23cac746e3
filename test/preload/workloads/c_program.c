/* A small C program for real_programs.py to compile with gcc (under the preload) and run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
  struct node *next;
  unsigned value;
};

static int cmp(const void *a, const void *b) {
  unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
  return (x > y) - (x < y);
}

int main(void) {
  unsigned seed = 7, n = 100000, i;
  unsigned *v = malloc(n * sizeof *v);
  struct node *list = NULL;
  for (i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    v[i] = seed >> 8;
    if (i % 10 == 0) {
      struct node *k = malloc(sizeof *k);
      k->value = v[i];
      k->next = list;
      list = k;
    }
  }
  qsort(v, n, sizeof *v, cmp);
  unsigned long long sum = 0;
  while (list) {
    struct node *k = list;
    sum += k->value;
    list = k->next;
    free(k);
  }
  char *s = strdup("compiled and run");
  printf("%s: min %u max %u median %u sum %llu\n", s, v[0], v[n - 1], v[n / 2], sum);
  free(s);
  free(v);
  return 0;
}
