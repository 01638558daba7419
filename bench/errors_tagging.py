"""How fast applicability is decided: captions per second for spaCy one by one, spaCy batched (`tag_many`)
and the keyword-only mode, on one core; and the parse of one chain step (64 chains whose captions of 3 or 12 sentences
each change one word a step), whole captions (`nlp.pipe`) against a sentence at a time (`errors.parse_docs`, which
re-parses only the changed sentence), in ms a caption, median of 3. Prints one JSON object."""
import json, os, time, random, statistics
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch

torch.set_num_threads(1)
from rcc_rank.data import errors
from rcc_rank.data.errors import applicable_types, tag_many, get_nlp

WORDS = ('man woman dog ball red blue two three throws catches walks left right park kitchen then slowly '
         'camera pans wooden table while quickly into room').split()

def captions(n, seed):
    rng = random.Random(seed)
    return [
        ' '.join(['A'] + [rng.choice(WORDS) for _ in range(rng.randint(15, 35))]) + f' ({seed}-{i}).' for i in range(n)
    ]

def rate(fn, caps):
    errors._CACHE.clear()
    errors._APPLICABLE.clear()
    errors._DOCS.clear()
    t = time.perf_counter()
    fn(caps)
    return round(len(caps) / (time.perf_counter() - t), 1)

def chain_steps(n_sent, chains=64, steps=5, seed=4):
    "Captions of `n_sent` sentences, and each chain's next captions: one word of one sentence changed a step"
    rng = random.Random(seed)
    sent = lambda: ' '.join(['The'] + [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]) + '.'
    out = []
    for _ in range(chains):
        cap = [sent() for _ in range(n_sent)]
        chain = [' '.join(cap)]
        for _ in range(steps):
            i = rng.randrange(n_sent)
            words = cap[i].split()
            words[rng.randrange(1, len(words) - 1)] = rng.choice(WORDS)
            cap[i] = ' '.join(words)
            chain.append(' '.join(cap))
        out.append(chain)
    return [[c[k] for c in out] for k in range(steps + 1)]   # one batch of captions per step

def cpu_s(fn):
    "Process CPU seconds of `fn()`"
    t = time.process_time()
    fn()
    return time.process_time() - t

def step_ms(n_sent):
    "ms a caption to parse the captions of chain steps 1.., whole (`nlp.pipe`) and a sentence at a time (`parse_docs`)"
    nlp, steps = get_nlp(), chain_steps(n_sent)
    def whole(): return cpu_s(lambda: [list(nlp.pipe(caps, batch_size=64)) for caps in steps[1:]])
    def sentences():
        errors._DOCS.clear()
        errors.parse_docs(steps[0], nlp)   # the chains' first captions, parsed before the steps
        return cpu_s(lambda: [errors.parse_docs(caps, nlp) for caps in steps[1:]])
    per = 1000 / sum(len(c) for c in steps[1:])
    w, s = statistics.median([whole() for _ in range(3)]), statistics.median([sentences() for _ in range(3)])
    return {f'step_ms_whole_{n_sent}s': round(w * per, 3), f'step_ms_sentences_{n_sent}s': round(s * per, 3)}

t0 = time.perf_counter()
get_nlp()
load_s = round(time.perf_counter() - t0, 2)
n = 300
out = {'n_captions': n, 'spacy_load_s': load_s, 'pipeline': get_nlp().meta['name'],
       'spacy_one_by_one_per_s': rate(lambda cs: [applicable_types(c) for c in cs], captions(n, 1)),
       'spacy_tag_many_per_s': rate(lambda cs: (tag_many(cs), [applicable_types(c) for c in cs]), captions(n, 2)),
       'keywords_per_s': rate(lambda cs: [applicable_types(c, tagger='keywords') for c in cs], captions(n, 3)),
       **{k: v for n_sent in (3, 12) for k, v in step_ms(n_sent).items()},
       'load_average': os.getloadavg()[0]}
print(json.dumps(out))
