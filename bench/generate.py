#!/usr/bin/env python3
"""Chain-generation throughput: the Claude path against the fake server, and the rule back end.

    python bench/generate.py                       # 200 chains x length 6, concurrency 1, 8, 64
    python bench/generate.py --c1-chains 24        # fewer chains for concurrency 1 (200 x 5 x 0.2 s = 200 s otherwise)

Claude path: the real `anthropic.AsyncAnthropic` client against `rcc_rank.fake_claude.FakeClaude` with a fixed
latency per request. The ideal wall time is `steps x latency x ceil(chains / concurrency)` (steps = length - 1);
the ratio is measured / ideal. The mutator's applicable types are the rule back end's (so the fake, which answers
with rule edits, never refuses and every chain takes exactly `steps` requests unless it runs out of sites).
Rule back end: chains per second, by wall time and by CPU time of this (single-threaded) process.
Prints one JSON object.
"""
import os, sys, json, math, time, asyncio, argparse, tempfile, random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('HF_HUB_OFFLINE', '1')

from rcc_rank.core import read_jsonl
from rcc_rank.fake_claude import FakeClaude
from rcc_rank.degrade import ClaudeMutator, RuleMutator, abuild_chains, rule_responder, rule_types

_SUBJ = ['A man', 'A woman', 'Two boys', 'Three girls', 'An elderly man', 'A young woman']
_COL = ['red', 'blue', 'green', 'yellow', 'white', 'black']
_OBJ = ['ball', 'bicycle', 'cup', 'guitar', 'box', 'book']
_SCENE = ['park', 'kitchen', 'beach', 'street', 'garden', 'office']
_ACT = ['walks', 'runs', 'sits', 'stands', 'jumps']

def items(n, seed=0):
    rng = random.Random(seed)
    return [{'id': f'b{i:05d}', 'caption': (
        f'{rng.choice(_SUBJ)} in a {rng.choice(_COL)} jacket {rng.choice(_ACT)} across a small {rng.choice(_SCENE)} holding a '
        f'{rng.choice(_COL)} {rng.choice(_OBJ)}. A brown dog {rng.choice(_ACT)} next to a wooden bench while {rng.randint(2, 9)} '
        f'birds fly above. Then the camera pans left as a tall man opens a red door on the right.')} for i in range(n)]

async def claude_run(n, length, concurrency, latency, tmp):
    rm = RuleMutator()
    with FakeClaude(responder=rule_responder(), latency=latency) as srv:
        m = ClaudeMutator(model='claude-fake', client=srv.async_client(max_retries=2, timeout=60), types=rule_types(), tagger='keywords')
        m.applicable = rm.applicable
        out = Path(tmp)/f'claude-c{concurrency}.jsonl'
        t = time.perf_counter()
        s = await abuild_chains(items(n), m, length=length, seed=0, out_path=out, concurrency=concurrency, progress=False)
        wall = time.perf_counter() - t
        nreq = len(srv.requests)
    steps = length - 1
    ideal = steps * latency * math.ceil(n / concurrency)
    return {'chains': n, 'length': length, 'concurrency': concurrency, 'latency_s': latency, 'wall_s': round(wall, 3),
            'ideal_s': round(ideal, 3), 'ratio': round(wall / ideal, 3), 'requests': nreq, 'requests_ideal': n * steps,
            'finished': s['finished'], 'ended_early': s['ended_early'], 'invalid': s['invalid'], 'refusals': s['refusals']}

def rules_run(n, length, tmp):
    out = Path(tmp)/'rules.jsonl'
    its = items(n, seed=1)
    t, c = time.perf_counter(), time.process_time()
    s = asyncio.run(abuild_chains(its, RuleMutator(), length=length, seed=0, out_path=out, concurrency=1, progress=False))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert len(read_jsonl(out)) == n
    return {'chains': n, 'length': length, 'steps': s['steps'], 'wall_s': round(wall, 3), 'cpu_s': round(cpu, 3),
            'chains_per_s_wall': round(n / wall, 1), 'chains_per_cpu_s': round(n / cpu, 1)}

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--chains', type=int, default=200); ap.add_argument('--length', type=int, default=6)
    ap.add_argument('--latency', type=float, default=0.2)
    ap.add_argument('--concurrency', type=int, nargs='+', default=[1, 8, 64])
    ap.add_argument('--c1-chains', type=int, default=None, help='chains for concurrency 1 (default: --chains)')
    ap.add_argument('--rule-chains', type=int, default=1000)
    a = ap.parse_args()
    res = {'claude_fake': [], 'rules': None, 'cpu_count': os.cpu_count(), 'loadavg': os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        for c in a.concurrency:
            n = a.c1_chains if (c == 1 and a.c1_chains) else a.chains
            res['claude_fake'].append(asyncio.run(claude_run(n, a.length, c, a.latency, tmp)))
            print(json.dumps(res['claude_fake'][-1]), file=sys.stderr)
        res['rules'] = rules_run(a.rule_chains, a.length, tmp)
    print(json.dumps(res))
