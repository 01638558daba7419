"""System tests for rcc_rank.evaluation.evaluate that do not fit a notebook: data-parallel evaluation under
`accelerate launch` (two CPU processes) must equal a single-process run, and the `rcc-evaluate` command as a subprocess
against the local fake Claude server (judge, ARGUS, VDC, table), including a rerun served entirely from the judge
cache."""
import json, os, re, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
ROOT = Path(__file__).resolve().parent.parent

from conftest import LAUNCH_TWO
from rcc_rank.core.basics import append_jsonl, read_jsonl
from rcc_rank.data.chains import Chain, Mutation, write_chains
from rcc_rank.testing.fake_claude import FakeClaude, request_text

def _env(**kw):
    env = dict(os.environ, HF_HUB_OFFLINE='1', TOKENIZERS_PARALLELISM='false', PYTHONPATH=str(ROOT), **kw)
    env.pop('ANTHROPIC_API_KEY', None)
    env.update(kw)
    return env

def _data(tmp):
    "Video files, chains, MCQ items and caption items; 5 of each so the two shards are uneven (3 + 2)"
    from rcc_rank.testing.fixtures import write_test_video
    vids = [str(write_test_video(tmp / f'v{i}.mp4', n=8 + 2 * i, size=(56, 56))) for i in range(5)]
    caps = [
        'A red square moves right.',
        'A blue square moves right.',
        'A blue square moves left.',
        'Two blue squares move left.',
    ]
    errs = ['colour', 'direction', 'count']
    chains = [
        Chain(f'c{i}', caps[: 2 + i % 3], [Mutation(e, 'x', 'y') for e in errs[: 1 + i % 3]], video=vids[i])
        for i in range(5)
    ]
    write_chains(chains, tmp / 'chains.jsonl')
    mcq = [
        dict(
            id=f'q{i}',
            video=vids[i],
            question='Where does the square go?',
            choices=['It moves to the right side.', 'It moves to the left side.', 'It stays still.'],
            answer=i % 3,
        )
        for i in range(5)
    ]
    append_jsonl(tmp / 'mcq.jsonl', mcq)
    append_jsonl(tmp / 'gen.jsonl', [dict(id=f'g{i}', video=vids[i]) for i in range(5)])
    return chains, mcq

SCRIPT = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    from accelerate import Accelerator
    from rcc_rank.core.basics import read_jsonl
    from rcc_rank.data.chains import read_chains
    from rcc_rank.modeling.models import tiny_model
    from rcc_rank.evaluation.evaluate import rank_chains, generate_captions
    from rcc_rank.evaluation.mcq import mcq_evaluate
    from rcc_rank.evaluation.evaluate_cli import evaluate_task
    tmp = Path(sys.argv[1])
    acc = Accelerator(cpu=True)
    model, proc = tiny_model('qwen2_5_vl', seed=0)
    rk = rank_chains(model, proc, read_chains(tmp / 'chains.jsonl'), batch_size=2, num_frames=4, accelerator=acc,
                     progress=False)
    gen = generate_captions(model, proc, read_jsonl(tmp / 'gen.jsonl'), batch_size=2, num_frames=4, max_new_tokens=5,
                            accelerator=acc, progress=False)
    mq = mcq_evaluate(model, proc, read_jsonl(tmp / 'mcq.jsonl'), batch_size=2, num_frames=4, accelerator=acc,
                      progress=False)
    cli = evaluate_task('rank', model='tiny:qwen2_5_vl', data=str(tmp / 'chains.jsonl'), out=str(tmp / 'cli_rank.json'),
                       batch_size=2, num_frames=4, quiet=True)
    if acc.is_main_process:
        (tmp / 'dp.json').write_text(json.dumps(dict(n=acc.num_processes, rank=rk, gen=gen, mcq=mq)))
''')

def test_data_parallel_equals_single_process(tmp_path):
    "rank_chains, generate_captions, mcq_evaluate and `rcc-evaluate rank` on 2 CPU processes == one process"
    from rcc_rank.modeling.models import tiny_model
    from rcc_rank.evaluation.evaluate import rank_chains, generate_captions
    from rcc_rank.evaluation.mcq import mcq_evaluate
    chains, mcq = _data(tmp_path)
    (tmp_path / 'dp.py').write_text(SCRIPT)
    cmd = [
        *LAUNCH_TWO,
        str(tmp_path / 'dp.py'),
        str(tmp_path),
    ]
    p = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    dp = json.loads((tmp_path / 'dp.json').read_text())
    assert dp['n'] == 2
    model, proc = tiny_model('qwen2_5_vl', seed=0)
    rk = rank_chains(model, proc, chains, batch_size=2, num_frames=4, progress=False)
    gen = generate_captions(
        model, proc, read_jsonl(tmp_path / 'gen.jsonl'), batch_size=2, num_frames=4, max_new_tokens=5, progress=False
    )
    mq = mcq_evaluate(model, proc, mcq, batch_size=2, num_frames=4, progress=False)
    # same items, same order, same numbers
    assert [c['id'] for c in dp['rank']['per_chain']] == [c.id for c in chains]
    for a, b in zip(dp['rank']['per_chain'], rk['per_chain']):
        assert a['ntokens'] == b['ntokens'] and a['errors'] == b['errors']
        np.testing.assert_allclose(a['logps'], b['logps'], atol=1e-4)
    for k in (
        'n_chains',
        'n_pairs',
        'top1',
        'pairwise',
        'kendall_tau',
        'adjacent',
        'by_error_type',
        'top1_norm',
        'kendall_tau_norm',
    ):
        assert dp['rank'][k] == pytest.approx(rk[k]), k
    assert [g['id'] for g in dp['gen']] == [f'g{i}' for i in range(5)]
    assert [g['caption'] for g in dp['gen']] == [g['caption'] for g in gen]
    assert [m['pred'] for m in dp['mcq']['per_item']] == [m['pred'] for m in mq['per_item']]
    assert dp['mcq']['mcq_acc'] == mq['mcq_acc']
    for a, b in zip(dp['mcq']['per_item'], mq['per_item']):
        np.testing.assert_allclose(list(a['logprobs'].values()), list(b['logprobs'].values()), atol=1e-4)
    # the console-script path under accelerate wrote the same metrics once (main process)
    cli = json.loads((tmp_path / 'cli_rank.json').read_text())
    assert cli['task'] == 'rank' and cli['top1'] == pytest.approx(rk['top1']) and cli['n_chains'] == 5

def _judge_responder(body):
    "Caption scores by tool use, ARGUS lines by tool use, VDC answers and reviews as text"
    t = request_text(body)
    tools = [x['name'] for x in body.get('tools', [])]
    if 'record_scores' in tools:
        pred = re.search(r'<prediction>\n(.*?)\n</prediction>', t, re.S).group(1)
        return {
            'tool_use': {
                'name': 'record_scores',
                'input': {
                    'relevance': 9 if 'blue' in pred else 3,
                    'descriptiveness': 6,
                    'temporal_consistency': 7,
                    'fluency': 8,
                },
            }
        }
    if 'record_lines' in tools:
        src, tgt = re.findall(r'"""\n(.*?)\n"""', t, re.S)
        lines = [dict(line=s, type='dynamic-action', evidence=s if s in src else '', reasoning='',
                      verdict='entailment' if s in src else 'contradiction') for s in re.split(r'(?<=\.) ', tgt)]
        return {'tool_use': {'name': 'record_lines', 'input': {'lines': lines}}}
    if t.startswith('Detailed description'):
        return 'blue' if 'blue' in t.split('Question:')[0] else 'red'
    q = dict(re.findall(r'(Correct answer|Predicted answer): (.*)', t))
    return (
        "{'pred': 'yes', 'score': 4.6}"
        if q['Correct answer'] == q['Predicted answer']
        else "{'pred': 'no', 'score': 1}"
    )

def _cli(args, env, cwd):
    p = subprocess.run(
        [sys.executable, '-m', 'rcc_rank.evaluation.evaluate_cli', *args, '--json'],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[
        -3000:
    ]  # exit status 0: the command returns nothing (a console script exits with it)
    return p.stdout

def test_cli_judges_against_fake_claude(tmp_path):
    ("judge / argus / vdc / table through `python -m rcc_rank.evaluation.evaluate_cli`, faults injected, "
     "rerun costs no requests")
    ref = 'A man walks a blue dog. The dog jumps over a fence.'
    rows = [dict(id='a', prediction='A man walks a blue dog. The dog jumps over a fence.', reference=ref),
            dict(id='b', prediction='The dog jumps over a fence. A man walks a blue dog.', reference=ref),
            dict(id='c', prediction='A man walks a red dog.', reference=ref)]
    append_jsonl(tmp_path / 'caps.jsonl', rows)
    append_jsonl(
        tmp_path / 'vdc.jsonl',
        [dict(id=r['id'], prediction=r['prediction'], qa=[dict(question='Dog colour?', answer='blue')]) for r in rows],
    )
    cache = str(tmp_path / 'cache.jsonl')
    with FakeClaude(responder=_judge_responder) as srv:
        env = _env(ANTHROPIC_BASE_URL=srv.base_url, ANTHROPIC_API_KEY='test-key', RCC_RANK_HOME=str(tmp_path / 'home'))
        srv.inject('429', times=2)
        srv.inject('529')
        srv.inject('malformed')
        common = ['--cache', cache, '--judge', 'claude:claude-fake', '--quiet']
        j = json.loads(
            _cli(
                ['judge', '--data', str(tmp_path / 'caps.jsonl'), '--out', str(tmp_path / 'judge.json'), *common],
                env,
                tmp_path,
            )
        )
        assert j['relevance'] == pytest.approx((9 + 9 + 3) / 3) and j['n_items'] == 3
        assert srv.pending == []  # every injected fault was served and survived
        a = json.loads(
            _cli(
                ['argus', '--data', str(tmp_path / 'caps.jsonl'), '--out', str(tmp_path / 'argus.json'), *common],
                env,
                tmp_path,
            )
        )
        # a: in order -> Cost-H 0; b: swapped actions -> 0.1/0.1 = 1; c: one contradicted line -> 1/1 = 1
        assert [x['cost_h'] for x in json.loads((tmp_path / 'argus.json').read_text())['per_item']] == pytest.approx(
            [0, 1, 1]
        )
        assert a['cost_h'] == pytest.approx(2 / 3) and a['n_failed'] == 0
        v = json.loads(
            _cli(
                ['vdc', '--data', str(tmp_path / 'vdc.jsonl'), '--out', str(tmp_path / 'vdc.json'), *common],
                env,
                tmp_path,
            )
        )
        vo = json.loads(
            _cli(['vdc', '--rule', 'official', '--data', str(tmp_path / 'vdc.jsonl'), *common], env, tmp_path)
        )
        # lmms-eval (v0.3.0-v0.7.2 lmms_eval/tasks/vdc/utils.py line 280 adds the score as it is): 4.6 for a and b,
        # 1 for c -> score 3.4, acc 2/3; official (rese1f/aurora@2bf68d5 process_vdc_result.py line 262): 4.6,
        # c dropped (accuracy 0)
        assert (v['vdc_score'], v['vdc_acc'], v['n_videos']) == (pytest.approx(10.2 / 3), pytest.approx(2 / 3), 3)
        assert (vo['vdc_score'], vo['vdc_acc'], vo['n_videos'], vo['n_dropped']) == (pytest.approx(4.6), 1.0, 2, 1)
        n = len(srv.requests)
        from rcc_rank.evaluation.evaluate_cli import (evaluate_task)  # reruns in-process (no interpreter start-up)
        os.environ.update(ANTHROPIC_BASE_URL=srv.base_url, ANTHROPIC_API_KEY='test-key')
        try:
            for task in ('judge', 'argus', 'vdc'):
                again = evaluate_task(
                    task,
                    data=str(tmp_path / ('vdc.jsonl' if task == 'vdc' else 'caps.jsonl')),
                    cache=cache,
                    judge='claude:claude-fake',
                    quiet=True,
                )
                if task == 'judge': assert again['relevance'] == j['relevance']
        finally: del os.environ['ANTHROPIC_BASE_URL'], os.environ['ANTHROPIC_API_KEY']
        assert len(srv.requests) == n   # reruns are served from the append-only cache
    md = _cli(['table', '--data', ','.join(str(tmp_path / f) for f in ('judge.json', 'argus.json', 'vdc.json')),
               '--out', str(tmp_path / 'table')], env, tmp_path)
    csv = (tmp_path / 'table.csv').read_text().splitlines()
    assert len(csv) == 4 and csv[0].startswith('run,task,relevance') and 'cost_h' in csv[0] and 'vdc_score' in csv[0]
    assert md.count('\n| ') >= 3
    assert 'test-key' not in (tmp_path / 'cache.jsonl').read_text()

def test_official_scoring_rules(tmp_path):
    "TempCompass, VDC and ARGUS averaging on inputs in the official layouts; expected values read off the official code"
    from rcc_rank.evaluation.evaluate import vdc_aggregate, argus_average
    from rcc_rank.evaluation.mcq import tempcompass_records, tempcompass_accuracy

    # TempCompass predictions file (llyx97/TempCompass@c2ec41e predictions/<model>/caption_matching.json layout):
    # replies with a leading space, as Reka-core's are; eval_caption_matching.py line 61 strips them, lmms-eval
    # (utils.py line 233) does not
    q = "Which caption matches the video better?\nCaption A: The man is dribbling.\nCaption B: The man is dunking."
    q2 = "Which description is a more suitable match for the video?\nOption 1: It speeds up.\nOption 2: It slows down."
    preds = {'v1': {'action': [dict(question=q, answer='Caption B: The man is dunking.',
                                    prediction=' Caption B: The man is dunking.'),
                               dict(question=q2, answer='Option 2: It slows down.', prediction=' 2')]},
             'v2': {'speed': [dict(question=q2, answer='Option 1: It speeds up.', prediction=None),  # 56-59: rated 0
                              dict(question=q, answer='Caption A: The man is dribbling.', response='A')]}}  # 53-54
    (tmp_path / 'cm.json').write_text(json.dumps(preds))
    recs = tempcompass_records(tmp_path / 'cm.json')
    tc, lm = tempcompass_accuracy(recs), tempcompass_accuracy(recs, 'lmms-eval')
    assert (tc['tempcompass_acc'], tc['tempcompass/action'], tc['tempcompass/speed'], tc['n_unmatched']) == (
        0.75,
        1.0,
        0.5,
        1,
    )
    assert (lm['tempcompass_acc'], lm['n_unmatched']) == (0.25, 3)
    (tmp_path / 'empty.json').write_text('')
    assert tempcompass_accuracy(tempcompass_records(tmp_path / 'empty.json'))['n_items'] == 0
    # VDC: lmms-eval v0.3.0-v0.7.2 keeps 4.8 (line 280) and skips a review without 'score' (line 272); aurora@2bf68d5
    # accepts (key, value) pairs through dict.update (line 250) and aborts a video whose review lacks a key (line 255)
    pv = {
        'a': ["{'pred': 'yes', 'score': 4.8}", "{'pred': 'no'}"],
        'b': ["[('pred', 'yes'), ('score', 3)]", "{'pred': 'no', 'score': 1}"],
    }
    v, vo = vdc_aggregate(pv), vdc_aggregate(pv, 'official')
    # lmms-eval: a = 4.8 (its 2nd review skipped), b = 1 (its pairs review skipped: 'pred' in a list is false)
    # -> 2.9, acc 0.5
    assert (v['vdc_score'], v['vdc_acc'], v['n_skipped_reviews'], v['failed']) == (pytest.approx(2.9), 0.5, 2, [])
    # official: a aborted (KeyError 'score'), b = (3 + 1) / 2, acc 0.5
    assert vdc_aggregate({'a': ["{'pred': 'yes'}"]})['failed'] == ['a']   # lmms-eval divides by zero here; we record it
    assert (vo['vdc_score'], vo['vdc_acc'], vo['dropped']) == (2.0, 0.5, ['a'])
    # ARGUS (JARVVVIS/argus@2f21672 compute_metrics.py): per direction, NaN skipped by pandas' mean (lines 396-397)
    av = argus_average(
        [dict(cost_h=0.5, cost_o=0.2), dict(cost_h=float('nan'), cost_o=0.4), dict(error_h='headings', cost_o=0.6)]
    )
    assert (av['cost_h'], av['cost_o'], av['failed_h'], av['nan_h']) == (0.5, pytest.approx(0.4), [2], [1])
