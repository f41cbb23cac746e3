# A deterministic python3 workload for real_programs.py: dicts, json, re, sorting, threads, big
# buffers. Its output must be identical with and without LD_PRELOAD=libcachealloc.so.
import hashlib
import json
import random
import re
import threading

rng = random.Random(20240611)

# Dicts and sorting.
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 12)))
         for _ in range(60000)]
counts = {}
for w in words:
    counts[w] = counts.get(w, 0) + 1
top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
print("distinct", len(counts), "top", top)
print("sorted-head", sorted(words)[:5], "sorted-tail", sorted(words, reverse=True)[:5])

# JSON round trip of a nested structure.
doc = {"items": [{"id": i, "name": words[i], "tags": words[i:i + rng.randint(0, 6)],
                  "score": round(rng.random() * 1000, 3)} for i in range(20000)],
       "meta": {"k%d" % i: list(range(i % 50)) for i in range(2000)}}
text = json.dumps(doc, sort_keys=True)
back = json.loads(text)
print("json", len(text), hashlib.sha256(text.encode()).hexdigest(), back == doc)

# Regular expressions.
blob = " ".join(words)
pat = re.compile(r"\b([aeiou])(\w*)\1\b")
found = pat.findall(blob)
print("re", len(found), found[:5])
print("sub", hashlib.md5(re.sub(r"[aeiou]+", lambda m: m.group(0).upper(), blob).encode()).hexdigest())

# Threads: each builds and sorts its own data; results are gathered in thread order.
results = [None] * 8


def work(k):
    local = random.Random(k)
    data = [local.random() for _ in range(40000)]
    d = {i: str(v) for i, v in enumerate(data)}
    data.sort()
    chunks = [bytes(local.getrandbits(8) for _ in range(256)) * 64 for _ in range(40)]
    results[k] = (round(sum(data[:100]), 9), len(d), hashlib.sha1(b"".join(chunks)).hexdigest())


threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for k, r in enumerate(results):
    print("thread", k, r)

# Large buffers (the large-object path), grown and shrunk.
buf = bytearray()
for i in range(64):
    buf += bytes([i]) * 65536
print("buf", len(buf), hashlib.sha256(buf).hexdigest())
del buf[: len(buf) // 2]
print("buf-half", len(buf), hashlib.sha256(buf).hexdigest())
