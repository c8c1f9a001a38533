"""``make bench``: optimizer step time and memory against the bandwidth floor and torch, and grading throughput."""
