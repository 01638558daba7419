#!/usr/bin/env python3
"""Chain-generation throughput: the Claude path against the fake server, and the rule back end.

    python bench/generate.py                       # 200 chains x length 6, concurrency 1, 8, 64
    python bench/generate.py --c1-chains 24        # fewer chains for concurrency 1 (200 x 5 x 0.2 s = 200 s otherwise)

Claude path: the real `anthropic.AsyncAnthropic` client against `rcc_rank.testing.fake_claude.FakeClaude` with a fixed
latency per request, the server in its own process (as the real API is elsewhere; in one process the server's
threads would compete with the generator for the GIL). The ideal wall time is `steps x latency x ceil(chains / concurrency)` (steps = length - 1);
the ratio is measured / ideal. The mutator's applicable types are the rule back end's (so the fake, which answers
with rule edits, never refuses and every chain takes exactly `steps` requests unless it runs out of sites).
Client CPU is the process CPU time of the run itself; the one-time setup (importing the SDK, loading the tagger,
building the rule tables) is reported apart as `setup_cpu_s`. Of it, `applicable_cpu_ms_per_request` is the part spent
deciding which types apply (the spaCy parse of each new caption, batched across the chains in flight, and the rules'
fit checks) and `other_cpu_ms_per_request` the rest (the SDK, its HTTP stack, the builder); `parse_batch_mean` is the
mean number of captions parsed in one batch. `--parse-workers N` parses in N worker processes
(`Mutator.parse_workers`): `worker_cpu_ms_per_request` is their CPU, `total_cpu_ms_per_request` the run's and theirs.
`--http auto|httpx|aiohttp` picks the SDK's transport (auto, the package's default: aiohttp when installed);
`transport` names the client class it gave. Captions are parsed a sentence at a time (`errors.parse_docs`): a step
re-parses the sentence its edit changed. `--applicable spacy|keywords` uses the Claude mutator's own check (the
taxonomy's rules with that tagger, batched as in a real run) instead; the fake then refuses the types its rules cannot
apply, so a chain may take more requests.
The fake server's own CPU per request (`server_cpu_ms_per_request`) shares this machine's cores with the client.
Rule back end: chains per second, by wall time and by CPU time of this (single-threaded) process.
Prints one JSON object.
"""
import os, sys, json, math, time, asyncio, argparse, tempfile, random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('HF_HUB_OFFLINE', '1')

from rcc_rank.core.basics import read_jsonl
from rcc_rank.data.chains import Chain
from rcc_rank.data import mutators, errors
from rcc_rank.data.mutators import RuleMutator, rule_types
from rcc_rank.data.backends import ClaudeMutator, sdk_http_client
from rcc_rank.data.builder import abuild_chains

_SUBJ = ['A man', 'A woman', 'Two boys', 'Three girls', 'An elderly man', 'A young woman']
_COL = ['red', 'blue', 'green', 'yellow', 'white', 'black']
_OBJ = ['ball', 'bicycle', 'cup', 'guitar', 'box', 'book']
_SCENE = ['park', 'kitchen', 'beach', 'street', 'garden', 'office']
_ACT = ['walks', 'runs', 'sits', 'stands', 'jumps']

def items(n, seed=0):
    rng = random.Random(seed)
    return [
        {
            'id': f'b{i:05d}',
            'caption': (
                f'{rng.choice(_SUBJ)} in a {rng.choice(_COL)} jacket {rng.choice(_ACT)} across a small {rng.choice(_SCENE)} holding a '
                f'{rng.choice(_COL)} {rng.choice(_OBJ)}. A brown dog {rng.choice(_ACT)} next to a wooden bench while {rng.randint(2, 9)} '
                f'birds fly above. Then the camera pans left as a tall man opens a red door on the right.'
            ),
        }
        for i in range(n)
    ]

def _serve(latency, q, stop):
    "Child process: run the fake server until told to stop, then report how many requests it answered"
    from rcc_rank.testing.fake_claude import FakeClaude
    from rcc_rank.testing.responders import rule_responder
    with FakeClaude(responder=rule_responder(), latency=latency) as srv:
        q.put(srv.base_url)
        c = time.process_time()
        stop.wait()
        q.put((len(srv.requests), time.process_time() - c))

def _timed(fn, acc):
    "`fn`, adding the process CPU time of each call to `acc[0]`"
    def f(*a, **kw):
        c = time.process_time()
        try: return fn(*a, **kw)
        finally: acc[0] += time.process_time() - c
    return f

async def claude_run(n, length, concurrency, latency, tmp, base_url, http='httpx', applicable='rules', workers=0):
    c0 = time.process_time()
    import anthropic
    rm = RuleMutator()
    rm.parse_workers = workers
    hc = sdk_http_client(http)   # the SDK's transport, as `ClaudeMutator(http=...)` builds it
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key='bench-key', max_retries=2, timeout=60, http_client=hc)
    m = ClaudeMutator(
        model='claude-fake',
        client=client,
        types=rule_types(),
        tagger='keywords' if applicable == 'rules' else applicable,
    )
    m.parse_workers = workers
    if workers: mutators.parse_pool(workers).submit(len, []).result()   # the workers start (and load spaCy) now
    app_cpu, own = [0.0], errors.applicable_types
    if applicable == 'rules': m.applicable, m.aapplicable = _timed(rm.applicable, app_cpu), rm.aapplicable
    else: errors.applicable_types = _timed(own, app_cpu)   # the mutator's own check stays batched, as in a real run
    try: return await _claude_timed(n, length, concurrency, latency, tmp, http, applicable, workers, m, client, c0, app_cpu)
    finally: errors.applicable_types = own

async def _claude_timed(n, length, concurrency, latency, tmp, http, applicable, workers, m, client, c0, app_cpu):
    m.applicable(Chain('warm-up', [items(1, seed=99)[0]['caption']], []))   # loads the tagger once, as any run does
    setup_cpu, app_cpu[0] = time.process_time() - c0, 0.0
    out = Path(tmp)/f'claude-c{concurrency}.jsonl'
    t, c = time.perf_counter(), time.process_time()
    s = await abuild_chains(items(n), m, length=length, seed=0, out_path=out, concurrency=concurrency, progress=False)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    await client.close()
    steps, requests = length - 1, max(1, s['steps'] + s['invalid'] + s['refusals'])
    ideal = steps * latency * math.ceil(n / concurrency)
    mine = mutators._BATCHES.get(asyncio.get_running_loop(), {}).values()   # this run's batched parses
    app = app_cpu[0] + sum(b.cpu_s for b in mine)
    worker = sum(b.worker_cpu_s for b in mine)
    batches, parsed = sum(b.batches for b in mine), sum(b.parsed for b in mine)
    return {
        'chains': n,
        'length': length,
        'concurrency': concurrency,
        'latency_s': latency,
        'http': http,
        'transport': type(client._client).__name__,
        'applicable': applicable,
        'wall_s': round(wall, 3),
        'ideal_s': round(ideal, 3),
        'ratio': round(wall / ideal, 3),
        'client_cpu_s': round(cpu, 3),
        'setup_cpu_s': round(setup_cpu, 3),
        'client_cpu_ms_per_request': round(1000 * cpu / requests, 2),
        'applicable_cpu_ms_per_request': round(1000 * app / requests, 2),
        'other_cpu_ms_per_request': round(1000 * (cpu - app) / requests, 2),
        'parse_workers': workers,
        'worker_cpu_ms_per_request': round(1000 * worker / requests, 2),
        'total_cpu_ms_per_request': round(1000 * (cpu + worker) / requests, 2),
        'parse_batch_mean': round(parsed / batches, 1) if batches else None,
        'steps': s['steps'],
        'steps_ideal': n * steps,
        'finished': s['finished'],
        'ended_early': s['ended_early'],
        'invalid': s['invalid'],
        'refusals': s['refusals'],
    }

def rules_run(n, length, tmp):
    out = Path(tmp)/'rules.jsonl'
    its = items(n, seed=1)
    t, c = time.perf_counter(), time.process_time()
    s = asyncio.run(
        abuild_chains(its, RuleMutator(), length=length, seed=0, out_path=out, concurrency=1, progress=False)
    )
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert len(read_jsonl(out)) == n
    return {'chains': n, 'length': length, 'steps': s['steps'], 'wall_s': round(wall, 3), 'cpu_s': round(cpu, 3),
            'chains_per_s_wall': round(n / wall, 1), 'chains_per_cpu_s': round(n / cpu, 1)}

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--chains', type=int, default=200)
    ap.add_argument('--length', type=int, default=6)
    ap.add_argument('--latency', type=float, default=0.2)
    ap.add_argument('--concurrency', type=int, nargs='+', default=[1, 8, 64])
    ap.add_argument('--c1-chains', type=int, default=None, help='chains for concurrency 1 (default: --chains)')
    ap.add_argument('--rule-chains', type=int, default=1000)
    ap.add_argument(
        '--applicable',
        choices=['rules', 'spacy', 'keywords'],
        default='rules',
        help="which types apply: the rule back end's (default; the fake never refuses) or the Claude mutator's own with that tagger",
    )
    ap.add_argument('--http', choices=['auto', 'httpx', 'aiohttp'], default='auto',
                    help="the SDK's transport: auto (the package's default: aiohttp when installed), httpx or aiohttp")
    ap.add_argument('--parse-workers', type=int, default=0,
                    help='parse captions in this many worker processes (0: on the event loop, the default)')
    a = ap.parse_args()
    res = {
        'claude_fake': [],
        'rules': None,
        'cpu_count': os.cpu_count(),
        'loadavg_before': [round(x, 2) for x in os.getloadavg()],
    }
    import multiprocessing as mp
    ctx = mp.get_context('spawn')
    with tempfile.TemporaryDirectory() as tmp:
        for c in a.concurrency:
            q, stop = ctx.Queue(), ctx.Event()
            server = ctx.Process(target=_serve, args=(a.latency, q, stop), daemon=True)
            server.start()
            base_url = q.get(timeout=120)
            n = a.c1_chains if (c == 1 and a.c1_chains) else a.chains
            r = asyncio.run(claude_run(n, a.length, c, a.latency, tmp, base_url, a.http, a.applicable, a.parse_workers))
            stop.set()
            r['server_requests'], server_cpu = q.get(timeout=60)
            r['server_cpu_ms_per_request'] = round(1000 * server_cpu / max(1, r['server_requests']), 2)
            server.join(10)
            res['claude_fake'].append(r)
            print(json.dumps(r), file=sys.stderr)
        res['rules'] = rules_run(a.rule_chains, a.length, tmp)
    res['loadavg_after'] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(res))
