-- sqlite.sql — a "real program" workload for tools/bench/run.py: `sqlite3 :memory: < sqlite.sql`.
-- SQLite allocates every page-cache page, row, string and sorter buffer with malloc (its default
-- memory subsystem), so an in-memory database exercises the allocator in a realistic mix:
-- inserts of text rows, an index build, a sort-heavy GROUP BY, updates and deletes.
PRAGMA cache_size = -65536;
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v TEXT, n INTEGER);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200000)
INSERT INTO t(k, v, n)
  SELECT printf('key-%08x', (i * 2654435761) % 4294967296),
         substr(hex(randomblob(64)), 1, 16 + (i % 97)),
         i % 1000
  FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_n ON t(n, v);
UPDATE t SET v = v || v WHERE n % 3 = 0;
DELETE FROM t WHERE n % 7 = 0;
SELECT 'BENCH workload=sqlite rows=' || count(*) || ' groups=' ||
       (SELECT count(*) FROM (SELECT n, group_concat(substr(v, 1, 4)) FROM t GROUP BY n)) ||
       ' status=' || CASE WHEN count(*) = 171400 THEN 'ok' ELSE 'MISMATCH' END
  FROM t;
