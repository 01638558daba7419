"""Real-scale readiness on CPU with tiny random-weight models.

- every shipped GPU experiment config builds and takes two steps, once per distinct combination of the flags that change
  the code path (architecture, objective, frozen vision, gradient checkpointing, shared prefix);
- gradient checkpointing gives the same losses as without (fp32, < 1e-5), on both architectures, with the shared prefix
  and LoRA on the language model and the vision encoder.
"""
import os
from pathlib import Path

import numpy as np, pytest, torch

ROOT = Path(__file__).resolve().parent.parent
os.environ.update(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false')
torch.set_num_threads(1)

from conftest import ENV
from rcc_rank.data.chains import Chain
from rcc_rank.views.experiments import load_experiment, grid_cells
from rcc_rank.training.train import TrainConfig, train, build_model, resolve_precision
from rcc_rank.training.policy import enable_checkpointing

GPU_CONFIGS = sorted((ROOT/'examples'/'experiments'/'gpu').glob('*.yaml'))
FLAGS = ('objective', 'freeze_vision', 'gradient_checkpointing', 'shared_prefix')


def tiny_name(model: str) -> str:
    "The tiny model of the same architecture as a hub id or `tiny:` name"
    m = model.lower()
    if m.startswith('tiny:'): return model
    if 'perception' in m: return 'tiny:perception_lm'
    if 'qwen2.5-vl' in m or 'qwen2_5_vl' in m: return 'tiny:qwen2_5_vl'
    raise ValueError(f"no tiny model for {model!r}")


def flag_combos():
    "{(model, *FLAGS): [config names]} over every cell of every shipped GPU config"
    defaults = TrainConfig()
    out = {}
    for path in GPU_CONFIGS:
        for cell in grid_cells(load_experiment(path)):
            t = {**{f: getattr(defaults, f) for f in ('model',) + FLAGS}, **cell['train']}
            key = (tiny_name(t['model']),) + tuple(t[f] for f in FLAGS)
            out.setdefault(key, []).append(path.stem)
    return out


COMBOS = flag_combos()


def chains(n=2, k=3, seed=0):
    rng = np.random.default_rng(seed)
    caps = ['A red ball rolls to the left.', 'A blue ball rolls to the left.', 'A blue cube rolls to the left.',
            'A blue cube rolls to the right.']
    return [Chain(f'c{i}', caps[:k], meta={'frames': rng.integers(0, 255, (2, 56, 56, 3), dtype=np.uint8), 'fps': 1.0})
            for i in range(n)]


def test_configs_found():
    assert len(GPU_CONFIGS) >= 10, GPU_CONFIGS
    assert all(k[3] for k in COMBOS), "every shipped GPU config sets gradient_checkpointing: true"
    assert {k[0] for k in COMBOS} == {'tiny:qwen2_5_vl', 'tiny:perception_lm'}


@pytest.mark.parametrize('combo', sorted(COMBOS, key=str), ids=lambda c: '-'.join(map(str, c)))
def test_shipped_config_combo_steps(combo, tmp_path):
    model, objective, freeze_vision, gc, shared = combo
    flags = dict(model=model, freeze_vision=freeze_vision, gradient_checkpointing=gc, shared_prefix=shared)
    if objective == 'pretrained':   # evaluated as is: the model is built, no step is taken
        cfg = TrainConfig(objective='sft', **flags)
        m, _ = build_model(cfg, resolve_precision(cfg)[1])
        assert any('lora_' in n for n, _ in m.named_parameters())
        return
    res = train(dict(objective=objective, cpu=True, num_frames=2, batch_size=2, max_steps=2, warmup_steps=0, lr=1e-3,
                     log_every=1, eval_every=0, save_every=0, log_with='none', output_dir=str(tmp_path/'run'), **flags),
                train_chains=chains())
    assert res['steps'] == 2 and res['nan_steps'] == 0
    losses = [h['loss'] for h in res['history']]
    assert len(losses) == 2 and all(np.isfinite(losses)), losses
    assert (tmp_path/'run'/'final'/'adapter_model.safetensors').exists()


@pytest.mark.parametrize('arch', ['qwen2_5_vl', 'perception_lm'])
def test_checkpointing_same_loss(arch, tmp_path):
    "Two rank steps with and without checkpointing: equal losses (the second depends on the first update) and adapters"
    from safetensors.torch import load_file
    runs = {}
    for gc in (False, True):
        out = tmp_path/f'gc{gc}'
        res = train(dict(model=f'tiny:{arch}', objective='rank', gradient_checkpointing=gc, shared_prefix=True,
                         freeze_vision=False, cpu=True, num_frames=2, batch_size=2, max_steps=2, warmup_steps=0,
                         lr=1e-2,
                         log_every=1, eval_every=0, save_every=0, log_with='none', output_dir=str(out)),
                    train_chains=chains(k=4))
        runs[gc] = ([h['loss'] for h in res['history']], load_file(str(out/'final'/'adapter_model.safetensors')))
    (l0, a0), (l1, a1) = runs[False], runs[True]
    assert l0[0] != l0[1]
    assert max(abs(x - y) for x, y in zip(l0, l1)) < 1e-5, (l0, l1)
    assert any('visual' in k or 'vision_tower' in k for k in a0)   # adapters on the vision side too
    assert max((a0[k] - a1[k]).abs().max().item() for k in a0) < 1e-5


def test_checkpointing_reaches_vision_blocks():
    from rcc_rank.modeling.models import tiny_model
    m, _ = tiny_model('perception_lm', vision='timm', patch_size=16, image_size=64)
    names = enable_checkpointing(m)
    assert 'model.vision_tower.timm_model' in names and m.model.vision_tower.timm_model.grad_checkpointing
    assert sum('language_model.layers' in n for n in names) == 2


class Recorder:
    ("Forward pre-hooks recording the first model call of a path: second_per_grid_ts and the positions of the "
     "video tokens")
    def __init__(self, hf):
        self.hf, self.calls = hf, []
        self.h = [hf.model.register_forward_pre_hook(self.outer, with_kwargs=True),
                  hf.model.language_model.register_forward_pre_hook(self.inner, with_kwargs=True)]
    def outer(self, mod, args, kw):
        if kw.get('input_ids') is not None and kw['input_ids'].shape[1] > 1:   # the prefill, not a decoding step
            self.calls.append(dict(ids=kw['input_ids'], spg=kw.get('second_per_grid_ts')))
    def inner(self, mod, args, kw):
        if self.calls and 'pos' not in self.calls[-1]: self.calls[-1]['pos'] = kw['position_ids']
    def video(self):
        "second_per_grid_ts and the (3, n_video_tokens) M-RoPE positions of row 0 of the first call"
        c = self.calls[0]
        at = (c['ids'][0] == self.hf.config.video_token_id).nonzero()[:, 0]
        pos = c['pos'][-3:, 0] if c['pos'].ndim == 3 else c['pos'][None, 0].expand(3, -1)
        return round(float(c['spg'][0]), 6), pos[:, at].tolist()
    def close(self):
        for h in self.h: h.remove()


def test_one_clock_on_every_path(tmp_path):
    ("One video: identical second_per_grid_ts and video-token positions in train, rank, generate, mcq, "
     "caption matching, sampling")
    from rcc_rank.modeling.models import tiny_model
    from rcc_rank.data.video import video_info
    from rcc_rank.testing.fixtures import write_test_video
    from rcc_rank.modeling.scoring import ChainCollator, chain_logps
    from rcc_rank.evaluation.evaluate import rank_chains, generate_captions
    from rcc_rank.evaluation.mcq import mcq_evaluate, caption_matching
    from rcc_rank.recipes.baselines import policy_sampler
    model, proc = tiny_model('qwen2_5_vl')
    clip = str(write_test_video(tmp_path/'clip.mp4', n=30, fps=10, size=(56, 56)))
    assert video_info(clip)['fps'] == 10
    nf = 4
    from rcc_rank.data.chains import Mutation

    chain = Chain(
        'v',
        ['A red square moves right.', 'A blue square moves right.'],
        [Mutation('colour', 'red', 'blue')],
        video=clip,
    )
    q = 'Which caption fits?\nCaption A: a red square moves right\nCaption B: a red square moves left'
    paths = {
        'train': lambda: chain_logps(
            model, ChainCollator(proc, num_frames=nf, max_captions=2)([chain]), shared_prefix=False
        ),
        'train_shared': lambda: chain_logps(model, ChainCollator(proc, num_frames=nf)([chain]), shared_prefix=True),
        'rank': lambda: rank_chains(model, proc, [chain], num_frames=nf, progress=False),
        'generate': lambda: generate_captions(
            model, proc, [{'id': 'v', 'video': clip}], num_frames=nf, max_new_tokens=2, progress=False
        ),
        'mcq': lambda: mcq_evaluate(
            model,
            proc,
            [{'id': 'v', 'video': clip, 'question': 'What moves?', 'choices': ['a square', 'a ball'], 'answer': 'A'}],
            num_frames=nf,
            progress=False,
        ),
        'caption_matching': lambda: caption_matching(
            model,
            proc,
            [
                {
                    'id': 'v',
                    'video': clip,
                    'dim': 'direction',
                    'question': q,
                    'answer': 'Caption A: a red square moves right',
                }
            ],
            num_frames=nf,
            max_new_tokens=2,
            progress=False,
        ),
        'sample': lambda: policy_sampler(model, proc, num_frames=nf, max_new_tokens=2)([{'id': 'v', 'video': clip}], 1),
    }
    seen = {}
    for name, run in paths.items():
        rec = Recorder(model)
        try:
            with torch.no_grad(): run()
        finally: rec.close()
        assert rec.calls and 'pos' in rec.calls[0], name
        seen[name] = rec.video()
    spg, pos = seen['train']
    assert spg == 1.5, spg                              # 4 of 30 frames at 10 fps: 4/3 fps, 2 frames per temporal patch
    assert len(pos[0]) == 2 * 2 * 2 and len(set(pos[0])) == 2   # 2 temporal patches x (4 x 4 patches merged 2 x 2)
    for name, got in seen.items(): assert got == seen['train'], (name, got, seen['train'])


ACC = ROOT/'examples'/'accelerate'


@pytest.mark.parametrize('cfg,launch_cpu,train_cpu,expect', [
    ('fsdp_8gpu', True, True, 'started only this one'),     # launch --cpu: one process, the FSDP part dropped
    ('fsdp_8gpu', False, True, 'asked for FSDP'),           # two processes, accelerate falls back to CPU DDP
    ('fsdp_8gpu', False, False, 'asked for FSDP'),          # no GPU visible, no --cpu
    ('deepspeed_zero3', True, True, 'started only this one'),
])
def test_sharded_launch_on_cpu_stops(cfg, launch_cpu, train_cpu, expect, tmp_path):
    "FSDP/DeepSpeed configs on a CPU machine: rcc-train stops with a clear error, writes nothing, exit status non-zero"
    import subprocess, sys
    if launch_cpu is False and torch.cuda.is_available(): pytest.skip('a GPU is visible: the engine would start')
    cmd = [
        sys.executable,
        '-m',
        'accelerate.commands.launch',
        '--config_file',
        str(ACC / f'{cfg}.yaml'),
        '--num_processes',
        '2',
        '--mixed_precision',
        'no',
        *(['--cpu'] if launch_cpu else []),
        '-m',
        'rcc_rank.training.train',
        '--train_data',
        str(tmp_path / 'chains.jsonl'),
        '--output_dir',
        str(tmp_path / 'run'),
        *(['--cpu'] if train_cpu else []),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=ENV)
    assert out.returncode != 0
    assert expect in out.stderr, out.stderr[-3000:]
    assert not (tmp_path/'run').exists()


def test_launch_checks_pass_plain_runs():
    "What the checks accept: a matching engine and world, single-process runs, CPU DDP"
    from rcc_rank.training.runs import check_engine, check_world
    check_engine('FSDP', 'cuda', {'ACCELERATE_USE_FSDP': 'true'})
    check_engine('DEEPSPEED', 'cuda', {'ACCELERATE_USE_DEEPSPEED': 'true'})
    check_engine('MULTI_CPU', 'cpu', {})
    check_world(2, {'WORLD_SIZE': '2', 'LOCAL_WORLD_SIZE': '2'})
    check_world(8, {'WORLD_SIZE': '8', 'LOCAL_WORLD_SIZE': '8'}, gpus=8)
    with pytest.raises(RuntimeError, match='only 4 GPU'):
        check_world(8, {'WORLD_SIZE': '8', 'LOCAL_WORLD_SIZE': '8'}, gpus=4)


def test_accelerate_configs_parse():
    "Every shipped accelerate config loads with accelerate's own parser; the sharded ones name their engine"
    from accelerate.commands.config.config_args import load_config_from_file
    got = {p.stem: load_config_from_file(str(p)) for p in sorted(ACC.glob('*.yaml'))}
    assert got['fsdp_8gpu'].distributed_type == 'FSDP' and got['fsdp_8gpu'].fsdp_config['fsdp_version'] == 2
    assert (
        got['deepspeed_zero2'].deepspeed_config['zero_stage'] == 2
        and got['deepspeed_zero3'].deepspeed_config['zero_stage'] == 3
    )
    assert got['fsdp_1gpu'].num_processes == 1 and got['fsdp_1gpu'].distributed_type == 'FSDP'


def test_chain_scorer_names_its_blocks_for_fsdp2():
    ("FSDP2's transformer auto-wrap reads `_no_split_modules` from the model it wraps (the ChainScorer): "
     "every class resolves")
    from accelerate.utils.dataclasses import get_module_class_from_name
    from rcc_rank.training.policy import ChainScorer
    for arch in ('qwen2_5_vl', 'perception_lm'):
        m, _ = build_model(TrainConfig(model=f'tiny:{arch}'))
        s = ChainScorer(m)
        assert s._no_split_modules, arch
        assert all(get_module_class_from_name(s, n) is not None for n in s._no_split_modules), (
            arch,
            s._no_split_modules,
        )
        assert any('DecoderLayer' in n for n in s._no_split_modules)


def test_gpu_script_smoke(tmp_path):
    ("bench/gpu.sh --smoke runs every stage on the CPU and writes one JSON; the FSDP2 stage stops with the launch "
     "check's error")
    import json, subprocess
    out = tmp_path/'gpu.json'
    r = subprocess.run(
        ['bash', str(ROOT / 'bench' / 'gpu.sh'), '--smoke', '--out', str(out), '--adapters', 'qwen2_5_vl,qwen3_vl'],
        capture_output=True,
        text=True,
        timeout=900,
        env=ENV,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    st = res['stages']
    assert res['smoke'] is True and set(st) == {
        'scoring',
        'rank_step',
        'fsdp2_step',
        'fsdp2_resume',
        'adapter_qwen2_5_vl',
        'adapter_qwen3_vl',
        'video',
    }
    for a in ('qwen2_5_vl', 'qwen3_vl'):   # each family's adapter: the split path equals the plain one
        ad = st[f'adapter_{a}']
        assert (
            ad['exit'] == 0 and ad['json']['arch'] == a and all(x['max_abs_diff'] < 1e-4 for x in ad['json']['results'])
        ), ad
    v = st['video']
    assert (
        v['exit'] == 0
        and v['json']['max_abs_diff'] == 0
        and v['json']['same_indices']
        and v['json']['speedup_long'] > 0
    ), v
    sc = st['scoring']['json']['results']
    assert st['scoring']['exit'] == 0 and [x['K'] for x in sc] == [2, 4]
    assert all(x['split_max_abs_diff'] < 1e-4 and x['packed_max_abs_diff'] < 1e-4 and x['split_s'] > 0 for x in sc)
    rs = st['rank_step']['json']['results']
    assert st['rank_step']['exit'] == 0 and [x['gradient_checkpointing'] for x in rs] == [False, True]
    assert rs[0]['loss_first_step'] == rs[1]['loss_first_step'] and all(
        x['tokens_per_s'] > 0 and x['model_flops_per_step'] > 0 for x in rs
    )
    for s in ('fsdp2_step', 'fsdp2_resume'):
        assert st[s]['exit'] != 0 and any('asked for FSDP' in e for e in st[s]['errors']), st[s]
    assert res['fsdp2']['checkpoints'] == []
