# work: a long-lived process; one JSON workunit per stdin line in, one JSON result per stdout line
# out, in the same order. To fail a unit, exit with a non-zero status (the process is replaced).
import json
import random
import sys

for line in sys.stdin:
    unit = json.loads(line)
    rng = random.Random(unit["seed"])
    inside = sum(1 for _ in range(unit["samples"]) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
    print(json.dumps({"inside": inside, "samples": unit["samples"]}), flush=True)
