"""How fast applicability is decided: captions per second for spaCy one by one, spaCy batched (`tag_many`)
and the keyword-only mode, on one core. Prints one JSON object."""
import json, os, time, random
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
    t = time.perf_counter()
    fn(caps)
    return round(len(caps) / (time.perf_counter() - t), 1)

t0 = time.perf_counter()
get_nlp()
load_s = round(time.perf_counter() - t0, 2)
n = 300
out = {'n_captions': n, 'spacy_load_s': load_s, 'pipeline': get_nlp().meta['name'],
       'spacy_one_by_one_per_s': rate(lambda cs: [applicable_types(c) for c in cs], captions(n, 1)),
       'spacy_tag_many_per_s': rate(lambda cs: (tag_many(cs), [applicable_types(c) for c in cs]), captions(n, 2)),
       'keywords_per_s': rate(lambda cs: [applicable_types(c, tagger='keywords') for c in cs], captions(n, 3)),
       'load_average': os.getloadavg()[0]}
print(json.dumps(out))
