"""Published dataset and benchmark formats (`rcc_rank.data.sources`, `rcc_rank.evaluation.benchmarks`) read from small
fixtures in their published layouts, and the commands built on them: `rcc-generate --source` (PE-Video with recaptioning
and a dataset card, MSR-VTT with every human reference reaching `recaption`, SSv2 question chains),
`rcc-evaluate make-lfmcqa` then `mcq` against the local fake Claude server and a tiny model, and
`rcc-evaluate tempcompass --benchmark`."""
import json, math
from pathlib import Path

import pytest

from rcc_rank.core.basics import read_jsonl
from rcc_rank.testing.fake_claude import FakeClaude, request_text
from rcc_rank.testing.responders import rule_responder
from rcc_rank.recipes.generate import generate_command
from rcc_rank.data.sources import load_source
from rcc_rank.data.source_rows import SourceError
from rcc_rank.testing.fixtures import write_pe_video_fixture, write_msr_vtt_fixture, write_ssv2_fixture
from rcc_rank.evaluation.benchmarks import load_benchmark
from rcc_rank.testing.fixtures import write_vdc_fixture, write_argus_fixture, write_tempcompass_fixture


def test_sources_read_each_published_layout(tmp_path):
    import datasets
    pe = load_source('pe-video', write_pe_video_fixture(tmp_path/'PE-Video'), cache_dir=tmp_path/'cache')
    assert sorted(r['split'] for r in pe) == ['test', 'train', 'train'] and all(Path(r['video']).is_file() for r in pe)
    # datasets' own webdataset builder (what load_dataset('facebook/PE-Video') runs) gives the same rows
    ds = datasets.load_dataset(
        'webdataset',
        data_files={'train': str(tmp_path / 'PE-Video' / 'train' / '*.tar')},
        cache_dir=str(tmp_path / 'hf'),
    )
    hf = load_source('pe-video', ds, cache_dir=tmp_path/'cache')
    assert {(r['id'], r['caption'], r['video']) for r in hf} == {
        (r['id'], r['caption'], r['video']) for r in pe if r['split'] == 'train'
    }
    msr = load_source('msr-vtt', write_msr_vtt_fixture(tmp_path/'MSRVTT', captions_per_video=4))
    assert [len(r['captions']) for r in msr] == [4, 4, 4] and {r['split'] for r in msr} == {'train', 'validate', 'test'}
    ss = load_source('ssv2', write_ssv2_fixture(tmp_path/'ssv2'))
    assert ss[0]['caption'] == 'Putting a cup onto a book' and ss[0]['meta']['placeholders'] == ['a cup', 'a book']
    # an HF Video-style value is written to a file, never stringified; a broken row names file, row and field
    flat = datasets.Dataset.from_list(
        [
            {
                'video_id': 'v1',
                'caption': 'a dog runs',
                'video': {'bytes': Path(msr[0]['video']).read_bytes(), 'path': None},
            }
        ]
    )
    (row,) = load_source('msr-vtt', flat, cache_dir=tmp_path/'cache')
    assert Path(row['video']).is_file() and "bytes" not in row['video']
    f = tmp_path/'MSRVTT'/'test_videodatainfo.json'
    d = json.loads(f.read_text())
    d['sentences'][0].pop('caption')
    f.write_text(json.dumps(d))
    with pytest.raises(SourceError, match=r"test_videodatainfo.json: row 'sentences\[0\]': field 'caption'"):
        load_source('msr-vtt', tmp_path / 'MSRVTT')


def test_benchmarks_read_each_published_layout(tmp_path):
    vdc = load_benchmark('vdc', write_vdc_fixture(tmp_path/'VDC', n=2))
    assert len(vdc) == 10 and {it['dim'] for it in vdc} == {'short', 'detailed', 'background', 'main_object', 'camera'}
    assert all(it['qa'] and Path(it['video']).is_file() for it in vdc)
    ag = load_benchmark('argus', write_argus_fixture(tmp_path/'argus', n=3))
    assert len(ag) == 3 and all(Path(it['video']).stem == it['id'] and it['reference'] for it in ag)
    tc = load_benchmark('tempcompass', write_tempcompass_fixture(tmp_path/'TempCompass'))
    assert [it['dim'] for it in tc] == ['direction', 'direction', 'speed', 'direction']
    assert all(it['answer'] in it['question'].split('\n')[1:] for it in tc)
    (tmp_path/'VDC'/'VDCScore_qa'/'camera.jsonl').write_text('{"vdc_clip_0": [{"question": "q"}]}\n')
    with pytest.raises(SourceError, match=r"camera.jsonl: row 'vdc_clip_0'"): load_benchmark('vdc', tmp_path/'VDC')


def _responder():
    rules = rule_responder()
    def respond(body):
        text = request_text(body)
        if 'Write the detailed caption.' in text:
            refs = [t.split('</caption>')[0] for t in text.split('<caption>')[1:]]
            return (
                'A detailed account: '
                + ' Also, '.join(r.rstrip('.') for r in refs)
                + '. A red square moves to the right.'
            )
        return rules(body)
    return respond


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setenv('ANTHROPIC_API_KEY', 'sk-ant-test-not-a-key')
    monkeypatch.setenv('RCC_RANK_HOME', str(tmp_path/'home'))
    with FakeClaude(responder=_responder()) as srv:
        monkeypatch.setenv('ANTHROPIC_BASE_URL', srv.base_url)
        yield srv


def test_generate_pe_video_with_recaption_and_card(tmp_path, fake, monkeypatch, capsys):
    import datasets, huggingface_hub
    pe = write_pe_video_fixture(tmp_path/'PE-Video')
    kw = dict(
        mutator='claude',
        model='claude-fake',
        tagger='keywords',
        recaption=True,
        length=3,
        num_frames=2,
        quiet=True,
        dataset=str(tmp_path / 'rcc-pvd'),
    )
    s = generate_command(str(tmp_path/'chains.jsonl'), source=f'pe-video:{pe}', **kw)
    assert s['finished'] == 3 and s['splits'] == {'test': 1, 'train': 2}
    chains = read_jsonl(tmp_path/'chains.jsonl')
    assert all(c['captions'][0].startswith('A detailed account: ') and len(c['captions']) == 3 for c in chains)
    dd = datasets.load_from_disk(str(tmp_path/'rcc-pvd'))
    assert {k: len(v) for k, v in dd.items()} == {'test': 1, 'train': 2}
    card = (tmp_path/'rcc-pvd'/'README.md').read_text()
    assert '| test | 1 |' in card and '| 3 | 3 |' in card and '"recaption": true' in card and 'error type' in card
    # --push_to_hub is real huggingface_hub code; here it stops before the network
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(RuntimeError, match="cannot push to 'me/rcc-pvd'"):
        generate_command(str(tmp_path/'chains.jsonl'), source=f'pe-video:{pe}', push_to_hub='me/rcc-pvd', **kw)
    assert (
        sum('Write the detailed caption.' in request_text(r) for r in fake.requests) == 3
    )  # the rerun resumed: no new recaptions


def test_generate_msr_vtt_sends_every_reference(tmp_path, fake, capsys):
    msr = write_msr_vtt_fixture(tmp_path/'MSRVTT', captions_per_video=4)
    s = generate_command(
        str(tmp_path / 'chains.jsonl'),
        source=f'msr-vtt:{msr}',
        mutator='claude',
        model='claude-fake',
        tagger='keywords',
        recaption=True,
        length=2,
        num_frames=2,
        quiet=True,
        dataset=str(tmp_path / 'rcc-msr'),
    )
    assert s['splits'] == {'test': 1, 'train': 1, 'validation': 1}
    recs = [request_text(r) for r in fake.requests if 'Write the detailed caption.' in request_text(r)]
    refs = {r['id']: r['captions'] for r in load_source('msr-vtt', msr)}
    assert len(recs) == 3
    for vid, caps in refs.items():   # one request per clip carries all four human captions
        assert sum(all(f'<caption>{c}</caption>' in t for c in caps) for t in recs) == 1, vid
    chains = {c['id']: c for c in read_jsonl(tmp_path/'chains.jsonl')}
    assert all(all(c.rstrip('.') in chains[v]['captions'][0] for c in caps) for v, caps in refs.items())


def test_generate_ssv2_question_chains(tmp_path, capsys):
    ss = write_ssv2_fixture(tmp_path/'ssv2')
    s = generate_command(str(tmp_path/'ssv2.jsonl'), source=f'ssv2:{ss}', questions='mcq,yesno', length=3, quiet=True)
    assert s['finished'] == 4 and s['questions'] == 8
    from rcc_rank.data.questions import read_question_chains
    qs = read_question_chains(s['questions_path'])
    assert {q.kind for q in qs} == {'mcq', 'yesno'} and all(len(q.prompts) == 3 for q in qs)
    chains = read_jsonl(tmp_path/'ssv2.jsonl')
    assert all(c['errors'] == ['object', 'action'] for c in chains)
    assert (
        s['splits'] == {'train': 3, 'validation': 1} and (tmp_path / 'ssv2_dataset' / 'README.md').exists()
    )  # a source run gets its dataset folder
    assert (
        generate_command(str(tmp_path / 'ssv2.jsonl'), source=f'ssv2:{ss}', length=3, quiet=True)['finished'] == 0
    )  # a rerun adds nothing
    assert True and len(read_jsonl(tmp_path/'ssv2.jsonl')) == 4


def _lfmcqa_responder(body):
    desc = request_text(body).split('<description>')[1].split('</description>')[0].strip()
    choices = [desc] + [f'{desc} Variant {k}: the square is blue instead.' for k in range(4)]
    return {
        'tool_use': {
            'name': 'lfmcqa_item',
            'input': {'question': 'Which paragraph describes the video?', 'choices': choices, 'answer': 'A'},
        }
    }


def test_make_lfmcqa_then_mcq(tmp_path, monkeypatch):
    from rcc_rank.evaluation.evaluate_cli import evaluate_task
    monkeypatch.setenv('ANTHROPIC_API_KEY', 'sk-ant-test-not-a-key')
    pe = write_pe_video_fixture(
        tmp_path / 'PE-Video', {'test': [f'Clip {i}: a person does thing number {i} in a room.' for i in range(6)]}
    )
    with FakeClaude(responder=_lfmcqa_responder) as srv:
        monkeypatch.setenv('ANTHROPIC_BASE_URL', srv.base_url)
        srv.inject('429', times=1)
        r = evaluate_task(
            'make-lfmcqa',
            source=f'pe-video:{pe}',
            split='test',
            n=4,
            out=str(tmp_path / 'lfmcqa.jsonl'),
            model='claude-fake',
            quiet=True,
        )
        assert (r['written'], r['failed']) == (4, 0)
        r = evaluate_task(
            'make-lfmcqa',
            source=f'pe-video:{pe}',
            split='test',
            n=6,
            out=str(tmp_path / 'lfmcqa.jsonl'),
            model='claude-fake',
            quiet=True,
        )
        assert (r['written'], r['skipped']) == (2, 4)
    items = read_jsonl(tmp_path/'lfmcqa.jsonl')
    assert len(items) == 6 and len({it['id'] for it in items}) == 6
    assert all(
        len(set(it['choices'])) == 5 and it['choices']['ABCDE'.index(it['answer'])] == it['description'] for it in items
    )
    assert len({it['answer'] for it in items}) > 1  # the reply always said A; the shuffle moved it
    res = evaluate_task(
        'mcq',
        data=str(tmp_path / 'lfmcqa.jsonl'),
        model='tiny:qwen2_5_vl',
        num_frames=2,
        out=str(tmp_path / 'mcq.json'),
        quiet=True,
    )
    assert (
        res['n_items'] == 6
        and 0 <= res['mcq_acc'] <= 1
        and all(set(p['logprobs']) == set('ABCDE') for p in res['per_item'])
    )


def test_tempcompass_benchmark_in_one_command(tmp_path):
    from rcc_rank.evaluation.evaluate_cli import evaluate_task
    tc = write_tempcompass_fixture(tmp_path/'TempCompass')
    res = evaluate_task(
        'tempcompass',
        benchmark=str(tc),
        model='tiny:qwen2_5_vl',
        num_frames=2,
        out=str(tmp_path / 'tc.json'),
        quiet=True,
    )
    assert res['n_items'] == 4 and set(json.loads((tmp_path / 'tc.json').read_text())) >= {
        'tempcompass_acc',
        'tempcompass/direction',
        'per_item',
    }


def test_vdc_and_argus_benchmarks_in_one_command(tmp_path):
    from rcc_rank.evaluation.evaluate_cli import evaluate_task

    vdc = evaluate_task(
        'vdc',
        benchmark=str(write_vdc_fixture(tmp_path / 'VDC', n=1)),
        model='tiny:qwen2_5_vl',
        judge='tiny',
        cache='none',
        num_frames=2,
        max_new_tokens=6,
        out=str(tmp_path / 'vdc.json'),
        quiet=True,
    )
    assert {f'vdc/{d}/score' for d in ('short', 'detailed', 'background', 'main_object', 'camera')} <= set(vdc)
    assert vdc['n_items'] == 5 and len(vdc['per_item']) == 5
    # a random tiny judge writes no usable review: the official lmms-eval rule skips those, so the score is NaN,
    # and says why
    assert 0 <= vdc['vdc/score'] <= 5 or (math.isnan(vdc['vdc/score']) and vdc['notes']), vdc['notes']
    ag = evaluate_task(
        'argus',
        benchmark=str(write_argus_fixture(tmp_path / 'argus', n=2)),
        model='tiny:qwen2_5_vl',
        judge='tiny',
        cache='none',
        num_frames=2,
        max_new_tokens=6,
        out=str(tmp_path / 'argus.json'),
        quiet=True,
    )
    assert ag['n_items'] + ag['n_failed'] == 2 and {'argus/cost_h', 'argus/cost_o'} <= set(
        json.loads((tmp_path / 'argus.json').read_text())
    )


def test_lfmcqa_items_that_break_the_rules_are_asked_again(tmp_path, monkeypatch):
    ("A stored LF-MCQA item edited to an impossible answer is set aside and asked again, and counted; "
     "the output keeps one item per id")
    from rcc_rank.evaluation.evaluate_cli import evaluate_task
    monkeypatch.setenv('ANTHROPIC_API_KEY', 'sk-ant-test-not-a-key')
    pe = write_pe_video_fixture(
        tmp_path / 'PE-Video', {'test': [f'Clip {i}: a person does thing number {i} in a room.' for i in range(2)]}
    )
    out = tmp_path/'lfmcqa.jsonl'
    with FakeClaude(responder=_lfmcqa_responder) as srv:
        monkeypatch.setenv('ANTHROPIC_BASE_URL', srv.base_url)
        go = lambda: evaluate_task(
            'make-lfmcqa', source=f'pe-video:{pe}', split='test', out=str(out), model='claude-fake', quiet=True
        )
        assert go()['written'] == 2
        items = read_jsonl(out)
        items[0]['answer'] = 'Z'
        out.write_text(''.join(json.dumps(x) + '\n' for x in items))
        n0 = len(srv.requests)
        r = go()
        assert (r['rejected'], r['written'], r['skipped']) == (1, 1, 1) and len(srv.requests) - n0 == 1
    items = read_jsonl(out)
    assert len(items) == 2 and len({x['id'] for x in items}) == 2 and all(x['answer'] in 'ABCDE' for x in items)
    assert read_jsonl(tmp_path/'lfmcqa.rejected.jsonl')[0]['answer'] == 'Z'


def _pe_extended(tmp_path):
    return write_pe_video_fixture(
        tmp_path / 'PE-Video', {'train': ['A man throws a red ball to a dog.', None], 'extended': [None]}
    )


def test_published_layouts_as_downloaded(tmp_path):
    ("PE-Video rows without human_caption, MSR-VTT official + CLIP4Clip files together, "
     "VDC in AuroraCap's release layout")
    rep = {}
    pe = load_source('pe-video', _pe_extended(tmp_path), cache_dir=tmp_path/'cache', report=rep)
    assert [r['caption'] for r in pe] == ['A man throws a red ball to a dog.'] and len(rep['no_caption']) == 2
    both = load_source('pe-video', tmp_path/'PE-Video', cache_dir=tmp_path/'cache', model_caption=True)
    assert sorted(r['meta']['caption_field'] for r in both) == ['human_caption', 'model_caption', 'model_caption']
    m = write_msr_vtt_fixture(tmp_path/'MSRVTT')
    a, b = (json.loads((m/f).read_text()) for f in ('train_val_videodatainfo.json', 'test_videodatainfo.json'))
    (m/'msrvtt_data').mkdir()  # CLIP4Clip's download: every clip again, in one file
    (m / 'msrvtt_data' / 'MSRVTT_data.json').write_text(
        json.dumps({'info': {}, 'videos': a['videos'] + b['videos'], 'sentences': a['sentences'] + b['sentences']})
    )
    rep = {}
    rows = load_source('msr-vtt', m, report=rep)
    assert (
        len(rows) == 3
        and sorted(rep['merged']) == ['video0', 'video1', 'video2']
        and all(Path(r['video']).is_file() for r in rows)
    )
    b['sentences'][0]['caption'] = 'a different caption'
    (m / 'test_videodatainfo.json').write_text(json.dumps(b))
    with pytest.raises(SourceError, match=r"row 'video2': field 'captions' disagrees with .*MSRVTT_data.json"):
        load_source('msr-vtt', m)
    aur = load_benchmark('vdc', write_vdc_fixture(tmp_path/'aurora', n=2, layout='aurora'))
    hub = load_benchmark('vdc', write_vdc_fixture(tmp_path/'VDC', n=2))
    assert [(x['id'], x['reference'], x['qa']) for x in aur] == [
        (x['id'], x['reference'], x['qa']) for x in hub
    ] and len(aur) == 10
    assert (tmp_path / 'aurora' / 'post_eval' / 'VDC_1k_captions.jsonl').exists() and 'captions' in read_jsonl(
        tmp_path / 'aurora' / 'post_eval' / 'VDC_1k_captions.jsonl'
    )[0]


def test_missing_videos_error_skip_or_keep(tmp_path, capsys):
    ("Every loader stops naming the first missing video and the count, or skips, or keeps it; "
     "rcc-generate writes the report beside its output")
    m = write_msr_vtt_fixture(tmp_path / 'MSRVTT')
    (m / 'TrainValVideo' / 'video1.mp4').unlink()
    (m / 'TestVideo' / 'video2.mp4').unlink()
    with pytest.raises(
        SourceError, match=r"2 row\(s\) have no video file; the first: .*row 'video2': field 'video': no video2.mp4"
    ):
        load_source('msr-vtt', m)
    assert [r['id'] for r in load_source('msr-vtt', m, missing_video='skip')] == ['video0']
    kept = load_source('msr-vtt', m, missing_video='keep')
    assert sorted((r['id'], r['video'] is None) for r in kept) == [
        ('video0', False),
        ('video1', True),
        ('video2', True),
    ]
    for name, folder, clip in (
        ('argus', write_argus_fixture(tmp_path / 'argus', n=2), 'videos'),
        ('tempcompass', write_tempcompass_fixture(tmp_path / 'tc'), 'videos'),
    ):
        next(iter((folder/clip).iterdir())).unlink()
        with pytest.raises(SourceError, match='have no video file; the first'): load_benchmark(name, folder)
        assert (
            0
            < len(load_benchmark(name, folder, missing_video='skip'))
            < len(load_benchmark(name, folder, missing_video='keep'))
        )
    s = write_ssv2_fixture(tmp_path / 'ssv2')
    next(iter((s / '20bn-something-something-v2').iterdir())).unlink()
    with pytest.raises(SourceError, match='1 row'): load_source('ssv2', s)
    # annotation files only: text-only chains with --missing_video keep, and the report beside the output
    ann = tmp_path / 'ann'
    ann.mkdir()
    for f in ('train_val_videodatainfo.json', 'test_videodatainfo.json'): (ann/f).write_text((m/f).read_text())
    out = tmp_path/'chains.jsonl'
    with pytest.raises(SourceError, match='3 row'):
        generate_command(str(out), source=f'msr-vtt:{ann}', length=3, quiet=True)
    s = generate_command(str(out), source=f'msr-vtt:{ann}', length=3, quiet=True, missing_video='keep')
    chains = read_jsonl(out)
    assert len(chains) == 3 and all(c.get('video') is None for c in chains) and s['finished'] == 3
    rep = json.loads((tmp_path/'chains.skipped.json').read_text())
    assert (
        rep['n_missing_video'] == 3
        and rep['missing_video_policy'] == 'keep'
        and s['skip_report'].endswith('chains.skipped.json')
    )
