"""A Python workload for the real-programs stress test: json, re, sorting, threads. Deterministic
output (a digest of everything computed), so runs with and without the preload can be compared."""
import hashlib
import json
import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor

rng = random.Random(2026)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 12)))
         for _ in range(20000)]
records = [{"id": i, "name": words[i % len(words)], "tags": words[i % 97: i % 97 + 5],
            "score": rng.random(), "nested": {"k": [rng.randint(0, 999) for _ in range(8)]}}
           for i in range(30000)]
digest = hashlib.sha256()

text = json.dumps(records, sort_keys=True)
back = json.loads(text)
assert back == records
digest.update(text.encode())

pattern = re.compile(r'"name": "([a-z]{3,6})"')
names = pattern.findall(text)
digest.update(" ".join(sorted(set(names))).encode())
digest.update(re.sub(r"[aeiou]+", "_", " ".join(words)).encode())

ordered = sorted(records, key=lambda r: (r["name"], -r["score"]))
digest.update(",".join(str(r["id"]) for r in ordered).encode())
big = [rng.random() for _ in range(300000)]
big.sort()
digest.update(repr(big[::1000]).encode())

lock = threading.Lock()
shared = {}


def work(k):
    local = {}
    for i in range(4000):
        s = "%d-%s" % (i * k, words[(i * k) % len(words)])
        local[s] = hashlib.md5(s.encode()).hexdigest()
    blob = json.dumps(local, sort_keys=True)
    with lock:
        shared[k] = hashlib.sha1(blob.encode()).hexdigest()
    return len(blob)


with ThreadPoolExecutor(max_workers=8) as pool:
    sizes = list(pool.map(work, range(1, 33)))
digest.update(repr(sizes).encode())
digest.update(repr(sorted(shared.items())).encode())
print("records", len(records), "names", len(names), "threads", len(shared))
print(digest.hexdigest())
