# split: reads the TaskInstance's input as one JSON line on stdin; prints one JSON workunit per line.
# tydra stops reading while too many units wait in the cluster, so print blocks: that is the
# backpressure, nothing to do here but flush each line.
import json
import sys

spec = json.loads(sys.stdin.readline() or "null") or {}
for seed in range(spec.get("units", 100)):
    print(json.dumps({"seed": seed, "samples": spec.get("samples", 20000)}), flush=True)
