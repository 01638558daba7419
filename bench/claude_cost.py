#!/usr/bin/env python3
"""What a Claude run would cost: `rcc-generate --recaption` (+ `--batch`) end to end against the fake server, scaled.

    python bench/claude_cost.py                      # 24 videos (640x360, 8 frames), chains of 6 captions, scaled to 8,000
    python bench/claude_cost.py --rows 48 --scale 8000 --width 854 --height 480

The CLI runs in a subprocess with the real SDK against `rcc_rank.testing.fake_claude.FakeClaude`, once with the Messages API
and once with `--batch`, on the package's real prompts, tool and image sizes. The fake answers recaptions with a
detailed caption of about 120 words and degradation steps with the rule mutator's edits. Its token counts are an
estimate: four characters a token for text (a real tokenizer differs; the 5.x models' tokenizer counts more), and
`ceil(w * h / 750)` per image as the API documents. Usage (cache writes and reads included) is summed by the package
itself and priced by `estimate_cost`; the per-row figures are then multiplied up to `--scale` rows. The model's
adaptive thinking, which a real reply may add to the output tokens, is not simulated.
Prints one JSON object.
"""
import os, sys, json, argparse, subprocess, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('HF_HUB_OFFLINE', '1')

from rcc_rank.core.basics import append_jsonl
from rcc_rank.data.mutators import rule_types
from rcc_rank.data.claude_models import DEFAULT_MODEL, estimate_cost
from rcc_rank.testing.responders import rule_responder
from rcc_rank.testing.fake_claude import FakeClaude
from rcc_rank.testing.fixtures import write_test_video

DETAILED = (
    'A man in a red jacket walks across a small park holding a blue ball while a brown dog runs next to him. '
    'Two children sit on a wooden bench to the left of a tall green tree and watch them. The man stops near a '
    'white fountain and throws the ball to the right, and the dog chases it across the grass. Three birds fly '
    'above the trees as the light turns golden. A woman in a yellow coat pushes a black stroller along the path '
    'behind the bench. Then the camera pans left and slowly zooms in on the fountain.'
)

def responder(body):
    imgs = sum(
        b.get('type') == 'image'
        for m in body['messages']
        for b in (m['content'] if isinstance(m['content'], list) else [])
    )
    return DETAILED if imgs else rule_responder()(body)

def run(rows_file, out, srv, batch, model):
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'ANTHROPIC_API_KEY': 'sk-fake', 'ANTHROPIC_BASE_URL': srv.base_url}
    args = [sys.executable, '-m', 'rcc_rank.recipes.generate', rows_file, out, '--mutator', 'claude', '--model', model, '--tagger', 'keywords',
            '--types', ','.join(rule_types()), '--length', '6', '--recaption', '--num_frames', '8', '--poll_interval', '0.01', '--quiet']
    p = subprocess.run(args + (['--batch'] if batch else []), env=env, capture_output=True, text=True, timeout=1200)
    if p.returncode: raise SystemExit(p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])

TOK = ('input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens')

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rows', type=int, default=24)
    ap.add_argument('--scale', type=int, default=8000)
    ap.add_argument('--width', type=int, default=640)
    ap.add_argument('--height', type=int, default=360)
    ap.add_argument('--model', default=DEFAULT_MODEL)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rows = [{'id': f'v{i}', 'caption': 'a man plays with a dog in a park',
             'video': str(write_test_video(tmp/f'v{i}.mp4', n=16, size=(a.height, a.width)))} for i in range(a.rows)]
    append_jsonl(tmp/'in.jsonl', rows)
    out = {'model': a.model, 'rows_measured': a.rows, 'scaled_to': a.scale, 'frames': 8, 'frame_size': [a.width, a.height], 'length': 6}
    for batch in (False, True):
        with FakeClaude(responder=responder, batch_polls=0) as srv:
            s = run(tmp/'in.jsonl', tmp/f'chains-{int(batch)}.jsonl', srv, batch, a.model)
        r, k = s['recaption'], a.scale / a.rows
        rec = {t: round(r[t] * k) for t in TOK}
        gen = {t: round(s[t] * k) for t in TOK}
        out['batch' if batch else 'messages'] = {
            'recaption_tokens': rec,
            'recaption_image_tokens': round(r['image_tokens'] * k),
            'steps_tokens': gen,
            'steps': round(s['steps'] * k),
            'calls_per_chain_step': round((s['steps'] + s['refusals'] + s['invalid']) / max(1, s['steps']), 3),
            'usd_recaption': round(estimate_cost(rec, a.model, batch=batch), 2),
            'usd_steps': round(estimate_cost(gen, a.model, batch=batch), 2),
            'usd_total': round(estimate_cost(rec, a.model, batch=batch) + estimate_cost(gen, a.model, batch=batch), 2),
            'measured_usd_estimate': s['usd_estimate'],
            'batches': s.get('batches'),
        }
    print(json.dumps(out))

if __name__ == '__main__': main()
