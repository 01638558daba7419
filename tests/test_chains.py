"""System tests for the chain record, the error taxonomy and question chains, on chains built by the
rule back end of `rcc_rank.data.mutators` (the same path `rcc-generate --mutator rules` takes)."""
import json, random, re

import pytest

from rcc_rank.data.chains import Chain, Mutation, word_diff, changed_spans, diff_html, read_chains, write_chains
from rcc_rank.data.chain_datasets import (chains_to_dataset, dataset_to_chains, chain_features, write_dataset_card,
                                          chain_stats)
from rcc_rank.data.errors import ERROR_TYPES, applicable_types, sample_error_type, error_type_order, tag_many
from rcc_rank.data.questions import (question_chains, read_question_chains, write_question_chains, QuestionChain)

CAPTIONS = [
    ("A young woman in a red jacket walks her two dogs through a park, then throws a ball to the left while the camera "
     "pans slowly to follow her."),
    ("A chef in a white apron chops three onions on a wooden cutting board in a bright kitchen, then slides them into "
     "a hot pan."),
    "Two children play soccer in a grassy field on a sunny afternoon while their father watches from a bench.",
    "A red car drives quickly down a mountain road and turns left at the bottom of the hill, as the camera zooms out.",
    ("A man in a blue shirt sits at a wooden desk, opens a laptop and types for a while before he stands up and leaves "
     "the office."),
    "An old man feeds four ducks beside a small lake; the ducks swim towards him and he throws bread into the water.",
]


@pytest.fixture(scope='module')
def rule_chains(tmp_path_factory):
    from rcc_rank.data.mutators import RuleMutator
    from rcc_rank.data.builder import build_chains
    out = tmp_path_factory.mktemp('chains') / 'chains.jsonl'
    items = [
        {
            'id': f'c{i:03d}',
            'caption': CAPTIONS[i % len(CAPTIONS)],
            'video': f'videos/{i}.mp4',
            'meta': {'split': 'train'},
        }
        for i in range(36)
    ]
    build_chains(items, RuleMutator(), 5, 0, out, concurrency=4)
    chains = read_chains(out)
    assert len(chains) == 36
    return chains


def test_rule_chains_are_valid_and_round_trip(rule_chains, tmp_path):
    for ch in rule_chains:
        ch.validate()
        assert ch.captions[0] == CAPTIONS[int(ch.id[1:]) % len(CAPTIONS)]
        assert len(ch.errors) == len(ch.captions) - 1 and set(ch.errors) <= set(ERROR_TYPES)
    write_chains(rule_chains, tmp_path / 'a.jsonl')
    assert read_chains(tmp_path / 'a.jsonl') == rule_chains
    # every line is one complete JSON object with the interface keys
    for line in (tmp_path / 'a.jsonl').read_text().splitlines():
        d = json.loads(line)
        assert {'id', 'video', 'captions', 'errors', 'mutations'} <= set(d)
    ds = chains_to_dataset(rule_chains)
    assert ds.features == chain_features()
    assert dataset_to_chains(ds) == rule_chains
    ds.to_parquet(tmp_path / 'a.parquet')
    import datasets
    assert dataset_to_chains(datasets.Dataset.from_parquet(str(tmp_path / 'a.parquet'))) == rule_chains


def test_truncate_every_length(rule_chains):
    for ch in rule_chains[:10]:
        for k in range(1, len(ch) + 1):
            t = ch.truncate(k).validate()
            assert t.captions == ch.captions[:k] and t.errors == ch.errors[:k - 1]


def test_recorded_spans_match_the_diffs(rule_chains):
    "A rule step's recorded `after` span is in the new caption and its `before` span was in the old one"
    for ch in rule_chains:
        for m, a, b in zip(ch.mutations, ch.captions, ch.captions[1:]):
            assert m.after.lower() in b.lower() and m.before.lower() in a.lower(), (ch.id, m)
            assert changed_spans(a, b), (ch.id, a, b)


def test_word_diff_reconstructs_both_texts():
    rng = random.Random(0)
    vocab = 'a the red blue man woman throws catches two three , . left right then before dog cat'.split()
    for _ in range(300):
        a = ' '.join(rng.choice(vocab) for _ in range(rng.randint(0, 14)))
        b = ' '.join(rng.choice(vocab) for _ in range(rng.randint(0, 14)))
        ops = word_diff(a, b)
        assert ''.join(o.text for o in ops if o.op != 'insert') == a
        assert ''.join(o.text for o in ops if o.op != 'delete').split() == b.split()
        assert all(o.op in ('equal', 'delete', 'insert') for o in ops)
        html = diff_html(a, b)
        assert re.sub(r'<del>.*?</del>\s?', '', html).replace('<ins>', '').replace('</ins>', '').split() == \
               [w for w in b.replace('&', '&amp;').split()]


def test_sampling_only_returns_applicable_types(rule_chains):
    caps = [c for ch in rule_chains[:12] for c in ch.captions]
    tag_many(caps)
    rng = random.Random(1)
    for c in caps:
        ts = applicable_types(c)
        got = sample_error_type(c, rng)
        assert got in ts
        assert sample_error_type(c, rng, exclude=ts) is None
        assert sorted(error_type_order(c, rng)) == sorted(ts)


def test_question_chains_from_rule_chains(rule_chains, tmp_path):
    qs = question_chains(rule_chains, seed=3)
    assert len(qs) == 2 * len(rule_chains)
    by_id = {c.id: c for c in rule_chains}
    for q in qs:
        q.validate()
        src = by_id[q.meta['source_chain']]
        assert len(q) == len(src) and q.video == src.video and q.meta['split'] == 'train'
        if q.kind == 'mcq':
            assert q.varies == 'response'
            # the best response is the label of the choice made from caption 0
            shown = q.meta['caption_index'][q.meta['labels'].index(q.responses[0])]
            assert shown == 0 and q.responses[0] == q.meta['answer']
        else:
            assert q.varies == 'prompt' and q.meta['caption_index'] == list(range(len(src)))[::-1]
            assert q.meta['answers'][-1] == 'yes' and set(q.meta['answers'][:-1]) == {'no'}
    spans = question_chains(rule_chains, kinds=['mcq'], choices='spans')
    used = [q for q in spans if q.prompts[0].startswith('Which of these is correct for the video?')]
    assert len(used) >= len(rule_chains) // 2   # most rule chains record usable spans; the rest fall back
    for q in used:
        src = by_id[q.meta['source_chain']]
        best = q.meta['choices'][q.meta['labels'].index(q.responses[0])]
        assert best == '; '.join(m.before for m in src.mutations)
    write_question_chains(qs, tmp_path / 'q.jsonl')
    assert read_question_chains(tmp_path / 'q.jsonl') == qs


def test_dataset_card_counts(rule_chains, tmp_path):
    from huggingface_hub import DatasetCard
    p = write_dataset_card(rule_chains, tmp_path, name='rule chains', license='mit', source='test captions')
    card = DatasetCard.load(p)
    st = chain_stats(rule_chains)
    for name, n in st['errors'].items(): assert f'| {name} | {n} |' in card.text
    assert card.data.pretty_name == 'rule chains'


def test_bad_chains_name_the_chain():
    with pytest.raises(ValueError, match=r"chain 'dup': caption 2 duplicates caption 0"):
        Chain('dup', ['A cat sits.', 'A dog sits.', 'A cat sits.'], [Mutation('object', 'cat', 'dog')] * 2).validate()
    with pytest.raises(ValueError, match=r"question chain 'q': 3 prompts for 2 responses"):
        QuestionChain('q', 'mcq', ['a', 'a', 'a'], ['(a)', '(b)']).validate()


def test_parse_workers_give_the_same_chains(rule_chains, tmp_path):
    "Captions parsed in a worker process (`Mutator.parse_workers`) give the chains the event loop's own parse gives"
    import asyncio
    from rcc_rank.data import mutators
    from rcc_rank.data.builder import abuild_chains
    from rcc_rank.data.rule_sites import _SITES
    items = [{'id': c.id, 'caption': c.captions[0], 'video': c.video, 'meta': c.meta} for c in rule_chains]
    m = mutators.RuleMutator()
    m.parse_workers = 1
    _SITES.clear()   # nothing cached here: every caption goes to the worker

    async def run():
        await abuild_chains(items, m, 5, 0, tmp_path / 'w.jsonl', concurrency=4, progress=False)
        return list(mutators._BATCHES[asyncio.get_running_loop()].values())

    batches = asyncio.run(run())
    by_id = {c.id: c for c in read_chains(tmp_path / 'w.jsonl')}   # written as they finish: the order may differ
    assert by_id == {c.id: c for c in rule_chains}
    assert [b.offload is not None for b in batches] == [True]
    assert batches[0].parsed >= len(items) and batches[0].worker_cpu_s > 0


def test_parse_pool_made_in_a_worker_process_lets_it_exit(tmp_path):
    "A parse pool made inside a multiprocessing worker (as nbdev_test runs notebooks) is shut down when it exits"
    import subprocess, sys
    from conftest import ENV
    script = tmp_path / 'nested.py'
    script.write_text(
        'from concurrent.futures import ProcessPoolExecutor\n'
        'def task(_):\n'
        '    from rcc_rank.data.mutators import parse_pool\n'
        '    return parse_pool(1).submit(len, [1, 2]).result()\n'
        "if __name__ == '__main__':\n"
        '    with ProcessPoolExecutor(1) as ex: print(list(ex.map(task, [0])))\n'
    )
    p = subprocess.run([sys.executable, str(script)], env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == '[2]', p.stderr[-2000:]
