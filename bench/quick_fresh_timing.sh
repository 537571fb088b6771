#!/bin/bash
# Seconds of one later generation of the `quick` preset's fresh control (issue 20: the run-time estimate).
#
#   flock /tmp/rag_bench_heavy.lock bash bench/quick_fresh_timing.sh [DIR]      # DIR default data/scratch/quick-timing
#
# Data in DIR: the whole Factbook corpus (human text, held-out evaluation text and the fresh reserve come from it)
# and an index over quick's 16 countries only (the full index takes 20+ minutes on 2 cores; retrieval is a small
# part of an evaluation). The run is `quick` with generation 0 cut to 40 steps and 4 validation points (as the
# preset's later generations have), 2 generations, strategy fresh only: generation 1 of fresh then pools, trains
# its 16 steps of 16 x 512 tokens and evaluates its 205 probes as in the preset. Generation 0's weights change
# neither the cost of a training step nor the number of probes; an undertrained generation 0 may answer longer,
# so the evaluation seconds are an upper bound. The step seconds are in DIR/runs/timing/log.txt.
set -e
DIR=${1:-data/scratch/quick-timing}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python}
date -u; uptime; grep -o -E 'avx512_bf16|amx_bf16|avx2' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
[ -f "$DIR/corpora/factbook/corpus.jsonl" ] || nice -n 5 $PY corpora/factbook/build.py --out "$DIR/corpora/factbook"
[ -f "$DIR/indexes/factbook/CURRENT" ] || DIR="$DIR" nice -n 5 $PY - <<'PYEOF'
import json, os
from pathlib import Path
from rag_bench.cli import ingest
from rag_bench.config import collapse_preset
from rag_bench.index.store import load_index
from rag_bench.probes import make_probe_file
data = Path(os.environ["DIR"])
countries = set(collapse_preset("quick").countries)
rows = [json.loads(line) for line in open(data / "corpora" / "factbook" / "corpus.jsonl")]
with open(data / "quick16.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows if r["metadata"]["country_code"] in countries)
ingest(str(data / "quick16.jsonl"), data_dir=data, name="factbook", progress=False)
make_probe_file("factbook", load_index(data / "indexes" / "factbook").chunks, data / "probes" / "factbook-factbook.jsonl",
                facts_path=data / "corpora" / "factbook" / "facts.jsonl")
PYEOF
DIR="$DIR" nice -n 5 $PY - <<'PYEOF'
import json, os
from rag_bench.config import collapse_preset
q = collapse_preset("quick")
cfg = q.replace(generations=2, strategies=("fresh",), report=False,
                train=q.train.replace(max_steps=40, eval_every=10, save_every=40))
open(os.path.join(os.environ["DIR"], "quick_fresh_timing.json"), "w").write(json.dumps(cfg.to_dict(), indent=1))
PYEOF
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
nice -n 5 $PY -m rag_bench collapse --config "$DIR/quick_fresh_timing.json" --data-dir "$DIR" --run-dir "$DIR/runs/timing"
uptime; date -u
DIR="$DIR" LOAD_START="$LOAD_START" $PY - <<'PYEOF'
import json, os, subprocess
from pathlib import Path
run = Path(os.environ["DIR"]) / "runs" / "timing"
fresh = json.loads((run / "fresh" / "gen_1" / "manifest.json").read_text())
isa = sorted(set(subprocess.run(["grep", "-o", "-E", "avx512_bf16|amx_bf16|avx2", "/proc/cpuinfo"],
                                capture_output=True, text=True).stdout.split()))
out = {"command": "flock /tmp/rag_bench_heavy.lock bash bench/quick_fresh_timing.sh", "cpu_isa": isa,
       "cpu_count": os.cpu_count(), "load_average_start": float(os.environ["LOAD_START"]),
       "load_average_end": os.getloadavg()[0], "torch_threads": "run's choice (config threads=0)",
       "gen0_s_40_steps": json.loads((run / "gen_0" / "manifest.json").read_text())["timings"],
       "fresh_gen1_s": fresh["timings"], "fresh_gen1_dose": fresh["dose"],
       "fresh_gen1_pool_origin_tokens": fresh["pool"]["origin_tokens"]}
Path("bench/results/quick_fresh_timing.json").write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps(out, indent=1))
PYEOF
